/*
 * Entries of the pvhcheck kernel (32-bit, paging off): pvh_entry (the PVH
 * ABI, EBX = hvm_start_info; the Xen note names it) and linux32_entry (the
 * Linux boot protocol's 32-bit entry, ESI = boot_params; the bzImage header's
 * code32_start names it).  Both share everything after their first two
 * instructions, which store EAX and pick the protocol recorded in
 * entry_state.protocol.
 *
 * Nothing about the stack is promised by either protocol, so the state as
 * found is first stored with absolute moves (this assumes only that DS is
 * flat, which both promise); then a small stack in .data is used for pushf,
 * and .bss is inspected, cleared and given the real stack.
 */
#include "entry_state.h"

#ifndef NOTE_DESC_SIZE
#define NOTE_DESC_SIZE 4
#endif

#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .code32

    .section .text.entry, "ax", @progbits
    .globl pvh_entry
    .type pvh_entry, @function
pvh_entry:
    movl %eax, entry_state + ES_EAX
    movl $ENTRY_PROTOCOL_PVH, %eax      /* mov and jmp leave EFLAGS alone */
save_state:                             /* EAX: the protocol; the entry's EAX is saved */
    movl %eax, entry_state + ES_PROTOCOL
    movl %ebx, entry_state + ES_EBX
    movl %ecx, entry_state + ES_ECX
    movl %edx, entry_state + ES_EDX
    movl %esi, entry_state + ES_ESI
    movl %edi, entry_state + ES_EDI
    movl %ebp, entry_state + ES_EBP
    movl %esp, entry_state + ES_ESP
    movw %cs, entry_state + ES_SEL(SEG_CS)
    movw %ds, entry_state + ES_SEL(SEG_DS)
    movw %es, entry_state + ES_SEL(SEG_ES)
    movw %ss, entry_state + ES_SEL(SEG_SS)
    movw %fs, entry_state + ES_SEL(SEG_FS)
    movw %gs, entry_state + ES_SEL(SEG_GS)
    sgdt entry_state + ES_GDTR
    sidt entry_state + ES_IDTR
    movl %cr0, %eax
    movl %eax, entry_state + ES_CR0
    movl %cr3, %eax
    movl %eax, entry_state + ES_CR3
    movl %cr4, %eax
    movl %eax, entry_state + ES_CR4

    /* EFLAGS needs a stack: use the small one in .data. */
    movl $boot_stack_top, %esp
    pushfl
    popl entry_state + ES_EFLAGS
    cld

#ifndef NO_LAR
    /*
     * lar / lsl of every selector; ZF=1 means the descriptor was accepted.
     * (Built with NO_LAR, for KVM instruction emulators that reject lar/lsl,
     * the C side derives the same bits from the GDT entry instead.)
     */
    .macro larlsl seg
    movzwl entry_state + ES_SEL(\seg), %eax
    xorl %edx, %edx
    larl %eax, %edx
    jnz 1f
    movl %edx, entry_state + ES_LAR(\seg)
    orl $ES_VALID_LAR, entry_state + ES_VALID(\seg)
1:  xorl %edx, %edx
    lsll %eax, %edx
    jnz 2f
    movl %edx, entry_state + ES_LSL(\seg)
    orl $ES_VALID_LSL, entry_state + ES_VALID(\seg)
2:
    .endm
    larlsl SEG_CS
    larlsl SEG_DS
    larlsl SEG_ES
    larlsl SEG_SS
    larlsl SEG_FS
    larlsl SEG_GS
#endif

    /* Was .bss zero-filled by the loader (p_memsz beyond p_filesz)? */
    movl $__bss_start, %edi
    movl $__bss_end, %edx
3:  cmpl %edx, %edi
    jae 5f
    cmpl $0, (%edi)
    jne 4f
    addl $4, %edi
    jmp 3b
4:  movl $1, entry_state + ES_BSS_DIRTY
    movl %edi, entry_state + ES_BSS_DIRTY_ADDR
5:
    /* Clear .bss (it holds the main stack), then run the C part. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl
    movl $stack_top, %esp
    xorl %ebp, %ebp
    call pvh_main
halt:
    cli
    hlt
    jmp halt
    .size pvh_entry, . - pvh_entry

    .globl linux32_entry
    .type linux32_entry, @function
linux32_entry:
    movl %eax, entry_state + ES_EAX
    movl $ENTRY_PROTOCOL_LINUX32, %eax
    jmp save_state
    .size linux32_entry, . - linux32_entry

    .section .data, "aw", @progbits
    .balign 16
    .globl entry_state
    .type entry_state, @object
entry_state:
    .fill ES_SIZE, 1, 0
    .size entry_state, ES_SIZE
    .balign 16
boot_stack:
    .fill 64, 1, 0
boot_stack_top:

    .section .bss, "aw", @nobits
    .balign 16
stack:
    .skip 16384
stack_top:

/* The PVH note: owner "Xen", type XEN_ELFNOTE_PHYS32_ENTRY, descriptor = entry. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz */
    .long NOTE_DESC_SIZE            /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
    .asciz "Xen"
    .balign 4
    .long pvh_entry
#if NOTE_DESC_SIZE == 8
    .long 0
#endif
    .balign 4

#ifdef EXTRA_NOTE
/* An unrelated note, in its own PT_NOTE segment ahead of the Xen one. */
    .section .note.extra, "a", @note
    .balign 4
    .long 4                         /* namesz */
    .long 20                        /* descsz */
    .long 3                         /* NT_GNU_BUILD_ID */
    .asciz "GNU"
    .balign 4
    .byte 0x70, 0x76, 0x68, 0x63, 0x68, 0x65, 0x63, 0x6b, 0x2d, 0x65
    .byte 0x78, 0x74, 0x72, 0x61, 0x2d, 0x6e, 0x6f, 0x74, 0x65, 0x00
    .balign 4
#endif

    .section .note.GNU-stack, "", @progbits
