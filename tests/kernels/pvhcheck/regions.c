/* The kernel's memory map and fw_cfg's e820 as regions (regions.h). */
#include "regions.h"
#include "pvh.h"

struct region memmap_regions[MAX_MEMMAP];
uint32_t memmap_count;
struct region e820_regions[FWCFG_MAX_E820];
uint32_t e820_count;

uint64_t range_end(uint64_t addr, uint64_t size)
{
    return size > ~0ull - addr ? ~0ull : addr + size;
}

bool overlaps(uint64_t a, uint64_t asz, uint64_t b, uint64_t bsz)
{
    if (asz == 0 || bsz == 0)
        return false;
    return a < range_end(b, bsz) && b < range_end(a, asz);
}

bool covered(const struct region *r, uint32_t n, uint32_t type, uint64_t addr, uint64_t size)
{
    uint64_t cur = addr, end = range_end(addr, size ? size : 1);
    while (cur < end) {
        uint64_t next = cur;
        for (uint32_t i = 0; i < n; i++) {
            if (r[i].type == type && r[i].start <= cur && cur < r[i].end && r[i].end > next)
                next = r[i].end;
        }
        if (next == cur)
            return false;
        cur = next;
    }
    return true;
}

bool in_ram(uint64_t addr, uint64_t size)
{
    return covered(memmap_regions, memmap_count, E820_RAM, addr, size);
}

bool touches_ram(uint64_t addr, uint64_t size)
{
    for (uint32_t i = 0; i < memmap_count; i++) {
        const struct region *r = &memmap_regions[i];
        if (r->type == E820_RAM && overlaps(addr, size, r->start, r->end - r->start))
            return true;
    }
    return false;
}

void regions_init(const struct boot_view *bv, const struct fwcfg_facts *fw)
{
    memmap_count = 0;
    if (bv->memmap) {
        for (uint32_t i = 0; i < bv->memmap_entries; i++) {
            const struct hvm_memmap_table_entry *e = &bv->memmap[i];
            memmap_regions[memmap_count].start = e->addr;
            memmap_regions[memmap_count].end = range_end(e->addr, e->size);
            memmap_regions[memmap_count].type = e->type;
            memmap_count++;
        }
    }
    e820_count = 0;
    if (fw->present && fw->have_e820) {
        for (uint32_t i = 0; i < fw->e820_count && i < FWCFG_MAX_E820; i++) {
            e820_regions[e820_count].start = fw->e820[i].addr;
            e820_regions[e820_count].end = range_end(fw->e820[i].addr, fw->e820[i].size);
            e820_regions[e820_count].type = fw->e820[i].type;
            e820_count++;
        }
    }
}
