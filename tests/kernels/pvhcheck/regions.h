/*
 * The memory map handed to the kernel (start_info's memmap, or the zero
 * page's e820_table) and fw_cfg's etc/e820, as [start, end) regions, built
 * once by regions_init for every check that asks "is this range RAM / reserved".
 */
#ifndef PVHCHECK_REGIONS_H
#define PVHCHECK_REGIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "boot.h"
#include "fwcfg.h"

#define E820_RESERVED 2

struct region {
    uint64_t start, end;   /* end exclusive, saturated at 2^64 - 1 */
    uint32_t type;
};

extern struct region memmap_regions[MAX_MEMMAP];
extern uint32_t memmap_count;
extern struct region e820_regions[FWCFG_MAX_E820];
extern uint32_t e820_count;

void regions_init(const struct boot_view *bv, const struct fwcfg_facts *fw);

/* addr + size, saturated at 2^64 - 1. */
uint64_t range_end(uint64_t addr, uint64_t size);

/* [a, a+asz) and [b, b+bsz) share a byte (empty ranges share none). */
bool overlaps(uint64_t a, uint64_t asz, uint64_t b, uint64_t bsz);

/* True if every byte of [addr, addr+size) lies in some region of the given type. */
bool covered(const struct region *r, uint32_t n, uint32_t type, uint64_t addr, uint64_t size);

/* [addr, addr+size) lies in RAM entries of the kernel's memory map. */
bool in_ram(uint64_t addr, uint64_t size);

/* Some byte of [addr, addr+size) lies in a RAM entry of the kernel's memory map. */
bool touches_ram(uint64_t addr, uint64_t size);

#endif
