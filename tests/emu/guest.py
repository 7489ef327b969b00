"""Run pvhcheck in unicorn as if a loader had just entered it through PVH, in a machine the
test makes up: RAM contents (the BIOS tables to judge), the memory map in start_info, fw_cfg
(tests/emu/fwcfg.py's SimFwCfg), PCI configuration space behind CF8/CFC, an ECAM window and
MSR values. pvhcheck's table checks can then be shown failing on tables no firmware QEMU
ships would write (tests/test_pvhcheck_tables_emu.py).

The CPU: 32-bit protected mode, paging off, a flat code (0x08) and data (0x10) segment in a
GDT at GDT_ADDR, EBX = start_info, EIP = the ELF's entry. Ports: fw_cfg 0x510-0x51b, a 16550
at 0x3f8 whose THR bytes are the serial output, CF8/CFC, isa-debug-exit at 0xf4 (ends the
run); any other port reads all ones. MSRs are set with unicorn's msr_write, so an `rdmsr` of
one reads that value (TCG's MSR emulation); CPUID is unicorn's (QEMU's qemu64-like model).
"""

# unicorn 2.1's Python API is untyped:
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile
from unicorn import (  # type: ignore[attr-defined]
    UC_ARCH_X86,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_MODE_32,
    Uc,
    UcError,
)
from unicorn import x86_const as x86

from tests import spec
from tools.qemu import DEBUG_EXIT_PORT

from .fwcfg import SimFwCfg

MiB = 1 << 20
RAM_SIZE = 32 * MiB  # pvhcheck at 16 MiB, its .bss above
GDT_ADDR = 0x800
START_INFO = 0x6000
MEMMAP_ADDR = 0x7000
CMDLINE_ADDR = 0x8000
STACK_TOP = 0x9000
SEL_CODE, SEL_DATA = 0x08, 0x10
MAX_INSTRUCTIONS = 50_000_000
E820_RAM, E820_RESERVED = 1, 2

Range = tuple[int, int, int]  # addr, size, type

DEFAULT_MEMMAP: tuple[Range, ...] = (
    (0, 0x9FC00, E820_RAM),
    (0x9FC00, 0x400, E820_RESERVED),
    (0xF0000, 0x10000, E820_RESERVED),
    (MiB, RAM_SIZE - MiB, E820_RAM),
)


@dataclass
class Guest:
    """The machine pvhcheck wakes up in."""

    fwcfg: SimFwCfg
    memory: dict[int, bytes] = field(default_factory=dict)  # RAM contents: address -> bytes
    memmap: tuple[Range, ...] = DEFAULT_MEMMAP  # what start_info hands over
    pci: dict[int, bytes] = field(default_factory=dict)  # bdf -> 256 bytes of config space
    ecam: int | None = None  # base of a 1 MiB window (bus 0) that shows `ecam_pci`
    ecam_pci: dict[int, bytes] | None = None  # what ECAM shows (default: `pci`)
    msrs: dict[int, int] = field(default_factory=dict)


@dataclass
class GuestRun:
    serial: str
    exit_code: int | None  # what was written to isa-debug-exit (None: never)
    error: str | None


class _Pci:
    def __init__(self, devices: dict[int, bytes]) -> None:
        self.devices = devices
        self.address = 0

    def read(self, port: int, size: int) -> int:
        if port == spec.PCI_CONFIG_ADDRESS:
            return self.address
        config = self.devices.get((self.address >> 8) & 0xFFFF)
        if not self.address & 0x8000_0000 or config is None:
            return (1 << (8 * size)) - 1
        offset = (self.address & 0xFC) + port - spec.PCI_CONFIG_DATA
        return int.from_bytes(config[offset : offset + size], "little")

    def write(self, port: int, size: int, value: int) -> None:
        if port == spec.PCI_CONFIG_ADDRESS and size == 4:
            self.address = value


def _gdt() -> bytes:
    code = 0x00CF9A000000FFFF  # base 0, limit 4 GiB, 32-bit execute/read
    data = 0x00CF92000000FFFF  # base 0, limit 4 GiB, 32-bit read/write
    return struct.pack("<QQQ", 0, code, data)


def _start_info(memmap: tuple[Range, ...]) -> bytes:
    return spec.HVM_START_INFO.pack(
        magic=spec.XEN_HVM_START_MAGIC_VALUE,
        version=1,
        flags=0,
        nr_modules=0,
        modlist_paddr=0,
        cmdline_paddr=CMDLINE_ADDR,
        rsdp_paddr=0,
        memmap_paddr=MEMMAP_ADDR,
        memmap_entries=len(memmap),
        reserved=0,
    )


def run_guest(elf: Path, guest: Guest) -> GuestRun:
    """Load the ELF's segments, set up `guest`, enter at the ELF's entry with EBX =
    start_info and run until isa-debug-exit, an error, or MAX_INSTRUCTIONS."""
    uc: Any = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, RAM_SIZE)
    with open(elf, "rb") as f:
        image = ELFFile(f)
        entry = image["e_entry"]
        for seg in image.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                uc.mem_write(seg["p_paddr"], seg.data())
    uc.mem_write(GDT_ADDR, _gdt())
    uc.mem_write(START_INFO, _start_info(guest.memmap))
    entry_fmt = spec.HVM_MEMMAP_TABLE_ENTRY.format
    uc.mem_write(MEMMAP_ADDR, b"".join(struct.pack(entry_fmt, *e, 0) for e in guest.memmap))
    uc.mem_write(CMDLINE_ADDR, b"\0")
    for addr, data in guest.memory.items():
        uc.mem_write(addr, data)
    if guest.ecam is not None:
        uc.mem_map(guest.ecam, MiB)
        shown = guest.pci if guest.ecam_pci is None else guest.ecam_pci
        for bdf, config in shown.items():
            uc.mem_write(guest.ecam + (bdf << 12), config)

    uc.reg_write(x86.UC_X86_REG_GDTR, (0, GDT_ADDR, 23, 0))
    uc.reg_write(x86.UC_X86_REG_CR0, 0x11)
    uc.reg_write(x86.UC_X86_REG_CR4, 0)
    uc.reg_write(x86.UC_X86_REG_CS, SEL_CODE)
    for reg in ("DS", "ES", "SS", "FS", "GS"):
        uc.reg_write(getattr(x86, f"UC_X86_REG_{reg}"), SEL_DATA)
    uc.reg_write(x86.UC_X86_REG_EBX, START_INFO)
    uc.reg_write(x86.UC_X86_REG_ESP, STACK_TOP)
    for msr, value in guest.msrs.items():
        uc.msr_write(msr, value)

    serial = bytearray()
    pci = _Pci(guest.pci)
    fwcfg = guest.fwcfg
    exit_code: list[int] = []
    lcr = [0]  # the UART's line control register

    def on_in(uc: Any, port: int, size: int, _: Any) -> int:
        if fwcfg.handles(port):
            return fwcfg.port_in(port, size)
        if port == spec.PCI_CONFIG_ADDRESS or 0 <= port - spec.PCI_CONFIG_DATA < 4:
            return pci.read(port, size)
        if port == spec.COM1 + 5:
            return 0x60  # LSR: transmitter empty
        return (1 << (8 * size)) - 1

    def on_out(uc: Any, port: int, size: int, value: int, _: Any) -> None:
        if fwcfg.handles(port):
            fwcfg.port_out(port, size, value)
        elif port == spec.PCI_CONFIG_ADDRESS or 0 <= port - spec.PCI_CONFIG_DATA < 4:
            pci.write(port, size, value)
        elif port == spec.COM1 + 3:
            lcr[0] = value & 0xFF
        elif port == spec.COM1 and not lcr[0] & 0x80:  # THR (DLAB clear: not the divisor)
            serial.append(value & 0xFF)
        elif port == DEBUG_EXIT_PORT:
            exit_code.append(value)
            uc.emu_stop()

    errors: list[str] = []

    def on_interrupt(uc: Any, vector: int, _: Any) -> None:
        errors.append(f"CPU exception {vector} at eip {uc.reg_read(x86.UC_X86_REG_EIP):#x}")
        uc.emu_stop()

    uc.hook_add(UC_HOOK_INSN, on_in, None, 1, 0, x86.UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, x86.UC_X86_INS_OUT)
    uc.hook_add(UC_HOOK_INTR, on_interrupt)
    try:
        uc.emu_start(entry, 1 << 32, count=MAX_INSTRUCTIONS)
    except UcError as exc:
        errors.append(f"{exc} at eip {uc.reg_read(x86.UC_X86_REG_EIP):#x}")
    return GuestRun(
        serial=serial.decode("latin-1"),
        exit_code=exit_code[0] if exit_code else None,
        error="; ".join(errors) or None,
    )
