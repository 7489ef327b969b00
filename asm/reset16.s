; Reset and mode switch: the only 16-bit code. Real mode at CS:IP = F000:FFF0 (CS base
; 0xFFFF0000) -> 32-bit flat protected mode -> start32 (main.s).
; Assembled in 16-bit mode with IP = RESET16_OFFSET; labels are offsets from CS base.

gdt_desc:                               ; the lgdt operand, at GDT_DESC_OFFSET: limit u16 and
    .word gdt_end - gdt - 1             ;   linear base u32
    .long ROM_BASE + gdt

    .align 8
gdt:                                    ; the firmware's GDT, in ROM; the kernel loads its own
    .quad 0                             ; 0x00: null descriptor
    .quad 0                             ; 0x08: unused (Linux's __BOOT_CS is 0x10)
    .quad 0x00cf9b000000ffff            ; SEL_CODE32: base 0, limit 4 GiB (G=1), 32-bit (D=1),
                                        ;   execute/read, accessed (the CPU never writes ROM)
    .quad 0x00cf93000000ffff            ; SEL_DATA32: base 0, limit 4 GiB, 32-bit, read/write,
                                        ;   accessed
gdt_end:

start16:
    mov al, BOOT_EVENT_FW_START         ; qemu-boot-time: fw_start
    out PORT_BOOT_EVENT, al
    .byte 0x66                          ; operand size 32: load all 32 bits of the GDT base
    lgdt cs:[GDT_DESC_OFFSET]           ; a constant: Keystone gives a label a 0x67 prefix
    mov eax, 0x11                       ; CR0 = PE | ET, as the PVH ABI demands (CD, NW clear)
    mov cr0, eax
    .byte 0x66, 0xea                    ; ljmp with a 32-bit offset (toolchain.md: Keystone
    .long START32                       ;   mis-encodes the mnemonic form in 16-bit mode)
    .word SEL_CODE32

.org RESET_VECTOR_OFFSET                 ; Keystone: .org takes the absolute address
reset_vector:                           ; linear 0xFFFFFFF0: the first instruction after reset
    .byte 0xe9                          ; jmp rel16 (Keystone would emit the 32-bit form)
    .word start16 - reset_vector - 3
