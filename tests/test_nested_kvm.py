"""tools/nested_kvm.py: pvhfw under a KVM that runs the firmware (nested in TCG).

The console parser and L1's awk summary on made-up input; then the real run: Debian's kernel
under TCG (L1) with kvm-amd, booting Debian's kernel through pvhfw under its KVM (L2) to the
boot-test init's exit. Without QEMU, busybox-static or the Debian kernel it skips loudly
(under CI that is a failure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import need, need_qemu
from tools import nested_kvm as nk
from tools.debian_kernel import ToolError, ensure_debian_kernel
from tools.initramfs import BUSYBOX, DEFAULT_MARKER

T0 = 1796134485.0


def _trace(dt: float, event: str, pid: int = 90) -> str:
    return f"{pid}@{T0 + dt:.6f}:{event}"


def _port(dt: float, addr: int, value: int, name: str, kind: str = "write") -> str:
    return _trace(
        dt,
        f"memory_region_ops_{kind} cpu 0 mr 0x55 addr {addr:#x} value {value:#x} size 1 "
        f"name '{name}'",
    )


TRACE_LINES = [
    _trace(0.0, "vm_state_notify running 1 reason 9 (running)", pid=87),
    _trace(0.001, "kvm_run_exit cpu_index 0, reason 2"),
    _port(0.010, 0xF5, 0x1, "io"),
    _trace(0.011, "kvm_run_exit cpu_index 0, reason 2"),
    _port(0.020, 0x518, 0x1000, "fwcfg.dma"),
    _trace(0.021, "kvm_run_exit cpu_index 0, reason 2"),
    _port(0.030, 0x511, 0x0, "fwcfg", kind="read"),
    _port(0.031, 0xFED00000, 0x0, "hpet"),  # MMIO: not a port
    _port(0.050, 0xF5, 0x5, "io"),
    _trace(0.051, "kvm_run_exit cpu_index 0, reason 2"),
    _trace(0.052, "kvm_run_exit cpu_index 0, reason 2"),
    _port(2.000, 0xF4, 0x7, "isa-debug-exit"),
]


def test_l1s_awk_keeps_what_the_parser_needs(tmp_path: Path) -> None:
    """The awk program L1 runs over the L2 trace, run by busybox as L1 does."""
    need(BUSYBOX.exists(), f"{BUSYBOX} missing (apt-get install busybox-static)")
    (tmp_path / "summary.awk").write_text(nk.SUMMARY_AWK)
    (tmp_path / "trace").write_text("\n".join(TRACE_LINES) + "\n")
    out = subprocess.run(
        [str(BUSYBOX), "awk", "-f", str(tmp_path / "summary.awk"), str(tmp_path / "trace")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.splitlines() == [
        f"T 0 {TRACE_LINES[0]}",  # the VM starts
        f"T 1 {TRACE_LINES[2]}",  # the first port access, which is fw_start
        f"T 3 {TRACE_LINES[8]}",  # fw_do_boot
        f"T 5 {TRACE_LINES[11]}",  # the init's exit
        f"T 3 {TRACE_LINES[6]}",  # the last fw_cfg access, at the end
        "X 5",
    ]


def _console(name: str, summary: list[str], status: int, marker: bool = True) -> list[str]:
    return [
        f"{nk.PREFIX}-BEGIN {name} 2.50",
        "[    0.000000] Linux version 6.1.0 ...",
        *([DEFAULT_MARKER + "\r"] if marker else []),
        f"{nk.PREFIX}-END {name} {status} 14.75",
        *(f"{nk.PREFIX}-{name} {line}" for line in summary),
    ]


def test_the_console_gives_each_boots_phases_and_exits() -> None:
    pvhfw = [
        f"T 5 {TRACE_LINES[11]}",  # out of order: sorted by stamp
        f"T 0 {TRACE_LINES[0]}",
        f"T 1 {TRACE_LINES[2]}",
        f"T 3 {TRACE_LINES[8]}",
        f"T 3 {TRACE_LINES[6]}",
        "X 5",
    ]
    seabios = [  # no boot events, no exit write: observed from outside
        f"T 0 {TRACE_LINES[0]}",
        f"T 1 {_port(0.005, 0x70, 0x8F, 'rtc-index')}",
        f"T 4 {_port(0.900, 0x518, 0x1000, 'fwcfg.dma')}",
        "X 9",
    ]
    text = "\n".join(["noise", *_console("pvhfw", pvhfw, 15), *_console("seabios", seabios, 0)])
    boots = {b.firmware: b for b in nk.parse_output(text, ["pvhfw", "seabios"])}
    p = boots["pvhfw"]
    assert p.ok and p.status == 15 and p.userspace and p.seconds == 12.25
    assert p.phases_ms == {"fw_start": 10.0, "fw_do_boot": 50.0, "entry": 2000.0}
    assert p.proxies == [] and p.firmware_exits == 3 and p.total_exits == 5
    s = boots["seabios"]
    assert s.ok and s.status == 0  # its init ended QEMU by reboot -f
    assert s.phases_ms == {"fw_start": 5.0, "fw_do_boot": 900.0}
    assert s.proxies == ["fw_do_boot", "fw_start"] and s.firmware_exits == 4
    table = "\n".join(nk.report(list(boots.values()), 30.0))
    assert "| pvhfw | 15 | yes | 10.0 | 40.0 | 1950.0 | 3 | 5 | 12.25 |" in table
    assert "| seabios | 0 | yes | ~5.0 | ~895.0 | - | 4 | 9 | 12.25 |" in table


def test_no_marker_is_no_userspace() -> None:
    text = "\n".join(_console("pvhfw", ["X 0"], 15, marker=False))
    (boot,) = nk.parse_output(text, ["pvhfw"])
    assert not boot.userspace and not boot.ok


def test_l1s_init_loads_kvm_then_runs_each_boot() -> None:
    cmd = nk.l2_command("pvhfw", "/l2/pvhfw.bin")
    assert cmd[:5] == [nk.L2_QEMU, "-M", "pc", "-accel", "kvm"]
    assert cmd[cmd.index("-bios") + 1] == "/l2/pvhfw.bin" and "-D" in cmd
    init = nk.l1_init([("pvhfw", cmd), ("seabios", nk.l2_command("seabios", None))])
    assert init.index("insmod") < init.index(" ".join(cmd)) < init.index("-END seabios")
    assert init.rstrip().endswith("reboot -f")


@pytest.mark.qemu
@pytest.mark.debian
@pytest.mark.slow
def test_pvhfw_boots_debian_under_a_nested_kvm(tmp_path: Path) -> None:
    """L2: Debian's vmlinux through pvhfw under L1's kvm-amd, to the boot-test init's exit;
    the firmware's KVM exits are within issue 10's budget (40) under a KVM that runs it."""
    need_qemu()
    try:
        ensure_debian_kernel()
    except ToolError as e:
        need(False, f"Debian kernel: {e}")
    console = tmp_path / "console.log"
    try:
        (boot,), _ = nk.run(["pvhfw"], tmp_path, console=console)
    except ToolError as e:
        pytest.fail(f"{e}\n{console.read_text() if console.exists() else ''}")
    assert boot.ok and boot.status == 15, "\n".join(boot.console[-40:])
    p = boot.phases_ms
    assert 0 < p["fw_start"] < p["fw_do_boot"] < p["entry"], p
    assert boot.proxies == []  # pvhfw's own boot events
    assert boot.firmware_exits is not None and 0 < boot.firmware_exits <= 40
    assert boot.total_exits is not None and boot.total_exits > boot.firmware_exits
