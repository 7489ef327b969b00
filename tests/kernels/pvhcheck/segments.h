/* The segment state found at entry: lar/lsl results and the GDT descriptors. */
#ifndef PVHCHECK_SEGMENTS_H
#define PVHCHECK_SEGMENTS_H

#include <stdbool.h>
#include <stdint.h>

/* lar result bits (the descriptor's bytes 5 and 6, in bits 8..23). */
#define LAR_ACCESSED   (1u << 8)
#define LAR_WRITABLE   (1u << 9)   /* data: writable; code: readable */
#define LAR_EXPDOWN    (1u << 10)  /* data: expand-down; code: conforming */
#define LAR_CODE       (1u << 11)
#define LAR_S          (1u << 12)  /* code/data, not system */
#define LAR_PRESENT    (1u << 15)
#define LAR_L          (1u << 21)
#define LAR_DB         (1u << 22)
#define LAR_G          (1u << 23)

struct seg_info {
    const char *name;
    uint32_t sel;
    bool lar_ok, lsl_ok;
    uint32_t lar, lsl;
    bool from_gdt;             /* built with NO_LAR: lar/lsl derived from the GDT entry */
    bool desc_ok;              /* the selector's GDT entry could be read */
    const char *desc_err;      /* why not, when !desc_ok */
    uint64_t desc;             /* raw 8-byte descriptor */
    uint32_t base;
    uint32_t limit;            /* in bytes, granularity applied */
};

struct dtr {
    uint32_t base;
    uint16_t limit;
};

struct dtr saved_gdtr(void);
struct dtr saved_idtr(void);
void seg_info_get(int seg, struct seg_info *out);

#endif
