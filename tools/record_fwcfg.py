"""Record, from stock QEMU, the raw fw_cfg files that drive ACPI and SMBIOS table loading.

    python3 -m tools.record_fwcfg [--out-dir tests/data] [--machines pc,q35,microvm]

Builds the pvhcheck test kernel (tests/kernels) and our firmware image for it, boots both
under TCG with ``-append pvhcheck.fwdump`` on each machine type, and writes what the kernel
read through fw_cfg's I/O ports to ``<out-dir>/fwcfg-acpi-<machine>.json`` (QEMU 7.2) or
``<out-dir>/fwcfg-acpi-<machine>-qemu<series>.json`` (another release series: ``-qemu10.0``
for QEMU 10.0; tests/acpi_loader.py's ``recording_path``):
``etc/table-loader``, ``etc/acpi/rsdp``, ``etc/acpi/tables``, ``etc/e820`` and, where QEMU has
them (pc, q35), ``etc/smbios/smbios-anchor`` and ``etc/smbios/smbios-tables`` (each as its
size plus the hex of its bytes up to the last nonzero one; the rest is zeros) and the whole
file directory (name, size, selector).  tests/acpi_loader.py reads them back.

The tables are the ones QEMU builds for a guest whose firmware programmed no PCI device (ours
programs none), with ``-smp 2`` (two CPUs in the MADT) and ``-m 512``.  The QEMU is tools.qemu's
(``$PVHFW_QEMU``, else ``qemu-system-x86_64``); each recording names its version, and its
command the binary's file name only. QEMU 10.0's recordings:
``PVHFW_QEMU=$(python3 -m tools.alt_qemu --print-path) python3 -m tools.record_fwcfg``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pvhfw.builder.build import build
from tests.acpi_loader import recording_path
from tests.kernels.build import EXIT_SUCCESS, build_kernel
from tests.kernels.qemu import qemu_command as kernels_qemu_command
from tools.qemu import MACHINES, describe_qemu, qemu_path, qemu_series, qemu_version

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO / "tests" / "data"
FORMAT = 1
MEMORY_MIB = 512
SMP = 2
LOAD_ADDR = 0x1000000
DUMP_WORD = "pvhcheck.fwdump"
WANTED = (
    "etc/table-loader",
    "etc/acpi/rsdp",
    "etc/acpi/tables",
    "etc/e820",
    "etc/smbios/smbios-anchor",  # pc and q35; microvm has none (recorded as missing)
    "etc/smbios/smbios-tables",
)
KERNEL_PLACEHOLDER = "<pvhcheck>"
BIOS_PLACEHOLDER = "<bios>"
MARKER = "PVHCHECK "


class RecordError(RuntimeError):
    """The kernel's dump is missing, incomplete or inconsistent, or QEMU failed."""


def qemu_command(machine: str, bios: str, kernel: str) -> list[str]:
    """The test kernels' QEMU command line (tests/kernels/qemu.py), dumping fw_cfg."""
    return kernels_qemu_command(
        Path(kernel),
        bios=Path(bios),
        append=DUMP_WORD,
        machine=machine,
        accel="tcg",
        memory=str(MEMORY_MIB),
        extra=("-smp", str(SMP)),
    )


# ---- the kernel's dump lines (see tests/kernels/pvhcheck/fwdump.c) ----------------------------


@dataclass
class DumpedFile:
    size: int
    used: int
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Dump:
    files: dict[str, DumpedFile] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    directory: list[dict[str, int | str]] = field(default_factory=list)
    done_files: int | None = None


_FIELD = re.compile(r"(\w+)=(\S*)")


def _fields(text: str) -> dict[str, str]:
    return dict(_FIELD.findall(text))


def parse_dump(serial: str) -> Dump:
    """The ``PVHCHECK fwdump...`` lines of the serial output, checked for consistency."""
    dump = Dump()
    for raw in serial.splitlines():
        pos = raw.rfind(MARKER)
        if pos < 0:
            continue
        line = raw[pos + len(MARKER) :].strip()
        kind, _, rest = line.partition(" ")
        values = _fields(rest)
        if kind == "fwdump":
            if rest.endswith(" missing"):
                dump.missing.append(values["file"])
            elif "too_large" in rest.split():
                raise RecordError(f"file {values['file']} is larger than pvhcheck's buffer")
            elif "file" in values:
                dump.files[values["file"]] = DumpedFile(int(values["size"]), int(values["used"]))
            elif rest.startswith("done"):
                dump.done_files = int(values["files"])
            elif rest.startswith("fwcfg=absent"):
                raise RecordError("pvhcheck found no fw_cfg")
        elif kind == "fwdump-data":
            f = dump.files[values["file"]]
            if int(values["offset"], 16) != len(f.data):
                raise RecordError(
                    f"{values['file']}: data line at {values['offset']} "
                    f"after {len(f.data):#x} bytes"
                )
            f.data += bytes.fromhex(values["hex"])
        elif kind == "fwdump-dir":
            dump.directory.append(
                {
                    "name": values["name"],
                    "size": int(values["size"]),
                    "select": int(values["select"], 16),
                }
            )
    _check(dump)
    return dump


def _check(dump: Dump) -> None:
    if dump.done_files is None:
        raise RecordError("no 'PVHCHECK fwdump done' line: the dump is incomplete")
    if dump.done_files != len(dump.directory):
        raise RecordError(f"{len(dump.directory)} directory lines, done says {dump.done_files}")
    sizes = {str(e["name"]): e["size"] for e in dump.directory}
    for name in WANTED:
        if name in dump.missing:
            if name in sizes:
                raise RecordError(f"{name} reported missing but listed in the directory")
            continue
        if name not in dump.files:
            raise RecordError(f"no header line for {name}")
        f = dump.files[name]
        hex_len = len(f.data.hex())
        if hex_len != 2 * f.used:
            raise RecordError(f"{name}: {hex_len} hex digits, expected 2 * used = {2 * f.used}")
        if f.used > f.size or (f.used and f.data[-1] == 0):
            raise RecordError(f"{name}: used={f.used} inconsistent with size={f.size}")
        if sizes.get(name) != f.size:
            raise RecordError(f"{name}: size {f.size}, directory says {sizes.get(name)}")


# ---- recording --------------------------------------------------------------------------------


def record_machine(
    machine: str, bios: Path, kernel: Path, version: str, timeout: float
) -> dict[str, object]:
    cmd = qemu_command(machine, str(bios), str(kernel))
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RecordError(f"{machine}: QEMU timed out after {timeout:.0f} s") from exc
    stdout = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != EXIT_SUCCESS:
        raise RecordError(
            f"{machine}: QEMU exit status {proc.returncode}, expected {EXIT_SUCCESS}\n"
            f"command: {' '.join(cmd)}\nstdout tail:\n{stdout[-2000:]}\n"
            f"stderr:\n{proc.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    dump = parse_dump(stdout)
    shown = qemu_command(machine, BIOS_PLACEHOLDER, KERNEL_PLACEHOLDER)
    shown[0] = Path(shown[0]).name  # the binary's name: a recording holds no path of this machine
    return {
        "format": FORMAT,
        "machine": machine,
        "qemu": version,
        "command": shown,
        "smp": SMP,
        "memory_mib": MEMORY_MIB,
        "files": {name: {"size": f.size, "hex": f.data.hex()} for name, f in dump.files.items()},
        "missing": sorted(dump.missing),
        "directory": dump.directory,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="record_fwcfg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument(
        "--machines",
        default=",".join(MACHINES),
        help="comma-separated machine types (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per QEMU run")
    args = p.parse_args(argv)
    machines = [m for m in args.machines.split(",") if m]
    unknown = sorted(set(machines) - set(MACHINES))
    if unknown:
        p.error(f"unknown machine(s): {', '.join(unknown)}")
    if qemu_path() is None:
        print(f"record_fwcfg: {describe_qemu()}", file=sys.stderr)
        return 1
    version = qemu_version()
    series = qemu_series(version)
    if series is None:
        print(f"record_fwcfg: {describe_qemu()}: no QEMU release in its --version", file=sys.stderr)
        return 1
    print(f"record_fwcfg: qemu: {describe_qemu()}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="record_fwcfg-") as tmp:
        work = Path(tmp)
        # lar=False: the dump needs no segment probing (and lar is fatal under PVM KVM).
        kernel = build_kernel("pvhcheck", work, LOAD_ADDR, lar=False)
        bios = work / "bios.bin"
        bios.write_bytes(build(kernel.read_bytes(), kernel.name).image)
        for machine in machines:
            try:
                recording = record_machine(machine, bios, kernel, version, args.timeout)
            except RecordError as e:
                print(f"record_fwcfg: {e}", file=sys.stderr)
                return 1
            out = recording_path(machine, args.out_dir, series)
            out.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
            files = recording["files"]
            assert isinstance(files, dict)
            sizes = ", ".join(
                f"{n} {v['size']} ({len(v['hex']) // 2} used)" for n, v in sorted(files.items())
            )
            print(f"record_fwcfg: {machine}: {out} ({out.stat().st_size} bytes): {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
