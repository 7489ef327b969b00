"""What the firmware does after a failed boot's line (asm/failure.s), in unicorn: pvpanic's
"panicked" event, the wait of etc/boot-fail-wait on the PIT and the reset by triple fault;
the line first and whole; nothing of it on a good boot."""

from __future__ import annotations

import struct

import pytest

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from tests import spec
from tests.emu.fwcfg import PortAccess, SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.test_firmware_emu import ENTRY, image_for

WRONG_ENTRY = 0x200000  # QEMU's kernel is not the one the image was built for
PIT_PORTS = range(spec.PIT_COUNTER0, spec.PIT_CONTROL + 1)
PIT_TICKS = 100  # the emulated PIT's ticks an instruction


def wait_file(ms: int) -> dict[str, bytes]:
    return {"etc/boot-fail-wait": struct.pack("<i", ms)}


def failed(
    fw: Firmware, *, pvpanic: int | None = None, pit: bool = True, **cfg: object
) -> RunResult:
    """A boot that fails on its kernel check, with the devices and fw_cfg files given."""
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 << 20,
        kernel_entry=WRONG_ENTRY,
        kernel_addr=0x1000000,
        kernel_size=0x2E00000,
        **cfg,  # type: ignore[arg-type]
    )
    return run_firmware(
        image_for(fw), sim, ram_size=128 << 20, stop_at=ENTRY,
        pit_ticks=PIT_TICKS if pit else None, pvpanic=pvpanic,
    )  # fmt: skip


def after_the_line(r: RunResult) -> list[PortAccess]:
    """The port accesses after the line's last byte went out."""
    last = max(
        i for i, a in enumerate(r.port_accesses) if a.port == spec.COM1 and a.direction == "out"
    )
    return r.port_accesses[last + 1 :]


def one_line(r: RunResult) -> str:
    lines = r.serial.split("\r\n")
    assert lines[-1] == "" and len(lines) == 2, r.serial
    return lines[0]


def test_without_pvpanic_or_a_timeout_the_line_then_a_halt(pvh_firmware: Firmware) -> None:
    r = failed(pvh_firmware)
    assert r.halted and not r.reset and r.error is None
    assert one_line(r).startswith("pvhfw: kernel entry 0x00200000 from QEMU")
    after = after_the_line(r)
    assert [(a.direction, a.port) for a in after[:1]] == [("in", spec.PVPANIC_PORT)]
    assert after[0].value == 0xFF  # no device
    assert not any(a.port in PIT_PORTS or (a.direction == "out" and a.port == 0x505) for a in after)
    assert r.fwcfg.accesses  # etc/boot-fail-wait was read: -1, never


@pytest.mark.parametrize(
    ("supported", "told"),
    [(spec.PVPANIC_EVENT_PANICKED, True), (0x03, True), (spec.PVPANIC_EVENT_CRASH_LOADED, False)],
)
def test_pvpanic_is_told_the_guest_panicked(
    pvh_firmware: Firmware, supported: int, told: bool
) -> None:
    r = failed(pvh_firmware, pvpanic=supported)
    assert r.halted and one_line(r).startswith("pvhfw: kernel entry")
    writes = [a for a in after_the_line(r) if a.port == spec.PVPANIC_PORT and a.direction == "out"]
    assert [(a.size, a.value) for a in writes] == (
        [(1, spec.PVPANIC_EVENT_PANICKED)] if told else []
    )


@pytest.mark.parametrize("ms", [0, 1, 5])
def test_a_reboot_timeout_waits_on_the_pit_then_resets(pvh_firmware: Firmware, ms: int) -> None:
    r = failed(pvh_firmware, extra_files=wait_file(ms))
    assert r.reset and not r.halted and r.error is None
    assert one_line(r).startswith("pvhfw: kernel entry")
    pit = [a for a in r.port_accesses if a.port in PIT_PORTS]
    program = [(a.port, a.value) for a in pit if a.direction == "out"][:3]
    assert program == [(spec.PIT_CONTROL, 0x34), (spec.PIT_COUNTER0, 0), (spec.PIT_COUNTER0, 0)]
    loaded = pit[2].insn  # counting from here ...
    assert loaded is not None
    ticks = (r.instructions - loaded) * PIT_TICKS  # ... to the reset
    want = ms * spec.PIT_INPUT_HZ // 1000
    poll = 40 * PIT_TICKS  # a poll's instructions, about: the last one may overshoot
    assert want <= ticks <= want + 2 * poll, (ticks, want)


def test_pvpanic_first_then_the_wait_and_the_reset(pvh_firmware: Firmware) -> None:
    r = failed(pvh_firmware, pvpanic=1, extra_files=wait_file(1))
    assert r.reset
    after = after_the_line(r)
    told = next(i for i, a in enumerate(after) if a.direction == "out" and a.port == 0x505)
    first_pit = next(i for i, a in enumerate(after) if a.port in PIT_PORTS)
    assert told < first_pit


def test_without_a_pit_no_wait_but_the_reset(pvh_firmware: Firmware) -> None:
    r = failed(pvh_firmware, pit=False, extra_files=wait_file(3000))
    assert r.reset
    reads = [a for a in r.port_accesses if a.port == spec.PIT_COUNTER0 and a.direction == "in"]
    assert {a.value for a in reads} == {0xFF}
    assert len(reads) == 2 * (layout.PIT_STALL_POLLS + 1)  # the first count, then the polls


@pytest.mark.parametrize("file", [struct.pack("<h", 0), b"", struct.pack("<q", 0)])
def test_a_boot_fail_wait_of_another_size_is_not_read_as_one(
    pvh_firmware: Firmware, file: bytes
) -> None:
    r = failed(pvh_firmware, extra_files={"etc/boot-fail-wait": file})
    assert r.halted and not r.reset


def test_without_fw_cfg_pvpanic_but_no_wait(pvh_firmware: Firmware) -> None:
    r = run_firmware(
        image_for(pvh_firmware), SimFwCfg(present=False), stop_at=ENTRY,
        pit_ticks=PIT_TICKS, pvpanic=1,
    )  # fmt: skip
    assert r.halted and not r.reset
    assert one_line(r) == "pvhfw: no fw_cfg device: its signature is not QEMU"
    after = after_the_line(r)
    assert [(a.direction, a.port, a.value) for a in after] == [
        ("in", spec.PVPANIC_PORT, 1),
        ("out", spec.PVPANIC_PORT, spec.PVPANIC_EVENT_PANICKED),
    ]


def test_a_good_boot_touches_neither(pvh_firmware: Firmware) -> None:
    """pvpanic and a reboot timeout present: the success path is the same instructions and
    port accesses as without them, none of them to pvpanic or the PIT."""

    def good(wait: int, pit_ticks: int | None = None, pvpanic: int | None = None) -> RunResult:
        sim = SimFwCfg.for_pvh_boot(
            ram_below_4g=256 << 20, kernel_entry=ENTRY, kernel_addr=0x1000000,
            kernel_size=0x2E00000, extra_files=wait_file(wait),
        )  # fmt: skip
        r = run_firmware(
            image_for(pvh_firmware), sim, ram_size=256 << 20, stop_at=ENTRY,
            pit_ticks=pit_ticks, pvpanic=pvpanic,
        )  # fmt: skip
        assert r.stopped_at_entry, (r.error, r.serial)
        return r

    plain = good(-1)
    both = good(0, pit_ticks=PIT_TICKS, pvpanic=1)
    ports = {a.port for a in both.port_accesses}
    assert spec.PVPANIC_PORT not in ports and not ports & set(PIT_PORTS)
    assert both.instructions == plain.instructions
    assert both.port_accesses == plain.port_accesses
