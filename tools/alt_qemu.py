"""QEMU 10.0 beside the system's QEMU 7.2: Debian's build for bookworm, from bookworm-backports.

The packages (qemu-system-x86, qemu-system-data, qemu-system-common, the opengl and spice
module packages, and seabios, all from bookworm-backports) are fetched with ``apt-get
download`` through a separate apt configuration (tools/debian_apt.py's
:class:`~tools.debian_apt.AptSource`), so nothing replaces the system's QEMU, and unpacked
side by side with ``dpkg-deb -x``. The binary runs with the libraries the system's
qemu-system-x86 already pulled in. Cached in
``$PVHFW_CACHE`` (default ``~/.cache/pvhfw``)::

    apt/bookworm-backports/            the apt configuration: sources.list, lists, cache
    qemu-10.0/<package>_<version>_<arch>.deb   what apt-get download fetched
    qemu-10.0/root/                    the packages unpacked into one tree
    qemu-10.0/bin/qemu-system-x86_64   the wrapper to point $PVHFW_QEMU at
    qemu-10.0/stamp.json               written last; its presence means "done"

A second call finds the stamp and the files and returns at once.

Without ``-L`` the unpacked binary would take its firmware files (SeaBIOS, pvh.bin, ...) from
its compiled-in search path, the system's QEMU 7.2 files; the wrapper execs it with
``-L root/usr/share/qemu -L root/usr/share/seabios`` first, so it uses its own, and sets
``QEMU_MODULE_DIR`` to its modules. QEMU 10 still looks for a module that is not there in the
system's module directory, and loading one of QEMU 7.2's modules ("Only modules from the same
build can be loaded") leaves its constructors registered: the next module load aborts
(`module_load_dso: Assertion ... failed`). `qom-list-types`, which libvirt's capability probe
sends, loads every module QEMU 10 knows; so the tree holds all of them, the opengl and spice
ones included (those whose libraries are missing, virglrenderer's, fail to open, harmlessly,
with a warning). (That tree
has no bios-microvm.bin in share/qemu, and QEMU then finds SeaBIOS's microvm build in
share/seabios: tools/qemu.py passes qboot.rom on microvm in its place, see there.)

CLI: ``python3 -m tools.alt_qemu [--cache DIR] [--print-path]`` installs it if need be and
prints ``qemu=``, ``version=`` and ``root=`` lines, or with ``--print-path`` the wrapper's path
alone, for ``PVHFW_QEMU=$(python3 -m tools.alt_qemu --print-path) bash tools/test.sh``. On
failure it prints one ``alt_qemu: <message>`` line to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.debian_apt import (
    AptSource,
    ToolError,
    apt_download,
    cache_dir,
    deb_field,
    dpkg_extract,
    last_line,
    locked,
    run,
    run_tool,
    write_atomic,
)

SUITE = "bookworm-backports"
SERIES = "10.0"  # the QEMU release series taken from SUITE (its newest build there)
QEMU_PACKAGES = (
    "qemu-system-x86",
    "qemu-system-data",
    "qemu-system-common",
    # Every module QEMU 10 may load, so that none comes from the system's QEMU 7.2 (above).
    "qemu-system-modules-opengl",
    "qemu-system-modules-spice",
)
PACKAGES = (*QEMU_PACKAGES, "seabios")
BINARY = "qemu-system-x86_64"
MODULE_DIR = "usr/lib/x86_64-linux-gnu/qemu"  # its loadable modules (audio, display, usb)
WORK_NAME = f"qemu-{SERIES}"
STAMP_NAME = "stamp.json"
STAMP_FORMAT = 1
VERSION_PREFIX = f"QEMU emulator version {SERIES}."


@dataclass(frozen=True)
class AltQemu:
    work: Path  # <cache>/qemu-10.0
    packages: dict[str, str]  # package -> Debian version
    version: str  # the first line of `qemu-system-x86_64 --version`

    @property
    def root(self) -> Path:
        """The unpacked packages."""
        return self.work / "root"

    @property
    def binary(self) -> Path:
        """The unpacked binary (without the wrapper's -L options)."""
        return self.root / "usr" / "bin" / BINARY

    @property
    def wrapper(self) -> Path:
        """What $PVHFW_QEMU points at."""
        return self.work / "bin" / BINARY

    @property
    def data_dirs(self) -> tuple[Path, Path]:
        """The tree's firmware directories, in the order the wrapper passes them with -L."""
        return data_dirs(self.root)


def data_dirs(root: Path) -> tuple[Path, Path]:
    return root / "usr" / "share" / "qemu", root / "usr" / "share" / "seabios"


def wrapper_script(root: Path) -> str:
    """The wrapper: the unpacked binary with its own firmware directories searched first and
    its own modules (QEMU_MODULE_DIR; else it tries the system QEMU's and warns)."""
    qemu, seabios = (shlex.quote(str(d)) for d in data_dirs(root))
    binary = shlex.quote(str(root / "usr" / "bin" / BINARY))
    modules = shlex.quote(str(root / MODULE_DIR))
    return (
        "#!/bin/sh\n"
        f"# QEMU {SERIES} from Debian's {SUITE}, unpacked beside the system's QEMU by\n"
        "# pvhfw's tools/alt_qemu.py: its own firmware files (-L) and modules, not the\n"
        "# system QEMU's.\n"
        f"QEMU_MODULE_DIR={modules}\n"
        "export QEMU_MODULE_DIR\n"
        f'exec {binary} -L {qemu} -L {seabios} "$@"\n'
    )


def _note(msg: str) -> None:
    print(f"alt_qemu: {msg}", file=sys.stderr, flush=True)


def work_dir(cache: Path | None = None) -> Path:
    return cache_dir(cache) / WORK_NAME


def _from_stamp(work: Path) -> AltQemu | None:
    try:
        stamp = json.loads((work / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return None
    packages = stamp.get("packages")
    debs = stamp.get("debs")
    if stamp.get("suite") != SUITE or not isinstance(packages, dict) or not isinstance(debs, list):
        return None
    if sorted(packages) != sorted(PACKAGES):
        return None
    alt = AltQemu(work, {str(k): str(v) for k, v in packages.items()}, str(stamp.get("qemu")))
    if not all((work / str(d)).is_file() for d in debs) or not alt.binary.is_file():
        return None
    try:
        if alt.wrapper.read_text() != wrapper_script(alt.root):  # the cache was moved
            return None
    except OSError:
        return None
    return alt


def installed(cache: Path | None = None) -> AltQemu | None:
    """The QEMU 10 this cache holds, or None; never downloads."""
    return _from_stamp(work_dir(cache))


def ensure_alt_qemu(cache: Path | None = None) -> AltQemu:
    """Download and unpack QEMU 10.0 once; return where it is. Raises ToolError."""
    work = work_dir(cache)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ToolError(f"{work}: {e.strerror or e}") from e
    alt = _from_stamp(work)
    if alt is not None:
        return alt
    try:
        with locked(work / ".lock"):
            alt = _from_stamp(work)  # another process may have finished
            if alt is not None:
                return alt
            return _build(work, AptSource.in_cache(SUITE, work.parent))
    except OSError as e:
        raise ToolError(f"QEMU {SERIES}: {e.filename or work}: {e.strerror or e}") from e


def _left_debs(work: Path) -> list[Path] | None:
    """One .deb for each package, left by an earlier, interrupted run; else None."""
    found = []
    for name in PACKAGES:
        debs = sorted(work.glob(f"{name}_*.deb"))
        if len(debs) != 1:
            return None
        found.append(debs[0])
    return found


def check_versions(packages: dict[str, str]) -> None:
    """The QEMU packages are one build, of the series this module is for."""
    versions = {packages[name] for name in QEMU_PACKAGES}
    if len(versions) != 1:
        shown = ", ".join(f"{name} {packages[name]}" for name in QEMU_PACKAGES)
        raise ToolError(f"{SUITE}: the QEMU packages are of different versions: {shown}")
    (version,) = versions
    upstream = version.split(":", 1)[-1]
    if not upstream.startswith(f"{SERIES}."):
        raise ToolError(f"{SUITE} has qemu-system-x86 {version}, not QEMU {SERIES}")


def _build(work: Path, source: AptSource) -> AltQemu:
    (work / STAMP_NAME).unlink(missing_ok=True)
    root = work / "root"
    debs = _left_debs(work)
    if debs is not None:
        _note(f"unpacking {', '.join(d.name for d in debs)}")
        try:
            dpkg_extract(debs, root)
        except ToolError as e:
            _note(f"{e}; downloading again")
            debs = None
    if debs is None:
        for old in work.glob("*.deb"):
            old.unlink()
        _note(f"downloading {' '.join(PACKAGES)} from {SUITE}")
        debs = apt_download([f"{p}/{SUITE}" for p in PACKAGES], work, source=source, note=_note)
        _note(f"unpacking {', '.join(d.name for d in debs)}")
        dpkg_extract(debs, root)
    packages = {name: deb_field(deb, "Version") for name, deb in zip(PACKAGES, debs, strict=True)}
    check_versions(packages)
    alt = AltQemu(work, packages, "")
    if not alt.binary.is_file():
        raise ToolError(f"qemu-system-x86 {packages['qemu-system-x86']}: no usr/bin/{BINARY}")
    for d in alt.data_dirs:
        if not d.is_dir():
            raise ToolError(f"QEMU {SERIES}: {d.relative_to(work)} missing from the packages")
    alt.wrapper.parent.mkdir(exist_ok=True)
    write_atomic(alt.wrapper, wrapper_script(root).encode(), mode=0o755)
    proc = run([str(alt.wrapper), "--version"])
    version = proc.stdout.splitlines()[0].strip() if proc.stdout.strip() else ""
    if proc.returncode != 0 or not version.startswith(VERSION_PREFIX):
        why = last_line(proc.stderr) or version or f"exit status {proc.returncode}"
        raise ToolError(f"{alt.binary}: `--version` does not give QEMU {SERIES}: {why}")
    stamp = {
        "format": STAMP_FORMAT,
        "suite": SUITE,
        "packages": packages,
        "debs": [d.name for d in debs],
        "qemu": version,
    }
    write_atomic(work / STAMP_NAME, (json.dumps(stamp, indent=2) + "\n").encode())
    return AltQemu(work, packages, version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.alt_qemu",
        description=f"Fetch Debian's QEMU {SERIES} from {SUITE} and unpack it beside the "
        "system's (cached); print the binary to set PVHFW_QEMU to.",
    )
    parser.add_argument("--cache", type=Path, help="cache directory (default $PVHFW_CACHE)")
    parser.add_argument(
        "--print-path", action="store_true", help="print only the path to set PVHFW_QEMU to"
    )
    parser.add_argument(
        "--installed",
        action="store_true",
        help="print the path only if the cache already holds it (never downloads); else say "
        "so and exit 1",
    )
    args = parser.parse_args(argv)
    if args.installed:
        found = installed(args.cache)
        if found is None:
            print(
                f"alt_qemu: QEMU {SERIES} is not in {work_dir(args.cache)} "
                "(python3 -m tools.alt_qemu installs it)",
                file=sys.stderr,
            )
            return 1
        print(found.wrapper)
        return 0

    def install() -> int:
        alt = ensure_alt_qemu(args.cache)
        if args.print_path:
            print(alt.wrapper)
            return 0
        print(f"qemu={alt.wrapper}")
        print(f"version={alt.version}")
        print(f"root={alt.root}")
        return 0

    return run_tool("alt_qemu", install)


if __name__ == "__main__":
    sys.exit(main())
