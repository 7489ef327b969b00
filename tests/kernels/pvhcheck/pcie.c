/* The Q35 MMCONFIG window, read through both access mechanisms (pcie.h). */
#include "pcie.h"
#include "check.h"
#include "io.h"
#include "pci.h"
#include "regions.h"
#include "serial.h"

#define MCH_PCIEXBAR 0x60
#define PCIEXBAR_EN 1u
/* Base address bits by LENGTH (bits 2:1), as QEMU's mch_update_pciexbar masks them. */
#define PCIEXBAR_ADMSK 0x0000000ff0000000ull      /* bits 35:28 */
#define PCIEXBAR_128ADMSK (1ull << 26)
#define PCIEXBAR_64ADMSK (1ull << 25)
#define ECAM_DEVICES 32

static struct {
    uint32_t host;
    bool q35, enabled, reserved_length, reachable;
    uint64_t pciexbar, base, size;
    uint32_t devices, mismatches, ext;
    uint32_t first_bad_dev, first_bad_cf8, first_bad_ecam;
} pcie;

static const volatile uint32_t *ecam_dword(uint32_t bdf, uint32_t reg)
{
    return (const volatile uint32_t *)(uintptr_t)(pcie.base + ((uint64_t)bdf << 12) + reg);
}

static void pcie_probe(void)
{
    pcie.host = pci_host_id();
    pcie.q35 = pcie.host == PCI_ID_Q35;
    if (!pcie.q35)
        return;
    uint32_t lo = pci_read32(PCI_BDF(0, 0, 0), MCH_PCIEXBAR);
    uint32_t hi = pci_read32(PCI_BDF(0, 0, 0), MCH_PCIEXBAR + 4);
    pcie.pciexbar = (uint64_t)hi << 32 | lo;
    pcie.enabled = lo & PCIEXBAR_EN;
    uint64_t mask = PCIEXBAR_ADMSK;
    switch ((lo >> 1) & 3) {
    case 0:
        pcie.size = 256u << 20;
        break;
    case 1:
        pcie.size = 128u << 20;
        mask |= PCIEXBAR_128ADMSK | PCIEXBAR_64ADMSK;
        break;
    case 2:
        pcie.size = 64u << 20;
        mask |= PCIEXBAR_64ADMSK;
        break;
    default:
        pcie.reserved_length = true;
        break;
    }
    pcie.base = pcie.pciexbar & mask;
    if (!pcie.enabled || pcie.reserved_length)
        return;
    pcie.reachable = phys_ptr(pcie.base, pcie.size) != NULL;
    if (!pcie.reachable)
        return;
    for (uint32_t dev = 0; dev < ECAM_DEVICES; dev++) {
        uint32_t bdf = PCI_BDF(0, dev, 0);
        uint32_t cf8 = pci_read32(bdf, 0);
        if (cf8 == PCI_ID_NONE)
            continue;
        pcie.devices++;
        uint32_t ecam = *ecam_dword(bdf, 0);
        if (ecam != cf8 && pcie.mismatches++ == 0) {
            pcie.first_bad_dev = dev;
            pcie.first_bad_cf8 = cf8;
            pcie.first_bad_ecam = ecam;
        }
    }
    pcie.ext = *ecam_dword(PCI_BDF(0, 0, 0), 0x100);
}

static const char *ecam_state(void)
{
    if (!pcie.enabled)
        return "off";
    if (pcie.reserved_length || !pcie.reachable)
        return "unreachable";
    return pcie.mismatches || pcie.devices == 0 ? "bad" : "ok";
}

void pcie_report(void)
{
    pcie_probe();
    if (!pcie.q35) {
        kprintf("PVHCHECK pcie host=0x%x pciexbar=none ecam=off\n", pcie.host);
        return;
    }
    kprintf("PVHCHECK pcie host=0x%x pciexbar=0x%llx base=0x%llx size=0x%llx ecam=%s",
            pcie.host, pcie.pciexbar, pcie.base, pcie.size, ecam_state());
    if (pcie.enabled && pcie.reachable)
        kprintf(" devices=%u ext=0x%x", pcie.devices, pcie.ext);
    kprintf("\n");
}

void pcie_checks(void)
{
    struct detail c = {0};
    if (pcie.q35 && pcie.enabled) {
        if (pcie.reserved_length) {
            d_str(&c, "PCIEXBAR ");
            d_hex(&c, pcie.pciexbar);
            d_more(&c, " has the reserved LENGTH 3");
        } else if (!pcie.reachable) {
            d_str(&c, "ECAM base ");
            d_hex(&c, pcie.base);
            d_more(&c, " not addressable with paging off");
        } else if (pcie.devices == 0) {
            d_str(&c, "no device on bus 0 answers through CF8/CFC");
        } else if (pcie.mismatches) {
            d_str(&c, "device ");
            d_dec(&c, pcie.first_bad_dev);
            d_more(&c, " reads ");
            d_hex(&c, pcie.first_bad_ecam);
            d_more(&c, " through ECAM, ");
            d_hex(&c, pcie.first_bad_cf8);
            d_more(&c, " through CF8/CFC");
            if (pcie.mismatches > 1) {
                d_str(&c, "devices differing: ");
                d_dec(&c, pcie.mismatches);
            }
        }
    }
    check_report("pcie_ecam_config", &c);

    struct detail r = {0};
    if (pcie.q35 && pcie.enabled && !pcie.reserved_length &&
        !covered(memmap_regions, memmap_count, E820_RESERVED, pcie.base, pcie.size)) {
        d_str(&r, "ECAM ");
        d_hex(&r, pcie.base);
        d_more(&r, "+");
        d_hex(&r, pcie.size);
        d_more(&r, " not covered by reserved (type 2) memory map entries");
    }
    check_report("pcie_ecam_reserved", &r);
}
