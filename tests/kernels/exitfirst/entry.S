/*
 * exitfirst: the smallest PVH kernel.  Its entry's first instruction pair ends
 * QEMU through isa-debug-exit (iobase 0xf4): status (0x10 << 1) | 1 = 33.
 * Assembled with `as --64` (an ELF64 object, like Linux's vmlinux) but the PVH
 * entry is 32-bit code.
 *
 * Symbols given with --defsym by build.py:
 *   NOTE_DESC_SIZE  4 or 8, the size of the Xen note's descriptor
 *   EXTRA_NOTE      1 to also emit an unrelated note in .note.extra
 *   VADDR_OFFSET    virtual minus physical address (0, or Linux-like)
 */
    .code32
    .section .text.entry, "ax", @progbits
    .globl pvh_entry
    .type pvh_entry, @function
pvh_entry:
    movb $0x10, %al
    outb %al, $0xf4
1:  hlt
    jmp 1b
    .size pvh_entry, . - pvh_entry

/* The PVH note: owner "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), physical entry. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long NOTE_DESC_SIZE
    .long 18
    .asciz "Xen"
    .balign 4
    .if NOTE_DESC_SIZE == 8
    .quad pvh_entry - VADDR_OFFSET
    .else
    .long pvh_entry - VADDR_OFFSET
    .endif
    .balign 4

    .if EXTRA_NOTE
/* An unrelated note (GNU build-id shaped), in its own PT_NOTE ahead of the Xen one. */
    .section .note.extra, "a", @note
    .balign 4
    .long 4
    .long 20
    .long 3
    .asciz "GNU"
    .balign 4
    .ascii "exitfirst-extranote\0"
    .balign 4
    .endif

    .section .note.GNU-stack, "", @progbits
