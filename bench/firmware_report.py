"""The firmware benchmark's report (bench/firmware.py runs it): the targets and whether
they are met, the Markdown tables, the JSON. The runs' records are bench.firmware's; the
labels and the configuration come in `meta`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bench.execlog import count_method
from bench.host import kvm_label
from bench.report import markdown_table, ratio_cell
from tools.qemu import DEBUG_EXIT, KVM_CPU

if TYPE_CHECKING:
    from bench.firmware import EmuResult, KvmExits, KvmRun, KvmSummary, TcgResult

# The budgets (issue 10, QEMU 7.2): without ACPI, instructions and port accesses from reset
# to the entry, and the time against the floor's under KVM; with ACPI, a fraction of qboot's
# instructions on the same machine (its microvm build, bios-microvm.bin, on microvm); KVM
# exits to QEMU, with ACPI or without, on every machine.
MAX_INSTRUCTIONS = 1200
MAX_PORT_ACCESSES = 40
MAX_KVM_RATIO = 1.05
MAX_KVM_EXITS = 40
QBOOT_FRACTION = {"pc": 5, "q35": 5, "microvm": 3}  # ours <= qboot's / N
QBOOT_KEYS = ("qboot", "microvm-default")


@dataclass(kw_only=True)
class Verdict:
    name: str
    limit: str
    measured: str
    met: bool | None  # None: not measured, or reported without a limit


def verdicts(
    emu: Sequence[EmuResult], tcg: Sequence[TcgResult], kvm: Sequence[KvmSummary]
) -> list[Verdict]:
    """The budgets, each measured where it is defined: counts in the emulator and in QEMU's
    TCG exec log (the two agree, or the TCG table says so), the qboot fractions from the TCG
    counts, exits and times under KVM."""
    out = []
    for acpi in (False, True):
        ours_emu = [
            r for r in emu if r.image == "pvh" and r.dma and r.config.endswith("-noacpi") != acpi
        ]
        ours_tcg = [r for r in tcg if r.firmware == ("pvh" if acpi else "pvh-noacpi")]
        any_tcg = [r for r in tcg if r.firmware == ("pvh-any" if acpi else "pvh-any-noacpi")]
        what = "with ACPI" if acpi else "ACPI off"
        counted: list[tuple[str, list[tuple[int, int, str, bool]]]] = [
            (
                "emulator, DMA configs",
                [
                    (r.instructions, r.port_accesses, r.config, r.reached_entry and not r.error)
                    for r in ours_emu
                ],
            ),
            (
                "QEMU TCG exec log",
                [(r.count.instructions, r.count.port_accesses, r.machine, r.ok) for r in ours_tcg],
            ),
            (
                "QEMU TCG exec log, the --any-kernel image",
                [(r.count.instructions, r.count.port_accesses, r.machine, r.ok) for r in any_tcg],
            ),
        ]
        for source, rows in counted:
            if not rows:
                continue
            ok = all(r[3] for r in rows)
            wi, wp = max(rows, key=lambda r: r[0]), max(rows, key=lambda r: r[1])
            for name, limit, value, where in (
                ("instructions", MAX_INSTRUCTIONS, wi[0], wi[2]),
                ("port accesses", MAX_PORT_ACCESSES, wp[1], wp[2]),
            ):
                out.append(
                    Verdict(
                        name=f"{name}, reset -> entry, {what} ({source}, max)",
                        limit=f"<= {limit:,}" if not acpi else "reported",
                        measured=f"{value:,} ({where})",
                        met=(ok and value <= limit) if not acpi else (None if ok else False),
                    )
                )
    out += any_kernel_cost(tcg)
    qboot = {r.machine: r for r in tcg if r.firmware in QBOOT_KEYS and r.ok}
    for r in tcg:
        if r.firmware != "pvh" or r.machine not in QBOOT_FRACTION:
            continue
        n, theirs = QBOOT_FRACTION[r.machine], qboot.get(r.machine)
        ours = r.count.instructions
        out.append(
            Verdict(
                name=f"instructions, reset -> entry, with ACPI, {r.machine}: pvhfw / qboot "
                "(QEMU TCG exec log)",
                limit=f"<= 1/{n}",
                measured="-"
                if theirs is None
                else f"1/{theirs.count.instructions / ours:.1f} "
                f"({ours:,} / {theirs.count.instructions:,})",
                met=None if theirs is None else r.ok and ours * n <= theirs.count.instructions,
            )
        )
    for s in kvm:
        if s.firmware not in ("pvh", "pvh-noacpi"):
            continue
        limited = s.firmware == "pvh-noacpi"
        what = "ACPI off" if limited else "with ACPI"
        out.append(
            Verdict(
                name=f"KVM exits to QEMU, the whole run, {s.machine}, {what} (1 traced run)",
                limit=f"<= {MAX_KVM_EXITS}",
                measured="-" if s.exits is None else f"{s.exits}",
                met=None if s.exits is None else s.exits <= MAX_KVM_EXITS,
            )
        )
        met: bool | None = None
        if s.firmware_ratio is not None and limited:
            met = s.firmware_ratio <= MAX_KVM_RATIO and s.failed == 0
        elif s.failed:
            met = False
        out.append(
            Verdict(
                name=f"KVM, QEMU fork -> kernel entry, pvhfw / floor, {s.machine}, {what} "
                "(common start-up; direct ratio of medians in brackets)",
                limit=f"<= {MAX_KVM_RATIO:.2f}x" if limited else "reported",
                measured="-"
                if s.firmware_ratio is None
                else f"{s.firmware_ratio:.3f}x"
                + ("" if s.to_entry_ratio is None else f" ({s.to_entry_ratio:.3f}x)"),
                met=met,
            )
        )
    return out


def any_kernel_cost(tcg: Sequence[TcgResult]) -> list[Verdict]:
    """What the any-kernel image's run-time checks cost over the image built for the kernel,
    on each machine, with ACPI and without (QEMU TCG exec log): reported."""
    ok = {(r.machine, r.firmware): r.count for r in tcg if r.ok}
    out = []
    for machine in dict.fromkeys(r.machine for r in tcg):
        for pre, any_kernel, what in (
            ("pvh", "pvh-any", "with ACPI"),
            ("pvh-noacpi", "pvh-any-noacpi", "ACPI off"),
        ):
            a, b = ok.get((machine, any_kernel)), ok.get((machine, pre))
            if a is None or b is None:
                continue
            out.append(
                Verdict(
                    name=f"the --any-kernel image's run-time checks, {machine}, {what}: "
                    "instructions / port accesses over the pre-patched image's (QEMU TCG exec log)",
                    limit="reported",
                    measured=f"{a.instructions - b.instructions:+,} / "
                    f"{a.port_accesses - b.port_accesses:+} "
                    f"({a.instructions:,} / {a.port_accesses} against {b.instructions:,} / "
                    f"{b.port_accesses})",
                    met=None,
                )
            )
    return out


def render(
    meta: dict[str, Any],
    emu: Sequence[EmuResult],
    tcg: Sequence[TcgResult],
    kvm: Sequence[KvmSummary],
    verdict: Sequence[Verdict],
) -> str:
    rows: list[list[object]]
    lines = [
        "# Firmware benchmark: reset -> kernel entry",
        "",
        f"{meta['qemu_version']}; kernel `exitfirst` (PVH entry {meta['entry']}, ends QEMU "
        f"with status 33 at its first instruction); `-m {meta['memory']}`; {meta['date']}.",
        "",
    ]
    if emu:
        lines += ["## Emulator counts (unicorn bench, tests/emu), reset -> kernel entry", ""]
        lines += [
            "fw_cfg as QEMU 7.2 sets it for `-kernel exitfirst` on that machine "
            f"(`-append` = `{meta['append']}`); a rep iteration counts once.",
            "",
        ]
        rows = [
            [
                r.label,
                r.image,
                f"{r.instructions:,}",
                r.port_accesses,
                r.fwcfg_accesses,
                r.dma_transfers,
                "yes" if r.reached_entry and r.error is None else f"NO: {r.error}",
            ]
            for r in emu
        ]
        lines += markdown_table(
            [
                "fw_cfg",
                "image",
                "instructions",
                "port accesses",
                "of them fw_cfg",
                "DMA transfers",
                "reached entry",
            ],
            rows,
        )
        lines.append("")
        lines += step_table(meta["steps"], emu)
    if tcg:
        lines += ["## TCG instruction counts, reset -> kernel entry", ""]
        lines += [
            "`qemu-system-x86_64 -M <machine> -m 512 -smp 2 [-bios <fw>] -kernel exitfirst "
            f"-nographic -no-reboot -device {DEBUG_EXIT}`; instructions: "
            f"{count_method(r.count for r in tcg)}; port accesses: `-trace "
            "memory_region_ops_read/write` events from the vCPU below 0x10000.",
            "",
        ]
        rows = []
        for r in tcg:
            c = r.count
            emu_cell = "-"
            if r.emulator_instructions is not None:
                emu_cell = (
                    f"{r.emulator_instructions:,} / {r.emulator_port_accesses} / "
                    f"{r.emulator_fwcfg_accesses}: " + ("agrees" if r.agrees else "DIFFERS")
                )
            status = "ok" if r.ok else f"status {r.returncode}, entry {c.reached_entry}"
            rows.append(
                [
                    meta["labels"][r.firmware],
                    r.machine,
                    f"{c.instructions:,}",
                    c.port_accesses,
                    c.fwcfg_accesses,
                    emu_cell,
                    status,
                ]
            )
        lines += markdown_table(
            [
                "firmware",
                "machine",
                "instructions",
                "port accesses",
                "of them fw_cfg",
                "emulator (instr / ports / fw_cfg)",
                "run",
            ],
            rows,
        )
        lines.append("")
        mism = [r for r in tcg if r.fwcfg_dir_matches_profile is False]
        if mism:
            lines += [
                f"Warning: QEMU's fw_cfg directory differs from bench/profiles.py on "
                f"{', '.join(r.machine for r in mism)}: the emulator rows above are not "
                "the same configuration.",
                "",
            ]
    if kvm:
        label = kvm_label(meta["kvm_backend"])
        lines += [
            f"## {label} wall times: whole QEMU process to the kernel's first instruction",
            "",
        ]
        lines += [
            f"`-accel kvm -cpu {KVM_CPU} -M <machine> -m 512 -smp 2 [-bios <fw>] -kernel exitfirst "
            f"-nographic -no-reboot -device {DEBUG_EXIT} -msg timestamp=on -trace "
            "memory_region_ops_write -D <log>`; runs alternate between the firmwares, "
            f"{meta['warmup']} warm-up round(s) not counted. Fork -> entry: from just before "
            "the fork to the time stamp QEMU logs for the kernel's first instruction (its "
            "isa-debug-exit write): QEMU start-up plus firmware. fw_start -> entry: from the "
            "firmware's first instruction (its port 0xf5 write) to the same stamp; only "
            "pvhfw and the floor write 0xf5. Nothing before fw_start depends on the firmware, "
            "yet QEMU's start-up here is bimodal (clusters a host tick, 4 ms, apart), so the "
            "direct ratio of medians swings by several percent from one run of this benchmark "
            "to the next; the last column takes the start-up (fork -> fw_start, median of the "
            "runs of both) as common: (start-up + fw_start -> entry) over the floor's.",
            "",
        ]
        rows = []
        for s in kvm:
            e, f = s.to_entry, s.fw_to_entry
            if e is None:
                continue
            rows.append(
                [
                    s.machine,
                    meta["labels"][s.firmware],
                    e.n,
                    f"{e.min * 1e3:.2f}",
                    f"{e.median * 1e3:.2f}",
                    f"{e.max * 1e3:.2f}",
                    ratio_cell(s.to_entry_ratio),
                    "-" if s.to_entry_delta_ms is None else f"{s.to_entry_delta_ms:+.2f}",
                    "-" if s.startup is None else f"{s.startup.median * 1e3:.2f}",
                    "-" if f is None else f"{f.median * 1e6:,.0f}",
                    ratio_cell(s.firmware_ratio),
                ]
            )
        lines += markdown_table(
            [
                "machine",
                "firmware",
                "runs",
                "fork -> entry, min ms",
                "median ms",
                "max ms",
                "median / floor",
                "median - floor, ms",
                "fork -> fw_start, median ms",
                "fw_start -> entry, median us",
                "/ floor, common start-up",
            ],
            rows,
        )
        lines += [
            "",
            "The same runs, fork to reap (start-up, firmware, kernel's first instruction, "
            "QEMU's exit and teardown):",
            "",
        ]
        rows = []
        for s in kvm:
            t, rss = s.seconds, s.maxrss_kib
            traced = "-" if s.exits is None else f"{s.exits} / {s.port_accesses}"
            if t is None:
                failed: list[object] = [
                    s.machine,
                    meta["labels"][s.firmware],
                    f"0 ({s.failed} failed)",
                ]
                rows.append([*failed, *["-"] * 6, traced])
                continue
            rows.append(
                [
                    s.machine,
                    meta["labels"][s.firmware],
                    f"{t.n}" + (f" ({s.failed} failed)" if s.failed else ""),
                    f"{t.min * 1e3:.1f}",
                    f"{t.median * 1e3:.1f}",
                    f"{t.max * 1e3:.1f}",
                    "-" if rss is None else f"{rss.median / 1024:.1f}",
                    ratio_cell(s.ratio_to_floor),
                    "-" if s.delta_to_floor_ms is None else f"{s.delta_to_floor_ms:+.1f}",
                    traced,
                ]
            )
        lines += markdown_table(
            [
                "machine",
                "firmware",
                "runs",
                "min ms",
                "median ms",
                "max ms",
                "peak RSS MiB (median)",
                "median / floor",
                "median - floor, ms",
                "exits to QEMU / port accesses (1 traced run)",
            ],
            rows,
        )
        lines += [
            "",
            "Exits and port accesses come from one extra, untimed run with `-trace kvm_run_exit "
            "-trace memory_region_ops_*` and cover the whole run (the kernel's exit write is one "
            "of each); a `rep ins`/`outs` is one exit for all its iterations.",
        ]
        lines.append("")
    if verdict:
        lines += ["## Targets", ""]
        rows = [
            [
                v.name,
                v.limit,
                v.measured,
                (
                    ("reported" if v.limit == "reported" else "not measured")
                    if v.met is None
                    else ("met" if v.met else "MISSED")
                ),
            ]
            for v in verdict
        ]
        lines += markdown_table(["target", "limit", "measured", ""], rows)
        lines.append("")
    return "\n".join(lines)


def step_table(steps: Sequence[str], emu: Sequence[EmuResult]) -> list[str]:
    """Instructions per step of asm/main.s (bench/steps.py), pvhfw under the fw_cfg of the
    TCG runs, DMA, with ACPI and without."""
    runs = [r for r in emu if r.image == "pvh" and r.dma and r.tcg_twin and r.steps]
    if not runs:
        return []
    head = ["step (asm/main.s)", *(r.label.replace(", as the TCG runs", "") for r in runs)]
    rows: list[list[object]] = [
        [f"`{step}`", *(f"{r.steps[step]:,}" if step in r.steps else "-" for r in runs)]
        for step in steps
        if any(step in r.steps for r in runs)
    ]
    rows.append(["total", *(f"{r.instructions:,}" for r in runs)])
    return [
        "### Where the instructions go (emulator, fw_cfg as the TCG runs)",
        "",
        "Each instruction is counted to the step of asm/main.s it ran under, its callees "
        "included (fw_cfg reads, searches and checksums count to the step that asked); "
        "`start32` is main.s's own instructions, `reset16` the 16-bit code before them.",
        "",
        *markdown_table(head, rows),
        "",
    ]


def report_json(
    meta: dict[str, Any],
    emu: Sequence[EmuResult],
    tcg: Sequence[TcgResult],
    kvm_runs: Sequence[KvmRun],
    kvm_exits: Sequence[KvmExits],
    kvm: Sequence[KvmSummary],
    verdict: Sequence[Verdict],
) -> dict[str, Any]:
    return {
        "format": 1,
        "meta": meta,
        "emulator": [asdict(r) for r in emu],
        "tcg": [r.to_json() for r in tcg],
        "kvm": {
            "label": kvm_label(meta["kvm_backend"]) if kvm_runs else None,
            "runs": [{**asdict(r), "seconds": round(r.seconds, 6), "ok": r.ok} for r in kvm_runs],
            "traced_runs": [{**asdict(e), "total_exits": e.total_exits} for e in kvm_exits],
            "summary": [asdict(s) for s in kvm],
        },
        "targets": [asdict(v) for v in verdict],
    }
