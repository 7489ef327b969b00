"""Synthetic bzImages for the builder's and the emulator's tests: a setup header
(Documentation/arch/x86/boot.rst) with every field build-fw reads, and protected-mode bytes.
The fields are the tests' transcription (tests/spec.py), independent of pvhfw.firmware.abi,
so that a wrong offset there shows up as a failing test."""

from __future__ import annotations

from tests import spec


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
    setup = bytearray(((setup_sects or 4) + 1) * spec.SETUP_SECTOR)
    # the legacy boot sector before the header (a real one prints "Use a boot loader"): bytes
    # a loader must not pass on in the zero page
    for at in range(spec.bp_offset("hdr")):
        setup[at] = 0x5A ^ (at & 0xFF) | 1
    fields = {
        "setup_sects": setup_sects,
        "syssize": (len(pm) + 15) // 16 if syssize is None else syssize,
        "vid_mode": 0xFFFF,  # normal
        "boot_flag": boot_flag,
        "jump": 0xEB | header_jump << 8,  # jmp short over the header
        "header": int.from_bytes(spec.HDRS, "little"),
        "version": protocol,
        "kernel_version": 0x0200,  # a pointer; unused
        "loadflags": loadflags,
        "code32_start": code32_start,
        "initrd_addr_max": 0x7FFFFFFF,
        "kernel_alignment": 0x200000,
        "relocatable_kernel": relocatable,
        "cmdline_size": cmdline_size,
        "payload_offset": payload[0],
        "payload_length": payload[1],
        "pref_address": pref_address,
        "init_size": len(pm) if init_size is None else init_size,
    }
    for name, value in fields.items():
        spec.bp_write(setup, name, value)
    # bytes of "setup code" after the header, which must not reach the zero page
    for at in range(spec.bp_offset("header") + header_jump, len(setup)):
        setup[at] = 0xC3 ^ (at & 0xFF)
    return bytes(setup) + pm
