"""bench/steps.py: an emulator trace split by the steps of asm/main.s."""

from __future__ import annotations

import pytest

from bench.steps import MAIN_STEP, RESET16_STEP, cost_by_step, image_offset, main_steps
from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware, ListingLine
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import run_firmware
from tests.test_firmware_emu import ENTRY, KADDR, KSIZE, MiB, image_for


def _address(fw: Firmware, file: str, text: str) -> int:
    """The guest address the emulator reports for the first listing line of `file` whose
    text starts with `text` (16-bit code runs in the F segment)."""
    for block in fw.blocks:
        for line in block.listing:
            if line.file == file and line.text.startswith(text) and line.data:
                return _run_address(block.mode, line)
    raise AssertionError(f"no {text!r} in {file}")


def _run_address(mode: int, line: ListingLine) -> int:
    return line.address if mode == 32 else 0xF0000 + line.address - (layout.IMAGE_SIZE - 0x10000)


def test_steps_are_main_s_calls_in_order(pvh_firmware: Firmware) -> None:
    steps = main_steps(pvh_firmware)
    assert steps[:4] == [RESET16_STEP, MAIN_STEP, "fwcfg_init", "kernel_check"]
    assert steps.index("chipset_init") < steps.index("acpi_load") < steps.index("smbios_load")
    assert steps[-1] == "pvh_handoff" and len(steps) == len(set(steps))


def test_each_instruction_counts_to_the_step_that_called_it(pvh_firmware: Firmware) -> None:
    fw = pvh_firmware
    reset = _address(fw, "asm/reset16.s", "")
    call_init = _address(fw, "asm/main.s", "call fwcfg_init")
    in_fwcfg = _address(fw, "asm/fwcfg.s", "mov dx, PORT_FW_CFG_SEL")
    call_check = _address(fw, "asm/main.s", "call kernel_check")
    in_kernel = _address(fw, "asm/kernel.s", "mov eax, dword ptr [patch_entry]")
    cmp_linux32 = _address(fw, "asm/main.s", "cmp dword ptr [VAR_LINUX32]")
    jne_linux32 = _address(fw, "asm/main.s", "jne zero_page_build")
    call_info = _address(fw, "asm/main.s", "call start_info_build")
    in_pvh = _address(fw, "asm/pvh.s", "")
    trace = [reset, reset, call_init, in_fwcfg, in_fwcfg, in_fwcfg, call_check, in_kernel]
    # a conditional jump not taken starts no step
    trace += [cmp_linux32, jne_linux32, call_info, in_pvh]
    assert cost_by_step(fw, trace) == {
        RESET16_STEP: 2,
        MAIN_STEP: 5,
        "fwcfg_init": 3,
        "kernel_check": 1,
        "start_info_build": 1,
    }
    assert image_offset(reset, len(fw.image)) == layout.IMAGE_SIZE - 0x10000 + (reset - 0xF0000)
    with pytest.raises(ValueError, match="0x7c00 is not in the pvh image's code"):
        cost_by_step(fw, [0x7C00])


@pytest.mark.parametrize("cpus", [1, 2])
def test_a_boot_splits_into_its_steps(pvh_firmware: Firmware, cpus: int) -> None:
    """A whole run (microvm without ACPI: the MP table's step runs): the steps add up to the
    run's count, in main.s's order, and each CPU costs the MP table the same."""
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 * MiB, kernel_entry=ENTRY, kernel_addr=KADDR, kernel_size=KSIZE, cpus=cpus
    )
    r = run_firmware(
        image_for(pvh_firmware), sim, ram_size=128 * MiB, stop_at=ENTRY, pci={}, profile=True
    )
    assert r.stopped_at_entry and len(r.trace) == r.instructions
    steps = cost_by_step(pvh_firmware, r.trace)
    assert sum(steps.values()) == r.instructions
    order = main_steps(pvh_firmware)
    assert sorted(steps, key=order.index) == list(steps)  # first run, first counted
    assert {RESET16_STEP, "fwcfg_init", "memmap_build", "mptable_build", "pvh_handoff"} <= set(
        steps
    )
    assert "zero_page_build" not in steps
    if cpus == 2:
        one = SimFwCfg.for_pvh_boot(
            ram_below_4g=128 * MiB, kernel_entry=ENTRY, kernel_addr=KADDR, kernel_size=KSIZE
        )
        r1 = run_firmware(
            image_for(pvh_firmware), one, ram_size=128 * MiB, stop_at=ENTRY, pci={}, profile=True
        )
        per_cpu = steps["mptable_build"] - cost_by_step(pvh_firmware, r1.trace)["mptable_build"]
        assert 0 < per_cpu == r.instructions - r1.instructions
