"""pvhfw-bench: time to the kernel and to userspace, firmware by firmware, on one QEMU.
A development tool, run from a checkout (it builds the test kernels):

    python3 -m bench.boot [--runs N] [--userspace-runs M] [--seabios-kvm-runs K]
                          [--machines pc,q35,microvm] [--accels kvm,tcg] [--no-userspace]
                          [--no-counts] [--json OUT] [--markdown OUT] [--work-dir DIR]

The founding document's table (time to fw_start, fw_do_boot, the kernel, userspace; for
qboot + vmlinux, qboot + bzImage, SeaBIOS + bzImage), reproduced for our firmware and for the
firmwares stock QEMU ships, on the same QEMU, kernels and initramfs, in one run (--qemu, by
default $PVHFW_QEMU or qemu-system-x86_64; QEMU's firmware files are that binary's). Rows:

  pvhfw + vmlinux (PVH)           this project's firmware, built by build-fw for the kernel
  floor + vmlinux                 32-bit switch + jump (`build-fw --variant floor`): the floor
  SeaBIOS + vmlinux (pvh.bin)     QEMU's default on pc/q35, its PVH option ROM; on microvm
                                  SeaBIOS's 128 KiB build (bios.bin, from the QEMU's files)
  qboot + vmlinux (pvh.bin)       qboot.rom on pc/q35; bios-microvm.bin (a qboot) on microvm
  SeaBIOS + bzImage               linuxboot_dma.bin
  qboot + bzImage

Phases, as the NEMU method did: each run ends QEMU through isa-debug-exit at an exit point,
and QEMU's trace log, time-stamped (`-msg timestamp=on`), gives the moments in between.

  qemu_init_end     fork -> QEMU starts the VM (trace event vm_state_notify, running)
  first instr.      -> the first KVM_RUN (KVM only: the vCPU enters the guest)
  fw_start          -> port 0xf5 = 1 (pvhfw, floor); others: "~" the first port access
  fw_do_boot        -> port 0xf5 = 5 (pvhfw); others: "~" the last fw_cfg access before the entry
  kernel entry      -> a kernel that ends QEMU at its first instruction: tests/kernels'
                       exitfirst (ELF, PVH entry) or exitfirst-bz (bzImage, setup entry);
                       the time stamp of its isa-debug-exit write
  userspace         fork -> reap of a boot of Debian's cloud kernel whose init writes 7
                       (linux_start_user) to isa-debug-exit (TCG only: no Linux reaches
                       userspace under this machine's PVM-based KVM)

Runs of the rows alternate, each round rotated one place (A B C, B C A, ...), so drift hits
all rows alike; ratios to the pvhfw row are taken pair by pair (the same round) and their
median reported. Counts that do not depend on the machine: instructions and port accesses
from reset to the kernel entry (TCG single-step exec log, bench/execlog.py), KVM exits and
port accesses to the entry (trace events). Times under this machine's PVM-based KVM or under
TCG are not real-hardware times: the tables say which.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.execlog import ExecCount, count_method, parse_trace
from bench.host import host_line, kvm_backend, qemu_facts, qemu_line
from bench.procs import (
    TCG_TRACE_EVENTS,
    LogRequest,
    alternating_schedule,
    run_exec_log,
    timed_process,
)
from bench.report import (
    accel_title,
    markdown_table,
    progress,
    ratio_cell,
    utc_date,
    write_json,
)
from bench.stats import Stats, median_of_pairs
from pvhfw.builder.build import build
from pvhfw.builder.errors import BuildError
from tools.guest import tcg_kernel_args
from tools.qemu import MACHINES, QBOOT_ROM, SEABIOS_128K, data_file, qemu_binary, qemu_path
from tools.qemu import qemu_command as build_command

ACCELS = ("kvm", "tcg")  # the tables' order
MEMORY = "512"
ENTRY_STATUS = 33  # exitfirst / exitfirst-bz: 0x10 -> (0x10 << 1) | 1
USERSPACE_STATUS = 15  # the initramfs's init: 7 (linux_start_user) -> (7 << 1) | 1
APPEND = "console=ttyS0"
BZIMAGE_SETUP_ENTRY = 0x10200  # QEMU puts a protocol >= 2.02 setup at 0x10000; entry +0x200
OURS = "pvhfw-vmlinux"
ENTRY_EVENTS = (
    "vm_state_notify",
    "kvm_vcpu_ioctl",
    "kvm_run_exit",
    "memory_region_ops_read",
    "memory_region_ops_write",
)
USERSPACE_EVENTS = ("vm_state_notify",)
PHASES = ("qemu_init_end", "first_instr", "fw_start", "fw_do_boot", "entry", "userspace")
PHASE_TITLES = {
    "qemu_init_end": "qemu_init_end",
    "first_instr": "first instr. (KVM_RUN)",
    "fw_start": "fw_start",
    "fw_do_boot": "fw_do_boot",
    "entry": "kernel entry",
    "userspace": "userspace",
}


# ---- the rows -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BootPath:
    key: str
    label: str
    firmware: str  # pvhfw | floor | seabios | qboot
    kernel: str  # vmlinux | bzimage
    machines: tuple[str, ...]
    # where it boots Debian's kernel to userspace (None: everywhere in `machines`)
    userspace_on: tuple[str, ...] | None = None

    def bios(self, machine: str, images: dict[str, Path], qemu: str | None = None) -> str | None:
        """The -bios argument (None: the machine's default firmware); our images are built
        for each row's kernel, keyed by the row; QEMU's own files are those of the binary
        `qemu` (tools.qemu.data_file: qboot.rom, SeaBIOS's 128 KiB bios.bin, since microvm's
        BIOS window is too small for the 256 KiB build)."""
        if self.firmware in ("pvhfw", "floor"):
            return str(images[self.key])
        if self.firmware == "qboot" and machine != "microvm":
            return data_file(QBOOT_ROM, qemu)
        if self.firmware == "seabios" and machine == "microvm":
            return data_file(SEABIOS_128K, qemu)
        return None  # SeaBIOS on pc/q35, bios-microvm.bin (qboot) on microvm

    def boots_userspace(self, machine: str) -> bool:
        return machine in (self.machines if self.userspace_on is None else self.userspace_on)

    def label_on(self, machine: str) -> str:
        if self.firmware == "qboot" and machine == "microvm":
            return self.label.replace("qboot", "qboot (bios-microvm.bin)")
        if self.firmware == "seabios" and machine == "microvm":
            return self.label.replace("SeaBIOS", "SeaBIOS (bios.bin)")
        return self.label

    @property
    def entry_kind(self) -> str:
        """Which first instruction of the kernel ends the firmware's phase: a bzImage is
        entered at its real-mode setup by SeaBIOS and qboot, at code32_start by pvhfw."""
        return (
            "bzimage-linux32"
            if self.firmware == "pvhfw" and self.kernel == "bzimage"
            else self.kernel
        )


PATHS = (
    BootPath(
        key=OURS,
        label="pvhfw + vmlinux (PVH)",
        firmware="pvhfw",
        kernel="vmlinux",
        machines=MACHINES,
    ),
    BootPath(
        key="pvhfw-bzimage",
        label="pvhfw + bzImage (32-bit entry)",
        firmware="pvhfw",
        kernel="bzimage",
        machines=MACHINES,
    ),
    BootPath(
        key="floor-vmlinux",
        label="floor + vmlinux",
        firmware="floor",
        kernel="vmlinux",
        machines=MACHINES,
        userspace_on=(),
    ),
    BootPath(
        key="seabios-vmlinux",
        label="SeaBIOS + vmlinux (pvh.bin)",
        firmware="seabios",
        kernel="vmlinux",
        machines=MACHINES,
        # on microvm Linux takes a double fault as soon as interrupts are on
        # (docs/performance.md)
        userspace_on=("pc", "q35"),
    ),
    BootPath(
        key="qboot-vmlinux",
        label="qboot + vmlinux (pvh.bin)",
        firmware="qboot",
        kernel="vmlinux",
        machines=MACHINES,
    ),
    BootPath(
        key="seabios-bzimage",
        label="SeaBIOS + bzImage",
        firmware="seabios",
        kernel="bzimage",
        machines=MACHINES,
    ),
    BootPath(
        key="qboot-bzimage",
        label="qboot + bzImage",
        firmware="qboot",
        kernel="bzimage",
        machines=MACHINES,
    ),
)
PATH_BY_KEY = {p.key: p for p in PATHS}


def qemu_command(
    qemu: str,
    accel: str,
    machine: str,
    bios: str | None,
    kernel: Path,
    *,
    initrd: Path | None = None,
    append: str | None = None,
    log: Path | None = None,
    events: Sequence[str] = (),
    exec_log: LogRequest | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """One run's command line (tools.qemu's); `log` gets the time-stamped trace `events`, or
    with `exec_log` TCG's single-step exec log and the events its counter reads, unstamped.
    Every row runs as a Linux guest does (the CPU model, microvm's PIT under TCG), to the
    kernel entry as to userspace: the same machine for both phases."""
    if exec_log:
        if accel != "tcg" or log is None:
            raise ValueError("an exec-log run is a TCG run with a log path")
        return build_command(
            qemu=qemu,
            machine=machine,
            accel=accel,
            linux=True,
            memory=MEMORY,
            bios=bios,
            kernel=kernel,
            singlestep=True,
            debug=exec_log.items,
            dfilter=exec_log.dfilter,
            log=log,
            trace=TCG_TRACE_EVENTS,
            extra=extra,
        )
    return build_command(
        qemu=qemu,
        machine=machine,
        accel=accel,
        linux=True,
        memory=MEMORY,
        bios=bios,
        kernel=kernel,
        initrd=initrd,
        append=append,
        timestamp=log is not None,
        log=log,
        trace=events if log is not None else (),
        extra=extra,
    )


# ---- runs ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Run:
    accel: str
    machine: str
    path: str
    phase: str  # "entry" | "userspace"
    round: int  # negative: warm-up
    returncode: int | None
    seconds: float  # fork -> reap
    phases_ms: dict[str, float] = field(default_factory=dict)  # fork -> each phase
    proxies: list[str] = field(default_factory=list)
    port_accesses: int | None = None
    kvm_exits: int | None = None
    stderr: str = ""

    @property
    def ok(self) -> bool:
        want = ENTRY_STATUS if self.phase == "entry" else USERSPACE_STATUS
        return self.returncode == want and (self.phase != "entry" or "entry" in self.phases_ms)


@dataclass(kw_only=True)
class Kernels:
    entry: dict[str, Path]  # vmlinux / bzimage: the exit-at-first-instruction kernels
    entry_pc: dict[str, int]  # BootPath.entry_kind -> the first instruction's linear address
    userspace: dict[str, Path]  # Debian's vmlinux / bzImage
    initrd: Path | None
    debian_version: str | None
    images: dict[str, dict[str, Path]]  # phase -> {row key: our image for its kernel}


def prepare(work: Path, userspace: bool, log: Callable[[str], None]) -> Kernels:
    """Build the test kernels and our images; fetch Debian's kernel and the initramfs."""
    from tests.kernels.build import build_bzimage, build_kernel, elf_pvh_entry

    kdir = work / "kernels"
    elf = build_kernel("exitfirst", kdir)
    bz = build_bzimage(kdir)
    images: dict[str, dict[str, Path]] = {"entry": {}, "userspace": {}}
    ours = (
        ("pvhfw-vmlinux", elf, "pvh"),
        ("floor-vmlinux", elf, "floor"),
        ("pvhfw-bzimage", bz, "pvh"),
    )
    patches = {}
    for key, kernel, variant in ours:
        result = build(kernel.read_bytes(), str(kernel), variant)
        images["entry"][key] = work / f"{key}.bin"
        images["entry"][key].write_bytes(result.image)
        patches[key] = result.patches
    kernels = Kernels(
        entry={"vmlinux": elf, "bzimage": bz},
        entry_pc={
            "vmlinux": elf_pvh_entry(elf),
            "bzimage": BZIMAGE_SETUP_ENTRY,
            "bzimage-linux32": patches["pvhfw-bzimage"]["entry"],  # code32_start
        },
        userspace={},
        initrd=None,
        debian_version=None,
        images=images,
    )
    if userspace:
        from tools.debian_kernel import ensure_debian_kernel
        from tools.initramfs import ensure_initramfs

        log("[prepare] Debian kernel and initramfs (cached) ...")
        deb = ensure_debian_kernel()
        kernels.userspace = {"vmlinux": deb.vmlinux, "bzimage": deb.bzimage}
        kernels.initrd = ensure_initramfs()
        kernels.debian_version = deb.version
        for key, kernel in (("pvhfw-vmlinux", deb.vmlinux), ("pvhfw-bzimage", deb.bzimage)):
            images["userspace"][key] = work / f"debian-{key}.bin"
            images["userspace"][key].write_bytes(build(kernel.read_bytes(), str(kernel)).image)
    return kernels


def run_once(
    qemu: str,
    accel: str,
    machine: str,
    path: BootPath,
    phase: str,
    rnd: int,
    kernels: Kernels,
    work: Path,
    timeout: float,
) -> Run:
    trace = work / f"trace-{accel}-{machine}-{path.key}-{phase}.log"
    trace.unlink(missing_ok=True)
    bios = path.bios(machine, kernels.images[phase], qemu)
    if phase == "entry":
        cmd = qemu_command(
            qemu,
            accel,
            machine,
            bios,
            kernels.entry[path.kernel],
            log=trace,
            events=ENTRY_EVENTS if accel == "kvm" else ENTRY_EVENTS[:1] + ENTRY_EVENTS[3:],
        )
    else:
        cmd = qemu_command(
            qemu,
            accel,
            machine,
            bios,
            kernels.userspace[path.kernel],
            initrd=kernels.initrd,
            append=" ".join([APPEND, *tcg_kernel_args(machine, accel)]),
            log=trace,
            events=USERSPACE_EVENTS,
        )
    timed = timed_process(cmd, timeout)
    run = Run(
        accel=accel,
        machine=machine,
        path=path.key,
        phase=phase,
        round=rnd,
        returncode=timed.returncode,
        seconds=timed.seconds,
    )
    if trace.exists():
        summary = parse_trace(trace.read_text(errors="replace"))
        run.phases_ms = {k: (v - timed.fork_wall) * 1e3 for k, v in summary.stamps.items()}
        run.proxies = sorted(summary.proxies)
        if phase == "entry":
            run.port_accesses = summary.port_accesses
            run.kvm_exits = summary.kvm_exits if accel == "kvm" else None
    if phase == "userspace" and timed.returncode == USERSPACE_STATUS:
        run.phases_ms["userspace"] = timed.seconds * 1e3
    if not run.ok:
        run.stderr = timed.stderr[-2000:]
    return run


def paths_on(machine: str, selected: Sequence[str]) -> list[BootPath]:
    return [p for p in PATHS if machine in p.machines and p.key in selected]


def run_matrix(
    qemu: str,
    accels: Sequence[str],
    machines: Sequence[str],
    selected: Sequence[str],
    kernels: Kernels,
    work: Path,
    *,
    runs: int,
    userspace_runs: int,
    seabios_kvm_runs: int,
    warmup: int,
    timeout: float,
    log: Callable[[str], None],
) -> list[Run]:
    out: list[Run] = []
    for accel in accels:
        for machine in machines:
            paths = paths_on(machine, selected)
            phases = ["entry"]
            if accel == "tcg" and userspace_runs > 0 and kernels.initrd is not None:
                phases.append("userspace")
            for phase in phases:
                subjects = [p for p in paths if phase == "entry" or p.boots_userspace(machine)]
                counts = {}
                for p in subjects:
                    n = runs if phase == "entry" else userspace_runs
                    if accel == "kvm" and p.firmware == "seabios":
                        n = min(n, seabios_kvm_runs)
                    counts[p.key] = n
                schedule = alternating_schedule([p.key for p in subjects], counts, warmup)
                log(f"[{accel}] {machine} {phase}: {len(schedule)} runs")
                for rnd, key in schedule:
                    run = run_once(
                        qemu, accel, machine, PATH_BY_KEY[key], phase, rnd, kernels, work, timeout
                    )
                    if not run.ok:
                        log(
                            f"[{accel}] {machine} {key} {phase} round {rnd}: status "
                            f"{run.returncode}: {run.stderr.strip()[-300:]}"
                        )
                    out.append(run)
    return out


# ---- counts: instructions from reset to the entry (TCG exec log) --------------------------


@dataclass(kw_only=True)
class Count:
    machine: str
    path: str
    returncode: int | None
    count: ExecCount

    @property
    def ok(self) -> bool:
        return self.returncode == ENTRY_STATUS and self.count.reached_entry


def run_counts(
    qemu: str,
    machines: Sequence[str],
    selected: Sequence[str],
    kernels: Kernels,
    timeout: float,
    log: Callable[[str], None],
) -> list[Count]:
    out = []
    for machine in machines:
        for p in paths_on(machine, selected):
            bios = p.bios(machine, kernels.images["entry"], qemu)
            kernel = kernels.entry[p.kernel]

            def make_cmd(
                log_path: Path,
                request: LogRequest,
                machine: str = machine,
                bios: str | None = bios,
                kernel: Path = kernel,
            ) -> list[str]:
                return qemu_command(
                    qemu, "tcg", machine, bios, kernel, log=log_path, exec_log=request
                )

            entry = kernels.entry_pc[p.entry_kind]
            run = run_exec_log(make_cmd, entry, timeout)
            count = run.count
            log(
                f"[count] {machine} {p.key}: {count.instructions:,} instructions, "
                f"{count.port_accesses} port accesses ({run.seconds:.1f} s)"
            )
            out.append(Count(machine=machine, path=p.key, returncode=run.returncode, count=count))
    return out


# ---- summary ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Row:
    accel: str
    machine: str
    path: str
    label: str
    runs: int  # measured kernel-entry runs that reached their exit point
    userspace_runs: int  # ... and boots to userspace
    failed: int
    phases: dict[str, Stats]  # ms from the fork (kernel-entry runs; userspace: its own runs)
    steps: dict[str, Stats]  # ms from the phase before, run by run
    proxies: list[str]
    ratio_entry: float | None  # median of per-round ratios to the pvhfw row, fork -> entry
    ratio_userspace: float | None
    port_accesses: float | None  # median, to the entry
    kvm_exits: float | None


def pairwise_ratio(mine: Sequence[Run], ours: Sequence[Run], phase: str) -> float | None:
    """Median over rounds of (this row's time / the pvhfw row's time in the same round)."""
    by_round = {r.round: r.phases_ms[phase] for r in ours if phase in r.phases_ms}
    return median_of_pairs(
        (r.phases_ms[phase], by_round[r.round])
        for r in mine
        if phase in r.phases_ms and r.round in by_round
    )


def run_step(run: Run, phase: str) -> float | None:
    """ms from the latest earlier phase of the same run to `phase` (None: first, or absent;
    userspace runs have no earlier phase to step from)."""
    if phase not in run.phases_ms or phase == "userspace":
        return None
    earlier = [run.phases_ms[p] for p in PHASES[: PHASES.index(phase)] if p in run.phases_ms]
    return run.phases_ms[phase] - earlier[-1] if earlier else None


def summarize(runs: Sequence[Run]) -> list[Row]:
    keys = list(dict.fromkeys((r.accel, r.machine, r.path) for r in runs))
    rows = []
    for accel, machine, key in keys:
        mine = [r for r in runs if (r.accel, r.machine, r.path) == (accel, machine, key)]
        good = [r for r in mine if r.round >= 0 and r.ok]
        ours = [
            r
            for r in runs
            if (r.accel, r.machine, r.path) == (accel, machine, OURS) and r.round >= 0 and r.ok
        ]
        entry_runs = [r for r in good if r.phase == "entry"]
        user_runs = [r for r in good if r.phase == "userspace"]
        phases: dict[str, Stats] = {}
        steps: dict[str, Stats] = {}
        for phase in PHASES:
            source = user_runs if phase == "userspace" else entry_runs
            values = [r.phases_ms[phase] for r in source if phase in r.phases_ms]
            if values:
                phases[phase] = Stats.of(values)
            deltas = [d for r in source if (d := run_step(r, phase)) is not None]
            if deltas:
                steps[phase] = Stats.of(deltas)
        ports = [r.port_accesses for r in entry_runs if r.port_accesses is not None]
        exits = [r.kvm_exits for r in entry_runs if r.kvm_exits is not None]
        rows.append(
            Row(
                accel=accel,
                machine=machine,
                path=key,
                label=PATH_BY_KEY[key].label_on(machine),
                runs=len(entry_runs),
                userspace_runs=len(user_runs),
                failed=sum(1 for r in mine if not r.ok),
                phases=phases,
                steps=steps,
                proxies=sorted({p for r in entry_runs for p in r.proxies}),
                ratio_entry=pairwise_ratio(
                    entry_runs, [r for r in ours if r.phase == "entry"], "entry"
                ),
                ratio_userspace=pairwise_ratio(
                    [r for r in good if r.phase == "userspace"],
                    [r for r in ours if r.phase == "userspace"],
                    "userspace",
                ),
                port_accesses=statistics.median(ports) if ports else None,
                kvm_exits=statistics.median(exits) if exits else None,
            )
        )
    return rows


# ---- report -------------------------------------------------------------------------------


def _phase_cells(row: Row, with_first_instr: bool) -> list[str]:
    cells = []
    for phase in PHASES:
        if phase == "first_instr" and not with_first_instr:
            continue
        st, step = row.phases.get(phase), row.steps.get(phase)
        if st is None:
            cells.append("-")
            continue
        mark = "~" if phase in row.proxies else ""
        cells.append(f"{mark}{st.median:.2f}" + ("" if step is None else f" (+{step.median:.2f})"))
    return cells


def render(meta: dict[str, Any], rows: Sequence[Row], counts: Sequence[Count]) -> str:
    lines = [
        "# Boot phases, firmware by firmware",
        "",
        f"{meta['qemu_version']}; `-m {MEMORY}`; entry kernels: tests/kernels' `exitfirst` "
        "(ELF, PVH entry) and `exitfirst-bz` (bzImage); userspace: "
        f"{meta['debian_kernel'] or 'not run'} with the project's busybox initramfs, "
        f"`-append {meta['append']}` (on microvm under TCG also "
        f"`{meta['append_microvm_tcg']}`: tools/guest.py); "
        f"{meta['date']}; {meta['host']}.",
        "",
        "Milliseconds from the fork of QEMU, median of the runs (+ median of the step from "
        "the phase before, run by run). `~`: not written by the firmware, observed from "
        "outside (fw_start: its first port access; fw_do_boot: its last fw_cfg access "
        "before the entry). Kernel entry and userspace come from separate runs, each "
        "ending QEMU at that point. Ratios: to the pvhfw row, run by run in the same "
        "round, median.",
        "",
    ]
    for accel in dict.fromkeys(r.accel for r in rows):
        lines += [f"## {accel_title(accel, meta['kvm_backend'])}", ""]
        kvm = accel == "kvm"
        for machine in dict.fromkeys(r.machine for r in rows if r.accel == accel):
            group = [r for r in rows if (r.accel, r.machine) == (accel, machine)]
            header = ["path", *(PHASE_TITLES[p] for p in PHASES if kvm or p != "first_instr")]
            header += ["entry / pvhfw", "userspace / pvhfw", "runs: entry + userspace"]
            body = [
                [
                    r.label,
                    *_phase_cells(r, kvm),
                    ratio_cell(r.ratio_entry),
                    ratio_cell(r.ratio_userspace),
                    f"{r.runs} + {r.userspace_runs}"
                    + (f" ({r.failed} failed)" if r.failed else ""),
                ]
                for r in group
            ]
            lines += [f"### `-M {machine}`", ""]
            lines += markdown_table(header, body)
            lines.append("")
        if kvm:
            lines += [
                "Userspace: - under this KVM (PVM: no stock Linux gets past early boot).",
                "",
            ]
    lines += ["## Spread: min / median / max, ms", ""]
    spread = []
    for r in rows:
        for phase in ("entry", "userspace"):
            st = r.phases.get(phase)
            if st is not None:
                spread.append(
                    [
                        r.accel,
                        r.machine,
                        r.label,
                        PHASE_TITLES[phase],
                        st.n,
                        f"{st.min:.2f}",
                        f"{st.median:.2f}",
                        f"{st.max:.2f}",
                    ]
                )
    lines += markdown_table(
        ["accel", "machine", "path", "phase", "runs", "min", "median", "max"], spread
    )
    lines.append("")
    lines += [
        "## Counts, reset -> kernel entry",
        "",
        f"Instructions: {count_method(c.count for c in counts)}; port accesses: vCPU "
        "`memory_region_ops_*` events below 0x10000 (TCG exec-log run; KVM: median of the "
        "timed runs); KVM exits: `kvm_run_exit` events before the entry's own.",
        "",
    ]
    kvm_rows = {(r.machine, r.path): r for r in rows if r.accel == "kvm"}
    body = []
    for c in counts:
        k = kvm_rows.get((c.machine, c.path))
        body.append(
            [
                c.machine,
                PATH_BY_KEY[c.path].label_on(c.machine),
                f"{c.count.instructions:,}" if c.ok else f"failed (status {c.returncode})",
                str(c.count.port_accesses),
                str(c.count.fwcfg_accesses),
                "-" if k is None or k.kvm_exits is None else f"{k.kvm_exits:,.0f}",
            ]
        )
    for machine, key in kvm_rows:
        if not any((c.machine, c.path) == (machine, key) for c in counts):
            k = kvm_rows[(machine, key)]
            exits = "-" if k.kvm_exits is None else f"{k.kvm_exits:,.0f}"
            body.append([machine, k.label, "-", "-", "-", exits])
    lines += markdown_table(
        ["machine", "path", "instructions", "port accesses", "of them fw_cfg", "KVM exits"],
        body,
    )
    lines.append("")
    return "\n".join(lines)


def report_json(
    meta: dict[str, Any], runs: Sequence[Run], rows: Sequence[Row], counts: Sequence[Count]
) -> dict[str, Any]:
    return {
        "format": 1,
        "meta": meta,
        "runs": [{**asdict(r), "ok": r.ok} for r in runs],
        "summary": [asdict(r) for r in rows],
        "counts": [
            {"machine": c.machine, "path": c.path, "returncode": c.returncode, "ok": c.ok}
            | c.count.to_json()
            for c in counts
        ],
    }


# ---- main ---------------------------------------------------------------------------------


def _csv(text: str, known: Sequence[str], what: str, p: argparse.ArgumentParser) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in items if x not in known]
    if unknown or not items:
        p.error(f"{what}: choose from {','.join(known)}")
    return items


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m bench.boot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=10, help="kernel-entry runs per row (default 10)")
    p.add_argument(
        "--userspace-runs",
        type=int,
        default=3,
        help="TCG boots of the Debian kernel to userspace per row (default 3; 0: none)",
    )
    p.add_argument(
        "--seabios-kvm-runs",
        type=int,
        default=3,
        help="at most this many SeaBIOS runs under KVM (~4.5 s each under PVM; default 3)",
    )
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    p.add_argument("--machines", default=",".join(MACHINES), help="default pc,q35,microvm")
    p.add_argument("--accels", default=",".join(ACCELS), help="default kvm,tcg")
    p.add_argument(
        "--paths",
        default=",".join(p.key for p in PATHS),
        help="rows, default all: " + ",".join(p.key for p in PATHS),
    )
    p.add_argument("--no-userspace", action="store_true", help="same as --userspace-runs 0")
    p.add_argument("--no-counts", action="store_true", help="no TCG exec-log counts")
    p.add_argument("--json", type=Path, help="write every run and the summary here")
    p.add_argument("--markdown", type=Path, help="also write the tables here")
    p.add_argument("--work-dir", type=Path, help="keep kernels, images and trace logs here")
    p.add_argument(
        "--qemu",
        default=qemu_binary(),
        help="QEMU binary (default: $PVHFW_QEMU, else qemu-system-x86_64; here %(default)s)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per QEMU run (default 120)"
    )
    a = p.parse_args(argv)
    a.machines = _csv(a.machines, MACHINES, "--machines", p)
    a.accels = _csv(a.accels, ACCELS, "--accels", p)
    a.paths = _csv(a.paths, [x.key for x in PATHS], "--paths", p)
    if OURS not in a.paths:
        p.error(f"--paths must include {OURS}: the ratios are to it")
    if a.no_userspace:
        a.userspace_runs = 0
    if a.runs < 1 or a.userspace_runs < 0 or a.seabios_kvm_runs < 0 or a.warmup < 0:
        p.error("--runs must be >= 1; --userspace-runs, --seabios-kvm-runs, --warmup >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    qemu = qemu_path(a.qemu)
    if qemu is None:
        progress(
            f"pvhfw-bench: {a.qemu} not found: install qemu-system-x86 (tools/setup.sh), "
            "or set PVHFW_QEMU or --qemu"
        )
        return 2
    progress(qemu_line(qemu))
    backend = kvm_backend()
    accels = list(a.accels)
    if "kvm" in accels and backend == "none":
        progress("pvhfw-bench: /dev/kvm is missing or not accessible: the KVM rows are left out")
        accels.remove("kvm")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pvhfw-bench-") as tmp:
        work = a.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        userspace = a.userspace_runs > 0 and "tcg" in accels
        try:
            kernels = prepare(work, userspace, progress)
        except BuildError as exc:
            progress(f"pvhfw-bench: build-fw: {exc}")
            return 1
        except Exception as exc:  # the kernel build and the Debian download raise their own
            progress(f"pvhfw-bench: preparing the kernels failed: {type(exc).__name__}: {exc}")
            return 1
        meta: dict[str, Any] = {
            **qemu_facts(qemu),
            "kvm_backend": backend,
            "host": host_line(backend),
            "date": utc_date(),
            "debian_kernel": kernels.debian_version,
            "memory_mib": int(MEMORY),
            "append": APPEND,
            "append_microvm_tcg": " ".join(tcg_kernel_args("microvm", "tcg")),
            "runs": a.runs,
            "userspace_runs": a.userspace_runs,
            "seabios_kvm_runs": a.seabios_kvm_runs,
            "warmup": a.warmup,
            "machines": a.machines,
            "accels": accels,
            "paths": a.paths,
        }
        runs = run_matrix(
            qemu,
            accels,
            a.machines,
            a.paths,
            kernels,
            work,
            runs=a.runs,
            userspace_runs=a.userspace_runs if userspace else 0,
            seabios_kvm_runs=a.seabios_kvm_runs,
            warmup=a.warmup,
            timeout=a.timeout,
            log=progress,
        )
        counts = (
            []
            if a.no_counts
            else run_counts(qemu, a.machines, a.paths, kernels, a.timeout, progress)
        )
    rows = summarize(runs)
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    text = render(meta, rows, counts)
    print(text)
    print(f"(benchmark took {meta['duration_s']} s)")
    if a.markdown is not None:
        a.markdown.write_text(text + "\n")
    if a.json is not None:
        write_json(a.json, report_json(meta, runs, rows, counts))
    failed = [r for r in runs if not r.ok and r.round >= 0] + [c for c in counts if not c.ok]
    if failed:
        progress(f"pvhfw-bench: {len(failed)} run(s) did not reach their exit point")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
