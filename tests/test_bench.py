"""The firmware benchmark's instrument (bench/): its parsers, its schedule, its statistics,
and short real runs of it under QEMU TCG and KVM."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench import firmware as bench
from bench import firmware_report
from bench.execlog import (
    REP_PER_INSTRUCTION,
    REP_PER_ITERATION,
    ExecCount,
    RepIterationCounter,
    count_exec_log,
    parse_trace,
    rep_filter,
)
from bench.procs import LogRequest, alternating_schedule, run_exec_log
from tests.kernels.build import elf_pvh_entry
from tests.support import KernelGetter, need, need_kvm, need_qemu
from tools.qemu import DEFAULT_QEMU, QBOOT_ROM, data_file, qemu_version

# ---- exec log (TCG -singlestep -d exec,nochain with trace events) ------------------------

ENTRY = 0x200000


def _trace(pc: int) -> bytes:
    return f"Trace 0: 0x7fd4b4000100 [00000000ffff0000/{pc:016x}/00000040/ff000201]".encode()


def _ops(kind: str, addr: int, name: str, cpu: int = 0) -> bytes:
    return (
        f"memory_region_ops_{kind} cpu {cpu} mr 0x5635 addr {addr:#x} value 0x0 size 2 "
        f"name '{name}'"
    ).encode()


def test_exec_log_counts_up_to_the_entry() -> None:
    log = [
        _trace(0xFFFFFFF0),
        _trace(0xFFFFFF05),
        _ops("write", 0xF5, "io"),
        _trace(0xFFFF0010),
        _ops("write", 0x510, "fwcfg"),
        _ops("read", 0x511, "fwcfg"),
        _ops("write", 0x518, "fwcfg.dma"),
        _ops("write", 0xFED00000, "hpet", cpu=0),  # MMIO, not a port
        _ops("read", 0x511, "fwcfg", cpu=-1),  # not from a vCPU
        _trace(0xFFFF0020),
        _trace(0xFFFF0020),  # a rep iteration
        b"fw_cfg_add_file 0x557e739cf920 #1: etc/e820 (40 bytes)",
        _trace(ENTRY),
        _ops("write", 0xF4, "isa-debug-exit"),  # after the entry: not the firmware's
        _trace(ENTRY + 2),
    ]
    count = count_exec_log(log, ENTRY)
    assert count.reached_entry
    assert count.instructions == 5
    assert count.same_pc_repeats == 1
    assert count.port_accesses == 4
    assert count.fwcfg_accesses == 3
    assert count.ports_by_region == {"io": 1, "fwcfg": 2, "fwcfg.dma": 1}
    assert count.fwcfg_files == {"etc/e820": 40}
    assert count.trace_lines == 7


def test_exec_log_without_the_entry() -> None:
    count = count_exec_log([_trace(0xFFFFFFF0), _trace(0xFFFFFF05)], ENTRY)
    assert not count.reached_entry
    assert count.instructions == 2


def _in_asm(pc: int, code: str, text: str) -> bytes:
    """An in_asm line as QEMU prints a block's first instruction."""
    return f"0x{pc:08x}:  {code:<24} {text}".encode()


def _regs(ecx: int, wide: bool = False) -> bytes:
    if wide:
        return f"RAX=0000000000000000 RBX=0000000000000000 RCX={ecx:016x} RDX=0".encode()
    return f"EAX=00000000 EBX=00000000 ECX={ecx:08x} EDX=00060511".encode()


REP_LOG = [  # QEMU 10.0's first run: each rep string instruction one line
    b"IN: ",
    _in_asm(0x1000, "b9 0a 00 00 00", "movl     $0xa, %ecx"),
    _trace(0x1000),
    _in_asm(0x1005, "f3 a5", "rep movsl (%esi), %es:(%edi)"),
    _trace(0x1005),
    _in_asm(0x1007, "b9 0a 00 00 00", "movl     $0xa, %ecx"),
    _trace(0x1007),
    _in_asm(0x100C, "f3 a7", "repe cmpsl %es:(%edi), (%esi)"),
    _trace(0x100C),
    _in_asm(0x100E, "f3 c3", "repz retl"),  # a rep prefix, not a string instruction
    _trace(0x100E),
    _in_asm(0x1010, "f3 6c", "rep insb %dx, %es:(%edi)"),
    _trace(0x1010),
    _in_asm(0x1012, "81 3d 10 10 00 00 51 45", "cmpl     $0x554d4551, 0x1010"),
    b"0x0000101a:  4d 55",  # the rest of the bytes of a long instruction
    _trace(0x1012),
    _trace(0x1005),  # the rep movs again
    _trace(ENTRY),
]


def test_the_first_run_finds_the_rep_string_instructions() -> None:
    count = count_exec_log(REP_LOG, ENTRY)
    assert count.rep_pcs == {0x1005: 2, 0x100C: 2, 0x1010: 2}
    assert count.exec_lines == 8 and count.rep_lines == 4
    assert count.instructions == 8  # iterations not known yet: a rep line counts once
    assert rep_filter(count) == ("0x1005+1,0x1007+1,0x100c+1,0x100e+1,0x1010+1,0x1012+1,0x200000+1")


def test_the_second_run_counts_iterations_from_the_registers() -> None:
    """The filtered second run: a rep line stands for ECX at it minus ECX at the next line
    (the instruction after it, or the same rep again), at least 1 (count 0)."""
    count = count_exec_log(REP_LOG, ENTRY)
    reps = RepIterationCounter(count)
    for line in [
        _trace(0x1005), _regs(10),  # rep movs of 10
        _trace(0x1007), _regs(0),
        _trace(0x100C), _regs(10),  # repe cmps: stops with 3 left
        _trace(0x100E), _regs(3),
        _trace(0x1010), _regs(0),  # rep ins of 0: one line, one instruction
        _trace(0x1012), _regs(0),
        _trace(0x1005), _regs(4),  # interrupted with 2 left ...
        _trace(0x1005), _regs(2),  # ... and resumed
        _trace(0x1007), _regs(0),
        _trace(ENTRY), _regs(5),
        _trace(0x1005), _regs(9),  # after the entry: not counted
    ]:  # fmt: skip
        reps.feed(line)
    assert reps.done
    finished = reps.finish()
    assert finished.rep_iterations == 10 + 7 + 1 + 2 + 2
    assert finished.rep_lines_second_run == 5
    assert finished.instructions == 8 - 4 + 22
    assert finished.rep_logging == REP_PER_INSTRUCTION


def test_iterations_in_long_mode_come_from_rcx() -> None:
    count = count_exec_log(REP_LOG, ENTRY)
    reps = RepIterationCounter(count)
    for line in [
        _trace(0x1005), _regs(0x1_0000_0003, wide=True),
        _trace(0x1007), _regs(0xFFFF_FFFF, wide=True),  # 64-bit count: no 32-bit wrap
        _trace(ENTRY), _regs(0, wide=True),
    ]:  # fmt: skip
        reps.feed(line)
    assert reps.finish().rep_iterations == 4


def test_exec_log_rejects_a_garbled_ops_line() -> None:
    with pytest.raises(ValueError, match="memory_region_ops"):
        count_exec_log([b"memory_region_ops_write garbage"], ENTRY)


# ---- KVM runs: time-stamped boot events, exits -------------------------------------------

STAMPED = """\
4242@1795599458.408000:kvm_run_exit cpu_index 0, reason 2
4242@1795599458.408881:memory_region_ops_write cpu 0 mr 0x557c addr 0xf5 value 0x1 size 1 name 'io'
4242@1795599458.408900:memory_region_ops_write cpu 0 mr 0x557c addr 0x510 value 0x0 size 2 name 'f'
4242@1795599458.409500:memory_region_ops_write cpu 0 mr 0x557c addr 0xf5 value 0x5 size 1 name 'io'
4242@1795599458.409510:memory_region_ops_write cpu 1 mr 0x557c addr 0xf4 value 0x10 size 1 name 'x'
4242@1795599458.409600:memory_region_ops_write cpu 0 mr 0x557c addr 0xf4 value 0x10 size 1 name 'x'
4242@1795599458.409700:memory_region_ops_write cpu 0 mr 0x557c addr 0xf4 value 0x11 size 1 name 'x'
"""


def test_boot_events_from_a_stamped_log() -> None:
    ev = parse_trace(STAMPED).stamps
    assert ev["fw_start"] == pytest.approx(1795599458.408881)
    assert ev["fw_do_boot"] == pytest.approx(1795599458.409500)
    assert ev["entry"] == pytest.approx(1795599458.409600)  # vCPU 0's first 0xf4 write


def test_boot_events_missing() -> None:
    ev = parse_trace(STAMPED.splitlines()[0] + "\nunrelated\n").stamps
    assert (ev.get("fw_start"), ev.get("fw_do_boot"), ev.get("entry")) == (None, None, None)


def test_kvm_trace_exits_and_ports() -> None:
    text = (
        "kvm_run_exit cpu_index 0, reason 2\n"
        "memory_region_ops_write cpu 0 mr 0x1 addr 0xf5 value 0x1 size 1 name 'io'\n"
        "kvm_run_exit cpu_index 0, reason 6\n"
        "memory_region_ops_read cpu 0 mr 0x1 addr 0xfee00030 value 0x1 size 4 name 'apic'\n"
        "kvm_run_exit cpu_index 0, reason 99\n"
    )
    exits, ports = bench.parse_kvm_trace(text)
    assert exits == {"io": 1, "mmio": 1, "99": 1}
    assert ports == 1


# ---- schedule and statistics -------------------------------------------------------------


def test_schedule_alternates_and_rotates() -> None:
    order = alternating_schedule(["a", "b", "c"], {"a": 3, "b": 3, "c": 2}, warmup=1)
    assert order[:3] == [(-1, "a"), (-1, "b"), (-1, "c")]
    measured = order[3:]
    assert [s for _, s in measured] == ["a", "b", "c", "b", "c", "a", "a", "b"]
    for rnd in range(3):
        names = [s for r, s in measured if r == rnd]
        assert len(names) == len(set(names))
    # no subject is always preceded by the same one
    before: dict[str, set[str]] = {}
    for (_, prev), (_, cur) in itertools.pairwise(measured):
        before.setdefault(cur, set()).add(prev)
    assert all(len(v) > 1 for k, v in before.items() if k != "c")


def test_schedule_skips_subjects_without_runs() -> None:
    order = alternating_schedule(["a", "b"], {"a": 2, "b": 0}, warmup=2)
    assert [s for _, s in order] == ["a"] * 4
    assert [r for r, _ in order] == [-2, -1, 0, 1]


def _run(fw: str, rnd: int, ms: float, entry_ms: float, fw_ms: float | None) -> bench.KvmRun:
    run = bench.KvmRun(
        machine="pc",
        firmware=fw,
        round=rnd,
        seconds=ms / 1e3,
        returncode=bench.EXIT_STATUS,
        maxrss_kib=1024,
    )
    run.to_entry = entry_ms / 1e3
    run.fw_to_entry = None if fw_ms is None else fw_ms / 1e3
    return run


def test_summary_ratios_of_medians() -> None:
    runs = [
        _run("pvh", -1, 999, 999, 1),  # warm-up: not counted
        _run("pvh", 0, 44, 22, 1.0),
        _run("pvh", 1, 46, 23, 1.2),
        _run("pvh", 2, 48, 24, 0.8),
        _run("floor", 0, 40, 20, 0.1),
        _run("floor", 1, 40, 20, 0.1),
        _run("floor", 2, 40, 21, 0.1),
        bench.KvmRun(  # killed: failed, not counted
            machine="pc", firmware="floor", round=3, seconds=0.001, returncode=None, maxrss_kib=0
        ),
    ]
    summary = {s.firmware: s for s in bench.summarize_kvm(runs)}
    pvh, floor = summary["pvh"], summary["floor"]
    assert pvh.seconds is not None and pvh.seconds.n == 3
    assert pvh.ratio_to_floor == pytest.approx(46 / 40)
    assert pvh.to_entry_ratio == pytest.approx(23 / 20)
    assert pvh.to_entry_delta_ms == pytest.approx(3.0)
    assert pvh.fw_to_entry is not None and pvh.fw_to_entry.median == pytest.approx(1.0e-3)
    assert floor.failed == 1 and floor.ratio_to_floor == 1.0
    # start-up (fork -> fw_start) pooled over both: median of 21, 21.8, 23.2, 19.9, 19.9, 20.9
    assert pvh.firmware_ratio == pytest.approx((20.95 + 1.0) / (20.95 + 0.1))
    assert floor.firmware_ratio == 1.0
    # with ACPI the ratio is reported; the 1.05x limit is for the firmware with ACPI off
    (reported,) = _timing(firmware_report.verdicts([], [], list(summary.values())))
    assert reported.met is None and reported.limit == "reported"
    noacpi = [replace(r, firmware="pvh-noacpi") if r.firmware == "pvh" else r for r in runs]
    (verdict,) = _timing(firmware_report.verdicts([], [], bench.summarize_kvm(noacpi)))
    # the verdict takes the common start-up (1.043x), not the direct ratio (1.15x)
    assert verdict.met is True
    assert "1.043x (1.150x)" in verdict.measured
    assert runs[1].to_fw_start == pytest.approx(0.021)


def _timing(verdicts: list[firmware_report.Verdict]) -> list[firmware_report.Verdict]:
    return [v for v in verdicts if "fork -> kernel entry" in v.name]


def _tcg(machine: str, firmware: str, instructions: int) -> bench.TcgResult:
    count = ExecCount(entry=0x200000, reached_entry=True, exec_lines=instructions)
    return bench.TcgResult(
        machine=machine,
        firmware=firmware,
        cmd=[],
        returncode=bench.EXIT_STATUS,
        seconds=0.1,
        count=count,
        stderr="",
    )


def test_budgets_against_qboot_and_kvm_exits() -> None:
    """With ACPI: at most a fifth of qboot's instructions on pc and q35, a third of
    bios-microvm.bin's on microvm; KVM exits at most 40 with or without ACPI."""
    tcg = [
        _tcg("pc", "pvh", 10_000),
        _tcg("pc", "qboot", 50_000),  # exactly a fifth: met
        _tcg("q35", "pvh", 10_001),
        _tcg("q35", "qboot", 50_000),  # over a fifth: missed
        _tcg("microvm", "pvh", 3_000),
        _tcg("microvm", "microvm-default", 15_000),
    ]
    got = {
        v.name.split(", ")[3].split(":")[0]: v
        for v in firmware_report.verdicts([], tcg, [])
        if "qboot" in v.name
    }
    assert {m: v.met for m, v in got.items()} == {"pc": True, "q35": False, "microvm": True}
    assert got["pc"].measured == "1/5.0 (10,000 / 50,000)" and got["microvm"].limit == "<= 1/3"
    cost = firmware_report.any_kernel_cost(
        [_tcg("pc", "pvh", 1_147), _tcg("pc", "pvh-any", 1_154), _tcg("q35", "pvh-any", 9)]
    )
    assert [(v.measured, v.met) for v in cost] == [("+7 / +0 (1,154 / 0 against 1,147 / 0)", None)]
    no_qboot = firmware_report.verdicts([], [_tcg("pc", "pvh", 10_000)], [])
    assert [v.met for v in no_qboot if "qboot" in v.name] == [None]  # not measured

    def summary(firmware: str, exits: int | None) -> bench.KvmSummary:
        return bench.KvmSummary(
            machine="pc",
            firmware=firmware,
            failed=0,
            seconds=None,
            maxrss_kib=None,
            ratio_to_floor=None,
            delta_to_floor_ms=None,
            exits=exits,
        )

    kvm = [summary("pvh", 40), summary("pvh-noacpi", 41), summary("floor", 2)]
    exits = [v for v in firmware_report.verdicts([], [], kvm) if "exits" in v.name]
    assert [(v.measured, v.met) for v in exits] == [("40", True), ("41", False)]


# ---- short real runs ---------------------------------------------------------------------


@pytest.mark.qemu
def test_tcg_counts_agree_with_the_emulator(tmp_path: Path) -> None:
    """TCG's exec log and the unicorn bench count the same instructions and port accesses
    for both images on microvm (the quickest machine), and the run ends at the entry."""
    qemu = need_qemu()
    out = tmp_path / "bench.json"
    rc = bench.main(["--skip-kvm", "--skip-seabios", "--machines", "microvm", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    # the binary tools.qemu chose ($PVHFW_QEMU or qemu-system-x86_64) and its version
    assert data["meta"]["qemu"] == qemu
    assert data["meta"]["qemu_version"] == qemu_version(qemu)
    tcg = {r["firmware"]: r for r in data["tcg"]}
    for key in ("pvh", "pvh-nodma", "floor", "pvh-any", "pvh-any-noacpi"):
        assert tcg[key]["ok"] and tcg[key]["agrees_with_emulator"], tcg[key]
        assert tcg[key]["reached_entry"]
    assert tcg["pvh"]["instructions"] > tcg["floor"]["instructions"]
    # the any-kernel image's run-time checks: a few instructions, no port access
    for pre, any_kernel in (("pvh", "pvh-any"), ("pvh-noacpi", "pvh-any-noacpi")):
        assert 0 < tcg[any_kernel]["instructions"] - tcg[pre]["instructions"] < 40
        assert tcg[any_kernel]["port_accesses"] == tcg[pre]["port_accesses"]
    cost = [t for t in data["targets"] if "--any-kernel image's run-time checks" in t["name"]]
    assert len(cost) == 2 and all(t["measured"].startswith("+") for t in cost), cost
    assert tcg["pvh-nodma"]["fwcfg_accesses"] > tcg["pvh"]["fwcfg_accesses"]
    assert tcg["microvm-default"]["ok"]


@pytest.mark.qemu
def test_one_firmware_counts_the_same_under_both_qemus(kernel: KernelGetter) -> None:
    """The count is the firmware's, not the QEMU's: QEMU 7.2 logs every rep iteration, QEMU
    10.0 each rep once (its iterations taken from the registers in a second run), and the
    same ROM (the system QEMU's qboot.rom, which has rep string loops) on microvm counts the
    same under both."""
    from tools import alt_qemu

    need_qemu()
    alt = alt_qemu.installed()
    need(alt is not None, "QEMU 10.0 not installed (python3 -m tools.alt_qemu; tools/setup.sh)")
    assert alt is not None
    qboot = data_file(QBOOT_ROM, DEFAULT_QEMU)
    need(qboot is not None, f"{DEFAULT_QEMU} has no {QBOOT_ROM}")
    exitfirst = kernel("exitfirst", 0x200000)
    counts = {}
    for q in (DEFAULT_QEMU, str(alt.wrapper)):

        def make_cmd(log: Path, request: LogRequest, q: str = q) -> list[str]:
            return bench.qemu_command(
                q, "microvm", str(qboot), exitfirst, "tcg", log=log, request=request
            )

        run = run_exec_log(make_cmd, elf_pvh_entry(exitfirst), 60)
        assert run.returncode == bench.EXIT_STATUS and run.count.reached_entry, run.stderr
        counts[q] = run.count
    old, new = counts.values()
    assert old.rep_logging == REP_PER_ITERATION and new.rep_logging == REP_PER_INSTRUCTION
    assert new.rep_lines < old.rep_lines  # 10.0 shows each rep once ...
    assert new.rep_iterations == old.rep_iterations == old.rep_lines  # ... standing for as many
    assert new.instructions == old.instructions
    assert (new.port_accesses, new.fwcfg_accesses) == (old.port_accesses, old.fwcfg_accesses)


@pytest.mark.qemu
@pytest.mark.kvm
def test_kvm_runs_time_the_boot_events(tmp_path: Path) -> None:
    need_qemu()
    need_kvm()
    out = tmp_path / "bench.json"
    rc = bench.main(
        [
            "--skip-tcg",
            "--skip-emu",
            "--machines",
            "microvm",
            "--runs",
            "2",
            "--no-context",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    kvm = json.loads(out.read_text())["kvm"]
    runs = kvm["runs"]
    assert {r["firmware"] for r in runs} == {"pvh", "pvh-noacpi", "floor"}
    for r in runs:
        assert r["ok"]
        assert 0 < r["fw_to_entry"] < r["to_entry"] < r["seconds"], r
    exits = {t["firmware"]: t["total_exits"] for t in kvm["traced_runs"]}
    # the table-loader costs three DMA transfers (the loader, the RSDP, the tables); without
    # it the MP table costs one (FW_CFG_NB_CPUS)
    assert exits["pvh"] == exits["pvh-noacpi"] + 3 - 1, exits
