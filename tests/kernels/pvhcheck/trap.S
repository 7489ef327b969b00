/*
 * rdmsr with a #GP fixup (cpu.c installs gp_handler as vector 13 around it).
 *
 * int rdmsr_raw(uint32_t msr, uint64_t *value): stores EDX:EAX at *value,
 * returns 0, or 1 when the rdmsr raised #GP.
 */
    .code32
    .text

    .globl rdmsr_raw
    .type rdmsr_raw, @function
rdmsr_raw:
    pushl %ebx
    movl 8(%esp), %ecx          /* msr */
    movl 12(%esp), %ebx         /* value */
    movl $0, msr_faulted
    xorl %eax, %eax
    xorl %edx, %edx
rdmsr_insn:
    rdmsr
rdmsr_resume:
    movl %eax, (%ebx)
    movl %edx, 4(%ebx)
    movl msr_faulted, %eax
    popl %ebx
    ret
    .size rdmsr_raw, . - rdmsr_raw

/*
 * Stack on entry: error code, EIP, CS, EFLAGS (CPL 0 to CPL 0: no stack
 * switch).  No iret: this machine's PVM-based KVM stops with "emulation
 * failure" on it.  The frame is dropped and rdmsr_raw resumes by a jump; the
 * interrupt gate's IF=0 stays (pvhcheck never enables interrupts).
 */
    .globl gp_handler
    .type gp_handler, @function
gp_handler:
    cmpl $rdmsr_insn, 4(%esp)
    jne 1f
    movl $1, msr_faulted
    addl $16, %esp              /* error code, EIP, CS, EFLAGS */
    jmp rdmsr_resume
1:  movb $0x11, %al             /* a #GP anywhere else: fail (QEMU exits 35) */
    outb %al, $0xf4
2:  cli
    hlt
    jmp 2b
    .size gp_handler, . - gp_handler

    .bss
    .balign 4
msr_faulted:
    .skip 4

    .section .note.GNU-stack, "", @progbits
