/*
 * The MP table (mptable.h).  Layouts (MPS 1.4 chapter 4):
 *   floating pointer, 16 bytes: 0 "_MP_", 4 u32 config table address, 8 length
 *       in 16-byte units (1), 9 spec (1 or 4), 10 checksum (all 16 sum to 0),
 *       11 feature1 (0: a config table; n: default configuration n), 12 feature2.
 *   config header, 44 bytes: 0 "PCMP", 4 u16 base length (header + entries),
 *       6 spec, 7 checksum (base length bytes sum to 0), 8 OEM ID[8], 16 product
 *       ID[12], 28 u32 OEM table, 32 u16 OEM table size, 34 u16 entry count,
 *       36 u32 local APIC address, 40 u16 extended length, 42 extended checksum.
 *   entries: 0 processor (20 bytes: apic id, version, flags EN=1 BP=2, u32
 *       signature, u32 features), 1 bus (8: id, type[6]), 2 I/O APIC (8: id,
 *       version, flags EN=1, u32 address), 3 I/O interrupt and 4 local interrupt
 *       (8: irqtype, u16 flags, source bus, source irq, destination APIC id, pin).
 */
#include "mptable.h"
#include "check.h"
#include "cpu.h"
#include "io.h"
#include "serial.h"

#define MPC_HEADER 44
#define MAX_ENTRIES 512
#define IOAPIC_ADDR 0xfec00000u
#define BDA_EBDA_SEG 0x40e

enum { MP_CPU, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC, MP_TYPES };
enum { IRQ_INT = 0, IRQ_NMI = 1, IRQ_EXTINT = 3 };

static const uint8_t entry_size[MP_TYPES] = {20, 8, 8, 8, 8};
static const char *const entry_name[MP_TYPES] = {"cpu", "bus", "ioapic", "intsrc", "lintsrc"};

static struct {
    uint32_t fp;                /* 0: none */
    const uint8_t *f;
    bool near;
    uint32_t near_addr;
    const char *near_why;

    uint32_t table;
    const uint8_t *t;           /* NULL: feature1 != 0, or not addressable */
    uint32_t base_length, entries, walked;
    bool walk_failed;
    uint32_t walk_off, walk_type;   /* where and what stopped the walk */
    uint32_t off[MAX_ENTRIES];      /* entry offsets in the table */

    uint32_t cpus_enabled;
    int isa_bus;                /* bus id of the first "ISA   " bus, -1 for none */
    int ioapic;                 /* id of the I/O APIC at 0xfec00000, -1 for none */
    uint32_t isa_mask;          /* ISA IRQs 0..15 with an INT entry */
} mp;

/* Linux's smp_scan_config test. */
static bool fp_valid(const uint8_t *p)
{
    return memcmp(p, "_MP_", 4) == 0 && p[8] == 1 && sum8(p, 16) == 0 &&
           (p[9] == 1 || p[9] == 4);
}

static bool scan(uint32_t base, uint32_t len, bool near)
{
    for (uint32_t a = base; a + 16 <= base + len; a += 16) {
        const uint8_t *p = (const uint8_t *)(uintptr_t)a;
        if (!near && fp_valid(p)) {
            mp.fp = a;
            mp.f = p;
            return true;
        }
        if (near && memcmp(p, "_MP_", 4) == 0 && (p[8] == 1 || p[9] == 1 || p[9] == 4)) {
            mp.near = true;
            mp.near_addr = a;
            mp.near_why = p[8] != 1                    ? "length is not 1"
                          : sum8(p, 16) != 0           ? "its 16 bytes do not sum to 0"
                                                       : "spec is neither 1 nor 4";
            return true;
        }
    }
    return false;
}

/* default_find_smp_config's order; with near, the same ranges for a rejected "_MP_". */
static void mp_find(bool near)
{
    if (scan(0, 0x400, near) || scan(0x9fc00, 0x400, near) || scan(0xf0000, 0x10000, near))
        return;
    uintptr_t bda = BDA_EBDA_SEG;
    __asm__("" : "+r"(bda));  /* a real address, not the null page gcc warns about */
    uint32_t ebda = (uint32_t)*(const volatile uint16_t *)bda << 4;
    if (ebda)
        scan(ebda, 0x400, near);
}

static const uint8_t *entry(uint32_t i)
{
    return mp.t + mp.off[i];
}

static void mp_walk(void)
{
    const uint8_t *t = mp.t;
    mp.base_length = u16at(t + 4);
    mp.entries = u16at(t + 34);
    if (memcmp(t, "PCMP", 4) != 0 || mp.base_length < MPC_HEADER ||
        !phys_ptr(mp.table, mp.base_length))
        return;
    uint32_t off = MPC_HEADER;
    while (off < mp.base_length) {
        uint8_t type = t[off];
        if (type >= MP_TYPES || off + entry_size[type] > mp.base_length ||
            mp.walked >= MAX_ENTRIES) {
            mp.walk_failed = true;
            mp.walk_off = off;
            mp.walk_type = type;
            return;
        }
        mp.off[mp.walked++] = off;
        off += entry_size[type];
    }
}

static void mp_summarize(void)
{
    mp.isa_bus = -1;
    mp.ioapic = -1;
    for (uint32_t i = 0; i < mp.walked; i++) {
        const uint8_t *e = entry(i);
        if (e[0] == MP_CPU && (e[3] & 1))
            mp.cpus_enabled++;
        if (e[0] == MP_BUS && mp.isa_bus < 0 && memcmp(e + 2, "ISA   ", 6) == 0)
            mp.isa_bus = e[1];
        if (e[0] == MP_IOAPIC && mp.ioapic < 0 && (e[3] & 1) && u32at(e + 4) == IOAPIC_ADDR)
            mp.ioapic = e[1];
    }
    for (uint32_t i = 0; i < mp.walked; i++) {
        const uint8_t *e = entry(i);
        if (e[0] == MP_INTSRC && e[1] == IRQ_INT && mp.isa_bus >= 0 && e[4] == mp.isa_bus &&
            e[5] < 16)
            mp.isa_mask |= 1u << e[5];
    }
}

static void report_entry(uint32_t i)
{
    const uint8_t *e = entry(i);
    kprintf("PVHCHECK mptable %s %u", entry_name[e[0]], i);
    switch (e[0]) {
    case MP_CPU:
        kprintf(" apic=%u version=0x%x flags=0x%x signature=0x%x features=0x%x\n",
                (uint32_t)e[1], (uint32_t)e[2], (uint32_t)e[3], u32at(e + 4), u32at(e + 8));
        break;
    case MP_BUS:
        kprintf(" id=%u type=", (uint32_t)e[1]);
        serial_put_hexbytes(e + 2, 6);
        kprintf("\n");
        break;
    case MP_IOAPIC:
        kprintf(" id=%u version=0x%x flags=0x%x addr=0x%x\n", (uint32_t)e[1], (uint32_t)e[2],
                (uint32_t)e[3], u32at(e + 4));
        break;
    default:
        kprintf(" irqtype=%u flags=0x%x bus=%u irq=%u dst=%u pin=%u\n", (uint32_t)e[1],
                (uint32_t)u16at(e + 2), (uint32_t)e[4], (uint32_t)e[5], (uint32_t)e[6],
                (uint32_t)e[7]);
        break;
    }
}

void mptable_report(void)
{
    memset(&mp, 0, sizeof(mp));
    mp_find(false);
    if (!mp.fp) {
        mp_find(true);
        kprintf("PVHCHECK mptable fp=none\n");
        return;
    }
    mp.table = u32at(mp.f + 4);
    if (mp.f[11] == 0 && mp.table)
        mp.t = phys_ptr(mp.table, MPC_HEADER);
    kprintf("PVHCHECK mptable fp=0x%x", mp.fp);
    if (mp.t)
        kprintf(" table=0x%x", mp.table);
    else
        kprintf(" table=none");
    kprintf(" spec=%u feature1=0x%x feature2=0x%x", (uint32_t)mp.f[9], (uint32_t)mp.f[11],
            (uint32_t)mp.f[12]);
    if (!mp.t) {
        kprintf("\n");
        return;
    }
    mp_walk();
    mp_summarize();
    kprintf(" length=%u entries=%u walked=%u lapic=0x%x oem=", mp.base_length, mp.entries,
            mp.walked, u32at(mp.t + 36));
    serial_put_hexbytes(mp.t + 8, 8);
    kprintf(" product=");
    serial_put_hexbytes(mp.t + 16, 12);
    kprintf(" cpus=%u", mp.cpus_enabled);
    if (mp.ioapic >= 0)
        kprintf(" ioapic=%u@0x%x", (uint32_t)mp.ioapic, IOAPIC_ADDR);
    else
        kprintf(" ioapic=none");
    kprintf(" isa_irqs=");
    bool any = false;
    for (uint32_t irq = 0; irq < 16; irq++) {
        if (mp.isa_mask & (1u << irq)) {
            kprintf("%s%u", any ? "," : "", irq);
            any = true;
        }
    }
    kprintf("%s\n", any ? "" : "-");
    for (uint32_t i = 0; i < mp.walked; i++)
        report_entry(i);
}

/* ---- checks --------------------------------------------------------------- */

static void check_floating(void)
{
    struct detail d = {0};
    if (!mp.fp && mp.near) {
        d_str(&d, "_MP_ at ");
        d_hex(&d, mp.near_addr);
        d_more(&d, ": ");
        d_more(&d, mp.near_why);
        d_more(&d, " (Linux finds no MP table)");
    } else if (mp.fp && mp.f[11] != 0) {
        d_str(&d, "feature1=");
        d_hex(&d, mp.f[11]);
        d_more(&d, ": a default configuration, no table to check");
    } else if (mp.fp && !mp.t) {
        d_str(&d, "config table address ");
        d_hex(&d, mp.table);
        d_more(&d, " unusable");
    }
    check_report("mptable_floating", &d);
}

static void check_config(void)
{
    struct detail d = {0};
    if (mp.t) {
        const uint8_t *t = mp.t;
        if (memcmp(t, "PCMP", 4) != 0) {
            d_str(&d, "no PCMP signature at ");
            d_hex(&d, mp.table);
        } else if (mp.base_length < MPC_HEADER || !phys_ptr(mp.table, mp.base_length)) {
            d_str(&d, "base length ");
            d_dec(&d, mp.base_length);
        } else {
            if (sum8(t, mp.base_length) != 0)
                d_str(&d, "base table bytes do not sum to 0");
            if (t[6] != 1 && t[6] != 4) {
                d_str(&d, "spec ");
                d_dec(&d, t[6]);
            }
            if (u32at(t + 36) == 0)
                d_str(&d, "local APIC address 0");
            if (mp.walk_failed) {
                d_str(&d, "entry at offset ");
                d_dec(&d, mp.walk_off);
                d_more(&d, ": ");
                if (mp.walk_type >= MP_TYPES) {
                    d_more(&d, "unknown type ");
                    d_dec(&d, mp.walk_type);
                } else if (mp.walked >= MAX_ENTRIES) {
                    d_more(&d, "more entries than pvhcheck records");
                } else {
                    d_more(&d, "runs past the base length");
                }
            }
            uint32_t ext = u16at(t + 40);
            const uint8_t *x = phys_ptr((uint64_t)mp.table + mp.base_length, ext);
            if (ext && (!x || (uint8_t)(sum8(x, ext) + t[42]) != 0))
                d_str(&d, "extended table bytes and checksum do not sum to 0");
        }
    }
    check_report("mptable_config", &d);
}

static void check_cpus(const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (mp.t) {
        uint32_t bsps = 0, cpus = 0, bsp_apic = 0;
        bool bsp_enabled = false, dup = false;
        for (uint32_t i = 0; i < mp.walked; i++) {
            const uint8_t *e = entry(i);
            if (e[0] != MP_CPU)
                continue;
            cpus++;
            if (e[3] & 2) {
                bsps++;
                bsp_apic = e[1];
                bsp_enabled = e[3] & 1;
            }
            for (uint32_t j = i + 1; j < mp.walked; j++) {
                if (entry(j)[0] == MP_CPU && entry(j)[1] == e[1] && !dup) {
                    d_str(&d, "APIC ID ");
                    d_dec(&d, e[1]);
                    d_more(&d, " in two processor entries");
                    dup = true;
                }
            }
        }
        uint32_t me = cpuid(1).ebx >> 24;
        if (cpus == 0) {
            d_str(&d, "no processor entry");
        } else if (bsps != 1) {
            d_str(&d, "processor entries flagged bootstrap: ");
            d_dec(&d, bsps);
        } else {
            if (!bsp_enabled)
                d_str(&d, "the bootstrap processor is not enabled");
            if (bsp_apic != me) {
                d_str(&d, "bootstrap APIC ID ");
                d_dec(&d, bsp_apic);
                d_more(&d, ", this CPU's ");
                d_dec(&d, me);
            }
        }
        if (fw->present && mp.cpus_enabled != fw->nb_cpus) {
            d_str(&d, "enabled processors ");
            d_dec(&d, mp.cpus_enabled);
            d_more(&d, ", fw_cfg NB_CPUS ");
            d_dec(&d, fw->nb_cpus);
        }
    }
    check_report("mptable_cpus", &d);
}

static void check_ioapic(void)
{
    struct detail d = {0};
    if (mp.t) {
        if (mp.ioapic < 0) {
            d_str(&d, "no usable I/O APIC entry at ");
            d_hex(&d, IOAPIC_ADDR);
        } else {
            uint32_t wrong = 0;
            for (uint32_t i = 0; i < mp.walked; i++) {
                const uint8_t *e = entry(i);
                if (e[0] == MP_INTSRC && e[6] != mp.ioapic && wrong++ == 0) {
                    d_str(&d, "I/O interrupt entry ");
                    d_dec(&d, i);
                    d_more(&d, " targets I/O APIC ");
                    d_dec(&d, e[6]);
                    d_more(&d, ", not ");
                    d_dec(&d, (uint32_t)mp.ioapic);
                }
            }
            if (wrong > 1) {
                d_str(&d, "entries with another target: ");
                d_dec(&d, wrong);
            }
        }
    }
    check_report("mptable_ioapic", &d);
}

#define PCI_ROUTABLE_IRQS ((1u << 5) | (1u << 9) | (1u << 10) | (1u << 11))

static void check_isa_irqs(const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (mp.t) {
        bool override = fw->present && fw->irq0_override;
        if (mp.isa_bus < 0) {
            d_str(&d, "no ISA bus entry");
        } else {
            uint32_t seen = 0;
            for (uint32_t i = 0; i < mp.walked; i++) {
                const uint8_t *e = entry(i);
                if (e[0] != MP_INTSRC || e[4] != mp.isa_bus)
                    continue;
                uint32_t irq = e[5], pin = e[7];
                uint32_t want = override && irq == 0 ? 2 : irq;
                if (e[1] != IRQ_INT || irq >= 16) {
                    d_str(&d, "ISA entry ");
                    d_dec(&d, i);
                    d_more(&d, ": irqtype ");
                    d_dec(&d, e[1]);
                    d_more(&d, " irq ");
                    d_dec(&d, irq);
                    continue;
                }
                if (seen & (1u << irq)) {
                    d_str(&d, "ISA IRQ ");
                    d_dec(&d, irq);
                    d_more(&d, " routed twice");
                }
                seen |= 1u << irq;
                if (override && irq == 2) {
                    d_str(&d, "ISA IRQ 2 present with the irq0 override");
                } else if (pin != want) {
                    d_str(&d, "ISA IRQ ");
                    d_dec(&d, irq);
                    d_more(&d, " to pin ");
                    d_dec(&d, pin);
                    d_more(&d, ", not ");
                    d_dec(&d, want);
                }
            }
            uint32_t need = 0xffffu & ~PCI_ROUTABLE_IRQS & ~(override ? 1u << 2 : 0u);
            for (uint32_t irq = 0; irq < 16; irq++) {
                if ((need & (1u << irq)) && !(seen & (1u << irq))) {
                    d_str(&d, "ISA IRQ ");
                    d_dec(&d, irq);
                    d_more(&d, " not routed");
                }
            }
        }
    }
    check_report("mptable_isa_irqs", &d);
}

static void check_lint(void)
{
    struct detail d = {0};
    if (mp.t) {
        bool extint = false, nmi = false;
        for (uint32_t i = 0; i < mp.walked; i++) {
            const uint8_t *e = entry(i);
            if (e[0] != MP_LINTSRC)
                continue;
            extint |= e[1] == IRQ_EXTINT && e[7] == 0;
            nmi |= e[1] == IRQ_NMI && e[7] == 1;
        }
        if (!extint)
            d_str(&d, "no ExtINT local interrupt on LINT0");
        if (!nmi)
            d_str(&d, "no NMI local interrupt on LINT1");
    }
    check_report("mptable_lint", &d);
}

void mptable_checks(const struct fwcfg_facts *fw)
{
    check_floating();
    check_config();
    check_cpus(fw);
    check_ioapic();
    check_isa_irqs(fw);
    check_lint();
}
