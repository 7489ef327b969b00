/*
 * The setup part of pvhcheck's bzImage (build_kernel("pvhcheck", ..., 0x100000,
 * bzimage=True)): the shared boot sector + header (../bzimage_header.inc, code32_start =
 * linux32_entry) and a real-mode entry that ends QEMU at once through isa-debug-exit with
 * 0x12, status (0x12 << 1) | 1 = 37: a loader that enters the setup in real mode (SeaBIOS,
 * qboot) is told apart from one that used the 32-bit entry.  build.py appends the
 * protected-mode part (objcopy -O binary of pvhcheck linked at 1 MiB) after
 * (SETUP_SECTS + 1) * 512 bytes.
 */
    .include "bzimage_header.inc"

setup_code:
    movb $0x12, %al
    outb %al, $0xf4
1:  hlt
    jmp 1b

    .org (SETUP_SECTS + 1) * 512
