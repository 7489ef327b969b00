"""Fetch Debian's cloud kernel and extract the ELF vmlinux from its bzImage.

Everything is cached outside the source tree, in ``$PVHFW_CACHE`` (default
``~/.cache/pvhfw``), under ``debian/<package>/``::

    <package>_<version>_amd64.deb   what ``apt-get download`` fetched
    root/                           ``dpkg-deb -x`` of that package
    vmlinux                         the ELF kernel unpacked from root/boot/vmlinuz-*
    stamp.json                      written last; its presence means "done"

A second call finds the stamp and the files and returns at once. The download and the
unpacking are tools/debian_apt.py's: through the system's apt configuration (Debian 12), or,
for a package of another suite (:data:`SUITES`: Debian 13's 6.12 kernel, from trixie),
through that suite's own apt configuration in the cache, which changes nothing of the
system's apt.

The kernel series the Debian layer boots are :data:`SERIES`: each one's cloud kernel, pinned.
Another flavour: ``package=`` (or ``$PVHFW_DEBIAN_KERNEL_PKG``), e.g. :data:`GENERIC_PACKAGE`,
with ``suite=`` when it is not the system's.

CLI: ``python -m tools.debian_kernel [--cache DIR] [--series 6.1|6.12 | --generic |
--package PKG [--suite SUITE]]`` prints ``bzimage=``, ``vmlinux=``, ``config=`` and
``version=`` lines; on failure it prints one ``debian_kernel: <message>`` line to stderr and
exits 1.
"""

from __future__ import annotations

import argparse
import bz2
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pvhfw.builder.bzimage import payload_format
from pvhfw.firmware import abi

# What the other tools import from here with the kernel (tools/debian_apt.py has them).
from tools.debian_apt import ENV_CACHE as ENV_CACHE
from tools.debian_apt import AptSource, apt_download, dpkg_extract, last_line, locked, run_tool
from tools.debian_apt import ToolError as ToolError
from tools.debian_apt import cache_dir as cache_dir
from tools.debian_apt import write_atomic as write_atomic

DEFAULT_PACKAGE = "linux-image-6.1.0-50-cloud-amd64-unsigned"
# The generic flavour (XZ payload): unlike the cloud kernel it parses MP tables
# (CONFIG_X86_MPPARSE=y), so it finds a second CPU without ACPI. tools/setup.sh caches it too.
GENERIC_PACKAGE = "linux-image-6.1.0-50-amd64-unsigned"
# Debian 13's cloud kernel (zstd payload, modules .ko.xz), beside 6.1: the newest 6.12 ABI in
# trixie's main when chosen (2026-12; 6.12.107 was there too), the one the metapackage
# linux-image-cloud-amd64 6.12.117-1 depends on. The ABI is in the name: a new upload is a
# new package, so this name is one build.
TRIXIE_PACKAGE = "linux-image-6.12.117+deb13-cloud-amd64-unsigned"
TRIXIE = "trixie"
# The suite each package of another Debian release comes from (its own apt configuration in
# the cache, tools.debian_apt.AptSource); any other package comes through the system's apt.
SUITES = {TRIXIE_PACKAGE: TRIXIE}
# The kernel series the Debian layer boots, oldest first: each one's cloud kernel.
SERIES = {"6.1": DEFAULT_PACKAGE, "6.12": TRIXIE_PACKAGE}
DEFAULT_SERIES = "6.1"
ENV_PACKAGE = "PVHFW_DEBIAN_KERNEL_PKG"
STAMP_NAME = "stamp.json"
STAMP_FORMAT = 1

# Compression magics, checked in this order (longest first where they overlap).

_LZ4_LEGACY_MAGIC = 0x184C2102
_LZ4_LEGACY_MAX_BLOCK = 8 << 20  # uncompressed block size of the legacy format


@dataclass(frozen=True)
class DebianKernel:
    package: str
    version: str  # kernel release, e.g. "6.1.0-50-cloud-amd64"
    deb: Path
    bzimage: Path
    vmlinux: Path
    config: Path

    @property
    def modules_dir(self) -> Path:
        """The package's ``lib/modules/<version>`` (beside the ``boot/`` of the bzImage), or
        ``usr/lib/modules/<version>`` where the package has that instead (Debian 13's
        packages are merged-/usr)."""
        root = self.bzimage.parent.parent
        top = root / "lib" / "modules" / self.version
        usr = root / "usr" / "lib" / "modules" / self.version
        return usr if usr.is_dir() and not top.is_dir() else top


def package_name(package: str | None = None) -> str:
    """*package*, else $PVHFW_DEBIAN_KERNEL_PKG, else the cloud kernel package."""
    return package or os.environ.get(ENV_PACKAGE) or DEFAULT_PACKAGE


# ---------------------------------------------------------------------------
# Pure functions over bytes


def bzimage_payload(data: bytes) -> tuple[str, bytes]:
    """Return (compression name, compressed payload) of a bzImage.

    The payload is located through the setup header (pvhfw.firmware.abi's
    BOOT_PARAMS): ``setup_sects`` (0 means 4), "HdrS", the protocol version (>= 2.08
    for the payload fields), ``payload_offset`` and ``payload_length``, both counted
    from the start of the protected-mode code, (setup_sects+1)*512.
    The returned bytes still carry the trailing 4-byte size that every format
    but gzip gets appended (gzip's own trailer ends with the same field).
    """
    hdr = abi.BOOT_PARAMS
    if len(data) < hdr.end("payload_length"):
        raise ToolError(f"bzImage truncated: {len(data)} bytes, shorter than the setup header")
    if hdr.read(data, "header") != abi.HDRS_MAGIC:
        raise ToolError(f"not a bzImage: no 'HdrS' magic at {hdr.offset('header'):#x}")
    protocol = hdr.read(data, "version")
    if protocol < 0x208:
        raise ToolError(
            f"bzImage boot protocol {protocol >> 8}.{protocol & 0xFF:02d} "
            "has no payload_offset (needs >= 2.08)"
        )
    setup_sects = hdr.read(data, "setup_sects") or abi.SETUP_SECTS_DEFAULT
    base = (setup_sects + 1) * abi.SETUP_SECTOR_SIZE
    payload_offset = hdr.read(data, "payload_offset")
    payload_length = hdr.read(data, "payload_length")
    start = base + payload_offset
    end = start + payload_length
    if payload_length == 0:
        raise ToolError("bzImage payload_length is 0")
    if end > len(data):
        raise ToolError(
            f"bzImage payload past end of file: payload at {start:#x}..{end:#x}, "
            f"file is {len(data):#x} bytes"
        )
    payload = data[start:end]
    name = payload_format(payload)
    if name is not None:
        return name, payload
    raise ToolError(f"bzImage payload compression not recognised (starts {payload[:6].hex()})")


def lz4_legacy_trim(payload: bytes) -> bytes:
    """Cut a legacy-format LZ4 stream after its last complete block.

    The legacy format has no end mark: readers take u32 block sizes until the
    input ends, so the kernel's appended size (or padding) would be read as
    one more block. Walk the blocks and stop where a size does not fit.
    """
    if len(payload) < 4 or struct.unpack_from("<I", payload, 0)[0] != _LZ4_LEGACY_MAGIC:
        raise ToolError("not a legacy LZ4 stream (bad magic)")
    pos = 4
    while pos + 4 <= len(payload):
        (size,) = struct.unpack_from("<I", payload, pos)
        if size == _LZ4_LEGACY_MAGIC:  # a concatenated stream follows: stop at it
            break
        if size == 0 or size > _LZ4_LEGACY_MAX_BLOCK + (_LZ4_LEGACY_MAX_BLOCK >> 8) + 16:
            break
        if pos + 4 + size > len(payload):
            break
        pos += 4 + size
    if pos == 4:
        raise ToolError("legacy LZ4 stream holds no complete block")
    return payload[:pos]


def _run_filter(argv: list[str], data: bytes, what: str) -> bytes:
    tool = shutil.which(argv[0])
    if tool is None:
        raise ToolError(
            f"{what}: the '{argv[0]}' command is not installed (apt-get install {argv[0]})"
        )
    proc = subprocess.run([tool, *argv[1:]], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        msg = last_line(proc.stderr) or f"exit status {proc.returncode}"
        raise ToolError(f"{what}: '{' '.join(argv)}' failed: {msg}")
    return proc.stdout


def _stream_decompress(
    dec: zlib._Decompress | lzma.LZMADecompressor | bz2.BZ2Decompressor, payload: bytes, what: str
) -> bytes:
    try:
        out = dec.decompress(payload)
    except (zlib.error, lzma.LZMAError, OSError, EOFError) as e:
        raise ToolError(f"{what}: {e}") from e
    if not dec.eof:
        raise ToolError(f"{what}: compressed stream is truncated")
    return out


def decompress(name: str, data: bytes, what: str | None = None) -> bytes:
    """Decompress *data*, one complete stream in the format *name* (a name of
    pvhfw.builder.bzimage's PAYLOAD_MAGIC but lzo): a bzImage's payload without its size
    trailer (:func:`decompress_payload`), or a compressed kernel module (tools/initramfs.py's
    .ko.xz, .ko.zst, .ko.gz). lz4 (the kernel's legacy format) and zstd go
    through their commands, the others through Python's modules. *what* names the data in
    errors."""
    what = what or f"{name} data"
    if name == "gzip":
        return _stream_decompress(zlib.decompressobj(16 + zlib.MAX_WBITS), data, what)
    if name == "xz":
        return _stream_decompress(lzma.LZMADecompressor(lzma.FORMAT_XZ), data, what)
    if name == "lzma":
        return _stream_decompress(lzma.LZMADecompressor(lzma.FORMAT_ALONE), data, what)
    if name == "bzip2":
        return _stream_decompress(bz2.BZ2Decompressor(), data, what)
    if name == "lz4":
        return _run_filter(["lz4", "-dc"], lz4_legacy_trim(data), what)
    if name == "zstd":
        return _run_filter(["zstd", "-dc"], data, what)
    raise ToolError(f"{what}: unknown compression '{name}'")


def decompress_payload(name: str, payload: bytes) -> bytes:
    """Decompress a bzImage payload as returned by :func:`bzimage_payload`.

    Every format but gzip has the uncompressed size appended (4 bytes, little-endian) after
    its stream; it is cut off before decompressing (``zstd -d`` would take it for the start
    of another frame and fail) and checked against the result's length. A
    gzip member's own trailer ends with that field (ISIZE): it is decoded whole.
    """
    what = f"{name} payload"
    if len(payload) < 8:
        raise ToolError(f"{what}: only {len(payload)} bytes")
    (size,) = struct.unpack_from("<I", payload, len(payload) - 4)
    out = decompress(name, payload if name == "gzip" else payload[:-4], what)
    if len(out) & 0xFFFFFFFF != size:
        raise ToolError(f"{what}: decompressed {len(out)} bytes, the payload says {size}")
    return out


def check_elf(data: bytes) -> None:
    """Raise ToolError unless *data* is a complete ELF image.

    Complete means the program and section header tables and every segment's
    file contents lie within *data*.
    """
    if not data.startswith(b"\x7fELF"):
        raise ToolError(f"not an ELF file (starts {data[:4].hex()})")
    if len(data) < 0x40:
        raise ToolError(f"ELF truncated: {len(data)} bytes")
    elf_class, endian = data[4], data[5]
    if elf_class not in (1, 2) or endian not in (1, 2):
        raise ToolError(f"ELF with bad class/data bytes {elf_class}/{endian}")
    e = "<" if endian == 1 else ">"
    if elf_class == 2:
        phoff, shoff = struct.unpack_from(e + "QQ", data, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, 0x36)
        ph_fmt, ph_off_size = e + "IIQQQQ", (2, 5)
    else:
        phoff, shoff = struct.unpack_from(e + "II", data, 0x1C)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, 0x2A)
        ph_fmt, ph_off_size = e + "IIIIII", (1, 4)
    size = len(data)
    if shnum and shoff + shnum * shentsize > size:
        raise ToolError(
            f"ELF truncated: section headers end at {shoff + shnum * shentsize:#x}, "
            f"file is {size:#x} bytes"
        )
    if phnum and phoff + phnum * phentsize > size:
        raise ToolError(
            f"ELF truncated: program headers end at {phoff + phnum * phentsize:#x}, "
            f"file is {size:#x} bytes"
        )
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
        offset, filesz = fields[ph_off_size[0]], fields[ph_off_size[1]]
        if offset + filesz > size:
            raise ToolError(f"ELF truncated: segment {i} ends at {offset + filesz:#x}")


# ---------------------------------------------------------------------------
# Files and commands


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """Unpack the ELF vmlinux inside *bzimage* to *out*, atomically."""
    try:
        data = bzimage.read_bytes()
    except OSError as e:
        raise ToolError(f"{bzimage}: {e.strerror or e}") from e
    try:
        name, payload = bzimage_payload(data)
        vmlinux = decompress_payload(name, payload)
        check_elf(vmlinux)
    except ToolError as e:
        raise ToolError(f"{bzimage}: {e}") from e
    write_atomic(out, vmlinux)


def _find_boot_files(root: Path, package: str) -> tuple[str, Path, Path]:
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if len(images) != 1:
        raise ToolError(
            f"{package}: expected one boot/vmlinuz-* in the package, found {len(images)}"
        )
    bzimage = images[0]
    version = bzimage.name.removeprefix("vmlinuz-")
    config = root / "boot" / f"config-{version}"
    if not config.is_file():
        raise ToolError(f"{package}: boot/config-{version} missing from the package")
    return version, bzimage, config


def _note(msg: str) -> None:
    print(f"debian_kernel: {msg}", file=sys.stderr, flush=True)


def _from_stamp(work: Path, package: str) -> DebianKernel | None:
    try:
        stamp = json.loads((work / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return None
    if stamp.get("package") != package:
        return None
    try:
        kernel = DebianKernel(
            package=package,
            version=str(stamp["version"]),
            deb=work / str(stamp["deb"]),
            bzimage=work / str(stamp["bzimage"]),
            vmlinux=work / str(stamp["vmlinux"]),
            config=work / str(stamp["config"]),
        )
    except KeyError:
        return None
    paths = (kernel.deb, kernel.bzimage, kernel.vmlinux, kernel.config)
    if not all(p.is_file() for p in paths):
        return None
    return kernel


def series_package(series: str) -> str:
    """The cloud kernel package of a kernel series of :data:`SERIES` ("6.1", "6.12")."""
    try:
        return SERIES[series]
    except KeyError:
        known = ", ".join(SERIES)
        raise ToolError(f"Linux {series}: not a kernel series of the project ({known})") from None


def ensure_debian_kernel(
    cache: Path | None = None, *, package: str | None = None, suite: str | None = None
) -> DebianKernel:
    """Download, unpack and extract the Debian kernel once; return its paths.

    *cache* defaults to $PVHFW_CACHE or ~/.cache/pvhfw; *package* to
    $PVHFW_DEBIAN_KERNEL_PKG or :data:`DEFAULT_PACKAGE`; *suite*, where the package comes
    from, to its entry in :data:`SUITES`, else the system's apt sources. Raises ToolError.
    """
    package = package_name(package)
    if "/" in package or package.startswith("."):
        raise ToolError(f"{package}: not a package name")
    suite = suite or SUITES.get(package)
    root = cache_dir(cache)
    work = root / "debian" / package
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ToolError(f"{work}: {e.strerror or e}") from e
    kernel = _from_stamp(work, package)
    if kernel is not None:
        return kernel
    try:
        with locked(work / ".lock"):
            kernel = _from_stamp(work, package)  # another process may have finished
            if kernel is not None:
                return kernel
            source = None if suite is None else AptSource.in_cache(suite, root)
            return _build(work, package, source)
    except OSError as e:
        where = e.filename or work
        raise ToolError(f"{package}: {where}: {e.strerror or e}") from e


def _build(work: Path, package: str, source: AptSource | None) -> DebianKernel:
    (work / STAMP_NAME).unlink(missing_ok=True)
    root = work / "root"
    debs = sorted(work.glob(f"{package}_*.deb"))
    deb: Path | None = None
    if len(debs) == 1:  # left by an earlier, interrupted run: reuse it if it unpacks
        _note(f"unpacking {debs[0].name}")
        try:
            dpkg_extract([debs[0]], root)
            deb = debs[0]
        except ToolError as e:
            _note(f"{e}; downloading again")
    if deb is None:
        for old in debs:
            old.unlink()
        if source is None:
            _note(f"downloading {package}")
            (deb,) = apt_download([package], work, note=_note)
        else:
            _note(f"downloading {package} from {source.suite}")
            (deb,) = apt_download([f"{package}/{source.suite}"], work, source=source, note=_note)
        _note(f"unpacking {deb.name}")
        dpkg_extract([deb], root)
    version, bzimage, config = _find_boot_files(root, package)
    vmlinux = work / "vmlinux"
    _note(f"extracting vmlinux from {bzimage.name}")
    extract_vmlinux(bzimage, vmlinux)
    stamp = {
        "format": STAMP_FORMAT,
        "package": package,
        "version": version,
        "deb": deb.name,
        "bzimage": str(bzimage.relative_to(work)),
        "vmlinux": vmlinux.name,
        "config": str(config.relative_to(work)),
    }
    write_atomic(work / STAMP_NAME, (json.dumps(stamp, indent=2) + "\n").encode())
    return DebianKernel(package, version, deb, bzimage, vmlinux, config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.debian_kernel",
        description="Fetch the Debian kernel package and extract its ELF vmlinux (cached).",
    )
    parser.add_argument("--cache", type=Path, help=f"cache directory (default ${ENV_CACHE})")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--package", help=f"package (default ${ENV_PACKAGE} or {DEFAULT_PACKAGE})")
    which.add_argument(
        "--generic", action="store_true", help=f"the generic flavour, {GENERIC_PACKAGE}"
    )
    which.add_argument(
        "--series",
        choices=SERIES,
        help="the cloud kernel of a series: "
        + ", ".join(f"{name} {pkg}" for name, pkg in SERIES.items()),
    )
    parser.add_argument(
        "--suite",
        help="with --package: the Debian suite it comes from, through an apt configuration of "
        "its own in the cache (default: the system's apt sources)",
    )
    args = parser.parse_args(argv)
    if args.suite and not args.package:
        parser.error("--suite goes with --package")

    def fetch() -> int:
        if args.series:
            package = series_package(args.series)
        else:
            package = GENERIC_PACKAGE if args.generic else args.package
        kernel = ensure_debian_kernel(args.cache, package=package, suite=args.suite)
        print(f"bzimage={kernel.bzimage}")
        print(f"vmlinux={kernel.vmlinux}")
        print(f"config={kernel.config}")
        print(f"version={kernel.version}")
        return 0

    return run_tool("debian_kernel", fetch)


if __name__ == "__main__":
    sys.exit(main())
