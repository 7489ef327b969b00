"""Synthetic bzImages for the builder's and the emulator's tests: a setup header
(Documentation/arch/x86/boot.rst) with every field build-fw reads, and protected-mode bytes.
Offsets are written out here, independently of firmware/layout.py, so that a wrong offset
there shows up as a failing test."""

from __future__ import annotations

import struct

SECTOR = 512


def bzimage(
    pm: bytes = b"\xb0\x10\xe6\xf4\xf4" + bytes(4091),
    *,
    setup_sects: int = 1,
    protocol: int = 0x020F,
    loadflags: int = 0x01,
    code32_start: int = 0x100000,
    boot_flag: int = 0xAA55,
    syssize: int | None = None,
    payload: tuple[int, int] = (0, 0),
    pref_address: int = 0x100000,
    init_size: int | None = None,
    relocatable: int = 0,
    header_jump: int = 0x66,  # the rel8 of the jump at 0x200: the header ends at 0x202 + this
    cmdline_size: int = 2047,
) -> bytes:
    """A bzImage whose 32-bit entry (by default) exits QEMU's isa-debug-exit with 33."""
    setup = bytearray(((setup_sects or 4) + 1) * SECTOR)
    setup[0x1F1] = setup_sects
    struct.pack_into("<I", setup, 0x1F4, (len(pm) + 15) // 16 if syssize is None else syssize)
    struct.pack_into("<H", setup, 0x1FA, 0xFFFF)  # vid_mode: normal
    struct.pack_into("<H", setup, 0x1FE, boot_flag)
    setup[0x200:0x202] = bytes((0xEB, header_jump))
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, protocol)
    struct.pack_into("<H", setup, 0x20E, 0x0200)  # kernel_version (a pointer; unused)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, code32_start)
    struct.pack_into("<I", setup, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<I", setup, 0x230, 0x200000)  # kernel_alignment
    setup[0x234] = relocatable
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<II", setup, 0x248, *payload)
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, len(pm) if init_size is None else init_size)
    # bytes of "setup code" after the header, which must not reach the zero page
    for at in range(0x202 + header_jump, len(setup)):
        setup[at] = 0xC3 ^ (at & 0xFF)
    return bytes(setup) + pm
