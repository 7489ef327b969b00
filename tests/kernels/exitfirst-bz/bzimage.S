/*
 * exitfirst-bz: the smallest bzImage (Linux boot protocol 2.15), for benchmarks.  Its
 * real-mode setup entry (file offset 0x200, where a loader jumps with CS = setup segment
 * + 0x20) and its 32-bit entry (code32_start, the protected-mode part at 1 MiB) both end
 * QEMU at their first instruction pair through isa-debug-exit (iobase 0xf4): status
 * (0x10 << 1) | 1 = 33, as exitfirst does at its PVH entry.
 *
 * Assembled with `as --32` and linked to a flat binary at offset 0 (build.py); field
 * offsets and meanings: Documentation/arch/x86/boot.rst, "The real-mode kernel header".
 */
    .code16
    .section .text, "ax", @progbits
    .globl _start
_start:
    .fill 0x1f1, 1, 0               /* the boot sector: never executed by a loader */

    .org 0x1f1
setup_sects:    .byte SETUP_SECTS   /* setup = (1 + setup_sects) * 512 bytes */
root_flags:     .word 0
syssize:        .long SYSSIZE       /* the protected-mode part, in 16-byte units */
ram_size:       .word 0
vid_mode:       .word 0xffff        /* "normal" */
root_dev:       .word 0
boot_flag:      .word 0xaa55

    .org 0x200
setup_entry:                        /* jump: the loader enters here, CS:IP = seg+0x20:0 */
    jmp setup_code
header:         .ascii "HdrS"       /* 0x202: the magic */
version:        .word 0x020f        /* 0x206: boot protocol 2.15 */
realmode_swtch: .long 0
start_sys_seg:  .word 0x1000
kernel_version: .word 0
type_of_loader: .byte 0
loadflags:      .byte 0x01          /* 0x211: LOADED_HIGH: protected-mode part at 1 MiB */
setup_move_size: .word 0x8000
code32_start:   .long 0x100000      /* 0x214: the 32-bit entry */
ramdisk_image:  .long 0
ramdisk_size:   .long 0
bootsect_kludge: .long 0
heap_end_ptr:   .word 0
ext_loader_ver: .byte 0
ext_loader_type: .byte 0
cmd_line_ptr:   .long 0
initrd_addr_max: .long 0x7fffffff   /* 0x22c */
kernel_alignment: .long 0x200000
relocatable_kernel: .byte 0
min_alignment:  .byte 21
xloadflags:     .word 0
cmdline_size:   .long 2047          /* 0x238 */
hardware_subarch: .long 0
hardware_subarch_data: .quad 0
payload_offset: .long 0             /* 0x248: no compressed payload */
payload_length: .long 0
setup_data:     .quad 0             /* 0x250 */
pref_address:   .quad 0x100000
init_size:      .long 0x1000        /* 0x260 */
handover_offset: .long 0
kernel_info_offset: .long 0

setup_code:                         /* the real-mode entry's first instructions */
    movb $0x10, %al
    outb %al, $0xf4
1:  hlt
    jmp 1b

    .org (SETUP_SECTS + 1) * 512
    .code32
pm_entry:                           /* code32_start: the 32-bit boot protocol's entry */
    movb $0x10, %al
    outb %al, $0xf4
2:  hlt
    jmp 2b
    .balign 16
    .fill SYSSIZE * 16 - (. - pm_entry), 1, 0
