/* PAM0..PAM6 of the host bridge, when it is one pvhcheck knows (pam.h). */
#include "pam.h"
#include "pci.h"
#include "serial.h"

#define PAM_COUNT 7
#define I440FX_PAM0 0x59
#define Q35_PAM0 0x90

void pam_report(void)
{
    uint32_t host = pci_host_id();
    uint32_t pam0 = host == PCI_ID_I440FX ? I440FX_PAM0 : host == PCI_ID_Q35 ? Q35_PAM0 : 0;
    if (!pam0) {
        kprintf("PVHCHECK pam host=0x%x reg=none\n", host);
        return;
    }
    kprintf("PVHCHECK pam host=0x%x reg=0x%x", host, pam0);
    for (uint32_t i = 0; i < PAM_COUNT; i++)
        kprintf(" pam%u=0x%x", i, (uint32_t)pci_read8(PCI_BDF(0, 0, 0), pam0 + i));
    kprintf("\n");
}
