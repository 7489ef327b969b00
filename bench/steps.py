"""What each step of the boot costs: an emulator trace (tests/emu's RunResult.trace) split by
the step of asm/main.s it ran under.

asm/main.s is the boot's sequence: one `call` (or, last, a `jmp`) a step. Every instruction
is counted to the step whose call or jump in main.s ran last before it, callees included
(fwcfg_find inside smbios_load is smbios_load's); the 16-bit code before main.s is "reset16"
and main.s's own lines (segments, stack, the boot path test) are "start32"."""

from __future__ import annotations

from collections.abc import Sequence

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import MAIN_SOURCE, Firmware

RESET16_STEP = "reset16"
MAIN_STEP = "start32"
_F_SEGMENT = 0xF0000
_MAIN_FILE = f"asm/{MAIN_SOURCE}"


def image_offset(address: int, image_size: int) -> int | None:
    """The image offset of an executed address: the ROM below 4 GiB, or the top 64 KiB's
    shadow in the F segment (where the 16-bit code runs)."""
    if address >= layout.ROM_BASE:
        return address - layout.ROM_BASE
    if _F_SEGMENT <= address < _F_SEGMENT + 0x10000:
        return address - _F_SEGMENT + image_size - 0x10000
    return None


def main_steps(fw: Firmware) -> list[str]:
    """The steps in main.s's order: reset16, start32, then each call's and jump's target."""
    steps = [RESET16_STEP, MAIN_STEP]
    for block in fw.blocks:
        for line in block.listing:
            target = _branch_target(line.file, line.text)
            if target is not None and target not in steps:
                steps.append(target)
    return steps


def _branch_target(file: str, text: str) -> str | None:
    if file != _MAIN_FILE:
        return None
    mnemonic, _, operand = text.partition(" ")
    if mnemonic == "call" or mnemonic.startswith("j"):
        return operand.strip()
    return None


def cost_by_step(fw: Firmware, trace: Sequence[int]) -> dict[str, int]:
    """Instructions per step (main_steps' names; steps that never ran are left out). main.s's
    own instructions, its calls and jumps included, are start32's. An instruction outside the
    image's code is an error: the trace is not of this image."""
    targets: dict[int, tuple[bool, str | None]] = {}  # address -> (in main.s, branch target)
    counts: dict[str, int] = {}
    step, pending = RESET16_STEP, None
    for address in trace:
        known = targets.get(address)
        if known is None:
            offset = image_offset(address, len(fw.image))
            line = None if offset is None else fw.source_at(offset)
            if line is None:
                raise ValueError(f"trace: {address:#x} is not in the {fw.variant} image's code")
            known = targets[address] = (
                line.file == _MAIN_FILE,
                _branch_target(line.file, line.text),
            )
        in_main, target = known
        if in_main:
            counts[MAIN_STEP] = counts.get(MAIN_STEP, 0) + 1
            pending = target  # a step begins if the next instruction is outside main.s
            continue
        if pending is not None:
            step, pending = pending, None
        counts[step] = counts.get(step, 0) + 1
    return counts
