"""Run a `-bios` image in unicorn from the reset vector, as on QEMU's pc machine, and record it.

Memory, as QEMU maps a `-bios` image:
- the whole image ends at 4 GiB, and its last min(size, 128 KiB) also ends at 1 MiB; both are
  ROM: a CPU write to them is dropped (as in QEMU) and listed in `RunResult.rom_writes`, a DMA
  write to them fails (error bit). The host bridge's PAM0 (i440FX 0x59, Q35 0x90; when `pci`
  lists the bridge) maps the F segment 0xF0000-0xFFFFF to RAM instead, read-only or
  read/write, as QEMU does; that RAM starts as zeros;
- RAM at 0-0xA0000 and 0x100000-ram_size. The rest (VGA window, option-ROM area, anything
  above RAM but the high ROM) is unmapped: touching it ends the run with an error, where QEMU
  would read 0xff or a device.

CPU: reset state of QEMU (CR0 0x60000010, EFLAGS 2, EDX 0x663, CS 0xF000 / IP 0xFFF0, IDTR
base 0 limit 0xFFFF), except
for the CS base: unicorn derives it from the selector (0xF0000, not 0xFFFF0000), so execution
starts at linear 0xFFFF0, in the shadow copy. The 16-bit code runs from the shadow and sees
the same bytes there as at 0xFFFFxxxx; a far jump to 32-bit code at 0xFFFFxxxx reaches the
high copy. No exception or interrupt is delivered: any CPU exception or `int` ends the run
(`RunResult.exception`, `error`).

Instruction count: one per executed instruction, one per iteration of a `rep` string
instruction (max(count, 1) for one with a zero count), as QEMU TCG's `-singlestep -d exec`
log counts them. Unicorn fires its code hook once more after the last iteration of a rep
that ran its count register down to 0; that extra call is not counted.

Ports: 0x510-0x51b SimFwCfg; 0x3f8-0x3ff a 16550 (THR bytes collect in `serial`, LSR reads
0x60); writes to 0xf4/0xf5 are boot events; with `pit_ticks` an 8254's counter 0 at 0x40-0x43
(rate mode and latch reads only), its clock `pit_ticks` ticks an instruction; with `pvpanic`
an ISA pvpanic at 0x505 that reads that value; any other port reads all ones. Every access is
in `RunResult.port_accesses` with the index of its instruction.

A triple fault (an exception, `int` or `ud2` while the IDT's limit is 0) resets the
machine, as QEMU does: the run ends with `RunResult.reset`, which is not an error.
"""

# unicorn 2.1's Python API is untyped:
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from unicorn import (  # type: ignore[attr-defined]
    UC_ARCH_X86,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_PROT,
    UC_MODE_16,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
    UcError,
)
from unicorn import x86_const as x86

from tests import spec
from tools.qemu import DEBUG_EXIT_PORT

from .fwcfg import PortAccess, SimFwCfg

MiB = 1 << 20
RESET_CS, RESET_IP = 0xF000, 0xFFF0
LOW_RAM_END = 0xA0000
SHADOW_MAX = 128 * 1024
EVENT_PORTS = (DEBUG_EXIT_PORT, spec.PORT_BOOT_EVENT)
UART_BASE = spec.COM1

_REG_NAMES = "eax ebx ecx edx esi edi esp ebp eip eflags cr0 cr2 cr3 cr4 cs ds es ss fs gs"
_REGS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in _REG_NAMES.split()}
_STRING_OPS = (
    frozenset(range(0x6C, 0x70)) | frozenset(range(0xA4, 0xA8)) | frozenset(range(0xAA, 0xB0))
)
_PREFIXES = frozenset((0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67))


class BootEvent(NamedTuple):
    port: int
    value: int
    insn: int  # 0-based index of the `out` instruction


class RomWrite(NamedTuple):
    insn: int
    address: int
    size: int
    value: int


class Descriptor(NamedTuple):
    base: int
    limit: int  # in bytes, granularity applied: 0xFFFFFFFF for a flat 4 GiB segment
    access: int  # byte 5: P, DPL, S, type
    flags: int  # high nibble of byte 6: G, D/B, L, AVL


@dataclass
class RunResult:
    stopped_at_entry: bool
    halted: bool
    timeout: bool
    error: str | None
    exception: int | None  # CPU exception / interrupt vector that ended the run
    instructions: int
    port_accesses: list[PortAccess]
    events: list[BootEvent]
    serial_bytes: bytes
    regs: dict[str, int]
    rom_writes: list[RomWrite]
    fwcfg: SimFwCfg
    uc: Any = field(repr=False)  # the unicorn.Uc, kept for mem()
    pci_writes: list[tuple[int, int, int]] = field(default_factory=list)  # (address, value, size)
    reset: bool = False  # ended by a triple fault: the machine resets
    trace: list[int] = field(default_factory=list)  # addresses in execution order (profile=True)
    writes: list[tuple[int, int]] = field(default_factory=list)  # (address, size): track_writes

    @property
    def serial(self) -> str:
        return self.serial_bytes.decode("latin-1")

    @property
    def fwcfg_accesses(self) -> int:
        return len(self.fwcfg.accesses)

    def mem(self, addr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(addr, size))

    def descriptor(self, selector: int) -> Descriptor:
        """Decode a GDT entry from memory, through the final GDTR."""
        raw = self.mem(self.regs["gdtr_base"] + (selector & ~7), 8)
        low, high = struct.unpack("<II", raw)
        base = (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF000000)
        limit = (low & 0xFFFF) | (high & 0xF0000)
        flags = (high >> 20) & 0xF
        if flags & 0x8:
            limit = (limit << 12) | 0xFFF
        return Descriptor(base, limit, (high >> 8) & 0xFF, flags)


class _Uart:
    """A 16550 with nothing to receive and a transmitter that is always ready."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.regs = [0, 0, 0x01, 0, 0, 0x60, 0xB0, 0]  # RBR IER IIR LCR MCR LSR MSR SCR
        self.divisor = [0, 0]

    def write(self, reg: int, value: int) -> None:
        dlab = self.regs[3] & 0x80
        if reg in (0, 1) and dlab:
            self.divisor[reg] = value
        elif reg == 0:
            self.out.append(value)
        elif reg in (1, 3, 4, 7):
            self.regs[reg] = value

    def read(self, reg: int) -> int:
        if reg in (0, 1) and self.regs[3] & 0x80:
            return self.divisor[reg]
        return self.regs[reg]


class _Pit:
    """Counter 0 of an 8254 in rate mode (2), the only use the firmware makes of it: the
    reload value (low byte, high byte; 0 is 65536), counting down one a tick from when the
    high byte is written, and the latch command. Time is the machine's instruction count."""

    def __init__(self, ticks_per_instruction: int, clock: Callable[[], int]) -> None:
        self.rate = ticks_per_instruction
        self.clock = clock  # instructions so far
        self.reload = 0x10000
        self.loaded_at: int | None = None
        self.pending_low: int | None = None
        self.latched: list[int] = []

    def _count(self) -> int:
        if self.loaded_at is None:
            return 0
        ticks = (self.clock() - self.loaded_at) * self.rate
        return (self.reload - 1 - ticks % self.reload) & 0xFFFF

    def write(self, port: int, value: int) -> None:
        if port == spec.PIT_CONTROL:
            if value & 0xF0 == 0x00:  # counter 0 latch
                count = self._count()
                self.latched = [count & 0xFF, count >> 8]
            elif value & 0xFE == 0x34:  # counter 0, low then high byte, mode 2
                self.loaded_at, self.pending_low = None, None
            return
        if self.pending_low is None:
            self.pending_low = value & 0xFF
            return
        self.reload = (value & 0xFF) << 8 | self.pending_low or 0x10000
        self.pending_low = None
        self.loaded_at = self.clock()

    def read(self, port: int) -> int:
        if port != spec.PIT_COUNTER0:
            return 0xFF
        if self.latched:
            return self.latched.pop(0)
        return self._count() & 0xFF


class _GuestMemory:
    """What fw_cfg's DMA engine can read (RAM, ROM) and write (RAM only)."""

    def __init__(self, uc: Any, ram: list[tuple[int, int]]) -> None:
        self.uc = uc
        self.ram = ram
        self.writes: list[tuple[int, int]] | None = None  # DMA writes, when tracked

    def read(self, addr: int, size: int) -> bytes | None:
        try:
            return bytes(self.uc.mem_read(addr, size))
        except UcError:
            return None

    def write(self, addr: int, data: bytes) -> bool:
        if not any(lo <= addr and addr + len(data) <= hi for lo, hi in self.ram):
            return False
        self.uc.mem_write(addr, data)
        if self.writes is not None and data:
            self.writes.append((addr, len(data)))
        return True


PCI_CONFIG_ADDR, PCI_CONFIG_DATA = spec.PCI_CONFIG_ADDRESS, spec.PCI_CONFIG_DATA
PCI_HOST_BRIDGE = spec.PCI_I440FX_HOST
PAM0_REGISTER = {spec.I440FX_ID: spec.I440FX_PAM0, spec.Q35_MCH_ID: spec.Q35_PAM0}
PAM_RE, PAM_WE = spec.PAM_RE, spec.PAM_WE
PC_HOST_BRIDGE = {PCI_HOST_BRIDGE: spec.I440FX_ID}  # run_firmware's default: -M pc's
FSEG_SIZE = 0x10000  # 0xF0000-0xFFFFF


class _PciConfig:
    """PCI configuration mechanism #1 with the devices given as {ID register address:
    vendor/device dword}: their other registers read back what was written (0 before); an
    absent device reads all ones, as on QEMU (and on microvm, which has no PCI at all)."""

    def __init__(self, devices: dict[int, int]) -> None:
        self.devices = devices
        self.address = 0
        self.regs: dict[int, int] = {}
        self.writes: list[tuple[int, int, int]] = []  # (config address, value, size)

    def _target(self, port: int) -> tuple[int, int] | None:
        if not self.address & 0x8000_0000:
            return None
        dev = self.address & 0xFFFF_FF00
        if dev not in self.devices:
            return None
        return dev, (self.address & 0xFC) + port - PCI_CONFIG_DATA

    def read(self, port: int, size: int) -> int:
        if port == PCI_CONFIG_ADDR and size == 4:
            return self.address
        t = self._target(port)
        if t is None:
            return (1 << (8 * size)) - 1
        dev, reg = t
        dword = self.devices[dev] if reg < 4 else self.regs.get(dev | (reg & ~3), 0)
        return (dword >> (8 * (reg & 3))) & ((1 << (8 * size)) - 1)

    def write(self, port: int, size: int, value: int) -> None:
        if port == PCI_CONFIG_ADDR and size == 4:
            self.address = value
            return
        t = self._target(port)
        if t is None:
            return
        dev, reg = t
        self.writes.append((dev | reg, value, size))
        key = dev | (reg & ~3)
        shift = 8 * (reg & 3)
        mask = ((1 << (8 * size)) - 1) << shift
        self.regs[key] = (self.regs.get(key, 0) & ~mask) | ((value << shift) & mask)


class _Machine:
    def __init__(
        self,
        image: bytes,
        fwcfg: SimFwCfg,
        ram_size: int,
        pci: dict[int, int] | None = None,
        pit_ticks: int | None = None,
        pvpanic: int | None = None,
    ) -> None:
        size = len(image)
        if size == 0 or size % 0x10000:
            raise ValueError("QEMU wants a -bios image of a multiple of 64 KiB")
        if not MiB < ram_size <= 0xE0000000 or ram_size % 0x1000:
            raise ValueError("ram_size: 4 KiB multiple between 1 MiB and 3.5 GiB")
        uc: Any = Uc(UC_ARCH_X86, UC_MODE_16)  # Any: unicorn's methods are untyped
        self.uc = uc
        self.ram = [(0, LOW_RAM_END), (MiB, ram_size)]
        for lo, hi in self.ram:
            uc.mem_map(lo, hi - lo)
        shadow = min(size, SHADOW_MAX)
        self.rom = [(1 << 32) - size, MiB - shadow]
        for base, data in zip(self.rom, (image, image[-shadow:]), strict=True):
            uc.mem_map(base, len(data))
            uc.mem_write(base, data)
            uc.mem_protect(base, len(data), UC_PROT_READ | UC_PROT_EXEC)
        self.rom_ranges = [
            (base, base + n) for base, n in zip(self.rom, (size, shadow), strict=True)
        ]
        self.fseg_rom = image[-FSEG_SIZE:]  # what the F segment shows while PAM maps the ROM
        self.fseg_ram = bytearray(FSEG_SIZE)  # the RAM beneath it (QEMU's: zeros at first)
        self.pam = 0  # PAM0's F-segment nibble: 0 ROM, RE read-only RAM, RE | WE RAM
        self.model_error: str | None = None

        self.memory = _GuestMemory(uc, list(self.ram))
        self.fwcfg = fwcfg
        fwcfg.memory = self.memory
        self.uart = _Uart()
        self.pci = _PciConfig(pci or {})
        self.ports: list[PortAccess] = []
        self.events: list[BootEvent] = []
        self.rom_writes: list[RomWrite] = []
        self.count = 0
        self.trace: list[int] | None = None  # every counted instruction's address, profiling
        self.writes: list[tuple[int, int]] | None = None  # (address, size), when tracked
        self.last_address = -1
        self.stop_at: int | None = None
        self.max_instructions = 0
        self.stopped_at_entry = self.halted = self.timeout = False
        self.exception: int | None = None
        self.reset = False
        self.pit = None if pit_ticks is None else _Pit(pit_ticks, lambda: self.count)
        self.pvpanic = pvpanic

        uc.hook_add(UC_HOOK_CODE, self._on_code)
        uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(UC_HOOK_MEM_WRITE_PROT, self._on_rom_write)
        uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, x86.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, x86.UC_X86_INS_OUT)

        uc.reg_write(x86.UC_X86_REG_CR0, 0x60000010)
        uc.reg_write(x86.UC_X86_REG_IDTR, (0, 0, 0xFFFF, 0))  # the reset IDTR: base 0, 64 KiB
        uc.reg_write(x86.UC_X86_REG_EDX, 0x663)  # CPUID.1 EAX of -cpu qemu64
        uc.reg_write(x86.UC_X86_REG_CS, RESET_CS)

    # -- hooks -----------------------------------------------------------------------------

    def _on_code(self, uc: Any, address: int, size: int, _: Any) -> None:
        if address == self.stop_at:
            self.stopped_at_entry = True
            uc.emu_stop()
            return
        if address == self.last_address and self._rep_done(address, size):
            return  # unicorn's extra visit after a rep's last iteration
        if not self._in_rom(address):
            self.model_error = f"executed {address:#x}, outside the ROM"
            uc.emu_stop()
            return
        if self.count >= self.max_instructions:
            self.timeout = True
            uc.emu_stop()
            return
        self.last_address = address
        self.count += 1
        if self.trace is not None:
            self.trace.append(address)
        if size == 1 and uc.mem_read(address, 1) == b"\xf4":
            self.halted = True  # unicorn stops by itself after a hlt

    def _in_rom(self, address: int) -> bool:
        """Firmware runs from its ROM only: the image below 4 GiB, or its shadow below 1 MiB
        while PAM shows the ROM there (once the F segment is RAM, code there is RAM's)."""
        if not any(lo <= address < hi for lo, hi in self.rom_ranges):
            return False
        return address < MiB - FSEG_SIZE or address >= MiB or not self.pam & PAM_RE

    def _on_write(self, uc: Any, access: int, address: int, size: int, value: int, _: Any) -> None:
        assert self.writes is not None
        self.writes.append((address, size))

    def _rep_done(self, address: int, size: int) -> bool:
        """Is the instruction at `address` a rep string instruction with its count at 0?"""
        code = self.uc.mem_read(address, size)
        i = 0
        while i < size - 1 and code[i] in _PREFIXES:
            i += 1
        prefixes = code[:i]
        if not (0xF2 in prefixes or 0xF3 in prefixes) or code[i] not in _STRING_OPS:
            return False
        addr32 = self._code32() != (0x67 in prefixes)
        ecx: int = self.uc.reg_read(x86.UC_X86_REG_ECX)
        return (ecx if addr32 else ecx & 0xFFFF) == 0

    def _code32(self) -> bool:
        """D bit of the code segment (read from the GDT: unicorn hides the descriptor cache)."""
        if not self.uc.reg_read(x86.UC_X86_REG_CR0) & 1:
            return False
        _, base, _, _ = self.uc.reg_read(x86.UC_X86_REG_GDTR)
        cs = self.uc.reg_read(x86.UC_X86_REG_CS)
        try:
            high = int.from_bytes(self.uc.mem_read(base + (cs & ~7) + 4, 4), "little")
        except UcError:
            return True
        return bool(high & (1 << 22))

    def _on_interrupt(self, uc: Any, vector: int, _: Any) -> None:
        if self._idt_empty():
            self.reset = True  # no vector can be delivered: a triple fault
        else:
            self.exception = vector
        uc.emu_stop()

    def _idt_empty(self) -> bool:
        _, _, idt_limit, _ = self.uc.reg_read(x86.UC_X86_REG_IDTR)
        return idt_limit == 0 and bool(self.uc.reg_read(x86.UC_X86_REG_CR0) & 1)

    def _triple_fault(self) -> bool:
        """A ud2 (which unicorn reports as an invalid instruction) with no IDT: a triple
        fault, as on a CPU."""
        eip = self.uc.reg_read(x86.UC_X86_REG_EIP)
        try:
            code = bytes(self.uc.mem_read(eip, 2))
        except UcError:
            return False
        return code == b"\x0f\x0b" and self._idt_empty()

    def _on_rom_write(
        self, uc: Any, access: int, address: int, size: int, value: int, _: Any
    ) -> bool:
        self.rom_writes.append(RomWrite(self.count - 1, address, size, value))
        return True  # the write is dropped and execution goes on, as with QEMU's ROM

    def _on_in(self, uc: Any, port: int, size: int, _: Any) -> int:
        insn = self.count - 1
        if self.fwcfg.handles(port):
            value = self.fwcfg.port_in(port, size, insn)
        elif port == PCI_CONFIG_ADDR or PCI_CONFIG_DATA <= port < PCI_CONFIG_DATA + 4:
            value = self.pci.read(port, size)
        else:
            value = 0
            for i in range(size):
                value |= self._byte_in(port + i) << (8 * i)
        self.ports.append(PortAccess("in", port, size, value, insn))
        return value

    def _on_out(self, uc: Any, port: int, size: int, value: int, _: Any) -> None:
        insn = self.count - 1
        self.ports.append(PortAccess("out", port, size, value, insn))
        if port in EVENT_PORTS:
            self.events.append(BootEvent(port, value, insn))
        if self.fwcfg.handles(port):
            self.fwcfg.port_out(port, size, value, insn)
        elif port == PCI_CONFIG_ADDR or PCI_CONFIG_DATA <= port < PCI_CONFIG_DATA + 4:
            self.pci.write(port, size, value)
            self._update_pam()
        elif UART_BASE <= port < UART_BASE + 8:
            for i in range(size):
                if port + i < UART_BASE + 8:
                    self.uart.write(port + i - UART_BASE, (value >> (8 * i)) & 0xFF)
        elif self.pit is not None and spec.PIT_COUNTER0 <= port <= spec.PIT_CONTROL:
            self.pit.write(port, value & 0xFF)

    def _update_pam(self) -> None:
        """Map the F segment as the host bridge's PAM0 says (i440FX at 0x59, Q35 at 0x90; its
        high nibble), as QEMU's pam_update does: ROM (the image's shadow), read-only RAM or
        read/write RAM, the RAM keeping its contents while the ROM shows. Write-only RAM (WE
        without RE) is not modelled: it ends the run."""
        register = PAM0_REGISTER.get(self.pci.devices.get(PCI_HOST_BRIDGE, 0))
        if register is None:
            return
        dword = self.pci.regs.get(PCI_HOST_BRIDGE | (register & ~3), 0)
        pam = (dword >> (8 * (register & 3) + 4)) & 3
        if pam == self.pam:
            return
        if pam == PAM_WE:
            self.model_error = "PAM0 maps the F segment write-only: not modelled"
            self.uc.emu_stop()
            return
        base = MiB - FSEG_SIZE
        if self.pam & PAM_RE:  # RAM was showing: keep what it holds
            self.fseg_ram[:] = self.uc.mem_read(base, FSEG_SIZE)
        self.uc.mem_write(base, bytes(self.fseg_ram) if pam & PAM_RE else self.fseg_rom)
        writable = pam == PAM_RE | PAM_WE
        prot = UC_PROT_READ | UC_PROT_EXEC | (UC_PROT_WRITE if writable else 0)
        self.uc.mem_protect(base, FSEG_SIZE, prot)
        fseg = (base, MiB)
        if writable and fseg not in self.memory.ram:
            self.memory.ram.append(fseg)
        elif not writable and fseg in self.memory.ram:
            self.memory.ram.remove(fseg)
        self.pam = pam

    def _byte_in(self, port: int) -> int:
        if UART_BASE <= port < UART_BASE + 8:
            return self.uart.read(port - UART_BASE)
        if self.pit is not None and spec.PIT_COUNTER0 <= port <= spec.PIT_CONTROL:
            return self.pit.read(port)
        if port == spec.PVPANIC_PORT and self.pvpanic is not None:
            return self.pvpanic
        return 0xFF

    # -- running ---------------------------------------------------------------------------

    def run(self, stop_at: int | None, max_instructions: int) -> RunResult:
        self.stop_at = stop_at
        self.max_instructions = max_instructions
        error = None
        try:
            self.uc.emu_start(RESET_CS * 16 + RESET_IP, (1 << 64) - 1)
        except UcError as e:
            if self._triple_fault():
                self.reset = True
            else:
                error = f"{e} at eip {self.uc.reg_read(x86.UC_X86_REG_EIP):#x}"
        regs = {name: self.uc.reg_read(reg) for name, reg in _REGS.items()}
        _, regs["gdtr_base"], regs["gdtr_limit"], _ = self.uc.reg_read(x86.UC_X86_REG_GDTR)
        _, regs["idtr_base"], regs["idtr_limit"], _ = self.uc.reg_read(x86.UC_X86_REG_IDTR)
        if self.model_error is not None and error is None:
            error = self.model_error
        if self.exception is not None and error is None:
            error = f"CPU exception or interrupt {self.exception} at eip {regs['eip']:#x}"
        return RunResult(
            stopped_at_entry=self.stopped_at_entry,
            halted=self.halted and error is None,
            timeout=self.timeout,
            error=error,
            exception=self.exception,
            instructions=self.count,
            port_accesses=self.ports,
            events=self.events,
            serial_bytes=bytes(self.uart.out),
            regs=regs,
            rom_writes=self.rom_writes,
            fwcfg=self.fwcfg,
            uc=self.uc,
            pci_writes=self.pci.writes,
            reset=self.reset and error is None,
            trace=self.trace or [],
            writes=self.writes or [],
        )


def run_firmware(
    image: bytes,
    fwcfg: SimFwCfg,
    ram_size: int = 128 * MiB,
    stop_at: int | None = None,
    max_instructions: int = 5_000_000,
    ram_init: dict[int, bytes] | None = None,
    pci: dict[int, int] | None = None,
    profile: bool = False,
    track_writes: bool = False,
    pit_ticks: int | None = None,
    pvpanic: int | None = None,
    cpuid: dict[int, tuple[int, int, int, int]] | None = None,
) -> RunResult:
    """Run `image` from the reset vector until `stop_at` (a linear address, which is EIP under
    a flat CS; that instruction is not executed or counted), a hlt, an error, or
    `max_instructions` executed instructions. `ram_init` preloads RAM (e.g. the kernel's
    segments, which QEMU loads itself for a PVH boot); `pci` lists the PCI functions present
    ({ID register address: vendor/device}: see _PciConfig); by default (None) pc's host
    bridge, the i440FX, alone (its PAM maps the F segment); {}: none, as on microvm.
    `profile`: record the address of every instruction counted (RunResult.trace; the 16-bit
    code runs in the F segment, at 0xF0000 + its offset in the top 64 KiB). `track_writes`:
    every write to memory, the CPU's and fw_cfg DMA's (RunResult.writes). Code anywhere but
    the ROM ends the run with an error. `pit_ticks`: a PIT whose clock ticks that many times
    an instruction (None: no PIT, its ports read all ones); `pvpanic`: what an ISA pvpanic's
    port reads (None: no device). `cpuid`: leaves (EAX in) whose EAX, EBX, ECX, EDX the CPU
    reports instead of unicorn's own (another CPU model: QEMU's qemu32 has no leaf
    0x80000008, say)."""
    machine = _Machine(
        image, fwcfg, ram_size, PC_HOST_BRIDGE if pci is None else pci, pit_ticks, pvpanic
    )
    if cpuid:
        leaves = dict(cpuid)

        def on_cpuid(uc: Any, _: Any) -> int:
            values = leaves.get(uc.reg_read(x86.UC_X86_REG_EAX))
            if values is None:
                return 0  # unicorn's own
            for reg, value in zip(("EAX", "EBX", "ECX", "EDX"), values, strict=True):
                uc.reg_write(getattr(x86, f"UC_X86_REG_{reg}"), value)
            return 1  # the instruction is done

        machine.uc.hook_add(UC_HOOK_INSN, on_cpuid, None, 1, 0, x86.UC_X86_INS_CPUID)
    if profile:
        machine.trace = []
    for addr, data in (ram_init or {}).items():
        if not machine.memory.write(addr, data):
            raise ValueError(f"ram_init at {addr:#x}: not RAM")
    if track_writes:  # the run's, not ram_init's
        machine.writes = machine.memory.writes = []
        machine.uc.hook_add(UC_HOOK_MEM_WRITE, machine._on_write)
    return machine.run(stop_at, max_instructions)
