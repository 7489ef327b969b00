/*
 * struct boot_params, the Linux boot protocol's "zero page" (arch/x86/include/uapi/
 * asm/bootparam.h, Documentation/arch/x86/zero-page.rst): the offsets pvhcheck reads.
 */
#ifndef PVHCHECK_BOOTPARAMS_H
#define PVHCHECK_BOOTPARAMS_H

#include <stdint.h>

#define BP_SIZE 4096

#define BP_ACPI_RSDP_ADDR 0x070     /* u64 */
#define BP_E820_ENTRIES   0x1e8     /* u8 */
#define BP_HDR_START      0x1f1     /* struct setup_header: setup_sects ... */
#define BP_BOOT_FLAG      0x1fe     /* u16, 0xaa55 */
#define BP_JUMP           0x200     /* u16: jmp short; header end = 0x202 + byte 0x201 */
#define BP_HEADER         0x202     /* u32 "HdrS" */
#define BP_VERSION        0x206     /* u16 */
#define BP_TYPE_OF_LOADER 0x210     /* u8 */
#define BP_LOADFLAGS      0x211     /* u8 */
#define BP_CODE32_START   0x214     /* u32 */
#define BP_RAMDISK_IMAGE  0x218     /* u32 */
#define BP_RAMDISK_SIZE   0x21c     /* u32 */
#define BP_CMD_LINE_PTR   0x228     /* u32: the loader may point it elsewhere */
#define BP_SETUP_DATA     0x250     /* u64 */
#define BP_E820_TABLE     0x2d0     /* struct boot_e820_entry[BP_E820_MAX] */
#define BP_E820_MAX       128

#define BP_BOOT_FLAG_VALUE 0xaa55u
#define BP_HEADER_VALUE    0x53726448u  /* "HdrS" */

struct boot_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

_Static_assert(sizeof(struct boot_e820_entry) == 20, "boot_e820_entry");
_Static_assert(BP_E820_TABLE + BP_E820_MAX * 20 <= BP_SIZE, "e820_table");

static inline uint8_t bp_u8(const uint8_t *bp, uint32_t off)
{
    return bp[off];
}

static inline uint16_t bp_u16(const uint8_t *bp, uint32_t off)
{
    return (uint16_t)(bp[off] | bp[off + 1] << 8);
}

static inline uint32_t bp_u32(const uint8_t *bp, uint32_t off)
{
    return (uint32_t)bp[off] | (uint32_t)bp[off + 1] << 8 | (uint32_t)bp[off + 2] << 16 |
           (uint32_t)bp[off + 3] << 24;
}

static inline uint64_t bp_u64(const uint8_t *bp, uint32_t off)
{
    return (uint64_t)bp_u32(bp, off) | (uint64_t)bp_u32(bp, off + 4) << 32;
}

/* End (exclusive) of the setup header in a zero page or setup image: 0x202 + byte 0x201. */
static inline uint32_t bp_header_end(const uint8_t *bp)
{
    return BP_HEADER + bp[BP_JUMP + 1];
}

#endif
