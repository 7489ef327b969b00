"""Build the boot-test initramfs: busybox-static plus an /init that reports and exits QEMU.

The archive is a gzip-compressed newc cpio written by :func:`newc_archive`, a
deterministic pure-Python writer (mtime 0, uid/gid 0, sorted names, sequential
inode numbers, gzip mtime 0): the same inputs give byte-identical output.

/init prints, on the console (ttyS0 with ``console=ttyS0``)::

    <marker>
    PVHFW-CMDLINE: <contents of /proc/cmdline>
    PVHFW-CPUS: <number of "processor" lines in /proc/cpuinfo>

then, with ``pvhfw.view`` on the kernel command line, the guest view (tools/guest_view.py:
``PVHFW-VIEW key=value`` lines, after loading the kernel modules the archive holds), and then
ends QEMU: byte 0x07 to I/O port 0xf4 (with
``-device isa-debug-exit,iobase=0xf4,iosize=0x01`` QEMU exits with status
(7 << 1) | 1 = 15), through /dev/port if the kernel has it, else through
/bin/pvhfw-exit, a 47-byte static program that calls ioperm() and does the
``out`` itself (Debian's kernels are built without CONFIG_DEVPORT); if QEMU is
still there, ``reboot -f`` (QEMU exits under ``-no-reboot``), then ``poweroff -f``.

Kernel modules (for the view: the virtio drivers of Debian's cloud kernel, which builds them
as modules) go to /lib/modules/<name>.ko, with /lib/modules/pvhfw.order listing them in load
order: :func:`kernel_modules` finds them and their dependencies in an unpacked kernel package.
A compressed module (Debian 13's are .ko.xz) goes in decompressed, so /init's busybox insmod
loads a plain ELF whatever its build decompresses and the kernel needs no module
decompression.
Without modules the archive is the one every boot test uses.

CLI: ``python -m tools.initramfs [-o OUT] [--marker TEXT] [--view-modules [--package PKG |
--series 6.1|6.12]]``.
Without ``-o`` the archive is built once into the cache, ``$PVHFW_CACHE/initramfs-<hash>.cpio.gz``,
where <hash> covers the /init script (and so the marker) and the modules' names and contents.
``--view-modules`` adds the guest view's modules from the Debian kernel package
(tools/debian_kernel.py, fetched if need be).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import stat
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from tools.debian_apt import run_tool
from tools.debian_kernel import (
    DEFAULT_SERIES,
    SERIES,
    DebianKernel,
    ToolError,
    cache_dir,
    decompress,
    ensure_debian_kernel,
    series_package,
    write_atomic,
)
from tools.guest_view import MODULES_DIR, MODULES_ORDER, VIEW_MODULES, view_call, view_script
from tools.qemu import DEBUG_EXIT_PORT

DEFAULT_MARKER = "PVHFW-USERSPACE-OK"
BUSYBOX = Path("/bin/busybox")
DEBUG_EXIT_CODE = 0x07  # QEMU exits with (0x07 << 1) | 1 = 15
QEMU_EXIT_STATUS = (DEBUG_EXIT_CODE << 1) | 1

# Applets /init uses, plus a few handy ones for poking around by hand.
APPLETS = (
    "cat", "dd", "dmesg", "echo", "grep", "insmod", "ls", "mkdir", "mknod", "mount", "od",
    "poweroff", "printf", "reboot", "sed", "sh", "sleep", "stat", "stty", "timeout", "tr",
    "umount", "uname",
)  # fmt: skip

# An entry: (path, mode incl. file type bits, data) with data the file contents
# or, for a symlink, its target; device nodes add (major, minor).
Entry = tuple[str, int, bytes | str] | tuple[str, int, bytes | str, tuple[int, int]]
# A kernel module for the archive: (name with '_' for '-', the .ko file).
Module = tuple[str, Path]

_NEWC_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
_ALLOWED_TYPES = (
    stat.S_IFREG,
    stat.S_IFDIR,
    stat.S_IFLNK,
    stat.S_IFCHR,
    stat.S_IFBLK,
    stat.S_IFIFO,
)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _newc_record(
    name: str, ino: int, mode: int, nlink: int, data: bytes, rdev: tuple[int, int]
) -> bytes:
    raw_name = name.encode() + b"\0"
    fields = (
        ino, mode, 0, 0, nlink, 0, len(data),  # ino mode uid gid nlink mtime filesize
        0, 0, rdev[0], rdev[1],  # devmajor devminor rdevmajor rdevminor
        len(raw_name), 0,  # namesize check
    )  # fmt: skip
    header = _NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
    head = header + raw_name
    return head + _pad4(len(head)) + data + _pad4(len(data))


def _normalize(path: str) -> str:
    p = PurePosixPath("/" + path.lstrip("/"))
    rel = str(p).lstrip("/")
    if not rel or ".." in p.parts or rel == _TRAILER or "\0" in rel:
        raise ValueError(f"bad archive path {path!r}")
    return rel


def newc_archive(entries: Iterable[Entry]) -> bytes:
    """Return an uncompressed newc ("070701") cpio archive of *entries*.

    Each entry is ``(path, mode, data)`` or ``(path, mode, data, (major, minor))``;
    *mode* includes the file type bits (``stat.S_IFREG | 0o755`` ...), *data* is
    the file contents (bytes) or a symlink's target; directories and device
    nodes take empty data. Names are stored without a leading "/", sorted,
    so parents precede children; every parent must itself be an entry.
    Owner 0:0, mtime 0, inode numbers 1, 2, ... in that order.
    """
    items: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    for entry in entries:
        path, mode, data = entry[0], entry[1], entry[2]
        rdev = entry[3] if len(entry) == 4 else (0, 0)
        name = _normalize(path)
        if name in items:
            raise ValueError(f"duplicate archive path {name!r}")
        ftype = stat.S_IFMT(mode)
        if ftype not in _ALLOWED_TYPES:
            raise ValueError(f"{name}: unsupported file type in mode {mode:#o}")
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if ftype == stat.S_IFLNK and not raw:
            raise ValueError(f"{name}: symlink without a target")
        if ftype not in (stat.S_IFREG, stat.S_IFLNK) and raw:
            raise ValueError(f"{name}: only regular files and symlinks carry data")
        if ftype not in (stat.S_IFCHR, stat.S_IFBLK) and rdev != (0, 0):
            raise ValueError(f"{name}: only device nodes have a device number")
        items[name] = (mode, raw, rdev)
    out = io.BytesIO()
    for ino, name in enumerate(sorted(items), start=1):
        parent = name.rpartition("/")[0]
        if parent and (parent not in items or not stat.S_ISDIR(items[parent][0])):
            raise ValueError(f"{name}: parent directory {parent!r} is not in the archive")
        mode, raw, rdev = items[name]
        nlink = 2 if stat.S_ISDIR(mode) else 1
        out.write(_newc_record(name, ino, mode, nlink, raw, rdev))
    out.write(_newc_record(_TRAILER, 0, 0, 1, b"", (0, 0)))
    return out.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    """gzip *data* with mtime 0 and no file name, so output depends only on *data*."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def init_script(marker: str = DEFAULT_MARKER) -> str:
    """The /init shell script (run by busybox sh) for *marker*."""
    if not marker or "\n" in marker or "\r" in marker or "\0" in marker:
        raise ToolError(f"initramfs marker {marker!r}: must be one non-empty line")
    return f"""#!/bin/sh
# pvhfw boot-test init (tools/initramfs.py): report on the console, then end QEMU.
export PATH=/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/console ] || mknod /dev/console c 5 1 2>/dev/null
if (: >/dev/console) 2>/dev/null; then exec </dev/console >/dev/console 2>&1; fi
printf '\\n%s\\n' {_sh_quote(marker)}
printf 'PVHFW-CMDLINE: %s\\n' "$(cat /proc/cmdline 2>/dev/null)"
printf 'PVHFW-CPUS: %s\\n' "$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
{view_script()}{view_call()}\
# Let the UART drain (stty sets the same modes with TCSADRAIN) before QEMU goes.
timeout 2 stty -F /dev/console "$(stty -F /dev/console -g 2>/dev/null)" 2>/dev/null
[ -e /dev/port ] || mknod /dev/port c 1 4 2>/dev/null
# isa-debug-exit at {DEBUG_EXIT_PORT:#x}: QEMU exits with status {QEMU_EXIT_STATUS}.
if (: >>/dev/port) 2>/dev/null; then
    printf '\\{DEBUG_EXIT_CODE:03o}' \\
        | dd of=/dev/port bs=1 seek={DEBUG_EXIT_PORT} count=1 conv=notrunc 2>/dev/null
fi
# No /dev/port (CONFIG_DEVPORT=n): ioperm() + outb from a tiny static program.
pvhfw-exit
reboot -f
poweroff -f
"""


def debug_exit_elf(port: int = DEBUG_EXIT_PORT, value: int = DEBUG_EXIT_CODE) -> bytes:
    """A minimal static x86-64 Linux ELF executable that writes *value* to I/O *port*.

    It calls ``ioperm(port, 1, 1)`` and ``outb``; it exits with status 1 if
    ioperm fails and 2 if it is still running after the write (no exit device).
    """
    if not (0 <= port <= 0xFF and 0 <= value <= 0xFF):
        raise ValueError("port and value must fit in a byte (out imm8, al)")
    base = 0x400000
    code = b"".join(
        (
            b"\xbf" + struct.pack("<I", port),  # mov edi, port
            b"\xbe\x01\x00\x00\x00",  # mov esi, 1
            b"\xba\x01\x00\x00\x00",  # mov edx, 1
            b"\xb8\xad\x00\x00\x00",  # mov eax, 173 (ioperm)
            b"\x0f\x05",  # syscall
            b"\xbf\x01\x00\x00\x00",  # mov edi, 1
            b"\x85\xc0",  # test eax, eax
            b"\x75\x09",  # jnz exit
            b"\xb0" + bytes([value]),  # mov al, value
            b"\xe6" + bytes([port]),  # out port, al
            b"\xbf\x02\x00\x00\x00",  # mov edi, 2
            b"\xb8\x3c\x00\x00\x00",  # exit: mov eax, 60 (exit)
            b"\x0f\x05",  # syscall
        )
    )
    ehdr_size, phdr_size = 64, 56
    entry = base + ehdr_size + phdr_size
    total = ehdr_size + phdr_size + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, entry, ehdr_size, 0, 0, ehdr_size, phdr_size, 1, 0, 0, 0
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    return ehdr + phdr + code


def initramfs_entries(
    marker: str = DEFAULT_MARKER,
    busybox: Path = BUSYBOX,
    modules: Sequence[tuple[str, bytes]] = (),
) -> list[Entry]:
    """The archive's entries: busybox, its applet links, pvhfw-exit, /dev/console, dirs, /init;
    with *modules* ((name, contents), in load order) also /lib/modules/<name>.ko and the
    order file the view reads."""
    try:
        bb = busybox.read_bytes()
    except FileNotFoundError as e:
        raise ToolError(
            f"{busybox}: not found; install Debian's busybox-static "
            "(apt-get install busybox-static)"
        ) from e
    except OSError as e:
        raise ToolError(f"{busybox}: {e.strerror or e}") from e
    if not bb.startswith(b"\x7fELF"):
        raise ToolError(f"{busybox}: not an ELF executable")
    if _has_interp(bb):
        raise ToolError(
            f"{busybox}: dynamically linked; the initramfs needs busybox-static "
            "(apt-get install busybox-static)"
        )
    dirs = ("bin", "dev", "proc", "sys", "tmp")
    entries: list[Entry] = [(d, stat.S_IFDIR | 0o755, b"") for d in dirs]
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, bb))
    entries += [(f"bin/{a}", stat.S_IFLNK | 0o777, "busybox") for a in APPLETS]
    entries.append(("bin/pvhfw-exit", stat.S_IFREG | 0o755, debug_exit_elf()))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("init", stat.S_IFREG | 0o755, init_script(marker).encode()))
    if modules:
        names = [name for name, _ in modules]
        if len(set(names)) != len(names):
            raise ToolError(f"initramfs modules: a name is given twice in {names}")
        parts = PurePosixPath(MODULES_DIR).parts
        entries += [
            ("/".join(parts[: i + 1]), stat.S_IFDIR | 0o755, b"") for i in range(len(parts))
        ]
        entries += [
            (f"{MODULES_DIR}/{name}.ko", stat.S_IFREG | 0o644, data) for name, data in modules
        ]
        order = "".join(f"{name}\n" for name in names).encode()
        entries.append((MODULES_ORDER, stat.S_IFREG | 0o644, order))
    return entries


# ---- kernel modules ------------------------------------------------------------------------


# A module file's suffixes and their compression (kmod's names; CONFIG_MODULE_COMPRESS_*).
MODULE_SUFFIXES = {".ko": None, ".ko.gz": "gzip", ".ko.xz": "xz", ".ko.zst": "zstd"}


def module_suffix(path: str | PurePosixPath | Path) -> str | None:
    """The module suffix (:data:`MODULE_SUFFIXES`) *path*'s name ends with, else None."""
    name = PurePosixPath(path).name
    for suffix in MODULE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def module_name(path: str | PurePosixPath | Path) -> str:
    """A module's name from its file name: no directory, no .ko (.ko.xz...), '_' for '-' (as
    Linux)."""
    name = PurePosixPath(path).name
    suffix = module_suffix(name)
    if suffix is not None:
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def read_module(ko: Path) -> bytes:
    """A module file's ELF object: its bytes, decompressed when its suffix says so."""
    try:
        data = ko.read_bytes()
    except OSError as e:
        raise ToolError(f"{ko}: {e.strerror or e}") from e
    compression = MODULE_SUFFIXES.get(module_suffix(ko) or "")
    return data if compression is None else decompress(compression, data, str(ko))


def module_depends(ko: Path) -> list[str]:
    """The modules *ko* needs: the ``depends=`` entry of its .modinfo section."""
    try:
        section = ELFFile(io.BytesIO(read_module(ko))).get_section_by_name(".modinfo")
        data = b"" if section is None else section.data()
    except ELFError as e:
        raise ToolError(f"{ko}: cannot read its .modinfo: {e}") from e
    for item in data.split(b"\0"):
        if item.startswith(b"depends="):
            return [module_name(d) for d in item[len(b"depends=") :].decode().split(",") if d]
    return []


def kernel_modules(moddir: Path, names: Iterable[str]) -> list[Module]:
    """The modules of *names* and everything they depend on, dependencies first, from an
    unpacked kernel's module tree *moddir* (``lib/modules/<version>``; Debian's packages
    ship no modules.dep: the dependencies come from each module's .modinfo). A module file
    may be compressed (:data:`MODULE_SUFFIXES`). A name that is built into the kernel
    (modules.builtin) is left out; one that is neither is an error."""
    files: dict[str, Path] = {}
    for ko in sorted((moddir / "kernel").rglob("*.ko*")):
        if module_suffix(ko) is not None:
            files.setdefault(module_name(ko), ko)
    builtin_list = moddir / "modules.builtin"
    try:
        builtin = {module_name(line) for line in builtin_list.read_text().split()}
    except OSError:
        builtin = set()
    if not files:
        raise ToolError(f"{moddir}: no kernel modules (*.ko, *.ko.xz...) there")
    order: list[Module] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise ToolError(f"{moddir}: modules depend on each other: {' -> '.join(chain)}")
        if name not in files:
            if name in builtin:
                done.add(name)
                return
            raise ToolError(f"{moddir}: no module {name} (no {name}.ko, not built in)")
        for dep in module_depends(files[name]):
            visit(dep, (*chain, name))
        done.add(name)
        order.append((name, files[name]))

    for name in names:
        visit(module_name(name), ())
    return order


def view_modules(kernel: DebianKernel) -> list[Module]:
    """The guest view's modules (tools.guest_view.VIEW_MODULES) from *kernel*'s package."""
    return kernel_modules(kernel.modules_dir, VIEW_MODULES)


def _read_modules(modules: Sequence[Module]) -> list[tuple[str, bytes]]:
    return [(name, read_module(path)) for name, path in modules]


def _has_interp(elf: bytes) -> bool:
    """True if the ELF64 little-endian *elf* has a PT_INTERP (is dynamically linked)."""
    if len(elf) < 0x40 or elf[4] != 2 or elf[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 <= len(elf) and struct.unpack_from("<I", elf, off)[0] == 3:  # PT_INTERP
            return True
    return False


def build_initramfs(
    out: Path,
    marker: str = DEFAULT_MARKER,
    *,
    busybox: Path = BUSYBOX,
    modules: Sequence[Module] = (),
) -> Path:
    """Write the gzipped newc initramfs for *marker* (and *modules*, in load order) to *out*
    (atomically); return *out*."""
    entries = initramfs_entries(marker, busybox, _read_modules(modules))
    data = gzip_deterministic(newc_archive(entries))
    out = out.expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, data)
    except OSError as e:
        raise ToolError(f"{out}: {e.strerror or e}") from e
    return out


def default_path(
    marker: str = DEFAULT_MARKER, cache: Path | None = None, modules: Sequence[Module] = ()
) -> Path:
    """``<cache>/initramfs-<hash>.cpio.gz``; <hash> is over the /init script and, when there
    are modules, their names and contents."""
    digest = hashlib.sha256(init_script(marker).encode())
    for name, data in _read_modules(modules):
        digest.update(b"\0module\0" + name.encode() + b"\0" + hashlib.sha256(data).digest())
    return cache_dir(cache) / f"initramfs-{digest.hexdigest()[:16]}.cpio.gz"


def ensure_initramfs(
    marker: str = DEFAULT_MARKER,
    cache: Path | None = None,
    *,
    busybox: Path = BUSYBOX,
    modules: Sequence[Module] = (),
) -> Path:
    """Build the initramfs for *marker* (and *modules*) into the cache unless it is there;
    return its path."""
    path = default_path(marker, cache, modules)
    if not path.is_file():
        build_initramfs(path, marker, busybox=busybox, modules=modules)
    return path


def ensure_view_initramfs(kernel: DebianKernel, cache: Path | None = None) -> Path:
    """The initramfs for guest views of *kernel*: the default one plus the view's modules."""
    return ensure_initramfs(cache=cache, modules=view_modules(kernel))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.initramfs",
        description="Build the boot-test initramfs (busybox-static + reporting /init).",
    )
    parser.add_argument(
        "-o", "--output", type=Path,
        help="write here (always rebuilt); default: build once into the cache",
    )  # fmt: skip
    parser.add_argument("--marker", default=DEFAULT_MARKER, help="line /init prints first")
    parser.add_argument(
        "--view-modules", action="store_true",
        help="add the guest view's kernel modules (virtio) from the Debian kernel package",
    )  # fmt: skip
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--package", help="with --view-modules: the kernel package")
    which.add_argument(
        "--series", choices=SERIES,
        help=f"with --view-modules: the cloud kernel of that series (default {DEFAULT_SERIES})",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def build() -> int:
        modules: list[Module] = []
        package = series_package(args.series) if args.series else args.package
        if args.view_modules:
            modules = view_modules(ensure_debian_kernel(package=package))
        elif package:
            raise ToolError(f"--{'series' if args.series else 'package'} goes with --view-modules")
        if args.output is not None:
            print(build_initramfs(args.output, args.marker, modules=modules))
        else:
            print(ensure_initramfs(args.marker, modules=modules))
        return 0

    return run_tool("initramfs", build)


if __name__ == "__main__":
    sys.exit(main())
