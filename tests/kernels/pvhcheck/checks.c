/*
 * The boot ABI checks: PVH (pvh_entry) or the Linux 32-bit boot protocol
 * (linux32_entry).  Each check collects its problems into a detail string; no
 * problem means "ok".  Ranges are [addr, addr + size) in 64 bits.  In linux32
 * mode the zero page's memory map, command line and ramdisk arrive converted
 * in the boot_view (main.c), so the memory map, placement, module and RSDP
 * checks are shared.
 */
#include "checks.h"
#include "bootparams.h"
#include "check.h"
#include "entry_state.h"
#include "io.h"
#include "mptable.h"
#include "mtrr.h"
#include "pcie.h"
#include "regions.h"
#include "segments.h"
#include "smbios.h"

static bool linux32(const struct boot_view *bv)
{
    return bv->protocol == ENTRY_PROTOCOL_LINUX32;
}

/* The detail when the boot information itself is unusable. */
static const char *no_info(const struct boot_view *bv)
{
    return linux32(bv) ? "no valid boot_params" : "no valid start_info";
}

/* ---- individual checks ------------------------------------------------- */

static void check_cr(void)
{
    struct detail d = {0};
    uint32_t cr0 = entry_state.cr0;
    if (!(cr0 & 1u))
        d_str(&d, "cr0.PE clear");
    if (cr0 & (1u << 31))
        d_str(&d, "cr0.PG set");
    if (d.len) {
        d_str(&d, "cr0=");
        d_hex(&d, cr0);
    }
    check_report("cr0_pe_nopg", &d);

    struct detail d4 = {0};
    if (entry_state.cr4 != 0) {
        d_str(&d4, "cr4=");
        d_hex(&d4, entry_state.cr4);
    }
    check_report("cr4_zero", &d4);
}

static void check_eflags(void)
{
    struct detail d = {0};
    uint32_t f = entry_state.eflags;
    if (f & (1u << 9))
        d_str(&d, "IF set");
    if (f & (1u << 8))
        d_str(&d, "TF set");
    if (f & (1u << 17))
        d_str(&d, "VM set");
    if (d.len) {
        d_str(&d, "eflags=");
        d_hex(&d, f);
    }
    check_report("eflags_if_tf_vm_clear", &d);
}

/*
 * cs: 32-bit execute/read code; ds/es/ss: 32-bit read/write data; all flat 4 GiB.
 * want_sel: the selector the protocol names (linux32: 0x10 / 0x18), 0 for any.
 */
static void check_segment(int seg, const char *check_name, uint32_t want_sel)
{
    struct detail d = {0};
    struct seg_info s;
    seg_info_get(seg, &s);
    bool code = seg == SEG_CS;

    if (want_sel && s.sel != want_sel) {
        d_str(&d, "selector ");
        d_hex(&d, s.sel);
        d_more(&d, ", not ");
        d_hex(&d, want_sel);
    }

    if (!s.lar_ok && s.from_gdt) {
        d_str(&d, "no GDT entry to derive access rights from");
    } else if (!s.lar_ok) {
        d_str(&d, "lar rejected selector ");
        d_hex(&d, s.sel);
    } else {
        if (!(s.lar & LAR_PRESENT))
            d_str(&d, "not present");
        if (!(s.lar & LAR_S))
            d_str(&d, "system descriptor");
        if (code) {
            if (!(s.lar & LAR_CODE))
                d_str(&d, "not a code segment");
            if (!(s.lar & LAR_WRITABLE))
                d_str(&d, "not readable");
        } else {
            if (s.lar & LAR_CODE)
                d_str(&d, "not a data segment");
            if (!(s.lar & LAR_WRITABLE))
                d_str(&d, "not writable");
            if (s.lar & LAR_EXPDOWN)
                d_str(&d, "expand-down");
        }
        if (!(s.lar & LAR_DB))
            d_str(&d, "D/B clear (16-bit)");
        if (!(s.lar & LAR_G))
            d_str(&d, "G clear (byte granularity)");
    }
    if (!s.lsl_ok) {
        d_str(&d, "lsl rejected selector");
    } else if (s.lsl != 0xffffffffu) {
        d_str(&d, "lsl=");
        d_hex(&d, s.lsl);
    }
    if (!s.desc_ok) {
        d_str(&d, "GDT entry unreadable: ");
        d_more(&d, s.desc_err);
    } else {
        if (s.base != 0) {
            d_str(&d, "base=");
            d_hex(&d, s.base);
        }
        if (s.limit != 0xffffffffu) {
            d_str(&d, "limit=");
            d_hex(&d, s.limit);
        }
    }
    if (d.len) {
        d_str(&d, "sel=");
        d_hex(&d, s.sel);
        d_more(&d, " lar=");
        d_hex(&d, s.lar);
    }
    check_report(check_name, &d);
}

static void check_start_info(const struct boot_view *bv)
{
    struct detail d = {0};
    if (bv->ebx == 0) {
        d_str(&d, "ebx=0");
    } else if (!bv->si) {
        d_str(&d, "ebx not addressable: ");
        d_hex(&d, bv->ebx);
    } else {
        if (bv->si->magic != XEN_HVM_START_MAGIC_VALUE) {
            d_str(&d, "magic=");
            d_hex(&d, bv->si->magic);
        }
        if (bv->si->version < 1) {
            d_str(&d, "version=");
            d_dec(&d, bv->si->version);
        }
    }
    check_report("start_info", &d);
}

static void check_memmap(const struct boot_view *bv)
{
    struct detail d = {0};
    uint32_t max = linux32(bv) ? BP_E820_MAX : MAX_MEMMAP;
    if (!bv->info_valid) {
        d_str(&d, no_info(bv));
    } else if (bv->memmap_entries == 0) {
        d_str(&d, linux32(bv) ? "e820_entries=0" : "memmap_entries=0");
    } else if (bv->memmap_entries > max) {
        d_str(&d, linux32(bv) ? "e820_entries=" : "memmap_entries=");
        d_dec(&d, bv->memmap_entries);
        d_more(&d, linux32(bv) ? " (more than the zero page holds)" : " (implausible)");
    } else if (!bv->memmap) {
        d_str(&d, "memmap not addressable");
    } else {
        for (uint32_t i = 0; i < bv->memmap_entries; i++) {
            if (bv->memmap[i].size == 0) {
                d_str(&d, "entry ");
                d_dec(&d, i);
                d_more(&d, " has size 0");
            }
        }
    }
    check_report("memmap", &d);

    struct detail o = {0};
    for (uint32_t i = 0; i < memmap_count; i++) {
        for (uint32_t j = i + 1; j < memmap_count; j++) {
            const struct region *a = &memmap_regions[i], *b = &memmap_regions[j];
            if (a->type == E820_RAM && b->type == E820_RAM &&
                a->start < b->end && b->start < a->end) {
                d_str(&o, "RAM entries ");
                d_dec(&o, i);
                d_more(&o, " and ");
                d_dec(&o, j);
                d_more(&o, " overlap");
            }
        }
    }
    if (!bv->memmap)
        d_str(&o, "no memmap");
    check_report("memmap_ram_disjoint", &o);
}

static void check_kernel_in_ram(const struct boot_view *bv)
{
    struct detail d = {0};
    if (!in_ram(bv->kernel_start, bv->kernel_end - bv->kernel_start)) {
        d_str(&d, "kernel ");
        d_hex(&d, bv->kernel_start);
        d_more(&d, "-");
        d_hex(&d, bv->kernel_end);
        d_more(&d, " not inside RAM entries");
    }
    check_report("kernel_in_ram", &d);
}

/* A piece of boot data handed over by the firmware. */
struct piece {
    char name[16];
    uint64_t addr, size;
};

#define MAX_PIECES (4 + MAX_MODULES)
static struct piece pieces[MAX_PIECES];
static uint32_t npieces;

static void add_piece(const char *name, uint32_t index, bool indexed, uint64_t addr,
                      uint64_t size)
{
    struct piece *p = &pieces[npieces++];
    uint32_t k = 0;
    while (name[k] && k < sizeof(p->name) - 4) {
        p->name[k] = name[k];
        k++;
    }
    if (indexed) {
        if (index >= 10)
            p->name[k++] = (char)('0' + index / 10);
        p->name[k++] = (char)('0' + index % 10);
    }
    p->name[k] = 0;
    p->addr = addr;
    p->size = size;
}

static void collect_pieces(const struct boot_view *bv)
{
    npieces = 0;
    if (linux32(bv)) {
        if (!bv->bp)
            return;
        add_piece("boot_params", 0, false, bv->esi, BP_SIZE);
    } else {
        if (!bv->si)
            return;
        add_piece("start_info", 0, false, bv->ebx, sizeof(struct hvm_start_info));
        if (!bv->si_valid)
            return;
        const struct hvm_start_info *si = bv->si;
        add_piece("memmap", 0, false, si->memmap_paddr,
                  (uint64_t)si->memmap_entries * sizeof(struct hvm_memmap_table_entry));
    }
    if (!bv->info_valid)
        return;
    if (bv->cmdline_paddr)
        add_piece("cmdline", 0, false, bv->cmdline_paddr, bv->cmdline_len + 1ull);
    if (!linux32(bv) && bv->si->nr_modules) {
        add_piece("modlist", 0, false, bv->si->modlist_paddr,
                  (uint64_t)bv->si->nr_modules * sizeof(struct hvm_modlist_entry));
    }
    if (bv->modlist) {
        for (uint32_t i = 0; i < bv->nr_modules; i++)
            add_piece("module", i, true, bv->modlist[i].paddr, bv->modlist[i].size);
    }
}

static void check_pieces(const struct boot_view *bv)
{
    uint64_t kstart = bv->kernel_start, ksize = bv->kernel_end - bv->kernel_start;
    for (uint32_t i = 0; i < npieces; i++) {
        const struct piece *p = &pieces[i];
        struct detail d = {0};
        char name[32];
        uint32_t k = 0;
        for (const char *s = p->name; *s; s++)
            name[k++] = *s;
        for (const char *s = "_placed"; *s; s++)
            name[k++] = *s;
        name[k] = 0;
        if (p->size == 0) {
            /* Nothing to place (an empty module). */
        } else {
            if (!in_ram(p->addr, p->size)) {
                d_str(&d, "not in RAM: ");
                d_hex(&d, p->addr);
                d_more(&d, "+");
                d_hex(&d, p->size);
            }
            if (overlaps(p->addr, p->size, kstart, ksize)) {
                d_str(&d, "overlaps the kernel image ");
                d_hex(&d, p->addr);
                d_more(&d, "+");
                d_hex(&d, p->size);
            }
        }
        check_report(name, &d);
    }

    struct detail d = {0};
    for (uint32_t i = 0; i < npieces; i++) {
        for (uint32_t j = i + 1; j < npieces; j++) {
            if (overlaps(pieces[i].addr, pieces[i].size, pieces[j].addr, pieces[j].size)) {
                d_str(&d, pieces[i].name);
                d_more(&d, " overlaps ");
                d_more(&d, pieces[j].name);
            }
        }
    }
    check_report("boot_data_disjoint", &d);
}

static void check_cmdline(const struct boot_view *bv)
{
    struct detail d = {0};
    if (bv->info_valid && bv->cmdline_paddr) {
        if (!bv->cmdline)
            d_str(&d, "cmdline not addressable");
        else if (!bv->cmdline_terminated)
            d_str(&d, "no NUL within CMDLINE_MAX (16384) bytes");
    }
    check_report("cmdline_terminated", &d);
}

static void check_modules(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (!fw->present) {
        d_str(&d, "no fw_cfg to compare with");
    } else if (!bv->info_valid) {
        d_str(&d, no_info(bv));
    } else if (bv->nr_modules > 0) {
        if (!bv->modlist) {
            d_str(&d, "modlist not addressable");
        } else {
            const struct hvm_modlist_entry *m = &bv->modlist[0];
            if (m->paddr != fw->initrd_addr) {
                d_str(&d, "module0 paddr=");
                d_hex(&d, m->paddr);
                d_more(&d, " fw_cfg initrd_addr=");
                d_hex(&d, fw->initrd_addr);
            }
            if (m->size != fw->initrd_size) {
                d_str(&d, "module0 size=");
                d_hex(&d, m->size);
                d_more(&d, " fw_cfg initrd_size=");
                d_hex(&d, fw->initrd_size);
            }
        }
    } else if (fw->initrd_size) {
        d_str(&d, "fw_cfg has an initrd of ");
        d_hex(&d, fw->initrd_size);
        d_more(&d, " bytes but nr_modules=0");
    }
    check_report("module0_is_fwcfg_initrd", &d);
}

static void check_fwcfg_kernel(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (!fw->present) {
        d_str(&d, "no fw_cfg");
    } else if (fw->kernel_entry != bv->entry) {
        d_str(&d, "fw_cfg kernel_entry=");
        d_hex(&d, fw->kernel_entry);
        d_more(&d, " pvh_entry=");
        d_hex(&d, bv->entry);
    }
    check_report("fwcfg_kernel_entry", &d);

    /* QEMU's ELF loader reports the lowest p_paddr and the span up to the last p_memsz. */
    struct detail r = {0};
    if (!fw->present) {
        d_str(&r, "no fw_cfg");
    } else {
        if (fw->kernel_addr != bv->kernel_start) {
            d_str(&r, "fw_cfg kernel_addr=");
            d_hex(&r, fw->kernel_addr);
            d_more(&r, " __kernel_start=");
            d_hex(&r, bv->kernel_start);
        }
        if (fw->kernel_size != bv->kernel_end - bv->kernel_start) {
            d_str(&r, "fw_cfg kernel_size=");
            d_hex(&r, fw->kernel_size);
            d_more(&r, " image size=");
            d_hex(&r, bv->kernel_end - bv->kernel_start);
        }
    }
    check_report("fwcfg_kernel_range", &r);
}

static void check_bss(void)
{
    struct detail d = {0};
    if (entry_state.bss_dirty) {
        d_str(&d, "non-zero word at ");
        d_hex(&d, entry_state.bss_dirty_addr);
    }
    check_report("bss_zeroed", &d);
}

/*
 * rsdp_paddr (linux32: acpi_rsdp_addr): when given, a valid RSDP; when 0, fw_cfg
 * must not offer ACPI tables.
 */
static void check_rsdp(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    uint64_t rsdp = bv->rsdp_paddr;
    if (!bv->info_valid) {
        d_str(&d, no_info(bv));
    } else if (rsdp == 0) {
        if (fw->present && fw->have_acpi_rsdp)
            d_str(&d, linux32(bv)
                          ? "acpi_rsdp_addr=0 but fw_cfg has etc/acpi/rsdp (no ACPI for the kernel)"
                          : "rsdp_paddr=0 but fw_cfg has etc/acpi/rsdp (no ACPI for the kernel)");
    } else {
        const uint8_t *p = phys_ptr(rsdp, 36);
        if (!p) {
            d_str(&d, "rsdp not addressable");
        } else if (memcmp(p, "RSD PTR ", 8) != 0) {
            d_str(&d, "no 'RSD PTR ' signature at ");
            d_hex(&d, rsdp);
        } else {
            uint8_t sum = 0;
            for (int i = 0; i < 20; i++)
                sum = (uint8_t)(sum + p[i]);
            if (sum)
                d_str(&d, "bad checksum");
            if (p[15] >= 2) {
                uint32_t len = (uint32_t)p[20] | (uint32_t)p[21] << 8 |
                               (uint32_t)p[22] << 16 | (uint32_t)p[23] << 24;
                uint8_t xsum = 0;
                if (len < 36 || len > 4096 || !phys_ptr(rsdp, len)) {
                    d_str(&d, "bad extended length");
                } else {
                    for (uint32_t i = 0; i < len; i++)
                        xsum = (uint8_t)(xsum + p[i]);
                    if (xsum)
                        d_str(&d, "bad extended checksum");
                }
            }
        }
    }
    check_report("rsdp", &d);
}

/* The firmware may reserve RAM, but must not report RAM where QEMU has none. */
static void check_memmap_vs_e820(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (fw->present && fw->have_e820 && bv->memmap) {
        for (uint32_t i = 0; i < memmap_count; i++) {
            const struct region *r = &memmap_regions[i];
            if (r->type != E820_RAM)
                continue;
            if (!covered(e820_regions, e820_count, E820_RAM, r->start, r->end - r->start)) {
                d_str(&d, "RAM entry ");
                d_dec(&d, i);
                d_more(&d, " (");
                d_hex(&d, r->start);
                d_more(&d, "-");
                d_hex(&d, r->end);
                d_more(&d, ") not RAM in fw_cfg etc/e820");
            }
        }
    }
    check_report("memmap_ram_within_e820", &d);
}

static void check_fwcfg_present(const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (!fw->present)
        d_str(&d, "no QEMU signature on port 0x510/0x511");
    check_report("fwcfg_present", &d);
}

/* ---- linux32: the 32-bit Linux boot protocol ----------------------------- */

/* ESI points at a zero page with the boot_flag and the "HdrS" magic. */
static void check_boot_params(const struct boot_view *bv)
{
    struct detail d = {0};
    if (bv->esi == 0) {
        d_str(&d, "esi=0");
    } else if (!bv->bp) {
        d_str(&d, "esi not addressable: ");
        d_hex(&d, bv->esi);
    } else {
        if (bp_u16(bv->bp, BP_BOOT_FLAG) != BP_BOOT_FLAG_VALUE) {
            d_str(&d, "boot_flag=");
            d_hex(&d, bp_u16(bv->bp, BP_BOOT_FLAG));
        }
        if (bp_u32(bv->bp, BP_HEADER) != BP_HEADER_VALUE) {
            d_str(&d, "header=");
            d_hex(&d, bp_u32(bv->bp, BP_HEADER));
        }
    }
    check_report("boot_params", &d);
}

/* EBP, EDI and EBX are 0. */
static void check_linux32_regs(void)
{
    struct detail d = {0};
    const struct { const char *name; uint32_t value; } regs[] = {
        {"ebp=", entry_state.ebp}, {"edi=", entry_state.edi}, {"ebx=", entry_state.ebx},
    };
    for (uint32_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
        if (regs[i].value != 0) {
            d_str(&d, regs[i].name);
            d_hex(&d, regs[i].value);
        }
    }
    check_report("linux32_regs_zero", &d);
}

/* fw_cfg's setup sectors, as far as the header goes (0x202 + byte 0x201 <= 0x281). */
#define SETUP_READ 0x300
static uint8_t fw_setup[SETUP_READ];
static uint32_t fw_setup_len;   /* bytes of fw_setup read from FW_CFG_SETUP_DATA */

static void read_fw_setup(const struct fwcfg_facts *fw)
{
    fw_setup_len = 0;
    if (!fw->present || fw->setup_size == 0)
        return;
    fw_setup_len = fw->setup_size < SETUP_READ ? fw->setup_size : SETUP_READ;
    fwcfg_read_item(FW_CFG_SETUP_DATA, fw_setup, fw_setup_len);
}

/* The zero page's setup header is fw_cfg's, byte for byte, except cmd_line_ptr. */
static void check_boot_params_header(const struct boot_view *bv)
{
    struct detail d = {0};
    if (!bv->bp_valid) {
        d_str(&d, no_info(bv));
    } else if (fw_setup_len == 0) {
        d_str(&d, "fw_cfg has no setup sectors (FW_CFG_SETUP_SIZE=0)");
    } else if (fw_setup_len < BP_HEADER || bp_header_end(fw_setup) > fw_setup_len) {
        d_str(&d, "fw_cfg setup_size ");
        d_hex(&d, fw_setup_len);
        d_more(&d, " too small for its header");
    } else {
        uint32_t end = bp_header_end(fw_setup), shown = 0, differ = 0;
        for (uint32_t off = BP_HDR_START; off < end; off++) {
            if (off >= BP_CMD_LINE_PTR && off < BP_CMD_LINE_PTR + 4)
                continue;  /* the loader may move the command line */
            if (bv->bp[off] == fw_setup[off])
                continue;
            differ++;
            if (shown++ < 6) {
                d_str(&d, "byte ");
                d_hex(&d, off);
                d_more(&d, "=");
                d_hex(&d, bv->bp[off]);
                d_more(&d, " fw_cfg ");
                d_hex(&d, fw_setup[off]);
            }
        }
        if (differ > shown) {
            d_str(&d, "bytes differing: ");
            d_dec(&d, differ);
        }
    }
    check_report("boot_params_header", &d);
}

/* The string at cmd_line_ptr is FW_CFG_CMDLINE_DATA (its NUL included). */
static void check_boot_params_cmdline(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (!fw->present) {
        d_str(&d, "no fw_cfg to compare with");
    } else if (!bv->bp_valid) {
        d_str(&d, no_info(bv));
    } else if (bv->cmdline_paddr == 0) {
        if (fw->cmdline_size > 1) {
            d_str(&d, "cmd_line_ptr=0 but fw_cfg has a command line of ");
            d_dec(&d, fw->cmdline_size - 1);
            d_more(&d, " bytes");
        }
    } else if (!bv->cmdline || !bv->cmdline_terminated) {
        d_str(&d, "no NUL-terminated command line at ");
        d_hex(&d, bv->cmdline_paddr);
    } else if (bv->cmdline_len + 1 != fw->cmdline_size) {
        d_str(&d, "length ");
        d_dec(&d, bv->cmdline_len);
        d_more(&d, " + NUL, fw_cfg cmdline_size ");
        d_dec(&d, fw->cmdline_size);
    } else {
        uint32_t at = fwcfg_item_compare(FW_CFG_CMDLINE_DATA, bv->cmdline, fw->cmdline_size);
        if (at != fw->cmdline_size) {
            d_str(&d, "differs from FW_CFG_CMDLINE_DATA at offset ");
            d_dec(&d, at);
        }
    }
    check_report("boot_params_cmdline", &d);
}

/*
 * Nothing else in the 4 KiB zero page: every byte outside the setup header,
 * e820_entries, the e820_table entries in use and acpi_rsdp_addr is 0.
 */
static void check_boot_params_zero(const struct boot_view *bv)
{
    struct detail d = {0};
    if (!bv->bp_valid) {
        d_str(&d, no_info(bv));
        check_report("boot_params_zero_elsewhere", &d);
        return;
    }
    const uint8_t *bp = bv->bp;
    uint32_t hdr_end = fw_setup_len ? bp_header_end(fw_setup) : bp_header_end(bp);
    uint32_t entries = bp_u8(bp, BP_E820_ENTRIES);
    if (entries > BP_E820_MAX)
        entries = BP_E820_MAX;
    uint32_t table_end = BP_E820_TABLE + entries * (uint32_t)sizeof(struct boot_e820_entry);
    uint32_t shown = 0, nonzero = 0;
    for (uint32_t off = 0; off < BP_SIZE; off++) {
        if ((off >= BP_ACPI_RSDP_ADDR && off < BP_ACPI_RSDP_ADDR + 8) ||
            off == BP_E820_ENTRIES || (off >= BP_HDR_START && off < hdr_end) ||
            (off >= BP_E820_TABLE && off < table_end) || bp[off] == 0)
            continue;
        nonzero++;
        if (shown++ < 6) {
            d_str(&d, "byte ");
            d_hex(&d, off);
            d_more(&d, "=");
            d_hex(&d, bp[off]);
        }
    }
    if (nonzero > shown) {
        d_str(&d, "nonzero bytes: ");
        d_dec(&d, nonzero);
    }
    check_report("boot_params_zero_elsewhere", &d);
}

/*
 * fw_cfg KERNEL_ADDR is where the image runs, and the protected-mode part in
 * memory is FW_CFG_KERNEL_DATA up to .data (what the kernel has not written).
 */
static void check_linux32_kernel(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    struct detail a = {0};
    if (!fw->present) {
        d_str(&a, "no fw_cfg");
    } else if (fw->kernel_addr != bv->kernel_start) {
        d_str(&a, "fw_cfg kernel_addr=");
        d_hex(&a, fw->kernel_addr);
        d_more(&a, " __kernel_start=");
        d_hex(&a, bv->kernel_start);
    }
    check_report("fwcfg_kernel_addr", &a);

    struct detail d = {0};
    uint32_t len = (uint32_t)(uintptr_t)__data_start - bv->kernel_start;
    if (!fw->present) {
        d_str(&d, "no fw_cfg");
    } else if (fw->kernel_size < len) {
        d_str(&d, "fw_cfg kernel_size=");
        d_hex(&d, fw->kernel_size);
        d_more(&d, " shorter than the image's read-only part ");
        d_hex(&d, len);
    } else {
        uint32_t at = fwcfg_item_compare(FW_CFG_KERNEL_DATA,
                                         (const uint8_t *)__kernel_start, len);
        if (at != len) {
            d_str(&d, "differs from FW_CFG_KERNEL_DATA at ");
            d_hex(&d, bv->kernel_start + at);
        }
    }
    check_report("kernel_is_fwcfg_kernel_data", &d);
}

uint32_t run_checks(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    check_reset();
    regions_init(bv, fw);

    bool l32 = linux32(bv);
    check_cr();
    check_eflags();
    /* linux32: __BOOT_CS = 0x10, __BOOT_DS = 0x18; PVH names no selectors. */
    check_segment(SEG_CS, "cs_flat32_code", l32 ? 0x10 : 0);
    check_segment(SEG_DS, "ds_flat32_data", l32 ? 0x18 : 0);
    check_segment(SEG_ES, "es_flat32_data", l32 ? 0x18 : 0);
    check_segment(SEG_SS, "ss_flat32_data", l32 ? 0x18 : 0);
    if (l32) {
        check_boot_params(bv);
        check_linux32_regs();
    } else {
        check_start_info(bv);
    }
    check_memmap(bv);
    check_kernel_in_ram(bv);
    collect_pieces(bv);
    check_pieces(bv);
    check_cmdline(bv);
    check_fwcfg_present(fw);
    check_modules(bv, fw);
    if (l32) {
        read_fw_setup(fw);
        check_boot_params_header(bv);
        check_boot_params_cmdline(bv, fw);
        check_boot_params_zero(bv);
        check_linux32_kernel(bv, fw);
    } else {
        check_fwcfg_kernel(bv, fw);
    }
    check_memmap_vs_e820(bv, fw);
    check_rsdp(bv, fw);
    if (!l32)
        check_bss();  /* the boot protocol leaves .bss to the kernel */
    /* The BIOS tables: vacuous (ok) when a table is absent. */
    smbios_checks(fw);
    mptable_checks(fw);
    pcie_checks();
    mtrr_checks();
    return check_failures();
}
