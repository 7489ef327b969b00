/*
 * Q35's PCIe MMCONFIG (ECAM): the MCH's PCIEXBAR (config 0x60, 64 bits), and
 * when it is enabled, configuration space read through the ECAM window.
 *
 *   PVHCHECK pcie host=0x<00:00.0 id> pciexbar=0x..|none base=0x.. size=0x..
 *                 ecam=ok|off|bad|unreachable devices=N ext=0x..
 *
 * pciexbar=none: 00:00.0 is not a Q35 MCH (no line fields after ecam=off).
 * ecam=off: PCIEXBAREN (bit 0) clear.  With it set: devices = functions 0 of
 * bus 0 answering through CF8/CFC, ext = ECAM dword 0x100 of 00:00.0 (the
 * first extended capability header; QEMU answers 0 or ~0 when there is none),
 * ecam=ok when every such device's dword 0 reads the same through ECAM.
 */
#ifndef PVHCHECK_PCIE_H
#define PVHCHECK_PCIE_H

void pcie_report(void);

/*
 * pcie_ecam_config: ECAM (when enabled) shows the configuration space CF8/CFC shows.
 * pcie_ecam_reserved: the kernel's memory map has the whole ECAM window as a
 * reserved (type 2) range, as Linux requires before it uses MMCONFIG.
 */
void pcie_checks(void);

#endif
