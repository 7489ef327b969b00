"""A failed boot under stock QEMU ends as the command line asks (asm/failure.s): with
`-boot reboot-timeout=MS` the firmware waits MS and resets (`-no-reboot`: QEMU ends, status
0); with `-device pvpanic -action panic=exit-failure` QEMU ends with status 1; with neither
the line stays on the console and the machine halts. pc, q35 and microvm; TCG, and KVM for
the timer. Without QEMU (or KVM) the tests skip loudly; under CI that is a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels.qemu import QemuRun, qemu_command, run_command_until
from tests.support import KernelGetter, build_firmware, need_kvm, need_qemu
from tools.qemu import MACHINES

pytestmark = pytest.mark.qemu

NO_KERNEL = "pvhfw: no kernel: start QEMU with -kernel"
WRONG_KERNEL = "pvhfw: kernel entry "
PANIC_EXIT = ("-device", "pvpanic", "-action", "panic=exit-failure")
EXIT_FAILURE = 1  # QEMU's status for -action panic=exit-failure


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, kernel: KernelGetter) -> dict[str, Path]:
    """pvhfw built for exitfirst at 2 MiB, and the kernel it was not built for (at 4 MiB)."""
    out = tmp_path_factory.mktemp("failure")
    need_qemu()
    firmware, _ = build_firmware(kernel("exitfirst", 0x200000), out)
    return {"firmware": firmware, "other": kernel("exitfirst", 0x400000)}


def run(
    images: dict[str, Path],
    machine: str,
    *extra: str,
    kernel: bool = True,
    accel: str = "tcg",
    until: str | None = None,
    linger: float = 0.0,
) -> QemuRun:
    cmd = qemu_command(
        images["other"] if kernel else None, bios=images["firmware"], machine=machine,
        accel=accel, extra=extra,
    )  # fmt: skip
    stop = None if until is None else (lambda out, _err: until in out)
    return run_command_until(cmd, stop, timeout=60, linger=linger)


def the_line(r: QemuRun, start: str) -> None:
    lines = [line for line in r.stdout.splitlines() if line.startswith("pvhfw: ")]
    assert len(lines) == 1 and lines[0].startswith(start), r.describe()


@pytest.mark.parametrize("machine", MACHINES)
def test_no_kernel_and_a_reboot_timeout_of_0_end_qemu(
    images: dict[str, Path], machine: str
) -> None:
    r = run(images, machine, "-boot", "reboot-timeout=0", kernel=False)
    assert r.returncode == 0, r.describe()  # the reset, under -no-reboot
    the_line(r, NO_KERNEL)


@pytest.mark.parametrize("machine", MACHINES)
def test_a_wrong_kernel_and_pvpanic_end_qemu_with_a_failure(
    images: dict[str, Path], machine: str
) -> None:
    r = run(images, machine, *PANIC_EXIT)
    assert r.returncode == EXIT_FAILURE, r.describe()
    the_line(r, WRONG_KERNEL)


@pytest.mark.parametrize("machine", MACHINES)
def test_both_pvpanic_first(images: dict[str, Path], machine: str) -> None:
    r = run(images, machine, *PANIC_EXIT, "-boot", "reboot-timeout=20000")
    assert r.returncode == EXIT_FAILURE, r.describe()  # not the reset 20 s later
    assert r.seconds < 20, r.describe()
    the_line(r, WRONG_KERNEL)


@pytest.mark.parametrize("accel", ["tcg", "kvm"])
@pytest.mark.parametrize("machine", MACHINES)
def test_a_reboot_timeout_waits_first(images: dict[str, Path], machine: str, accel: str) -> None:
    """reboot-timeout=3000 ends QEMU about 3 s later than reboot-timeout=0 does (the PIT
    runs on QEMU's virtual clock, real time here; emulation slows the rest, not the wait)."""
    if accel == "kvm":
        need_kvm()
    at_once = run(images, machine, "-boot", "reboot-timeout=0", accel=accel)
    later = run(images, machine, "-boot", "reboot-timeout=3000", accel=accel)
    for r in (at_once, later):
        assert r.returncode == 0, r.describe()
        the_line(r, WRONG_KERNEL)
    assert 2.9 <= later.seconds - at_once.seconds < 30, (at_once.seconds, later.seconds)


@pytest.mark.parametrize("machine", MACHINES)
def test_neither_the_line_then_a_halt(images: dict[str, Path], machine: str) -> None:
    r = run(images, machine, until=WRONG_KERNEL, linger=1.5)
    assert r.stopped, r.describe()  # still running 1.5 s after the line: halted
    the_line(r, WRONG_KERNEL)
