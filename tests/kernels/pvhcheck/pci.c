/*
 * CF8/CFC configuration access: write 0x80000000 | bdf << 8 | (reg & 0xfc) to
 * 0xcf8, then read the dword at 0xcfc, or a byte at 0xcfc + (reg & 3).
 */
#include "pci.h"
#include "io.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA    0xcfc
#define PCI_ENABLE         0x80000000u

static void pci_select(uint32_t bdf, uint32_t reg)
{
    outl(PCI_CONFIG_ADDRESS, PCI_ENABLE | bdf << 8 | (reg & 0xfc));
}

uint32_t pci_read32(uint32_t bdf, uint32_t reg)
{
    pci_select(bdf, reg);
    return inl(PCI_CONFIG_DATA);
}

uint8_t pci_read8(uint32_t bdf, uint32_t reg)
{
    pci_select(bdf, reg);
    return inb((uint16_t)(PCI_CONFIG_DATA + (reg & 3)));
}

uint32_t pci_host_id(void)
{
    return pci_read32(PCI_BDF(0, 0, 0), 0);
}
