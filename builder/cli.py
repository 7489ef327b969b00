"""build-fw: the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pvhfw.builder.build import BuildResult, build, build_any_kernel
from pvhfw.builder.errors import BuildError
from pvhfw.firmware.assemble import VARIANTS, AssemblyError

PROG = "build-fw"
MAX_KERNEL_BYTES = 1 << 30  # a vmlinux is tens of MiB; refuse to read anything absurd

DESCRIPTION = """\
Build a -bios image for stock QEMU that boots KERNEL: an uncompressed Linux vmlinux (an ELF
with a PVH entry note, Xen note type 18) through its PVH entry, the fastest path; or a
bzImage (Linux boot protocol 2.10 or later) through the boot protocol's 32-bit entry. The
image is tied to that kernel: it refuses to boot if QEMU loaded a kernel of the other kind,
or with another entry or load range. Boot it with the same kernel:

  qemu-system-x86_64 -bios OUT -kernel KERNEL [-initrd INITRD] [-append CMDLINE] ...

With --any-kernel instead of --kernel, one image boots whichever vmlinux or bzImage QEMU
is given: it takes the entry from fw_cfg and checks at run time what build-fw checks at build
time (6 instructions more per boot for a vmlinux, 35 for a bzImage). The pre-patched image
is the fast path; --any-kernel suits a libvirt domain or a kernel-testing loop, where the
kernel changes and the image should not.

The firmware reads QEMU's fw_cfg (DMA when offered), builds the memory map from etc/e820,
loads ACPI tables, copies the initrd to where QEMU placed it and puts the command line in
low memory. For a vmlinux it writes struct hvm_start_info and enters the kernel in 32-bit
protected mode, paging off, EBX = start_info. For a bzImage it copies the protected-mode
code to 1 MiB, writes the zero page (struct boot_params: the setup header, e820 table, RSDP,
command line, ramdisk) and jumps to code32_start with ESI = the zero page.
It writes qemu-boot-time events 1 (fw_start) and 5 (fw_do_boot) to I/O port 0xf5. On any
error it prints one line, "pvhfw: ...", on the first serial port and halts.
"""

EPILOG = """\
outputs:
  OUT            the image: 64 KiB, reset vector in the last 16 bytes
  OUT.map        (default: OUT with suffix .map) patch table, every symbol, RAM layout,
                 assembly listing
  OUT.json       (default: OUT with suffix .json) manifest: kind ("pre-patched" or
                 "any-kernel"), boot_path ("pvh", "linux32" or "any"), kernel (hash,
                 entry, segments or setup header; pre-patched only), image (size,
                 hashes), patch table, RAM layout, tool versions

An output that is the kernel file (any path to it, a symlink or a hard link) is refused
before anything is written; a failed build leaves earlier outputs as they were.
The same kernel and options give a byte-identical image, map and manifest.
exit status: 0 built, 1 the build failed (one line on stderr), 2 usage error.
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error of build-fw."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--kernel",
        "-k",
        metavar="KERNEL",
        help="the vmlinux (ELF, 32- or 64-bit x86) with a PVH entry note, or a bzImage",
    )
    which.add_argument(
        "--any-kernel",
        action="store_true",
        help="no kernel: the image boots any PVH vmlinux or bzImage QEMU loads, checking it "
        "at run time (a few instructions slower than an image built for its kernel)",
    )
    p.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="OUT",
        type=Path,
        help="where to write the image, e.g. out/bios.bin",
    )
    p.add_argument(
        "--map",
        metavar="PATH",
        type=Path,
        help="where to write the map (default: OUT with suffix .map)",
    )
    p.add_argument(
        "--manifest",
        metavar="PATH",
        type=Path,
        help="where to write the JSON manifest (default: OUT with suffix .json)",
    )
    p.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="pvh",
        help="pvh (default): the firmware. floor: the benchmark baseline, which only "
        "switches to 32-bit mode and jumps to the entry; it cannot boot Linux",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    return p


def read_kernel_file(path: str) -> bytes:
    """The kernel's bytes, refusing what is not a regular file of sane size."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BuildError(f"{path}: no such file") from None
    except OSError as e:
        raise BuildError(f"{path}: cannot read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BuildError(f"{path}: is a directory, not a kernel file")
    if not stat.S_ISREG(st.st_mode):
        raise BuildError(f"{path}: not a regular file")
    if st.st_size > MAX_KERNEL_BYTES:
        raise BuildError(f"{path}: {st.st_size} bytes, larger than any kernel ({MAX_KERNEL_BYTES})")
    try:
        with open(path, "rb") as f:
            return f.read(MAX_KERNEL_BYTES + 1)
    except OSError as e:
        raise BuildError(f"{path}: cannot read: {e.strerror}") from None


def _same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same path, another spelling, a symlink or a hard
    link to it. A path that does not exist names no file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(kernel: str | None, outputs: Sequence[Path]) -> None:
    """Refuse, before anything is written, an output that is the kernel file (build-fw would
    replace its own input) or a directory."""
    for path in outputs:
        if kernel is not None and _same_file(path, kernel):
            raise BuildError(f"{path}: is the kernel file {kernel}; refusing to write over it")
        if path.is_dir():
            raise BuildError(f"{path}: is a directory, not an output file")


def write_outputs(outputs: Sequence[tuple[Path, bytes]]) -> None:
    """Write every output through a temporary file in its directory, and rename them into place
    only once all are written: a failure leaves the previous outputs as they were, and a reader
    never sees half a file."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in outputs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            except OSError as e:
                raise BuildError(f"{path}: cannot write: {e.strerror}") from None
            staged.append((tmp, path))
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp, 0o644)
            except OSError as e:
                raise BuildError(f"{path}: cannot write: {e.strerror}") from None
        while staged:
            tmp, path = staged[0]
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise BuildError(f"{path}: cannot write: {e.strerror}") from None
            staged.pop(0)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.any_kernel and args.variant == "floor":
        parser.error(
            "--any-kernel with --variant floor: the floor has no fw_cfg code to find the "
            "kernel's entry with"
        )
    out: Path = args.output
    map_path: Path = args.map or out.with_suffix(".map")
    manifest_path: Path = args.manifest or out.with_suffix(".json")
    if len({out.resolve(), map_path.resolve(), manifest_path.resolve()}) != 3:
        print(
            f"{PROG}: {out}: image, map and manifest must be three different files", file=sys.stderr
        )
        return 2
    try:
        check_outputs(args.kernel, (out, map_path, manifest_path))
        if args.any_kernel:
            result = build_any_kernel(args.variant)
        else:
            result = build(read_kernel_file(args.kernel), args.kernel, args.variant)
        manifest = {
            **result.manifest,
            "outputs": {"image": str(out), "map": str(map_path), "manifest": str(manifest_path)},
        }
        write_outputs(
            (
                (out, result.image),
                (map_path, result.map_text.encode()),
                (manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()),
            )
        )
    except (BuildError, AssemblyError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(
            f"{PROG}: {out}: {len(result.image)} bytes, {args.variant} firmware for "
            f"{_what(result, args.kernel)}; map {map_path}, manifest {manifest_path}"
        )
    return 0


def _what(result: BuildResult, kernel_name: str | None) -> str:
    """The kernel an image boots, for the success line."""
    k = result.kernel
    if k is None:
        return "any kernel (a PVH vmlinux or a bzImage, checked at run time)"
    how = (
        f"PVH entry {k.entry:#x}"
        if result.boot_path == "pvh"
        else f"bzImage, boot protocol {result.manifest['kernel']['boot_protocol']}, "
        f"32-bit entry {k.entry:#x}"
    )
    return f"{kernel_name} ({how}, loaded at {k.load_addr:#x}+{k.load_size:#x})"


if __name__ == "__main__":
    sys.exit(main())
