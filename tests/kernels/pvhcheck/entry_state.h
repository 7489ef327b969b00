/*
 * Layout of the CPU state saved by entry.S at the PVH entry, shared by the
 * assembly (offsets) and the C side (struct).  Every slot is 32 bits wide,
 * except the two 8-byte areas written by sgdt/sidt.
 */
#ifndef PVHCHECK_ENTRY_STATE_H
#define PVHCHECK_ENTRY_STATE_H

/* Segment register indices, in the order cs ds es ss fs gs. */
#define SEG_CS 0
#define SEG_DS 1
#define SEG_ES 2
#define SEG_SS 3
#define SEG_FS 4
#define SEG_GS 5
#define SEG_COUNT 6

#define ES_EAX     0
#define ES_EBX     4
#define ES_ECX     8
#define ES_EDX     12
#define ES_ESI     16
#define ES_EDI     20
#define ES_EBP     24
#define ES_ESP     28
#define ES_EFLAGS  32
#define ES_CR0     36
#define ES_CR3     40
#define ES_CR4     44
#define ES_SEL(i)  (48 + 4 * (i))   /* selector, zero-extended */
#define ES_LAR(i)  (72 + 4 * (i))   /* lar result (0 when invalid) */
#define ES_LSL(i)  (96 + 4 * (i))   /* lsl result (0 when invalid) */
#define ES_VALID(i) (120 + 4 * (i)) /* bit 0: lar set ZF, bit 1: lsl set ZF */
#define ES_GDTR    144              /* sgdt: limit u16, base u32 */
#define ES_IDTR    152              /* sidt: limit u16, base u32 */
#define ES_BSS_DIRTY 160            /* 1 if .bss held a non-zero word at entry */
#define ES_BSS_DIRTY_ADDR 164       /* address of the first such word */
#define ES_PROTOCOL 168            /* ENTRY_PROTOCOL_*: which entry was taken */
#define ES_SIZE    172

#define ENTRY_PROTOCOL_PVH 1        /* pvh_entry */
#define ENTRY_PROTOCOL_LINUX32 2    /* linux32_entry */

#define ES_VALID_LAR 1
#define ES_VALID_LSL 2

#ifndef __ASSEMBLER__
#include <stdint.h>

struct entry_state {
    uint32_t eax, ebx, ecx, edx, esi, edi, ebp, esp;
    uint32_t eflags;
    uint32_t cr0, cr3, cr4;
    uint32_t sel[SEG_COUNT];
    uint32_t lar[SEG_COUNT];
    uint32_t lsl[SEG_COUNT];
    uint32_t valid[SEG_COUNT];
    uint8_t gdtr[8];
    uint8_t idtr[8];
    uint32_t bss_dirty;
    uint32_t bss_dirty_addr;
    uint32_t protocol;
};

_Static_assert(__builtin_offsetof(struct entry_state, eflags) == ES_EFLAGS, "eflags");
_Static_assert(__builtin_offsetof(struct entry_state, cr4) == ES_CR4, "cr4");
_Static_assert(__builtin_offsetof(struct entry_state, sel) == ES_SEL(0), "sel");
_Static_assert(__builtin_offsetof(struct entry_state, lar) == ES_LAR(0), "lar");
_Static_assert(__builtin_offsetof(struct entry_state, lsl) == ES_LSL(0), "lsl");
_Static_assert(__builtin_offsetof(struct entry_state, valid) == ES_VALID(0), "valid");
_Static_assert(__builtin_offsetof(struct entry_state, gdtr) == ES_GDTR, "gdtr");
_Static_assert(__builtin_offsetof(struct entry_state, idtr) == ES_IDTR, "idtr");
_Static_assert(__builtin_offsetof(struct entry_state, bss_dirty) == ES_BSS_DIRTY, "bss");
_Static_assert(__builtin_offsetof(struct entry_state, bss_dirty_addr) == ES_BSS_DIRTY_ADDR,
               "bss addr");
_Static_assert(__builtin_offsetof(struct entry_state, protocol) == ES_PROTOCOL, "protocol");
_Static_assert(sizeof(struct entry_state) == ES_SIZE, "size");

/* Filled by entry.S before anything else runs. */
extern struct entry_state entry_state;

/*
 * Linker-script symbols: the whole loaded image, the start of .data (what
 * lies before it is never written), and the two entries.
 */
extern char __kernel_start[], __kernel_end[], __data_start[];
extern char pvh_entry[], linux32_entry[];
#endif

#endif
