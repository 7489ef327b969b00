/*
 * lar/lsl read the descriptor from the table in memory, not the hidden part of
 * the segment register; the GDT entry is read the same way for the base,
 * which lar does not report.  A firmware whose GDT no longer matches what it
 * loaded would show up here (the PVH ABI does not promise a usable GDT, but a
 * GDT that contradicts the loaded segments is worth a FAIL).
 */
#include "entry_state.h"
#include "io.h"
#include "segments.h"

static const char *const seg_names[SEG_COUNT] = {"cs", "ds", "es", "ss", "fs", "gs"};

static struct dtr decode_dtr(const uint8_t *p)
{
    struct dtr d;
    d.limit = (uint16_t)(p[0] | p[1] << 8);
    d.base = (uint32_t)p[2] | (uint32_t)p[3] << 8 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24;
    return d;
}

struct dtr saved_gdtr(void)
{
    return decode_dtr(entry_state.gdtr);
}

struct dtr saved_idtr(void)
{
    return decode_dtr(entry_state.idtr);
}

void seg_info_get(int seg, struct seg_info *out)
{
    memset(out, 0, sizeof(*out));
    out->name = seg_names[seg];
    out->sel = entry_state.sel[seg] & 0xffff;
    out->lar_ok = entry_state.valid[seg] & ES_VALID_LAR;
    out->lsl_ok = entry_state.valid[seg] & ES_VALID_LSL;
    out->lar = entry_state.lar[seg];
    out->lsl = entry_state.lsl[seg];

    struct dtr gdtr = saved_gdtr();
    uint32_t index = out->sel & ~7u;
    if (out->sel & 4) {
        out->desc_err = "LDT selector";
        return;
    }
    if (index == 0) {
        out->desc_err = "null selector";
        return;
    }
    if (index + 7 > gdtr.limit) {
        out->desc_err = "selector beyond GDT limit";
        return;
    }
    const uint8_t *d = phys_ptr((uint64_t)gdtr.base + index, 8);
    if (!d) {
        out->desc_err = "GDT entry above 4 GiB";
        return;
    }
    uint32_t lo = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                  (uint32_t)d[3] << 24;
    uint32_t hi = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 |
                  (uint32_t)d[7] << 24;
    out->desc_ok = true;
    out->desc = (uint64_t)hi << 32 | lo;
    out->base = (lo >> 16) | (hi & 0xff) << 16 | (hi & 0xff000000u);
    uint32_t raw_limit = (lo & 0xffff) | (hi & 0x000f0000u);
    out->limit = (hi & (1u << 23)) ? (raw_limit << 12 | 0xfff) : raw_limit;
#ifdef NO_LAR
    /* What lar/lsl would return for this descriptor (present, S=1 case). */
    out->from_gdt = true;
    out->lar_ok = out->lsl_ok = true;
    out->lar = hi & 0x00f0ff00u;
    out->lsl = out->limit;
#endif
}
