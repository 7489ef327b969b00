/*
 * exitfirst-bz: the smallest bzImage (Linux boot protocol 2.15), for benchmarks.  Its
 * real-mode setup entry (file offset 0x200, where a loader jumps with CS = setup segment
 * + 0x20) and its 32-bit entry (code32_start, the protected-mode part at 1 MiB) both end
 * QEMU at their first instruction pair through isa-debug-exit (iobase 0xf4): status
 * (0x10 << 1) | 1 = 33, as exitfirst does at its PVH entry.
 *
 * Assembled with `as --32 -I tests/kernels` and linked to a flat binary at offset 0
 * (build.py); the header is ../bzimage_header.inc.
 */
    .include "bzimage_header.inc"

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
