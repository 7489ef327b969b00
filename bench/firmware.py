"""The firmware benchmark: reset -> kernel entry, counted three ways.

    python3 -m bench.firmware [--runs N] [--json OUT] [--machines pc,q35,microvm]
                              [--skip-kvm] [--skip-tcg] [--skip-emu] [--skip-seabios]
                              [--seabios-runs M] [--warmup W] [--work-dir DIR]

The kernel is tests/kernels' `exitfirst` (its first instructions end QEMU through
isa-debug-exit with status 33), built from source; the images are build-fw's `pvh` variant
and its `floor` variant (switch to 32-bit mode, jump: the baseline), both built for it, and
the any-kernel image (`build-fw --any-kernel`, which checks the kernel at run time: its rows
show what those checks cost).

1. Emulator counts (tests/emu, unicorn): both images under SimFwCfg configured as QEMU 7.2
   configures fw_cfg for `-M pc -m 512 -smp 2 -kernel exitfirst`, `-append`, a 4 KiB `-initrd`
   (DMA, and I/O ports only), and for each machine exactly as in the TCG runs; instructions and
   port accesses (all, fw_cfg only) from reset to the entry.
2. TCG instruction counts from outside: `-singlestep -d exec,nochain,in_asm` (QEMU >= 8.1:
   `-accel tcg,one-insn-per-tb=on`, and a second run for the rep iterations: bench/execlog.py)
   with the `memory_region_ops_*` and `fw_cfg_add_file` trace events, streamed through a FIFO
   and counted up to the first instruction at the kernel entry: our two images and QEMU's
   own firmwares (SeaBIOS + pvh.bin and qboot.rom on pc/q35, bios-microvm.bin on microvm).
3. KVM wall time of the whole QEMU process (fork to reap), runs alternating between the
   firmwares (A B A B ...), min/median/max, peak RSS, and the ratio of medians ours/floor.
   Under PVM (this machine's /dev/kvm) guest firmware runs in KVM's instruction emulator: the
   tables say so.

Markdown tables go to stdout, progress to stderr, every measurement to --json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.execlog import ExecCount, ExecLogCounter, parse_trace
from bench.firmware_report import (
    MAX_INSTRUCTIONS,
    MAX_KVM_EXITS,
    MAX_KVM_RATIO,
    MAX_PORT_ACCESSES,
    QBOOT_FRACTION,
    render,
    report_json,
    verdicts,
)
from bench.host import host_facts, kvm_backend, qemu_facts, qemu_line
from bench.procs import (
    EXEC_LOG_ITEMS,
    TCG_TRACE_EVENTS,
    LogRequest,
    alternating_schedule,
    run_exec_log,
    timed_process,
)
from bench.profiles import RAM_SIZE as PROFILE_RAM_SIZE
from bench.profiles import MachineProfile, load_segments, sim_fwcfg
from bench.profiles import profile as machine_profile
from bench.report import progress, utc_date, write_json
from bench.stats import Stats, delta_of_medians, firmware_ratio, ratio_of_medians
from bench.steps import cost_by_step, main_steps
from pvhfw.builder.build import BuildResult, build, build_any_kernel
from pvhfw.builder.kernel import Kernel
from tests.acpi_loader import BASE_QEMU, RECORDED_QEMUS
from tools.qemu import (
    MACHINES,
    QBOOT_ROM,
    data_file,
    qemu_binary,
    qemu_path,
    qemu_series,
    qemu_version,
)
from tools.qemu import qemu_command as build_command

MEMORY = "512"  # and -smp 2: the configuration the ACPI files in bench/profiles.py are from
SMP = "2"
EXIT_STATUS = 33  # exitfirst writes 0x10 to 0xf4: (0x10 << 1) | 1
NO_DMA = ("-global", "fw_cfg_io.dma_enabled=off")  # FW_CFG_ID without DMA: I/O ports only

INITRD_SIZE = 4096
CMDLINE = b"console=ttyS0 earlyprintk=serial"

Accel = Literal["tcg", "kvm"]


# ---- the firmwares ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Firmware:
    key: str
    label: str
    machines: tuple[str, ...]
    bios: str | None  # -bios argument; None: the machine's default firmware
    ours: bool = False
    extra: tuple[str, ...] = ()  # more QEMU arguments
    kvm: bool = True  # part of the KVM timing (else TCG counts only)


def firmwares(images: dict[str, Path], qemu: str | None = None) -> list[Firmware]:
    """Ours first, then QEMU's own, each with the machine types it applies to; qboot's ROM is
    the one of the QEMU binary `qemu` (tools.qemu.data_file)."""
    pvh, floor, any_kernel = str(images["pvh"]), str(images["floor"]), str(images["any"])
    return [
        Firmware(key="pvh", label="pvhfw", machines=MACHINES, bios=pvh, ours=True),
        Firmware(
            key="pvh-any",
            label="pvhfw --any-kernel",
            machines=MACHINES,
            bios=any_kernel,
            ours=True,
            kvm=False,
        ),
        Firmware(
            key="pvh-any-noacpi",
            label="pvhfw --any-kernel, ACPI off",
            machines=MACHINES,
            bios=any_kernel,
            ours=True,
            extra=("-machine", "acpi=off"),
            kvm=False,
        ),
        Firmware(
            key="pvh-nodma",
            label="pvhfw, fw_cfg DMA off",
            machines=MACHINES,
            bios=pvh,
            ours=True,
            extra=NO_DMA,
            kvm=False,
        ),
        Firmware(
            key="pvh-noacpi",
            label="pvhfw, ACPI off (-machine acpi=off)",
            machines=MACHINES,
            bios=pvh,
            ours=True,
            extra=("-machine", "acpi=off"),
        ),
        Firmware(key="floor", label="floor (32-bit switch + jump)", machines=MACHINES, bios=floor),
        Firmware(
            key="qboot",
            label="qboot.rom + pvh.bin",
            machines=("pc", "q35"),
            bios=data_file(QBOOT_ROM, qemu),
        ),
        Firmware(
            key="seabios", label="SeaBIOS + pvh.bin (default)", machines=("pc", "q35"), bios=None
        ),
        Firmware(
            key="microvm-default",
            label="bios-microvm.bin (qboot, default)",
            machines=("microvm",),
            bios=None,
        ),
    ]


def qemu_command(
    qemu: str,
    machine: str,
    bios: str | None,
    kernel: Path,
    accel: Accel,
    log: Path | None = None,
    request: LogRequest | None = None,
    extra: Sequence[str] = (),
    trace: Sequence[str] = (),
) -> list[str]:
    """The command line of one run (tools.qemu's, for a test kernel: QEMU's default CPU under
    TCG, the KVM model under KVM): the TCG form logs every instruction to `log`; the KVM form,
    given `log`, logs the guest's writes there with wall-clock time stamps; `trace`: more
    events (to stderr without `log`)."""
    if accel == "tcg":
        if log is None:
            raise ValueError("a TCG exec-log run needs a log path")
        return build_command(
            qemu=qemu,
            machine=machine,
            accel=accel,
            memory=MEMORY,
            smp=SMP,
            bios=bios,
            kernel=kernel,
            singlestep=True,
            debug=(request or LogRequest(EXEC_LOG_ITEMS)).items,
            dfilter=request.dfilter if request is not None else None,
            log=log,
            trace=[*TCG_TRACE_EVENTS, *trace],
            extra=extra,
        )
    # given a log: boot events with wall-clock stamps (execlog.parse_trace)
    stamped = ("memory_region_ops_write",) if log is not None else ()
    return build_command(
        qemu=qemu,
        machine=machine,
        accel=accel,
        memory=MEMORY,
        smp=SMP,
        bios=bios,
        kernel=kernel,
        timestamp=log is not None,
        log=log,
        trace=[*stamped, *trace],
        extra=extra,
    )


# ---- setup: kernel and images -----------------------------------------------------------


@dataclass(kw_only=True)
class Setup:
    kernel: Path
    entry: int
    images: dict[str, Path]
    builds: dict[str, BuildResult]
    work: Path


def prepare(work: Path) -> Setup:
    from tests.kernels.build import build_kernel, elf_pvh_entry

    kernel = build_kernel("exitfirst", work / "kernels")
    entry = elf_pvh_entry(kernel)
    data = kernel.read_bytes()
    images: dict[str, Path] = {}
    builds: dict[str, BuildResult] = {}
    for variant in ("pvh", "floor"):
        result = build(data, str(kernel), variant)
        if result.kernel is None or result.kernel.entry != entry:
            raise RuntimeError(f"build-fw and the ELF notes disagree on the entry of {kernel}")
        path = work / f"{kernel.stem}-{variant}.bin"
        path.write_bytes(result.image)
        images[variant], builds[variant] = path, result
    builds["any"] = build_any_kernel()
    images["any"] = work / "any-kernel.bin"
    images["any"].write_bytes(builds["any"].image)
    return Setup(kernel=kernel, entry=entry, images=images, builds=builds, work=work)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- 1. emulator ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EmuConfig:
    key: str
    label: str
    machine: str
    cmdline: bytes | None
    initrd_size: int
    dma: bool
    as_tcg: bool  # the fw_cfg of the TCG runs (no -append, no -initrd): comparable to them
    acpi: bool = True  # False: as with -machine acpi=off (no table-loader)
    qemu: str = BASE_QEMU  # the QEMU series whose fw_cfg is simulated (bench.profiles.profile)

    def profile(self) -> MachineProfile:
        p = machine_profile(self.machine, self.qemu)
        return p if self.acpi else p.without_acpi()


def emu_configs(machines: Sequence[str], qemu: str = BASE_QEMU) -> list[EmuConfig]:
    initrd = f"{INITRD_SIZE // 1024} KiB -initrd"
    configs = [
        EmuConfig(
            key="pc-initrd-dma",
            label=f"pc, -append + {initrd}, DMA",
            machine="pc",
            cmdline=CMDLINE,
            initrd_size=INITRD_SIZE,
            dma=True,
            as_tcg=False,
            qemu=qemu,
        ),
        EmuConfig(
            key="pc-initrd-pio",
            label=f"pc, -append + {initrd}, I/O ports only (dma=False)",
            machine="pc",
            cmdline=CMDLINE,
            initrd_size=INITRD_SIZE,
            dma=False,
            as_tcg=False,
            qemu=qemu,
        ),
    ]
    for m in machines:
        for suffix, what, dma, acpi in (
            ("", "", True, True),
            ("-noacpi", ", acpi=off", True, False),
            ("-pio", ", dma=False", False, True),
        ):
            configs.append(
                EmuConfig(
                    key=f"{m}-as-tcg{suffix}",
                    label=f"{m}, as the TCG runs{what}",
                    machine=m,
                    cmdline=None,  # as the TCG runs: no -append, no -initrd
                    initrd_size=0,
                    dma=dma,
                    as_tcg=True,
                    acpi=acpi,
                    qemu=qemu,
                )
            )
    return configs


@dataclass(kw_only=True)
class EmuResult:
    config: str
    label: str
    machine: str
    image: str
    dma: bool
    tcg_twin: str | None  # the TCG firmware key run with the same fw_cfg, if any
    reached_entry: bool
    error: str | None
    instructions: int
    port_accesses: int
    fwcfg_accesses: int
    dma_transfers: int
    violations: list[str]
    ports: list[str]  # "out 0x510/2" in order
    steps: dict[str, int] = field(default_factory=dict)  # instructions per step (bench.steps)


# The firmware key (bench.firmware.firmwares) of each image's runs, before -nodma/-noacpi.
TWIN_KEYS = {"pvh": "pvh", "floor": "floor", "any": "pvh-any"}


def emu_images(config: EmuConfig) -> tuple[str, ...]:
    """The images run under a config: pvhfw's under every one; the floor, which never
    touches fw_cfg, only under DMA with ACPI (its run is the same under any fw_cfg); the
    any-kernel image under those of the TCG runs with DMA (its TCG rows' twins)."""
    out = ["pvh"]
    if config.dma and config.acpi:
        out.append("floor")
    if config.dma and config.as_tcg:
        out.append("any")
    return tuple(out)


def run_emulator(setup: Setup, configs: Sequence[EmuConfig]) -> list[EmuResult]:
    """The images (emu_images) under every config."""
    from tests.emu.machine import run_firmware

    data = setup.kernel.read_bytes()
    ram = load_segments(str(setup.kernel))
    kernel = setup.builds["pvh"].kernel  # what QEMU loads, whichever image boots it
    if not isinstance(kernel, Kernel):
        raise TypeError(f"{setup.kernel}: the emulator models only QEMU's PVH branch")
    results = []
    for config in configs:
        for variant in emu_images(config):
            b = setup.builds[variant]
            initrd = bytes(range(256)) * (config.initrd_size // 256) if config.initrd_size else None
            sim = sim_fwcfg(
                config.profile(),
                kernel,
                data,
                cmdline=config.cmdline,
                initrd=initrd,
                dma=config.dma,
            )
            r = run_firmware(
                b.image,
                sim,
                stop_at=setup.entry,
                ram_init=ram,
                ram_size=PROFILE_RAM_SIZE,
                pci=dict(config.profile().pci),
                profile=variant == "pvh",
            )
            twin = None
            if config.as_tcg:
                key = TWIN_KEYS[variant]
                twin = key if config.dma else f"{key}-nodma"
                if not config.acpi:
                    twin = f"{key}-noacpi"
            results.append(
                EmuResult(
                    config=config.key,
                    label=config.label,
                    machine=config.machine,
                    image=variant,
                    dma=config.dma,
                    tcg_twin=twin,
                    reached_entry=r.stopped_at_entry,
                    error=r.error,
                    instructions=r.instructions,
                    port_accesses=len(r.port_accesses),
                    fwcfg_accesses=r.fwcfg_accesses,
                    dma_transfers=len(sim.dma_log),
                    violations=list(sim.violations),
                    ports=[f"{a.direction} {a.port:#x}/{a.size}" for a in r.port_accesses],
                    steps=cost_by_step(b.firmware, r.trace) if r.trace else {},
                )
            )
    return results


# ---- 2. TCG exec log ----------------------------------------------------------------------


@dataclass(kw_only=True)
class TcgResult:
    machine: str
    firmware: str
    cmd: list[str]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    count: ExecCount
    stderr: str
    emulator_instructions: int | None = None  # the emulator's count for the same fw_cfg
    emulator_port_accesses: int | None = None
    emulator_fwcfg_accesses: int | None = None
    fwcfg_dir_matches_profile: bool | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_STATUS and self.count.reached_entry

    @property
    def agrees(self) -> bool | None:
        if self.emulator_instructions is None:
            return None
        return (
            self.count.instructions == self.emulator_instructions
            and self.count.port_accesses == self.emulator_port_accesses
            and self.count.fwcfg_accesses == self.emulator_fwcfg_accesses
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "firmware": self.firmware,
            "cmd": self.cmd,
            "returncode": self.returncode,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            **self.count.to_json(),
            "emulator_instructions": self.emulator_instructions,
            "emulator_port_accesses": self.emulator_port_accesses,
            "emulator_fwcfg_accesses": self.emulator_fwcfg_accesses,
            "agrees_with_emulator": self.agrees,
            "fwcfg_dir_matches_profile": self.fwcfg_dir_matches_profile,
            "stderr": self.stderr[-2000:],
        }


def run_tcg(
    setup: Setup,
    machines: Sequence[str],
    qemu: str,
    emu: Sequence[EmuResult],
    *,
    seabios: bool,
    timeout: float,
    log: Callable[[str], None],
    series: str = BASE_QEMU,
) -> list[TcgResult]:
    """Every firmware's exec-log count on every machine; ours compared with the emulator's
    twin and their fw_cfg directory with the profile of QEMU series ``series``."""
    twins = {(r.machine, r.tcg_twin): r for r in emu if r.tcg_twin}
    results = []
    for machine in machines:
        for fw in firmwares(setup.images, qemu):
            if machine not in fw.machines or (fw.key == "seabios" and not seabios):
                continue
            log(f"[tcg] {machine} {fw.key} ...")
            make_cmd = functools.partial(
                qemu_command, qemu, machine, fw.bios, setup.kernel, "tcg", extra=fw.extra
            )
            run = run_exec_log(make_cmd, setup.entry, timeout)
            count, rc, seconds = run.count, run.returncode, run.seconds
            result = TcgResult(
                machine=machine,
                firmware=fw.key,
                cmd=run.cmd,
                returncode=rc,
                seconds=seconds,
                count=count,
                stderr=run.stderr,
            )
            twin = twins.get((machine, fw.key))
            if twin is not None:
                result.emulator_instructions = twin.instructions
                result.emulator_port_accesses = twin.port_accesses
                result.emulator_fwcfg_accesses = twin.fwcfg_accesses
            if fw.ours:
                profile = machine_profile(machine, series)
                if fw.key.endswith("-noacpi"):
                    profile = profile.without_acpi()
                result.fwcfg_dir_matches_profile = count.fwcfg_files == profile.directory()
            log(
                f"[tcg] {machine} {fw.key}: {count.instructions:,} instructions, "
                f"{count.port_accesses} port accesses, status {rc}, {seconds:.1f} s"
            )
            results.append(result)
    return results


# ---- 3. KVM wall time -------------------------------------------------------------------


@dataclass(kw_only=True)
class KvmRun:
    machine: str
    firmware: str
    round: int  # negative: warm-up, not in the statistics
    seconds: float
    returncode: int | None
    maxrss_kib: int
    stderr: str = ""
    to_entry: float | None = None  # fork -> the kernel's first instruction (its exit write)
    fw_to_entry: float | None = None  # fw_start (port 0xf5 = 1) -> the kernel's exit write

    @property
    def to_fw_start(self) -> float | None:
        """Fork -> the firmware's first instruction: QEMU's start-up."""
        if self.to_entry is None or self.fw_to_entry is None:
            return None
        return self.to_entry - self.fw_to_entry

    @property
    def ok(self) -> bool:
        return self.returncode == EXIT_STATUS


def run_kvm(
    setup: Setup,
    machines: Sequence[str],
    qemu: str,
    *,
    runs: int,
    seabios_runs: int,
    context: bool,
    warmup: int,
    timeout: float,
    log: Callable[[str], None],
) -> tuple[list[KvmRun], list[KvmExits]]:
    """The timed runs, then one traced run of each firmware for its exit count."""
    out: list[KvmRun] = []
    exits: list[KvmExits] = []
    for machine in machines:
        fws = {f.key: f for f in firmwares(setup.images, qemu) if machine in f.machines and f.kvm}
        counts = {key: runs for key in ("pvh", "pvh-noacpi", "floor")}
        if context:
            counts.update({key: runs for key in ("qboot", "microvm-default") if key in fws})
        if "seabios" in fws:
            counts["seabios"] = seabios_runs
        schedule = alternating_schedule([k for k in fws if k in counts], counts, warmup)
        log(f"[kvm] {machine}: {len(schedule)} runs ({', '.join(counts)})")
        for rnd, key in schedule:
            events = setup.work / f"kvm-{machine}-{key}.log"
            events.unlink(missing_ok=True)
            cmd = qemu_command(
                qemu, machine, fws[key].bios, setup.kernel, "kvm", log=events, extra=fws[key].extra
            )
            timed = timed_process(cmd, timeout)
            run = KvmRun(
                machine=machine,
                firmware=key,
                round=rnd,
                seconds=timed.seconds,
                returncode=timed.returncode,
                maxrss_kib=timed.maxrss_kib,
            )
            if events.exists():
                trace = parse_trace(events.read_text(errors="replace"))
                entry = trace.stamps.get("entry")
                if entry is not None:
                    run.to_entry = entry - timed.fork_wall
                    if "fw_start" in trace.stamps and "fw_start" not in trace.proxies:
                        run.fw_to_entry = entry - trace.stamps["fw_start"]
            if not run.ok:
                run.stderr = timed.stderr[-2000:]
                log(
                    f"[kvm] {machine} {key} round {rnd}: status {timed.returncode}\n"
                    f"{timed.stderr[-500:]}"
                )
            out.append(run)
        for key in dict.fromkeys(k for _, k in schedule):
            exits.append(count_kvm_exits(qemu, machine, fws[key], setup.kernel, timeout))
    return out, exits


KVM_TRACE_EVENTS = ("kvm_run_exit", "memory_region_ops_read", "memory_region_ops_write")
KVM_EXIT_REASONS = {
    2: "io",
    5: "hlt",
    6: "mmio",
    7: "irq_window_open",
    8: "shutdown",
    17: "internal_error",
    24: "system_event",
}
_KVM_EXIT_RE = re.compile(r"^kvm_run_exit cpu_index (\d+), reason (\d+)")


@dataclass(kw_only=True)
class KvmExits:
    """One extra, untimed run with QEMU's kvm_run_exit and memory_region_ops events (to
    stderr): the exits to QEMU (userspace) by reason and the port accesses QEMU handled, over
    the whole run (the kernel's exit write included: one exit, one access)."""

    machine: str
    firmware: str
    returncode: int | None
    exits: dict[str, int]
    port_accesses: int

    @property
    def total_exits(self) -> int:
        return sum(self.exits.values())


def parse_kvm_trace(text: str) -> tuple[dict[str, int], int]:
    """(exits by reason name, vCPU port accesses) from QEMU's trace output."""
    exits: dict[str, int] = {}
    ports = ExecLogCounter(entry=-1)  # no Trace lines: counts every port access
    for line in text.splitlines():
        m = _KVM_EXIT_RE.match(line)
        if m:
            reason = int(m.group(2))
            name = KVM_EXIT_REASONS.get(reason, str(reason))
            exits[name] = exits.get(name, 0) + 1
        elif line.startswith("memory_region_ops_"):
            ports.feed(line.encode())
    return exits, ports.count.port_accesses


def count_kvm_exits(
    qemu: str, machine: str, fw: Firmware, kernel: Path, timeout: float
) -> KvmExits:
    cmd = qemu_command(
        qemu, machine, fw.bios, kernel, "kvm", extra=fw.extra, trace=KVM_TRACE_EVENTS
    )
    timed = timed_process(cmd, timeout)
    exits, ports = parse_kvm_trace(timed.stderr)
    return KvmExits(
        machine=machine,
        firmware=fw.key,
        returncode=timed.returncode,
        exits=exits,
        port_accesses=ports,
    )


@dataclass(frozen=True, kw_only=True)
class KvmSummary:
    machine: str
    firmware: str
    failed: int
    seconds: Stats | None
    maxrss_kib: Stats | None
    ratio_to_floor: float | None
    delta_to_floor_ms: float | None  # median minus the floor's median
    exits: int | None = None  # userspace exits in the traced run
    port_accesses: int | None = None  # port accesses in the traced run
    to_entry: Stats | None = None  # fork -> kernel entry
    to_entry_ratio: float | None = None  # of medians, over the floor's
    to_entry_delta_ms: float | None = None
    fw_to_entry: Stats | None = None  # fw_start -> kernel entry (pvhfw and floor only)
    startup: Stats | None = None  # fork -> fw_start (pvhfw and floor only)
    # (S + median fw_start -> entry) / (S + the floor's), S = the median fork -> fw_start of
    # the runs of both: see firmware_ratio()
    firmware_ratio: float | None = None


def summarize_kvm(runs: Sequence[KvmRun], exits: Sequence[KvmExits] = ()) -> list[KvmSummary]:
    """Per (machine, firmware), measured rounds only; the ratio is of medians over the floor."""
    traced = {(e.machine, e.firmware): e for e in exits}
    keys = list(dict.fromkeys((r.machine, r.firmware) for r in runs))
    good: dict[tuple[str, str], list[KvmRun]] = {
        k: [r for r in runs if (r.machine, r.firmware) == k and r.round >= 0 and r.ok] for k in keys
    }
    out = []
    for machine, fw in keys:
        mine = good[(machine, fw)]
        floor = good.get((machine, "floor"), [])
        failed = sum(1 for r in runs if (r.machine, r.firmware) == (machine, fw) and not r.ok)
        secs = [r.seconds for r in mine]
        floor_secs = [r.seconds for r in floor]
        ratio = delta = None
        if secs and floor_secs:
            ratio = ratio_of_medians(secs, floor_secs)
            delta = delta_of_medians(secs, floor_secs) * 1e3
        entry = [r.to_entry for r in mine if r.to_entry is not None]
        floor_entry = [r.to_entry for r in floor if r.to_entry is not None]
        fw_entry = [r.fw_to_entry for r in mine if r.fw_to_entry is not None]
        floor_fw = [r.fw_to_entry for r in floor if r.fw_to_entry is not None]
        startup = [r.to_fw_start for r in mine if r.to_fw_start is not None]
        pooled = [r.to_fw_start for r in [*mine, *floor] if r.to_fw_start is not None]
        fw_ratio = None
        if fw_entry and floor_fw and fw != "floor":
            fw_ratio = firmware_ratio(pooled, fw_entry, floor_fw)
        e_ratio = e_delta = None
        if entry and floor_entry:
            e_ratio = ratio_of_medians(entry, floor_entry)
            e_delta = delta_of_medians(entry, floor_entry) * 1e3
        t = traced.get((machine, fw))
        out.append(
            KvmSummary(
                machine=machine,
                firmware=fw,
                failed=failed,
                seconds=Stats.of(secs) if secs else None,
                maxrss_kib=Stats.of([float(r.maxrss_kib) for r in mine]) if mine else None,
                ratio_to_floor=ratio,
                delta_to_floor_ms=delta,
                exits=None if t is None else t.total_exits,
                port_accesses=None if t is None else t.port_accesses,
                to_entry=Stats.of(entry) if entry else None,
                to_entry_ratio=e_ratio,
                to_entry_delta_ms=e_delta,
                fw_to_entry=Stats.of(fw_entry) if fw_entry else None,
                startup=Stats.of(startup) if startup else None,
                firmware_ratio=1.0 if fw == "floor" and fw_entry else fw_ratio,
            )
        )
    return out


# ---- main -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Options:
    runs: int = 30
    json: Path | None = None
    machines: list[str] = field(default_factory=lambda: list(MACHINES))
    skip_kvm: bool = False
    skip_tcg: bool = False
    skip_emu: bool = False
    skip_seabios: bool = False
    seabios_runs: int = 3
    no_context: bool = False
    warmup: int = 1
    work_dir: Path | None = None
    qemu: str = field(default_factory=qemu_binary)
    timeout: float = 600.0


def parse_args(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python3 -m bench.firmware",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=30, help="KVM runs per firmware (default 30)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument(
        "--machines",
        default=",".join(MACHINES),
        help="comma-separated machine types (default pc,q35,microvm)",
    )
    p.add_argument("--skip-kvm", action="store_true", help="no KVM wall-time runs")
    p.add_argument("--skip-tcg", action="store_true", help="no TCG exec-log counts")
    p.add_argument("--skip-emu", action="store_true", help="no emulator counts")
    p.add_argument(
        "--skip-seabios",
        action="store_true",
        help="no SeaBIOS TCG count (millions of logged instructions)",
    )
    p.add_argument(
        "--seabios-runs",
        type=int,
        default=3,
        help="KVM runs of SeaBIOS (~3.5 s each under PVM; default 3; 0: skipped)",
    )
    p.add_argument(
        "--no-context",
        action="store_true",
        help="KVM: only pvhfw and the floor (no qboot / bios-microvm.bin)",
    )
    p.add_argument("--warmup", type=int, default=1, help="unmeasured KVM rounds first")
    p.add_argument("--work-dir", type=Path, help="keep the kernel and images here")
    p.add_argument(
        "--qemu",
        default=qemu_binary(),
        help="QEMU binary (default: $PVHFW_QEMU, else qemu-system-x86_64; here %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per QEMU run")
    a = p.parse_args(argv)
    machines = [m.strip() for m in a.machines.split(",") if m.strip()]
    unknown = [m for m in machines if m not in MACHINES]
    if unknown or not machines:
        p.error(f"--machines: choose from {','.join(MACHINES)}")
    if a.runs < 1 or a.seabios_runs < 0 or a.warmup < 0:
        p.error("--runs must be >= 1, --seabios-runs and --warmup >= 0")
    return Options(
        runs=a.runs,
        json=a.json,
        machines=machines,
        skip_kvm=a.skip_kvm,
        skip_tcg=a.skip_tcg,
        skip_emu=a.skip_emu,
        skip_seabios=a.skip_seabios,
        seabios_runs=a.seabios_runs,
        no_context=a.no_context,
        warmup=a.warmup,
        work_dir=a.work_dir,
        qemu=a.qemu,
        timeout=a.timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.perf_counter()
    qemu = qemu_path(opts.qemu)
    need_qemu = not (opts.skip_tcg and opts.skip_kvm)
    if need_qemu and qemu is None:
        progress(
            f"{opts.qemu} not found: install qemu-system-x86, set PVHFW_QEMU or --qemu, "
            "or pass --skip-tcg --skip-kvm"
        )
        return 2
    series = BASE_QEMU
    if qemu is not None:
        progress(qemu_line(qemu))
        found = qemu_series(qemu_version(qemu))
        if found in RECORDED_QEMUS:
            series = found
        else:
            progress(
                f"[emu] no fw_cfg recordings of QEMU {found}: the emulator simulates "
                f"QEMU {BASE_QEMU}'s"
            )
    backend = kvm_backend()
    skip_kvm = opts.skip_kvm
    if not skip_kvm and backend == "none":
        progress("[kvm] /dev/kvm missing or not accessible: KVM runs skipped")
        skip_kvm = True

    with contextlib.ExitStack() as stack:
        if opts.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fw-")))
        else:
            work = opts.work_dir
            work.mkdir(parents=True, exist_ok=True)
        setup = prepare(work)
        meta: dict[str, Any] = {
            "command": [
                "python3",
                "-m",
                "bench.firmware",
                *(sys.argv[1:] if argv is None else argv),
            ],
            "date": utc_date(),
            "host": host_facts(),
            **qemu_facts(qemu),
            "kvm_backend": backend,
            "kernel": str(setup.kernel),
            "entry": f"{setup.entry:#x}",
            "images": {
                v: {"size": p.stat().st_size, "sha256": _sha256(p)} for v, p in setup.images.items()
            },
            "machines": opts.machines,
            "emulated_qemu": series,
            "memory": MEMORY,
            "append": CMDLINE.decode(),
            "labels": {fw.key: fw.label for fw in firmwares(setup.images, qemu)},
            "steps": main_steps(setup.builds["pvh"].firmware),
            "runs": opts.runs,
            "seabios_runs": opts.seabios_runs,
            "warmup": opts.warmup,
            "targets": {
                "instructions": MAX_INSTRUCTIONS,
                "port_accesses": MAX_PORT_ACCESSES,
                "kvm_ratio": MAX_KVM_RATIO,
                "kvm_exits": MAX_KVM_EXITS,
                "qboot_fraction": QBOOT_FRACTION,
            },
        }

        emu: list[EmuResult] = []
        if not opts.skip_emu or not opts.skip_tcg:  # TCG rows compare with the emulator
            progress("[emu] running the unicorn bench ...")
            emu = run_emulator(setup, emu_configs(opts.machines, series))
        tcg: list[TcgResult] = []
        if not opts.skip_tcg:
            assert qemu is not None
            tcg = run_tcg(
                setup,
                opts.machines,
                qemu,
                emu,
                seabios=not opts.skip_seabios,
                timeout=opts.timeout,
                log=progress,
                series=series,
            )
        kvm_runs: list[KvmRun] = []
        kvm_exits: list[KvmExits] = []
        if not skip_kvm:
            assert qemu is not None
            kvm_runs, kvm_exits = run_kvm(
                setup,
                opts.machines,
                qemu,
                runs=opts.runs,
                seabios_runs=opts.seabios_runs,
                context=not opts.no_context,
                warmup=opts.warmup,
                timeout=opts.timeout,
                log=progress,
            )
    if opts.skip_emu:
        emu_shown: list[EmuResult] = []
    else:
        emu_shown = emu
    kvm = summarize_kvm(kvm_runs, kvm_exits)
    verdict = verdicts(emu_shown, tcg, kvm)
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    print(render(meta, emu_shown, tcg, kvm, verdict))
    print(f"(benchmark took {meta['duration_s']} s)")
    if opts.json is not None:
        data = report_json(meta, emu_shown, tcg, kvm_runs, kvm_exits, kvm, verdict)
        write_json(opts.json, data)
    failed = [r for r in tcg if r.firmware in ("pvh", "pvh-any", "floor") and not r.ok]
    failed_kvm = [r for r in kvm_runs if r.firmware in ("pvh", "floor") and not r.ok]
    return 1 if failed or failed_kvm or any(r.error for r in emu_shown) else 0


if __name__ == "__main__":
    sys.exit(main())
