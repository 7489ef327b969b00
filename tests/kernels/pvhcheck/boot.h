/* What the firmware handed over, located and bounded once, for report and checks. */
#ifndef PVHCHECK_BOOT_H
#define PVHCHECK_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "pvh.h"

#define MAX_MEMMAP 1024   /* more entries than this is treated as garbage */
#define MAX_MODULES 64
#define CMDLINE_MAX 16384

struct boot_view {
    uint32_t protocol;                 /* ENTRY_PROTOCOL_PVH or ENTRY_PROTOCOL_LINUX32 */
    uint32_t kernel_start, kernel_end, entry;

    /* PVH: EBX and the hvm_start_info there. */
    uint32_t ebx;
    const struct hvm_start_info *si;   /* NULL if ebx is 0 or not addressable */
    bool si_valid;                     /* magic matches and version >= 1 */

    /* linux32: ESI and the 4 KiB boot_params (zero page) there. */
    uint32_t esi;
    const uint8_t *bp;                 /* NULL if esi is 0 or not addressable */
    bool bp_valid;                     /* boot_flag 0xaa55 and "HdrS" */

    /*
     * Either protocol, only set when si_valid / bp_valid.  In linux32 mode the
     * memory map, command line and module list are converted from the zero
     * page (e820_table, cmd_line_ptr, ramdisk_image/size as module 0), so the
     * PVH report lines and checks apply unchanged.
     */
    bool info_valid;                              /* si_valid or bp_valid */
    const struct hvm_memmap_table_entry *memmap;  /* NULL if not addressable */
    uint32_t memmap_entries;                      /* as given */
    const struct hvm_modlist_entry *modlist;      /* NULL if none / not addressable */
    uint32_t nr_modules;                          /* as given */
    uint64_t cmdline_paddr;                       /* 0: none */
    const uint8_t *cmdline;                       /* NULL if none / not addressable */
    uint32_t cmdline_len;                         /* bytes before the NUL (or scanned) */
    bool cmdline_terminated;                      /* NUL found within CMDLINE_MAX */
    uint64_t rsdp_paddr;                          /* 0: none */
};

void boot_view_init(struct boot_view *bv);

#endif
