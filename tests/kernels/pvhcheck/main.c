/*
 * pvhcheck: reports the state a PVH loader (pvh_entry) or a Linux 32-bit boot
 * protocol loader (linux32_entry) handed over, and checks it against that
 * protocol.  Every line starts with "PVHCHECK "; see ../README.md.
 * With the command line word "pvhcheck.fwdump" it only dumps fw_cfg files
 * (fwdump.c) and exits.
 */
#include "boot.h"
#include "bootparams.h"
#include "checks.h"
#include "crc32.h"
#include "entry_state.h"
#include "fwcfg.h"
#include "fwdump.h"
#include "io.h"
#include "mptable.h"
#include "mtrr.h"
#include "pam.h"
#include "pcie.h"
#include "segments.h"
#include "serial.h"
#include "smbios.h"

#define DEBUG_EXIT_PORT 0xf4
#define EXIT_OK 0x10      /* QEMU exits with status (0x10 << 1) | 1 = 33 */
#define EXIT_FAIL 0x11    /* ... 35 */

void pvh_main(void) __attribute__((noreturn));

/* The zero page's memory map and ramdisk, converted to the PVH shapes. */
static struct hvm_memmap_table_entry linux32_memmap[BP_E820_MAX];
static struct hvm_modlist_entry linux32_ramdisk;

static void pvh_view_init(struct boot_view *bv)
{
    if (bv->ebx != 0)
        bv->si = phys_ptr(bv->ebx, sizeof(struct hvm_start_info));
    if (!bv->si)
        return;
    bv->si_valid = bv->si->magic == XEN_HVM_START_MAGIC_VALUE && bv->si->version >= 1;
    if (!bv->si_valid)
        return;

    const struct hvm_start_info *si = bv->si;
    bv->info_valid = true;
    bv->memmap_entries = si->memmap_entries;
    if (si->memmap_entries <= MAX_MEMMAP)
        bv->memmap = phys_ptr(si->memmap_paddr,
                              (uint64_t)si->memmap_entries * sizeof(*bv->memmap));
    bv->nr_modules = si->nr_modules;
    if (si->nr_modules > 0 && si->nr_modules <= MAX_MODULES)
        bv->modlist = phys_ptr(si->modlist_paddr,
                               (uint64_t)si->nr_modules * sizeof(*bv->modlist));
    bv->cmdline_paddr = si->cmdline_paddr;
    bv->rsdp_paddr = si->rsdp_paddr;
}

static void linux32_view_init(struct boot_view *bv)
{
    if (bv->esi != 0)
        bv->bp = phys_ptr(bv->esi, BP_SIZE);
    if (!bv->bp)
        return;
    const uint8_t *bp = bv->bp;
    bv->bp_valid = bp_u16(bp, BP_BOOT_FLAG) == BP_BOOT_FLAG_VALUE &&
                   bp_u32(bp, BP_HEADER) == BP_HEADER_VALUE;
    if (!bv->bp_valid)
        return;

    bv->info_valid = true;
    bv->memmap_entries = bp_u8(bp, BP_E820_ENTRIES);
    if (bv->memmap_entries <= BP_E820_MAX) {
        for (uint32_t i = 0; i < bv->memmap_entries; i++) {
            uint32_t off = BP_E820_TABLE + i * (uint32_t)sizeof(struct boot_e820_entry);
            linux32_memmap[i].addr = bp_u64(bp, off);
            linux32_memmap[i].size = bp_u64(bp, off + 8);
            linux32_memmap[i].type = bp_u32(bp, off + 16);
        }
        bv->memmap = linux32_memmap;
    }
    if (bp_u32(bp, BP_RAMDISK_SIZE) != 0) {
        linux32_ramdisk.paddr = bp_u32(bp, BP_RAMDISK_IMAGE);
        linux32_ramdisk.size = bp_u32(bp, BP_RAMDISK_SIZE);
        bv->nr_modules = 1;
        bv->modlist = &linux32_ramdisk;
    }
    bv->cmdline_paddr = bp_u32(bp, BP_CMD_LINE_PTR);
    bv->rsdp_paddr = bp_u64(bp, BP_ACPI_RSDP_ADDR);
}

void boot_view_init(struct boot_view *bv)
{
    memset(bv, 0, sizeof(*bv));
    bv->protocol = entry_state.protocol;
    bv->kernel_start = (uint32_t)(uintptr_t)__kernel_start;
    bv->kernel_end = (uint32_t)(uintptr_t)__kernel_end;
    bv->ebx = entry_state.ebx;
    bv->esi = entry_state.esi;
    if (bv->protocol == ENTRY_PROTOCOL_LINUX32) {
        bv->entry = (uint32_t)(uintptr_t)linux32_entry;
        linux32_view_init(bv);
    } else {
        bv->entry = (uint32_t)(uintptr_t)pvh_entry;
        pvh_view_init(bv);
    }
    if (bv->info_valid && bv->cmdline_paddr != 0) {
        /* Scan at most CMDLINE_MAX bytes, and never past 4 GiB. */
        uint64_t room = 0x100000000ull - (bv->cmdline_paddr < 0x100000000ull
                                              ? bv->cmdline_paddr : 0x100000000ull);
        uint32_t scan = room < CMDLINE_MAX ? (uint32_t)room : CMDLINE_MAX;
        bv->cmdline = phys_ptr(bv->cmdline_paddr, scan);
        if (bv->cmdline) {
            while (bv->cmdline_len < scan && bv->cmdline[bv->cmdline_len])
                bv->cmdline_len++;
            bv->cmdline_terminated = bv->cmdline_len < scan;
        }
    }
}

static const char *protocol_name(uint32_t protocol)
{
    switch (protocol) {
    case ENTRY_PROTOCOL_PVH:
        return "pvh";
    case ENTRY_PROTOCOL_LINUX32:
        return "linux32";
    default:
        return "unknown";
    }
}

static void report_cpu(void)
{
    const struct entry_state *s = &entry_state;
    kprintf("PVHCHECK regs eax=0x%x ebx=0x%x ecx=0x%x edx=0x%x esi=0x%x edi=0x%x "
            "ebp=0x%x esp=0x%x eflags=0x%x\n",
            s->eax, s->ebx, s->ecx, s->edx, s->esi, s->edi, s->ebp, s->esp, s->eflags);
    kprintf("PVHCHECK cr cr0=0x%x cr3=0x%x cr4=0x%x\n", s->cr0, s->cr3, s->cr4);
    struct dtr g = saved_gdtr(), i = saved_idtr();
    kprintf("PVHCHECK dt gdtr_base=0x%x gdtr_limit=0x%x idtr_base=0x%x idtr_limit=0x%x\n",
            g.base, (uint32_t)g.limit, i.base, (uint32_t)i.limit);
    for (int seg = 0; seg < SEG_COUNT; seg++) {
        struct seg_info si;
        seg_info_get(seg, &si);
        kprintf("PVHCHECK seg %s sel=0x%x", si.name, si.sel);
        if (si.lar_ok)
            kprintf(" lar=0x%x", si.lar);
        else
            kprintf(" lar=none");
        if (si.lsl_ok)
            kprintf(" lsl=0x%x", si.lsl);
        else
            kprintf(" lsl=none");
        if (si.desc_ok)
            kprintf(" base=0x%x limit=0x%x desc=0x%llx", si.base, si.limit, si.desc);
        else
            kprintf(" base=none limit=none desc=none");
        kprintf(" probe=%s\n", si.from_gdt ? "gdt" : "lar");
    }
}

static void report_kernel(const struct boot_view *bv)
{
    kprintf("PVHCHECK kernel start=0x%x end=0x%x entry=0x%x bss_zeroed=%u\n",
            bv->kernel_start, bv->kernel_end, bv->entry, entry_state.bss_dirty ? 0u : 1u);
}

/* PVH: the start_info line; false when there is nothing more to report. */
static bool report_start_info(const struct boot_view *bv)
{
    const struct hvm_start_info *si = bv->si;
    if (!si) {
        kprintf("PVHCHECK start_info none addr=0x%x\n", bv->ebx);
        return false;
    }
    kprintf("PVHCHECK start_info addr=0x%x magic=0x%x version=%u flags=0x%x nr_modules=%u "
            "modlist=0x%llx cmdline=0x%llx rsdp=0x%llx memmap=0x%llx memmap_entries=%u\n",
            bv->ebx, si->magic, si->version, si->flags, si->nr_modules, si->modlist_paddr,
            si->cmdline_paddr, si->rsdp_paddr, si->memmap_paddr, si->memmap_entries);
    return bv->si_valid;
}

/* linux32: the boot_params line; false when there is nothing more to report. */
static bool report_boot_params(const struct boot_view *bv)
{
    const uint8_t *bp = bv->bp;
    if (!bp) {
        kprintf("PVHCHECK boot_params none addr=0x%x\n", bv->esi);
        return false;
    }
    kprintf("PVHCHECK boot_params addr=0x%x boot_flag=0x%x header=0x%x version=0x%x "
            "type_of_loader=0x%x loadflags=0x%x code32_start=0x%x cmd_line_ptr=0x%x "
            "ramdisk_image=0x%x ramdisk_size=0x%x e820_entries=%u acpi_rsdp_addr=0x%llx "
            "setup_data=0x%llx\n",
            bv->esi, (uint32_t)bp_u16(bp, BP_BOOT_FLAG), bp_u32(bp, BP_HEADER),
            (uint32_t)bp_u16(bp, BP_VERSION), (uint32_t)bp_u8(bp, BP_TYPE_OF_LOADER),
            (uint32_t)bp_u8(bp, BP_LOADFLAGS), bp_u32(bp, BP_CODE32_START),
            bp_u32(bp, BP_CMD_LINE_PTR), bp_u32(bp, BP_RAMDISK_IMAGE),
            bp_u32(bp, BP_RAMDISK_SIZE), (uint32_t)bp_u8(bp, BP_E820_ENTRIES),
            bp_u64(bp, BP_ACPI_RSDP_ADDR), bp_u64(bp, BP_SETUP_DATA));
    return bv->bp_valid;
}

static void report_boot(const struct boot_view *bv)
{
    bool more = bv->protocol == ENTRY_PROTOCOL_LINUX32 ? report_boot_params(bv)
                                                       : report_start_info(bv);
    if (!more)
        return;

    if (bv->memmap) {
        for (uint32_t i = 0; i < bv->memmap_entries; i++) {
            const struct hvm_memmap_table_entry *e = &bv->memmap[i];
            kprintf("PVHCHECK memmap %u addr=0x%llx size=0x%llx type=%u\n",
                    i, e->addr, e->size, e->type);
        }
    }

    if (bv->cmdline) {
        kprintf("PVHCHECK cmdline ");
        serial_put_hexbytes(bv->cmdline, bv->cmdline_len);
        kprintf("\n");
    } else {
        kprintf("PVHCHECK cmdline -\n");
    }

    if (bv->modlist) {
        for (uint32_t i = 0; i < bv->nr_modules; i++) {
            const struct hvm_modlist_entry *m = &bv->modlist[i];
            kprintf("PVHCHECK module %u paddr=0x%llx size=0x%llx cmdline=0x%llx",
                    i, m->paddr, m->size, m->cmdline_paddr);
            const uint8_t *data = phys_ptr(m->paddr, m->size);
            if (data)
                kprintf(" crc32=0x%x\n", crc32(data, (size_t)m->size));
            else
                kprintf(" crc32=none\n");
        }
    }
}

static void report_fwcfg(const struct fwcfg_facts *fw)
{
    if (!fw->present) {
        kprintf("PVHCHECK fwcfg present=0\n");
        return;
    }
    kprintf("PVHCHECK fwcfg present=1 id=0x%x\n", fw->id);
    kprintf("PVHCHECK fwcfg kernel_entry=0x%x kernel_addr=0x%x kernel_size=0x%x "
            "initrd_addr=0x%x initrd_size=0x%x cmdline_size=%u\n",
            fw->kernel_entry, fw->kernel_addr, fw->kernel_size, fw->initrd_addr,
            fw->initrd_size, fw->cmdline_size);
    kprintf("PVHCHECK fwcfg setup_addr=0x%x setup_size=0x%x\n", fw->setup_addr, fw->setup_size);
    kprintf("PVHCHECK fwcfg e820_file=%u e820_count=%u acpi_rsdp_file=%u\n",
            fw->have_e820 ? 1u : 0u, fw->e820_count, fw->have_acpi_rsdp ? 1u : 0u);
    kprintf("PVHCHECK fwcfg nb_cpus=%u max_cpus=%u irq0_override=%u\n", fw->nb_cpus,
            fw->max_cpus, fw->irq0_override);
    for (uint32_t i = 0; i < fw->e820_count && i < FWCFG_MAX_E820; i++) {
        kprintf("PVHCHECK fwcfg e820 %u addr=0x%llx size=0x%llx type=%u\n",
                i, fw->e820[i].addr, fw->e820[i].size, fw->e820[i].type);
    }
}

static struct boot_view boot;
static struct fwcfg_facts fwcfg;

static void debug_exit(uint8_t code) __attribute__((noreturn));

static void debug_exit(uint8_t code)
{
    outb(DEBUG_EXIT_PORT, code);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void pvh_main(void)
{
    serial_init();
    boot_view_init(&boot);
    if (fwdump_requested(&boot)) {
        kprintf("\n");
        debug_exit(fwdump_run() ? EXIT_OK : EXIT_FAIL);
    }
    kprintf("\nPVHCHECK begin\n");
    kprintf("PVHCHECK protocol %s\n", protocol_name(boot.protocol));
    report_cpu();
    report_kernel(&boot);
    report_boot(&boot);
    fwcfg_read_facts(&fwcfg);
    report_fwcfg(&fwcfg);
    /* What a BIOS sets up beyond the boot protocol: read from the hardware and memory. */
    mtrr_report();
    pam_report();
    pcie_report();
    smbios_report(&fwcfg);
    mptable_report();
    uint32_t failures = run_checks(&boot, &fwcfg);
    kprintf("PVHCHECK done failures=%u\n", failures);
    debug_exit(failures ? EXIT_FAIL : EXIT_OK);
}
