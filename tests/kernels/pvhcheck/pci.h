/*
 * PCI configuration space through the legacy I/O mechanism (CF8/CFC), and the
 * host bridges pvhcheck knows: every read is the chipset's answer, not the
 * firmware's.
 */
#ifndef PVHCHECK_PCI_H
#define PVHCHECK_PCI_H

#include <stdint.h>

#define PCI_ID_I440FX 0x12378086u   /* 00:00.0 on -M pc: device 0x1237, vendor 0x8086 */
#define PCI_ID_Q35    0x29c08086u   /* 00:00.0 on -M q35 (the MCH) */
#define PCI_ID_NONE   0xffffffffu   /* nothing answers (microvm has no CF8/CFC PCI) */

#define PCI_BDF(bus, dev, fn) ((uint32_t)(bus) << 8 | (uint32_t)(dev) << 3 | (uint32_t)(fn))

uint32_t pci_read32(uint32_t bdf, uint32_t reg);
uint8_t pci_read8(uint32_t bdf, uint32_t reg);

/* 00:00.0's vendor/device dword. */
uint32_t pci_host_id(void);

#endif
