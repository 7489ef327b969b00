"""The one place QEMU command lines are built: the binary, the CPU models, the machine types.

Every QEMU this project starts (the tests' runners, the benchmarks, the main job, the fw_cfg
recorder) is ``qemu_command(...)``'s output:

    qemu_command(machine="pc", accel="kvm", memory="512", bios=fw, kernel=vmlinux,
                 initrd=initrd, append="console=ttyS0", linux=True)

- The binary is ``$PVHFW_QEMU`` when set (a path, or a name looked up on PATH), else
  ``qemu-system-x86_64``: point it at another QEMU (a side-by-side QEMU 10 tree, say) and every
  caller uses that one. :func:`qemu_binary` reads the variable on each call.
- Under KVM every guest gets :data:`KVM_CPU`: this project's CI has a PVM-based /dev/kvm (see
  machines.md in the shared reference), whose instruction emulator cannot run `-cpu host` or a
  CPU model that offers CX16 or XSAVE to Linux.
- A Linux guest (``linux=True``) under TCG gets :data:`TCG_CPU` and, on microvm, a PIT; the
  test kernels and the firmware benchmark's runs keep QEMU's default CPU and machine options,
  the configuration the recorded fw_cfg files (tests/data, bench/profiles.py) come from.
- The firmware files QEMU ships that the benchmarks pass as ``-bios`` are found in the chosen
  binary's own data directories (:func:`data_file`).
- microvm without ``bios=`` boots qboot, its default firmware, with every binary: one whose
  own tree would give it another firmware gets that tree's qboot.rom (:func:`microvm_bios`).
- What a binary accepts is probed, not read from its version: :func:`singlestep_supported`.
"""

from __future__ import annotations

import filecmp
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

QEMU_ENV = "PVHFW_QEMU"
DEFAULT_QEMU = "qemu-system-x86_64"

MACHINES = ("pc", "q35", "microvm")
ACCELS = ("tcg", "kvm")

# XSAVE/XRSTOR are fatal in the PVM-based KVM's instruction emulator ("KVM internal error",
# suberror 1), as is SLUB's `lock cmpxchg16b` when CPUID shows CX16: Linux executes both early
# in boot. The test kernels and the firmware use neither, so one model serves every guest, and
# a test kernel reads the same fw_cfg (its e820 depends on the CPU vendor) as a Linux boot.
KVM_CPU = "qemu64,-cx16,-xsave"
# Full Linux boots run under TCG with every feature TCG emulates.
TCG_CPU = "max"

# QEMU >= 8.1's spelling of -singlestep: a property of the TCG accelerator.
ONE_INSN_PER_TB = "one-insn-per-tb=on"

DEBUG_EXIT_PORT = 0xF4  # a guest's write of v there ends QEMU with status (v << 1) | 1
DEBUG_EXIT = f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x01"

# Firmware files stock QEMU ships, and where Debian's packages put them.
QBOOT_ROM = "qboot.rom"  # qboot; Debian 12 links its bios-microvm.bin to it
SEABIOS_128K = "bios.bin"  # SeaBIOS's 128 KiB build: microvm's BIOS window is too small for 256
MICROVM_BIOS = "bios-microvm.bin"  # microvm's firmware without -bios; upstream's is qboot
SYSTEM_DATA_FILES = {
    QBOOT_ROM: "/usr/share/qemu/qboot.rom",
    SEABIOS_128K: "/usr/share/seabios/bios.bin",
}
VERSION_TIMEOUT = 20.0  # seconds for `--version` or `-L help`


def qemu_binary() -> str:
    """The QEMU binary every caller runs: ``$PVHFW_QEMU``, else ``qemu-system-x86_64``."""
    return os.environ.get(QEMU_ENV) or DEFAULT_QEMU


def qemu_path(qemu: str | None = None) -> str | None:
    """The executable ``qemu`` (default :func:`qemu_binary`) names, or None when absent."""
    return shutil.which(qemu or qemu_binary())


@functools.cache
def _version(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = out.stdout.splitlines()
    return lines[0].strip() if lines else "unknown"


def qemu_version(qemu: str | None = None) -> str:
    """The first line of ``qemu --version`` ("QEMU emulator version 7.2.22 (...)"); "not
    found" when there is no such executable, "unknown" when it prints nothing."""
    path = qemu_path(qemu)
    return "not found" if path is None else _version(path)


_SERIES = re.compile(r"QEMU emulator version (\d+)\.(\d+)[.\s]")


def qemu_series(version: str) -> str | None:
    """The release series ("7.2", "10.0") in a :func:`qemu_version` line; None if it has
    none ("not found", "unknown")."""
    m = _SERIES.match(version + " ")
    return f"{m[1]}.{m[2]}" if m else None


def describe_qemu(qemu: str | None = None) -> str:
    """One line naming the binary and its version, for reports and logs."""
    name = qemu or qemu_binary()
    path = qemu_path(name)
    if path is None:
        return f"{name}: not found (set {QEMU_ENV} or install qemu-system-x86)"
    return f"{path} ({_version(path)})"


# ---- the firmware files QEMU ships ---------------------------------------------------------


@functools.cache
def _data_dirs(path: str) -> tuple[Path, ...]:
    exe = Path(path).resolve()
    prefix = exe.parent.parent
    dirs = [prefix / "share" / "qemu", prefix / "share" / "seabios"]
    try:
        out = subprocess.run(
            [path, "-L", "help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
        if out.returncode == 0:
            dirs += [Path(line.strip()) for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    seen: dict[Path, None] = {}
    for d in dirs:
        if d.is_dir():
            seen.setdefault(d.resolve(), None)
    return tuple(seen)


def data_dirs(qemu: str | None = None) -> tuple[Path, ...]:
    """Where the binary's own firmware files are, in the order they are searched: its tree's
    <prefix>/share/qemu and <prefix>/share/seabios (the binary in <prefix>/bin: so a QEMU
    unpacked beside the system's finds its own files, not the system's), then what
    ``qemu -L help`` lists (QEMU >= 5: its firmware search path, a build tree's pc-bios/ say).
    Only directories that exist; none for a binary that is not there."""
    path = qemu_path(qemu)
    return () if path is None else _data_dirs(path)


def data_file(name: str, qemu: str | None = None) -> str:
    """The path of the firmware file ``name`` (:data:`QBOOT_ROM`, :data:`SEABIOS_128K`) that
    belongs to the binary ``qemu`` (default :func:`qemu_binary`): the first of its
    :func:`data_dirs` that holds it, else the system's file (:data:`SYSTEM_DATA_FILES`)."""
    for d in data_dirs(qemu):
        if (d / name).is_file():
            return str(d / name)
    if name not in SYSTEM_DATA_FILES:
        raise ValueError(f"no system path known for QEMU's data file {name!r}")
    return SYSTEM_DATA_FILES[name]


def _find_data_file(name: str, qemu: str | None) -> Path | None:
    for d in data_dirs(qemu):
        if (d / name).is_file():
            return d / name
    return None


def microvm_bios(qemu: str | None = None) -> str | None:
    """The -bios that gives microvm its default firmware, qboot, with the binary ``qemu``:
    None (nothing to pass) when its own bios-microvm.bin is its qboot.rom (QEMU 7.2 from
    Debian: a link to it; upstream's pc-bios/bios-microvm.bin is a qboot build) or when its
    tree has neither; else that tree's qboot.rom. Debian's QEMU 10.0 ships no
    bios-microvm.bin in share/qemu, and finds SeaBIOS's microvm build (package seabios) in
    share/seabios in its place."""
    default, qboot = _find_data_file(MICROVM_BIOS, qemu), _find_data_file(QBOOT_ROM, qemu)
    if default is None or qboot is None:
        return None
    if default.resolve() == qboot.resolve() or filecmp.cmp(default, qboot, shallow=False):
        return None
    return str(qboot)


# ---- what the binary accepts ---------------------------------------------------------------


@functools.cache
def _accepts(path: str, options: tuple[str, ...]) -> bool:
    try:
        out = subprocess.run(
            [path, *options, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def singlestep_supported(qemu: str | None = None) -> bool:
    """Whether the binary takes `-singlestep` (one guest instruction per translation block,
    what the exec-log counts need): QEMU 8.1 and later refuse it ("invalid option") and
    take the accelerator property `-accel tcg,one-insn-per-tb=on` instead, which 7.2
    refuses. Probed: ``qemu -singlestep -version`` exits 0 only when QEMU parsed the
    option (an -accel property is checked only once the machine starts, so the probe asks
    about the old spelling). False for a binary that is not there."""
    path = qemu_path(qemu)
    return path is not None and _accepts(path, ("-singlestep",))


# ---- the command line ----------------------------------------------------------------------


def tcg_microvm(machine: str, accel: str) -> bool:
    """microvm under TCG: no kvm-clock, HPET or ACPI PM timer for Linux to calibrate its TSC
    against (tools/guest.py's kernel arguments and the PIT below are for this case)."""
    return accel == "tcg" and machine.split(",")[0] == "microvm"


def linux_machine(machine: str, accel: str) -> str:
    """The -M argument for a Linux guest: microvm under TCG needs `pit=on`, or the kernel finds
    no timer to calibrate the TSC against and stalls in early boot; under KVM, kvm-clock
    covers this. A machine that already sets `pit=` is left as given."""
    if tcg_microvm(machine, accel) and "pit=" not in machine:
        return f"{machine},pit=on"
    return machine


def default_cpu(accel: str, *, linux: bool = False) -> str | None:
    """The -cpu model: :data:`KVM_CPU` under KVM, :data:`TCG_CPU` for a Linux guest under
    TCG, None (QEMU's default, qemu64) for anything else under TCG."""
    if accel == "kvm":
        return KVM_CPU
    return TCG_CPU if linux else None


def qemu_command(
    *,
    qemu: str | None = None,
    machine: str = "pc",
    accel: str = "tcg",
    cpu: str | None = None,
    linux: bool = False,
    memory: str | int | None = None,
    smp: str | int | None = None,
    bios: str | os.PathLike[str] | None = None,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    append: str | None = None,
    debug_exit: bool = True,
    nographic: bool = True,
    no_reboot: bool = True,
    singlestep: bool = False,
    debug: Sequence[str] = (),
    dfilter: str | None = None,
    trace: Sequence[str] = (),
    log: str | os.PathLike[str] | None = None,
    timestamp: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """One QEMU command line, its arguments always in this order:

    ``QEMU -M machine -accel accel[,one-insn-per-tb=on] [-m memory] [-nographic] [-no-reboot]
    [-bios bios] [-kernel kernel] [-initrd initrd] [-append append] [-device
    isa-debug-exit,...] [-cpu cpu] [-smp smp] [-singlestep] [-d debug,...] [-dfilter ranges]
    [-msg timestamp=on] [-D log] [-trace event]... extra...``

    ``qemu``: the binary (default :func:`qemu_binary`). ``cpu``: default
    :func:`default_cpu`. ``linux``: the guest is Linux (:func:`default_cpu`,
    :func:`linux_machine`). ``bios``: on microvm default :func:`microvm_bios` (qboot).
    ``singlestep``: one guest instruction per translation block (TCG only), spelt as the
    binary takes it (:func:`singlestep_supported`: `-singlestep`, else the accelerator's
    `one-insn-per-tb=on`). ``debug``: `-d` log items (exec, nochain, ...) written to ``log``
    (else stderr), as the ``trace`` events are, for the pcs in ``dfilter`` only when given;
    ``timestamp`` stamps each line with the wall clock. ``extra`` may not name a CPU: pass
    ``cpu``.
    """
    if accel not in ACCELS:
        raise ValueError(f"unknown accelerator {accel!r}: choose from {', '.join(ACCELS)}")
    if "-cpu" in extra:
        raise ValueError("pass the CPU model as cpu=, not in extra")
    if linux:
        machine = linux_machine(machine, accel)
    binary = qemu or qemu_binary()
    if bios is None and machine.split(",")[0] == "microvm":
        bios = microvm_bios(binary)
    old_singlestep = False
    if singlestep:
        if accel != "tcg":
            raise ValueError(f"singlestep is a TCG option, not one of {accel!r}")
        old_singlestep = singlestep_supported(binary)
    one_insn_per_tb = singlestep and not old_singlestep
    cmd = [
        binary,
        "-M",
        machine,
        "-accel",
        f"{accel},{ONE_INSN_PER_TB}" if one_insn_per_tb else accel,
    ]
    if memory is not None:
        cmd += ["-m", str(memory)]
    if nographic:
        cmd.append("-nographic")
    if no_reboot:
        cmd.append("-no-reboot")
    for option, value in (("-bios", bios), ("-kernel", kernel), ("-initrd", initrd)):
        if value is not None:
            cmd += [option, os.fspath(value)]
    if append is not None:
        cmd += ["-append", append]
    if debug_exit:
        cmd += ["-device", DEBUG_EXIT]
    model = cpu if cpu is not None else default_cpu(accel, linux=linux)
    if model is not None:
        cmd += ["-cpu", model]
    if smp is not None:
        cmd += ["-smp", str(smp)]
    if old_singlestep:
        cmd.append("-singlestep")
    if debug:
        cmd += ["-d", ",".join(debug)]
    if dfilter is not None:
        cmd += ["-dfilter", dfilter]
    if timestamp:
        cmd += ["-msg", "timestamp=on"]
    if log is not None:
        cmd += ["-D", os.fspath(log)]
    for event in trace:
        cmd += ["-trace", event]
    return cmd + list(extra)
