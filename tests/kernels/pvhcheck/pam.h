/*
 * The host bridge's PAM registers (who answers reads and writes in
 * 0xc0000-0xfffff: ROM/PCI, or RAM read-only / write-only / read-write):
 * i440FX PAM0..6 at config bytes 0x59..0x5f, Q35's MCH at 0x90..0x96.
 *
 *   PVHCHECK pam host=0x<00:00.0 id> reg=0x<PAM0 offset>|none pam0=0x.. ... pam6=0x..
 */
#ifndef PVHCHECK_PAM_H
#define PVHCHECK_PAM_H

void pam_report(void);

#endif
