"""Call one firmware routine in unicorn, in 32-bit protected mode, without booting: the
routine's contract (registers and RAM in, registers and RAM out) tested on its own.

The image is mapped at its ROM address, RAM at 0-1 MiB and 1 MiB-`ram_size`, flat 32-bit
segments; the routine returns to a `hlt` placed in low RAM, or the run stops where it jumps
to a label of `stop_at` (an error path, say). No device is attached: a routine that touches
an I/O port ends the run with an error.
"""

# unicorn 2.1's Python API is untyped:
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from unicorn import (  # type: ignore[attr-defined]
    UC_ARCH_X86,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_MODE_32,
    Uc,
    UcError,
)
from unicorn import x86_const as x86

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware

RETURN_ADDRESS = 0x500  # a hlt in low RAM, below the firmware's own
STACK = layout.STACK_TOP
_REGS = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip", "eflags")


@dataclass
class Call:
    returned: bool  # reached the return address
    stopped_at: str | None  # the `stop_at` label it jumped to
    error: str | None
    regs: dict[str, int]
    uc: Any

    def mem(self, addr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(addr, size))

    def u32(self, addr: int) -> int:
        return int.from_bytes(self.mem(addr, 4), "little")

    @property
    def cf(self) -> bool:
        return bool(self.regs["eflags"] & 1)


def call(
    firmware: Firmware,
    routine: str,
    *,
    regs: Mapping[str, int] | None = None,
    ram: Mapping[int, bytes] | None = None,
    stop_at: Iterable[str] = (),
    ram_size: int = 256 << 20,
    max_instructions: int = 1_000_000,
) -> Call:
    uc: Any = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, ram_size)
    uc.mem_map(layout.ROM_BASE, layout.IMAGE_SIZE)
    uc.mem_write(layout.ROM_BASE, firmware.image)
    uc.mem_write(RETURN_ADDRESS, b"\xf4")
    for addr, data in (ram or {}).items():
        uc.mem_write(addr, data)
    esp = STACK - 4
    uc.mem_write(esp, RETURN_ADDRESS.to_bytes(4, "little"))
    for name, value in (regs or {}).items():
        uc.reg_write(getattr(x86, f"UC_X86_REG_{name.upper()}"), value)
    uc.reg_write(x86.UC_X86_REG_ESP, esp)
    stops = {firmware.symbol(name).address: name for name in stop_at}
    state: dict[str, Any] = {"stopped": None, "count": 0, "port": None}

    def on_code(uc: Any, address: int, size: int, _: Any) -> None:
        state["count"] += 1
        if address in stops:
            state["stopped"] = stops[address]
            uc.emu_stop()
        elif state["count"] > max_instructions:
            uc.emu_stop()

    def on_port(uc: Any, port: int, *_: Any) -> int:
        state["port"] = port
        uc.emu_stop()
        return 0

    uc.hook_add(UC_HOOK_CODE, on_code)
    uc.hook_add(UC_HOOK_INSN, on_port, None, 1, 0, x86.UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INSN, on_port, None, 1, 0, x86.UC_X86_INS_OUT)
    error = None
    try:
        uc.emu_start(firmware.symbol(routine).address, RETURN_ADDRESS)
    except UcError as e:
        error = str(e)
    out = {name: uc.reg_read(getattr(x86, f"UC_X86_REG_{name.upper()}")) for name in _REGS}
    if state["port"] is not None:
        error = f"the routine touched I/O port {state['port']:#x}"
    elif state["count"] > max_instructions:
        error = f"more than {max_instructions} instructions"
    returned = out["eip"] == RETURN_ADDRESS and error is None and state["stopped"] is None
    return Call(returned, state["stopped"], error, out, uc)


def cpuid(leaf: int) -> tuple[int, int, int, int]:
    """EAX, EBX, ECX, EDX of `cpuid` with EAX = leaf, on the CPU unicorn emulates (the one the
    firmware runs on in the emulator)."""
    uc: Any = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x1000)
    uc.mem_write(0, b"\x0f\xa2")  # cpuid
    uc.reg_write(x86.UC_X86_REG_EAX, leaf)
    uc.reg_write(x86.UC_X86_REG_ECX, 0)
    uc.emu_start(0, 2)
    regs = ("EAX", "EBX", "ECX", "EDX")
    a, b, c, d = (uc.reg_read(getattr(x86, f"UC_X86_REG_{n}")) for n in regs)
    return a, b, c, d
