"""pvhfw-bench (bench/boot.py): the trace parser, the phases and ratios, the rows' command
lines, the JSON, and short real runs on the test kernels (and one on Debian's kernel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import boot
from bench.execlog import parse_trace
from tests.support import need, need_kvm, need_qemu
from tools.qemu import KVM_CPU, MACHINES, QBOOT_ROM, SEABIOS_128K, data_file, qemu_version

T0 = 1795599458.0


def _line(ms: float, event: str, args: str, pid: int = 4242) -> str:
    return f"{pid}@{T0 + ms / 1e3:.6f}:{event} {args}"


def _ops(ms: float, kind: str, addr: int, value: int, name: str, cpu: int = 0) -> str:
    return _line(
        ms,
        f"memory_region_ops_{kind}",
        f"cpu {cpu} mr 0x55 addr {addr:#x} value {value:#x} size 1 name '{name}'",
    )


OURS_KVM = "\n".join(
    [
        _line(0.0, "kvm_vcpu_ioctl", "cpu_index 0, type 0xaea3, arg (nil)"),  # not KVM_RUN
        _line(40.0, "vm_state_notify", "running 1 reason 9 (running)"),
        _line(40.1, "kvm_vcpu_ioctl", "cpu_index 0, type 0xae80, arg (nil)"),
        _line(40.2, "kvm_run_exit", "cpu_index 0, reason 2"),
        _ops(40.2, "write", 0xF5, 1, "io"),
        _line(40.5, "kvm_run_exit", "cpu_index 0, reason 2"),
        _ops(40.5, "write", 0x510, 0, "fwcfg"),
        _ops(40.6, "read", 0xFED00000, 0, "hpet"),  # MMIO: not a port access
        _ops(40.6, "read", 0x511, 0, "fwcfg", cpu=-1),  # not the vCPU
        _line(40.9, "kvm_run_exit", "cpu_index 0, reason 2"),
        _ops(40.9, "write", 0xF5, 5, "io"),
        _line(41.0, "kvm_run_exit", "cpu_index 0, reason 2"),
        _ops(41.0, "write", 0xF4, 0x10, "isa-debug-exit"),
        _ops(41.5, "write", 0x510, 0, "fwcfg"),  # after the entry: ignored
        "garbage line",
    ]
)

QBOOT_TCG = "\n".join(
    [
        _line(30.0, "vm_state_notify", "running 1 reason 9 (running)"),
        _ops(30.3, "read", 0x70, 0, "rtc"),
        _ops(31.0, "write", 0x518, 0, "fwcfg.dma"),
        _ops(32.0, "read", 0x511, 0, "fwcfg"),
        _ops(32.1, "write", 0x80, 0, "io"),
        _ops(32.2, "write", 0xF4, 0x10, "isa-debug-exit"),
    ]
)


def test_trace_of_our_firmware_under_kvm() -> None:
    t = parse_trace(OURS_KVM)
    ms = {k: round((v - T0) * 1e3, 3) for k, v in t.stamps.items()}
    assert ms == {
        "qemu_init_end": 40.0,
        "first_instr": 40.1,
        "fw_start": 40.2,
        "fw_do_boot": 40.9,
        "entry": 41.0,
    }
    assert t.proxies == set()
    assert t.port_accesses == 3  # 0xf5, 0x510, 0xf5; not the entry's own write
    assert t.kvm_exits == 3  # the entry's own exit excluded


def test_trace_of_another_firmware_uses_proxies() -> None:
    t = parse_trace(QBOOT_TCG)
    ms = {k: round((v - T0) * 1e3, 3) for k, v in t.stamps.items()}
    assert ms == {"qemu_init_end": 30.0, "fw_start": 30.3, "fw_do_boot": 32.0, "entry": 32.2}
    assert t.proxies == {"fw_start", "fw_do_boot"}
    assert t.port_accesses == 4


def test_trace_without_an_entry() -> None:
    lines = QBOOT_TCG.splitlines()[:-1]
    t = parse_trace("\n".join(lines))
    assert "entry" not in t.stamps
    assert "fw_do_boot" not in t.stamps  # "last fw_cfg access before the entry" is undefined
    assert t.proxies == {"fw_start"}


def _run(path: str, rnd: int, phase: str = "entry", **ms: float) -> boot.Run:
    status = boot.ENTRY_STATUS if phase == "entry" else boot.USERSPACE_STATUS
    return boot.Run(
        accel="kvm",
        machine="pc",
        path=path,
        phase=phase,
        round=rnd,
        returncode=status,
        seconds=0.1,
        phases_ms=dict(ms),
    )


def test_steps_are_taken_run_by_run() -> None:
    run = _run(boot.OURS, 0, qemu_init_end=40, fw_start=41, entry=43)
    assert boot.run_step(run, "qemu_init_end") is None
    assert boot.run_step(run, "fw_start") == 1
    assert boot.run_step(run, "fw_do_boot") is None
    assert boot.run_step(run, "entry") == 2  # from fw_start: fw_do_boot is absent


def test_summary_phases_steps_and_pairwise_ratios() -> None:
    runs = [
        _run(boot.OURS, -1, qemu_init_end=99, entry=999),  # warm-up
        _run(boot.OURS, 0, qemu_init_end=40, fw_start=41, entry=42),
        _run(boot.OURS, 1, qemu_init_end=50, fw_start=51, entry=54),
        _run(boot.OURS, 0, "userspace", qemu_init_end=1, userspace=2000),
        _run("qboot-vmlinux", 0, qemu_init_end=41, fw_start=42, entry=63),
        _run("qboot-vmlinux", 1, qemu_init_end=40, fw_start=41, entry=81),
        _run("qboot-vmlinux", 0, "userspace", userspace=2200),
        boot.Run(  # timed out
            accel="kvm",
            machine="pc",
            path="qboot-vmlinux",
            phase="entry",
            round=2,
            returncode=None,
            seconds=300.0,
        ),
    ]
    rows = {r.path: r for r in boot.summarize(runs)}
    ours, qboot = rows[boot.OURS], rows["qboot-vmlinux"]
    # qemu_init_end from the entry runs only, not the userspace run's 1 ms
    assert ours.phases["qemu_init_end"].median == 45
    assert ours.steps["entry"].median == 2  # (1 + 3) / 2
    assert ours.phases["userspace"].median == 2000
    assert ours.ratio_entry == 1.0
    # round 0: 63 / 42 = 1.5; round 1: 81 / 54 = 1.5 (the medians' ratio would be 72 / 48)
    assert qboot.ratio_entry == pytest.approx(1.5)
    assert qboot.ratio_userspace == pytest.approx(1.1)
    assert qboot.failed == 1 and qboot.runs == 2 and qboot.userspace_runs == 1


def test_rows_pick_their_firmware() -> None:
    images = {
        "pvhfw-vmlinux": Path("/x/ours.bin"),
        "floor-vmlinux": Path("/x/floor.bin"),
        "pvhfw-bzimage": Path("/x/ours-bz.bin"),
    }
    by = boot.PATH_BY_KEY
    assert by[boot.OURS].bios("microvm", images) == "/x/ours.bin"
    assert by["pvhfw-bzimage"].bios("q35", images) == "/x/ours-bz.bin"
    assert by["pvhfw-bzimage"].entry_kind == "bzimage-linux32"
    assert by["qboot-bzimage"].entry_kind == "bzimage"
    assert by["floor-vmlinux"].bios("pc", images) == "/x/floor.bin"
    assert by["seabios-bzimage"].bios("q35", images) is None
    assert by["qboot-vmlinux"].bios("pc", images) == data_file(QBOOT_ROM)  # the QEMU's own
    assert by["qboot-bzimage"].bios("microvm", images) is None  # bios-microvm.bin
    assert "bios-microvm.bin" in by["qboot-bzimage"].label_on("microvm")
    assert by["seabios-vmlinux"].bios("microvm", images) == data_file(SEABIOS_128K)
    assert [p.key for p in boot.paths_on("microvm", [boot.OURS, "seabios-bzimage"])] == [
        boot.OURS,
        "seabios-bzimage",
    ]
    assert by["seabios-bzimage"].boots_userspace("microvm")
    assert not by["seabios-vmlinux"].boots_userspace("microvm")
    assert not by["floor-vmlinux"].boots_userspace("pc")


def test_command_lines() -> None:
    cmd = boot.qemu_command(
        "qemu", "tcg", "microvm", None, Path("k"), log=Path("t.log"), events=("a", "b")
    )
    assert cmd[cmd.index("-M") + 1] == "microvm,pit=on"
    assert cmd[cmd.index("-cpu") + 1] == "max"
    assert "-bios" not in cmd
    assert cmd[-8:] == ["-msg", "timestamp=on", "-D", "t.log", "-trace", "a", "-trace", "b"]
    cmd = boot.qemu_command("qemu", "kvm", "pc", "fw.bin", Path("k"))
    assert cmd[cmd.index("-cpu") + 1] == KVM_CPU
    assert cmd[cmd.index("-bios") + 1] == "fw.bin"
    assert "-msg" not in cmd


def test_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        boot.parse_args(["--paths", "qboot-vmlinux"])
    assert exc.value.code == 2
    assert "--paths must include pvhfw-vmlinux" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        boot.parse_args(["--machines", "isapc"])
    a = boot.parse_args(["--no-userspace"])
    assert a.userspace_runs == 0 and a.machines == list(MACHINES)


# ---- short real runs ------------------------------------------------------------------------


def _bench(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    rc = boot.main([*args, "--json", str(out), "--markdown", str(md)])
    data: dict[str, Any] = json.loads(out.read_text())
    assert rc == 0, data
    assert md.read_text().startswith("# Boot phases")
    # the binary tools.qemu chose ($PVHFW_QEMU or qemu-system-x86_64) and its version
    assert data["meta"]["qemu"] == need_qemu()
    assert data["meta"]["qemu_version"] == qemu_version()
    assert qemu_version() in md.read_text()
    return data


@pytest.mark.qemu
def test_short_tcg_run_on_the_test_kernels(tmp_path: Path) -> None:
    need_qemu()
    data = _bench(
        tmp_path,
        *("--accels", "tcg", "--machines", "microvm", "--runs", "2", "--warmup", "0"),
        *("--paths", "pvhfw-vmlinux,floor-vmlinux,qboot-vmlinux,qboot-bzimage"),
        "--no-userspace",
    )
    assert data["format"] == 1
    runs = data["runs"]
    assert isinstance(runs, list)
    keys = ["pvhfw-vmlinux", "floor-vmlinux", "qboot-vmlinux", "qboot-bzimage"]
    # alternation: every round has each row once, rotated
    assert [r["path"] for r in runs] == keys + keys[1:] + keys[:1]
    for r in runs:
        assert r["ok"] and r["returncode"] == boot.ENTRY_STATUS
        ph = r["phases_ms"]
        assert 0 < ph["qemu_init_end"] <= ph["fw_start"] <= ph["entry"] < r["seconds"] * 1e3
    ours = [r for r in runs if r["path"] == boot.OURS]
    assert all(r["proxies"] == [] and "fw_do_boot" in r["phases_ms"] for r in ours)
    assert all(
        r["proxies"] == ["fw_do_boot", "fw_start"] for r in runs if r["path"].startswith("qboot")
    )
    counts = {c["path"]: c for c in data["counts"]}  # type: ignore[attr-defined]
    assert all(c["ok"] and c["reached_entry"] for c in counts.values())
    n = {k: counts[k]["instructions"] for k in keys}
    assert n["floor-vmlinux"] < n["pvhfw-vmlinux"] < n["qboot-vmlinux"]
    summary = {s["path"]: s for s in data["summary"]}  # type: ignore[attr-defined]
    assert summary[boot.OURS]["ratio_entry"] == 1.0
    assert set(summary) == set(keys)


@pytest.mark.qemu
@pytest.mark.kvm
def test_short_kvm_run_counts_exits(tmp_path: Path) -> None:
    need_qemu()
    need_kvm()
    data = _bench(
        tmp_path,
        *("--accels", "kvm", "--machines", "microvm", "--runs", "1", "--warmup", "0"),
        *("--paths", "pvhfw-vmlinux,floor-vmlinux", "--no-counts"),
    )
    runs = {r["path"]: r for r in data["runs"]}  # type: ignore[attr-defined]
    for r in runs.values():
        assert r["ok"]
        assert r["phases_ms"]["qemu_init_end"] <= r["phases_ms"]["first_instr"]
    assert runs["floor-vmlinux"]["kvm_exits"] == 1  # fw_start only
    assert runs[boot.OURS]["kvm_exits"] > runs["floor-vmlinux"]["kvm_exits"]


@pytest.mark.qemu
@pytest.mark.debian
@pytest.mark.slow
def test_short_userspace_run_on_debian(tmp_path: Path) -> None:
    need_qemu()
    from tools.debian_kernel import ensure_debian_kernel

    try:
        ensure_debian_kernel()
    except Exception as exc:  # no network and no cache
        need(False, f"the Debian kernel: {exc}")
    data = _bench(
        tmp_path,
        *("--accels", "tcg", "--machines", "microvm", "--runs", "1", "--warmup", "0"),
        *("--paths", "pvhfw-vmlinux,qboot-bzimage", "--userspace-runs", "1", "--no-counts"),
    )
    user = [r for r in data["runs"] if r["phase"] == "userspace"]  # type: ignore[attr-defined]
    assert {r["path"] for r in user} == {"pvhfw-vmlinux", "qboot-bzimage"}
    for r in user:
        assert r["ok"] and r["returncode"] == boot.USERSPACE_STATUS
        assert r["phases_ms"]["userspace"] > r["phases_ms"]["qemu_init_end"]
