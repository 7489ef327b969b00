"""Tests for tools/debian_kernel.py and tools/initramfs.py.

Everything here runs offline except the test marked ``debian``, which fetches
(or finds in the cache) the real Debian kernel. It skips, with the reason,
when that is impossible, except under CI=true, where it fails instead.
"""

from __future__ import annotations

import gzip
import json
import lzma
import re
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bzgen import bzimage
from tests.support import need
from tools import debian_kernel as dk
from tools import initramfs as ir
from tools.debian_apt import AptSource
from tools.debian_kernel import ToolError

# ---------------------------------------------------------------------------
# A tiny newc reader, independent of the writer


@dataclass
class NewcRecord:
    offset: int
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes


def read_newc(archive: bytes) -> list[NewcRecord]:
    records: list[NewcRecord] = []
    pos = 0
    while True:
        assert pos % 4 == 0, f"record at {pos:#x} not 4-byte aligned"
        assert archive[pos : pos + 6] == b"070701", f"bad magic at {pos:#x}"
        fields = [int(archive[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, filesize = fields[:7]
        rdevmajor, rdevminor, namesize, check = fields[9:13]
        assert check == 0
        name_start = pos + 110
        raw_name = archive[name_start : name_start + namesize]
        assert raw_name.endswith(b"\0"), "name not NUL-terminated"
        data_start = name_start + namesize
        assert archive[data_start : data_start + (-data_start % 4)].strip(b"\0") == b""
        data_start += -data_start % 4
        assert data_start % 4 == 0
        data = archive[data_start : data_start + filesize]
        assert len(data) == filesize, "file data truncated"
        name = raw_name[:-1].decode()
        records.append(
            NewcRecord(pos, name, ino, mode, uid, gid, nlink, mtime, (rdevmajor, rdevminor), data)
        )
        pos = data_start + filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            break
    assert pos == len(archive), "bytes after the trailer"
    return records


SAMPLE: list[ir.Entry] = [
    ("/bin", stat.S_IFDIR | 0o755, b""),
    ("/bin/busybox", stat.S_IFREG | 0o755, b"\x7fELF fake"),
    ("/bin/sh", stat.S_IFLNK | 0o777, "busybox"),
    ("/dev", stat.S_IFDIR | 0o755, b""),
    ("/dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
    ("/init", stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n"),
    # names and sizes of every length mod 4, to exercise all paddings
    ("a", stat.S_IFREG | 0o644, b""),
    ("ab", stat.S_IFREG | 0o644, b"1"),
    ("abc", stat.S_IFREG | 0o644, b"12"),
    ("abcd", stat.S_IFREG | 0o600, b"123"),
]


def test_newc_archive_parses_back() -> None:
    records = read_newc(ir.newc_archive(SAMPLE))
    assert records[-1].name == "TRAILER!!!"
    assert records[-1].data == b""
    body = records[:-1]
    names = [r.name for r in body]
    assert names == sorted(n.lstrip("/") for n, *_ in SAMPLE)
    assert [r.ino for r in body] == list(range(1, len(body) + 1))
    by_name = {r.name: r for r in body}
    for path, mode, data, *rest in SAMPLE:
        r = by_name[path.lstrip("/")]
        assert r.mode == mode
        assert r.data == (data.encode() if isinstance(data, str) else data)
        assert r.rdev == (rest[0] if rest else (0, 0))
        assert (r.uid, r.gid, r.mtime) == (0, 0, 0)
        assert r.nlink == (2 if stat.S_ISDIR(mode) else 1)
    assert by_name["dev/console"].rdev == (5, 1)
    assert stat.S_ISCHR(by_name["dev/console"].mode)
    assert by_name["bin/sh"].data == b"busybox"


def test_newc_archive_is_deterministic() -> None:
    a = ir.newc_archive(SAMPLE)
    b = ir.newc_archive(list(reversed(SAMPLE)))
    assert a == b
    assert ir.gzip_deterministic(a) == ir.gzip_deterministic(b)
    gz = ir.gzip_deterministic(a)
    assert gz[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    assert gzip.decompress(gz) == a


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("x/y", stat.S_IFREG | 0o644, b"")], "parent directory"),
        ([("x", stat.S_IFREG | 0o644, b""), ("x/y", stat.S_IFREG | 0o644, b"")], "parent"),
        ([("a", stat.S_IFREG, b""), ("/a", stat.S_IFREG, b"")], "duplicate"),
        ([("a", 0o644, b"")], "file type"),
        ([("d", stat.S_IFDIR | 0o755, b"data")], "carry data"),
        ([("l", stat.S_IFLNK | 0o777, "")], "symlink"),
        ([("f", stat.S_IFREG | 0o644, b"", (1, 3))], "device number"),
        ([("../x", stat.S_IFREG, b"")], "bad archive path"),
        ([("/", stat.S_IFDIR, b"")], "bad archive path"),
        ([("TRAILER!!!", stat.S_IFREG, b"")], "bad archive path"),
    ],
)
def test_newc_archive_rejects(entries: list[ir.Entry], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ir.newc_archive(entries)


def test_newc_archive_readable_by_gnu_cpio() -> None:
    need(
        shutil.which("cpio") is not None,
        "no cpio command to cross-check with (apt-get install cpio)",
    )
    proc = subprocess.run(
        ["cpio", "-it", "--quiet"], input=ir.newc_archive(SAMPLE), capture_output=True, check=True
    )
    assert proc.stdout.decode().split() == sorted(n.lstrip("/") for n, *_ in SAMPLE)


# ---------------------------------------------------------------------------
# The initramfs itself (with a stand-in busybox, so no host package is needed)


@pytest.fixture
def fake_busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_bytes(ir.debug_exit_elf())  # any static ELF will do
    return path


def test_build_initramfs_contents_and_determinism(tmp_path: Path, fake_busybox: Path) -> None:
    a = ir.build_initramfs(tmp_path / "a.cpio.gz", "MARK-1", busybox=fake_busybox)
    b = ir.build_initramfs(tmp_path / "b.cpio.gz", "MARK-1", busybox=fake_busybox)
    c = ir.build_initramfs(tmp_path / "c.cpio.gz", "MARK-2", busybox=fake_busybox)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    records = {r.name: r for r in read_newc(gzip.decompress(a.read_bytes()))}
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        assert stat.S_ISDIR(records[d].mode), d
    assert records["bin/busybox"].data == fake_busybox.read_bytes()
    assert records["bin/sh"].data == b"busybox" and stat.S_ISLNK(records["bin/sh"].mode)
    assert records["dev/console"].rdev == (5, 1) and stat.S_ISCHR(records["dev/console"].mode)
    init = records["init"]
    assert init.mode == stat.S_IFREG | 0o755
    assert init.data.startswith(b"#!/bin/sh\n")
    assert b"MARK-1" in init.data
    exit_prog = records["bin/pvhfw-exit"]
    assert exit_prog.mode & 0o111
    dk.check_elf(exit_prog.data)
    # every command /init runs is a busybox applet link or pvhfw-exit
    for link in ("mount", "mknod", "cat", "grep", "dd", "printf", "reboot", "poweroff", "stty"):
        assert records[f"bin/{link}"].data == b"busybox", link


def test_init_script_shell_syntax_and_marker_quoting() -> None:
    marker = "odd 'marker' $HOME `id` \\n %s \"q\""
    script = ir.init_script(marker)
    sh = shutil.which("sh")
    need(sh is not None, "no sh to check the script with")
    assert sh is not None
    subprocess.run([sh, "-n", "-c", script], check=True)
    line = next(ln for ln in script.splitlines() if ln.startswith("printf '\\n%s\\n'"))
    out = subprocess.run([sh, "-c", line], capture_output=True, check=True).stdout
    assert out == b"\n" + marker.encode() + b"\n"
    assert "PVHFW-CMDLINE: " in script and "PVHFW-CPUS: " in script
    assert "seek=244" in script and "\\007" in script


@pytest.mark.parametrize("marker", ["", "two\nlines", "nul\0"])
def test_init_script_rejects_bad_marker(marker: str) -> None:
    with pytest.raises(ToolError, match="marker"):
        ir.init_script(marker)


def test_build_initramfs_missing_busybox(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="busybox-static"):
        ir.build_initramfs(tmp_path / "x.cpio.gz", busybox=tmp_path / "nope")
    assert not (tmp_path / "x.cpio.gz").exists()


def test_build_initramfs_rejects_dynamic_busybox(tmp_path: Path) -> None:
    elf = bytearray(ir.debug_exit_elf())
    struct.pack_into("<I", elf, 64, 3)  # turn its PT_LOAD into a PT_INTERP
    dyn = tmp_path / "busybox"
    dyn.write_bytes(bytes(elf))
    with pytest.raises(ToolError, match="dynamically linked"):
        ir.build_initramfs(tmp_path / "x.cpio.gz", busybox=dyn)


def test_ensure_initramfs_builds_once(
    tmp_path: Path, fake_busybox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVHFW_CACHE", str(tmp_path / "cache"))
    path = ir.ensure_initramfs("M", busybox=fake_busybox)
    assert path.parent == tmp_path / "cache"
    assert path.name.startswith("initramfs-") and path.name.endswith(".cpio.gz")
    assert path == ir.default_path("M")
    mtime = path.stat().st_mtime_ns
    fake_busybox.unlink()  # a second call must not need it
    assert ir.ensure_initramfs("M", busybox=fake_busybox) == path
    assert path.stat().st_mtime_ns == mtime
    assert ir.default_path("N") != path


def test_debug_exit_elf_encoding() -> None:
    elf = ir.debug_exit_elf()
    dk.check_elf(elf)
    (entry,) = struct.unpack_from("<Q", elf, 0x18)
    code = elf[entry - 0x400000 :]
    import keystone  # a dependency of the package

    ks = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)
    asm = (
        "mov edi, 0xf4; mov esi, 1; mov edx, 1; mov eax, 173; syscall; mov edi, 1;"
        "test eax, eax; jnz 40; mov al, 7; out 0xf4, al; mov edi, 2; mov eax, 60; syscall"
    )
    encoding, _ = ks.asm(asm, 0)
    assert bytes(encoding) == code


def test_initramfs_cli_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> Path:
        raise ToolError("/bin/busybox: not found")

    monkeypatch.setattr(ir, "build_initramfs", boom)
    assert ir.main(["-o", "/nonexistent/x.cpio.gz"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "initramfs: /bin/busybox: not found\n"
    assert captured.out == ""


# ---------------------------------------------------------------------------
# bzImage parsing over synthetic images


def make_bzimage(
    payload: bytes,
    *,
    setup_sects: int = 4,
    payload_offset: int = 0x100,
    protocol: int = 0x020F,
    magic: bytes = b"HdrS",
    length_fix: int = 0,
) -> bytes:
    """tests/bzgen's bzImage with `payload` at `payload_offset` in its protected-mode code,
    64 bytes after it, and the header's magic and payload_length as given."""
    image = bytearray(
        bzimage(
            bytes(payload_offset) + payload + bytes(64),
            setup_sects=setup_sects,
            protocol=protocol,
            payload=(payload_offset, len(payload) + length_fix),
        )
    )
    image[0x202:0x206] = magic
    return bytes(image)


def with_size(compressed: bytes, raw: bytes) -> bytes:
    return compressed + struct.pack("<I", len(raw))


ELF = ir.debug_exit_elf() + bytes(range(256)) * 40  # a complete ELF with trailing bytes


@pytest.mark.parametrize("setup_sects", [0, 4, 30])
def test_bzimage_payload_gzip(setup_sects: int) -> None:
    compressed = gzip.compress(ELF, mtime=0)  # its trailer already ends with the size
    name, payload = dk.bzimage_payload(make_bzimage(compressed, setup_sects=setup_sects))
    assert (name, payload) == ("gzip", compressed)
    out = dk.decompress_payload(name, payload)
    assert out == ELF
    dk.check_elf(out)


def test_bzimage_payload_xz() -> None:
    compressed = with_size(lzma.compress(ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32), ELF)
    name, payload = dk.bzimage_payload(make_bzimage(compressed))
    assert (name, payload) == ("xz", compressed)
    assert dk.decompress_payload(name, payload) == ELF


def test_bzimage_payload_lzma_and_bzip2() -> None:
    import bz2

    for name, compressed in (
        ("lzma", with_size(lzma.compress(ELF, format=lzma.FORMAT_ALONE), ELF)),
        ("bzip2", with_size(bz2.compress(ELF), ELF)),
    ):
        got_name, payload = dk.bzimage_payload(make_bzimage(compressed))
        assert got_name == name
        assert dk.decompress_payload(got_name, payload) == ELF


def test_bzimage_payload_lz4_legacy_with_size() -> None:
    need(shutil.which("lz4") is not None, "no lz4 command (apt-get install lz4)")
    raw = ELF * 50
    legacy = subprocess.run(
        ["lz4", "-l", "-12", "-c"], input=raw, capture_output=True, check=True
    ).stdout
    compressed = with_size(legacy, raw)
    name, payload = dk.bzimage_payload(make_bzimage(compressed))
    assert name == "lz4"
    assert dk.lz4_legacy_trim(payload) == legacy  # the appended size is cut off
    assert dk.decompress_payload(name, payload) == raw


def test_bzimage_payload_zstd_with_size() -> None:
    """Linux 6.12's payload (Debian 13): a zstd frame and the kernel's 4-byte size after it,
    which `zstd -d` alone refuses; decompress_payload cuts it off and checks it."""
    need(shutil.which("zstd") is not None, "no zstd command (apt-get install zstd)")
    raw = ELF * 50
    frame = subprocess.run(["zstd", "-19", "-c"], input=raw, capture_output=True, check=True)
    compressed = with_size(frame.stdout, raw)
    name, payload = dk.bzimage_payload(make_bzimage(compressed))
    assert (name, payload) == ("zstd", compressed)
    alone = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=False)
    assert alone.returncode != 0  # the trailer is not a zstd frame
    assert dk.decompress_payload(name, payload) == raw
    with pytest.raises(ToolError, match="says"):
        dk.decompress_payload(name, frame.stdout + struct.pack("<I", len(raw) - 1))
    with pytest.raises(ToolError, match=r"^zstd payload: 'zstd -dc' failed: "):
        dk.decompress_payload(name, frame.stdout[:-100] + struct.pack("<I", len(raw)))


def test_decompress_names_its_data() -> None:
    """decompress: one complete stream, as a module file holds (no size trailer)."""
    assert dk.decompress("xz", lzma.compress(ELF, check=lzma.CHECK_CRC32)) == ELF
    assert dk.decompress("gzip", gzip.compress(ELF)) == ELF
    with pytest.raises(ToolError, match=r"^m\.ko\.xz: compressed stream is truncated$"):
        dk.decompress("xz", lzma.compress(ELF)[:-20], "m.ko.xz")
    with pytest.raises(ToolError, match=r"^lzo data: unknown compression 'lzo'$"):
        dk.decompress("lzo", b"\x89LZO")


def test_lz4_legacy_trim_pure() -> None:
    magic = struct.pack("<I", 0x184C2102)
    blocks = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 2) + b"de"
    assert dk.lz4_legacy_trim(magic + blocks + struct.pack("<I", 12345678)) == magic + blocks
    assert dk.lz4_legacy_trim(magic + blocks + b"\0\0") == magic + blocks
    with pytest.raises(ToolError, match="no complete block"):
        dk.lz4_legacy_trim(magic + struct.pack("<I", 100) + b"short")
    with pytest.raises(ToolError, match="legacy LZ4"):
        dk.lz4_legacy_trim(b"\x04\x22\x4d\x18rest")


def test_bzimage_payload_missing_hdrs() -> None:
    image = make_bzimage(gzip.compress(ELF), magic=b"NoPe")
    with pytest.raises(ToolError, match="HdrS"):
        dk.bzimage_payload(image)


@pytest.mark.parametrize("size", [0, 0x100, 0x24F])
def test_bzimage_payload_truncated_file(size: int) -> None:
    image = make_bzimage(gzip.compress(ELF))
    with pytest.raises(ToolError, match="truncated"):
        dk.bzimage_payload(image[:size])


def test_bzimage_payload_past_end() -> None:
    image = make_bzimage(gzip.compress(ELF), length_fix=4096)
    with pytest.raises(ToolError, match="past end"):
        dk.bzimage_payload(image)
    compressed = gzip.compress(ELF)
    image = make_bzimage(compressed)
    cut = len(image) - 64 - len(compressed) // 2  # the file ends inside the payload
    with pytest.raises(ToolError, match="past end"):
        dk.bzimage_payload(image[:cut])


def test_bzimage_payload_old_protocol_and_unknown_compression() -> None:
    with pytest.raises(ToolError, match=r"needs >= 2\.08"):
        dk.bzimage_payload(make_bzimage(gzip.compress(ELF), protocol=0x0207))
    with pytest.raises(ToolError, match="not recognised"):
        dk.bzimage_payload(make_bzimage(b"\x00\x01\x02\x03" * 8))


def test_decompress_payload_checks_size_and_truncation() -> None:
    bad_size = lzma.compress(ELF, format=lzma.FORMAT_XZ) + struct.pack("<I", len(ELF) + 1)
    with pytest.raises(ToolError, match="says"):
        dk.decompress_payload("xz", bad_size)
    truncated = gzip.compress(ELF)[:-100]
    with pytest.raises(ToolError, match="gzip payload"):
        dk.decompress_payload("gzip", truncated)


def test_check_elf_rejects_incomplete() -> None:
    dk.check_elf(ELF)
    with pytest.raises(ToolError, match="not an ELF"):
        dk.check_elf(b"MZ" + ELF)
    elf = bytearray(ELF)
    struct.pack_into("<QHHH", elf, 0x28, len(ELF) - 10, 0, 0, 0)  # e_shoff, ..., e_shentsize
    struct.pack_into("<HH", elf, 0x3A, 64, 1)  # e_shentsize 64, e_shnum 1
    with pytest.raises(ToolError, match="section headers"):
        dk.check_elf(bytes(elf))
    with pytest.raises(ToolError, match="segment 0"):
        dk.check_elf(ir.debug_exit_elf()[:-1])


# ---------------------------------------------------------------------------
# Cache behaviour and CLI without the network


def test_ensure_debian_kernel_uses_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = "linux-image-test-unsigned"
    work = tmp_path / "debian" / pkg
    (work / "root" / "boot").mkdir(parents=True)
    for rel in (f"{pkg}_1_amd64.deb", "root/boot/vmlinuz-9.9", "root/boot/config-9.9", "vmlinux"):
        (work / rel).write_bytes(b"x")
    stamp = {
        "format": dk.STAMP_FORMAT,
        "package": pkg,
        "version": "9.9",
        "deb": f"{pkg}_1_amd64.deb",
        "bzimage": "root/boot/vmlinuz-9.9",
        "vmlinux": "vmlinux",
        "config": "root/boot/config-9.9",
    }
    (work / "stamp.json").write_text(json.dumps(stamp))

    def no_network(*args: object, **kwargs: object) -> list[Path]:
        raise AssertionError("must not download when the stamp is there")

    monkeypatch.setattr(dk, "apt_download", no_network)
    monkeypatch.setenv("PVHFW_DEBIAN_KERNEL_PKG", pkg)
    kernel = dk.ensure_debian_kernel(tmp_path)
    assert kernel.version == "9.9"
    assert kernel.vmlinux == work / "vmlinux"
    assert kernel.bzimage == work / "root/boot/vmlinuz-9.9"
    assert kernel.config == work / "root/boot/config-9.9"
    # A missing output invalidates the stamp: the rebuild path is taken.
    (work / "vmlinux").unlink()
    (work / f"{pkg}_1_amd64.deb").unlink()
    with pytest.raises(AssertionError, match="must not download"):
        dk.ensure_debian_kernel(tmp_path)


def test_debian_kernel_cli_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> dk.DebianKernel:
        raise ToolError("linux-image-x: apt-get download failed: E: Unable to locate package")

    monkeypatch.setattr(dk, "ensure_debian_kernel", fail)
    assert dk.main([]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "debian_kernel: linux-image-x: apt-get download failed: E: Unable to locate package\n"
    )
    assert captured.out == ""


def test_debian_kernel_cli_flavours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str | None, str | None]] = []

    def fake(
        cache: Path | None = None, *, package: str | None = None, suite: str | None = None
    ) -> dk.DebianKernel:
        asked.append((package, suite))
        f = tmp_path / "f"
        return dk.DebianKernel(package or dk.DEFAULT_PACKAGE, "6.1.0-50-amd64", f, f, f, f)

    monkeypatch.setattr(dk, "ensure_debian_kernel", fake)
    assert dk.main([]) == 0
    assert dk.main(["--generic"]) == 0
    assert dk.main(["--package", "linux-image-x"]) == 0
    assert dk.main(["--series", "6.12"]) == 0
    assert dk.main(["--series", "6.1"]) == 0
    assert dk.main(["--package", "linux-image-y", "--suite", "trixie"]) == 0
    assert asked == [
        (None, None), (dk.GENERIC_PACKAGE, None), ("linux-image-x", None),
        (dk.TRIXIE_PACKAGE, None), (dk.DEFAULT_PACKAGE, None), ("linux-image-y", "trixie"),
    ]  # fmt: skip
    assert "version=6.1.0-50-amd64" in capsys.readouterr().out
    for bad in (
        ["--generic", "--package", "linux-image-x"],
        ["--series", "6.12", "--generic"],
        ["--series", "5.10"],
        ["--suite", "trixie"],  # a suite without a package
    ):
        with pytest.raises(SystemExit):
            dk.main(bad)


def test_the_series_kernels_are_pinned_and_6_12_comes_from_trixie() -> None:
    assert list(dk.SERIES) == ["6.1", "6.12"] and dk.DEFAULT_SERIES == "6.1"
    assert dk.SERIES["6.1"] == dk.DEFAULT_PACKAGE
    assert dk.series_package("6.12") == dk.TRIXIE_PACKAGE
    assert re.fullmatch(r"linux-image-6\.12\.\d+\+deb13-cloud-amd64-unsigned", dk.TRIXIE_PACKAGE)
    assert dk.SUITES == {dk.TRIXIE_PACKAGE: "trixie"}
    with pytest.raises(ToolError, match=r"^Linux 5\.10: not a kernel series of the project"):
        dk.series_package("5.10")


@pytest.mark.parametrize(
    ("package", "suite", "want"),
    [
        (dk.TRIXIE_PACKAGE, None, f"{dk.TRIXIE_PACKAGE}/trixie"),  # SUITES says where
        ("linux-image-z", "trixie", "linux-image-z/trixie"),
        (dk.DEFAULT_PACKAGE, None, dk.DEFAULT_PACKAGE),  # the system's apt
    ],
)
def test_a_kernel_of_another_suite_is_fetched_through_its_apt_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, suite: str | None, want: str
) -> None:
    calls: list[tuple[list[str], Path, object]] = []

    def download(packages: list[str], dest: Path, **kwargs: object) -> list[Path]:
        calls.append((list(packages), dest, kwargs.get("source")))
        raise ToolError("offline")

    monkeypatch.setattr(dk, "apt_download", download)
    with pytest.raises(ToolError, match="offline"):
        dk.ensure_debian_kernel(tmp_path, package=package, suite=suite)
    ((packages, dest, source),) = calls
    assert packages == [want] and dest == tmp_path / "debian" / package
    if "/" in want:
        assert source == AptSource.in_cache("trixie", tmp_path)
    else:
        assert source is None


def test_cache_dir_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PVHFW_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dk.cache_dir() == tmp_path / ".cache" / "pvhfw"
    monkeypatch.setenv("PVHFW_CACHE", str(tmp_path / "elsewhere"))
    assert dk.cache_dir() == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere").is_dir()


# ---------------------------------------------------------------------------
# The real thing


def _elf_notes(data: bytes) -> list[tuple[bytes, int, bytes]]:
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    notes = []
    for i in range(phnum):
        p_type, _flags, offset, _va, _pa, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = offset, offset + filesz
        while pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", data, pos)
            name = data[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            desc_at = pos + 12 + ((namesz + 3) & ~3)
            notes.append((name, n_type, data[desc_at : desc_at + descsz]))
            pos = desc_at + ((descsz + 3) & ~3)
    return notes


# What each series' payload is (machines.md, "Debian kernels" and "Newer QEMU and kernels").
SERIES_COMPRESSION = {"6.1": "lz4", "6.12": "zstd"}


@pytest.mark.debian
@pytest.mark.parametrize("series", list(dk.SERIES))
def test_debian_kernel_vmlinux(series: str) -> None:
    try:
        kernel = dk.ensure_debian_kernel(package=dk.series_package(series))
    except ToolError as e:
        need(False, f"Debian kernel unavailable (no apt-get/network?): {e}")
        raise
    assert kernel.version.startswith(f"{series}.")
    bz = kernel.bzimage.read_bytes()
    assert dk.bzimage_payload(bz)[0] == SERIES_COMPRESSION[series]
    data = kernel.vmlinux.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert data[4] == 2, "not ELF64"
    assert data[5] == 1, "not little-endian"
    assert struct.unpack_from("<H", data, 0x12)[0] == 62, "not x86-64"
    dk.check_elf(data)
    notes = _elf_notes(data)
    assert notes, "no PT_NOTE"
    phys32 = [desc for name, n_type, desc in notes if name == b"Xen" and n_type == 18]
    assert phys32, "no Xen PHYS32_ENTRY note: no PVH entry"
    assert kernel.bzimage.is_file() and kernel.config.is_file()
    assert "CONFIG_PVH=y" in kernel.config.read_text()
    assert kernel.version in kernel.bzimage.name


# ---- tools/guest.py ------------------------------------------------------------------------


def test_host_tsc_khz_from_cpuinfo() -> None:
    from tools.guest import FALLBACK_TSC_KHZ, host_tsc_khz

    cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2445.404\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n"
    assert host_tsc_khz(cpuinfo) == 2445404
    assert host_tsc_khz("processor\t: 0\n") == FALLBACK_TSC_KHZ
    assert host_tsc_khz("cpu MHz\t\t: 0.000\n") == FALLBACK_TSC_KHZ


def test_tsc_early_khz_only_for_microvm_under_tcg() -> None:
    from tools.guest import tcg_kernel_args

    (arg,) = tcg_kernel_args("microvm,pit=on", "tcg")
    assert arg.startswith("tsc_early_khz=") and int(arg.split("=")[1]) > 0
    assert tcg_kernel_args("microvm", "kvm") == []
    assert tcg_kernel_args("pc", "tcg") == []
    assert tcg_kernel_args("q35", "tcg") == []
