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
    uint32_t kernel_start, kernel_end, entry;

    uint32_t ebx;
    const struct hvm_start_info *si;   /* NULL if ebx is 0 or not addressable */
    bool si_valid;                     /* magic matches and version >= 1 */

    /* Only set when si_valid. */
    const struct hvm_memmap_table_entry *memmap;  /* NULL if not addressable */
    uint32_t memmap_entries;                      /* as given */
    const struct hvm_modlist_entry *modlist;      /* NULL if none / not addressable */
    uint32_t nr_modules;                          /* as given */
    const uint8_t *cmdline;                       /* NULL if none / not addressable */
    uint32_t cmdline_len;                         /* bytes before the NUL (or scanned) */
    bool cmdline_terminated;                      /* NUL found within CMDLINE_MAX */
};

void boot_view_init(struct boot_view *bv);

#endif
