"""Hostile inputs to build-fw: every one is refused with one line naming the file and the
problem, exit status 1, no output written, in bounded time; never a traceback. Plus a
property-based test that mutates the headers of real kernels. No QEMU."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvhfw.builder.build import build
from pvhfw.builder.bzimage import BzImage
from pvhfw.builder.cli import main
from pvhfw.builder.errors import BuildError
from pvhfw.builder.kernel import MAX_NOTE_BYTES, Kernel, read_kernel
from pvhfw.firmware import layout
from tests.elfgen import PF_R, PF_W, PT_LOAD, PT_NOTE, Elf, Seg, note, pvh_note, simple_kernel
from tests.kernels.build import (
    KernelToolchainMissing,
    build_bzimage,
    build_kernel,
    elf_pvh_entry,
)
from tests.support import need

PT_DYNAMIC = 2
REPO = Path(__file__).resolve().parent.parent

# Offsets of the 64-bit ELF header fields (the 32-bit ones where they differ are given inline).
E64_PHOFF, E64_SHOFF, E64_PHENTSIZE, E64_PHNUM, E64_SHENTSIZE, E64_SHNUM = (
    0x20,
    0x28,
    0x36,
    0x38,
    0x3A,
    0x3C,
)
PH64 = 64  # program header table offset in elfgen's 64-bit files
PH64_SIZE = 56


def patched(data: bytes, *edits: tuple[int, str, int]) -> bytes:
    """data with struct fields overwritten: (offset, struct format, value)."""
    out = bytearray(data)
    for offset, fmt, value in edits:
        struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def phdr64(index: int, field: str) -> int:
    """File offset of a field of program header `index` in an elfgen 64-bit file."""
    at = {"type": 0, "flags": 4, "offset": 8, "paddr": 24, "filesz": 32, "memsz": 40}[field]
    return PH64 + index * PH64_SIZE + at


def kernel_at(load: int, entry: int | None = None) -> bytes:
    return simple_kernel(load + 0x10 if entry is None else entry, load).build()


def many_dynamic_segments_and_sections() -> bytes:
    """Thousands of PT_DYNAMIC headers and hundreds of sections: pyelftools' segment objects
    scanned every section for each PT_DYNAMIC (quadratic); the builder reads headers only."""
    segs = [Seg(PT_LOAD, 0x1000000, b"\x90" * 64), Seg(PT_NOTE, 0, pvh_note(0x1000010), flags=PF_R)]
    segs += [Seg(PT_DYNAMIC, 0, b"")] * 4000
    return Elf(segments=segs, note_sections=[note(b"GNU", 3, b"\x11" * 20)] * 300).build()


def notes_in_sections_only(**edits: int) -> bytes:
    """The PVH note only in an SHT_NOTE section (so the section headers are read), with
    ELF header fields overwritten: shoff, shnum, shentsize, section0_size."""
    data = Elf(
        segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 32)], note_sections=[pvh_note(0x1000008)]
    ).build()
    shoff = struct.unpack_from("<Q", data, E64_SHOFF)[0]
    fields = {"shoff": (E64_SHOFF, "Q"), "shnum": (E64_SHNUM, "H")}
    fields["shentsize"] = (E64_SHENTSIZE, "H")
    fields["section0_size"] = (shoff + 32, "Q")
    return patched(data, *((fields[k][0], fields[k][1], v) for k, v in edits.items()))


def many_note_segments_over_one_range() -> bytes:
    """3000 PT_NOTE headers all pointing at the same 512 KiB of notes: rescanning it for each
    was 1.5 GiB of work before the builder bounded the note bytes it scans in all."""
    region = pvh_note(0x1000010) + bytes(512 * 1024)
    data = bytearray(
        Elf(
            segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 64), Seg(PT_NOTE, 0, region, flags=PF_R)]
            + [Seg(0, 0, b"")] * 3000
        ).build()
    )
    note_header = data[PH64 + PH64_SIZE : PH64 + 2 * PH64_SIZE]
    for i in range(2, 3002):
        data[PH64 + i * PH64_SIZE : PH64 + (i + 1) * PH64_SIZE] = note_header
    return bytes(data)


GOOD64 = simple_kernel().build()
GOOD32 = simple_kernel(elf_class=32).build()

NOT_A_KERNEL = "neither an ELF file (no ELF magic) nor a bzImage (no HdrS)"
# (id, file contents, the problem after "build-fw: <file>: ", exactly)
HOSTILE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty file"),
    ("three-bytes", b"\x7fEL", NOT_A_KERNEL),
    ("pe-binary", b"MZ" + bytes(range(256)) * 4, NOT_A_KERNEL),
    (
        "gzip",
        b"\x1f\x8b\x08\x00" + bytes(60),
        "gzip-compressed data, not an ELF file or a bzImage; decompress it",
    ),
    ("ident-only", GOOD64[:10], "truncated ELF header (10 bytes)"),
    ("header-cut-64", GOOD64[:40], "truncated ELF header (40 bytes)"),
    ("header-cut-32", GOOD32[:51], "truncated ELF header (51 bytes)"),
    (
        "bad-class",
        patched(GOOD64, (4, "B", 3)),
        "unknown ELF class 3 (expected 1, 32-bit, or 2, 64-bit)",
    ),
    (
        "bad-encoding",
        patched(GOOD64, (5, "B", 0)),
        "unknown ELF data encoding 0 (x86 is 1, little-endian)",
    ),
    (
        "big-endian-32",
        Elf(
            elf_class=32, machine=3, big_endian=True, segments=[Seg(PT_LOAD, 0x1000000, b"\x90")]
        ).build(),
        "not a little-endian ELF (x86 kernels are little-endian)",
    ),
    (
        "arm32",
        Elf(elf_class=32, machine=40, segments=[Seg(PT_LOAD, 0x1000000, b"\x90")]).build(),
        "ELF for EM_ARM, not x86",
    ),
    (
        "unknown-machine",
        patched(GOOD64, (0x12, "H", 0x1234)),
        "ELF for machine 4660, not x86",
    ),
    (
        "phdrs-cut",
        GOOD64[: PH64 + PH64_SIZE + 10],
        "program header table at offset 0x40 size 0x70 runs past the end of the file (0x82 bytes)",
    ),
    (
        "phoff-past-end",
        patched(GOOD64, (E64_PHOFF, "Q", 1 << 40)),
        f"program header table at offset 0x10000000000 size 0x70 runs past the end of the file "
        f"({len(GOOD64):#x} bytes)",
    ),
    ("no-phdrs", patched(GOOD64, (E64_PHNUM, "H", 0)), "ELF has no program headers"),
    (
        "absurd-phnum",
        patched(GOOD64, (E64_PHNUM, "H", 0xFFFE)),
        f"program header table at offset 0x40 size 0x37ff90 runs past the end of the file "
        f"({len(GOOD64):#x} bytes)",
    ),
    (
        "phnum-xnum",
        patched(GOOD64, (E64_PHNUM, "H", 0xFFFF)),
        "e_phnum is PN_XNUM (0xffff, extended numbering), which no kernel uses",
    ),
    (
        "absurd-phentsize",
        patched(GOOD64, (E64_PHENTSIZE, "H", 0xFFFF)),
        "program header size 65535, expected 56",
    ),
    (
        "segment-offset-past-end",
        patched(GOOD64, (phdr64(0, "offset"), "Q", 0xFFFF_FFFF_FFFF_FF00)),
        f"segment 0 at offset 0xffffffffffffff00 size 0x40 runs past the end of the file "
        f"({len(GOOD64):#x} bytes)",
    ),
    (
        "segment-filesz-past-end",
        patched(GOOD64, (phdr64(0, "filesz"), "Q", 0x100000), (phdr64(0, "memsz"), "Q", 0x100000)),
        f"segment 0 at offset 0xb0 size 0x100000 runs past the end of the file "
        f"({len(GOOD64):#x} bytes)",
    ),
    (
        "note-segment-past-end",
        patched(GOOD64, (phdr64(1, "filesz"), "Q", 0x10000)),
        f"PT_NOTE segment 1 at offset 0xf0 size 0x10000 runs past the end of the file "
        f"({len(GOOD64):#x} bytes)",
    ),
    (
        "memsz-below-filesz-32",
        Elf(
            elf_class=32,
            machine=3,
            segments=[
                Seg(PT_LOAD, 0x1000000, b"\x90" * 64, memsz=0x20),
                Seg(PT_NOTE, 0, pvh_note(0x1000000), flags=PF_R),
            ],
        ).build(),
        "segment 0 has p_memsz 0x20 < p_filesz 0x40",
    ),
    (
        "paddr-memsz-wraps-64",
        patched(
            GOOD64,
            (phdr64(0, "paddr"), "Q", 0xFFFF_FFFF_FFFF_F000),
            (phdr64(0, "memsz"), "Q", 0x2000),
        ),
        "segment 0 at 0xfffffffffffff000+0x2000 ends above 4 GiB",
    ),
    (
        "paddr-memsz-wraps-32",
        Elf(
            elf_class=32,
            machine=3,
            segments=[
                Seg(PT_LOAD, 0xFFFFF000, b"\x90" * 16, memsz=0x1000_1000),
                Seg(PT_NOTE, 0, pvh_note(0xFFFFF000), flags=PF_R),
            ],
        ).build(),
        "segment 0 at 0xfffff000+0x10001000 ends above 4 GiB",
    ),
    (
        "note-namesz-past-segment",
        patched(GOOD64, (0xF0, "I", 0xFFFF_FFFF)),
        "PT_NOTE segment 1: note at offset 0xf0 runs past the end "
        "(4294967295 name bytes, 4 descriptor bytes)",
    ),
    (
        "note-descsz-past-segment",
        patched(GOOD64, (0xF4, "I", 0x1000)),
        "PT_NOTE segment 1: note at offset 0xf0 runs past the end "
        "(4 name bytes, 4096 descriptor bytes)",
    ),
    (
        "note-header-cut",
        Elf(
            segments=[
                Seg(PT_LOAD, 0x1000000, b"\x90" * 64),
                Seg(PT_NOTE, 0, pvh_note(0x1000010) + b"\x04\0\0\0\x04\0\0\0", flags=PF_R),
            ]
        ).build(),
        "PT_NOTE segment 1: note header at offset 0x104 is truncated",
    ),
    (
        "pvh-entry-above-4g",
        simple_kernel(0x1_0100_0000, note_size=8).build(),
        "PT_NOTE segment 1: PVH entry 0x101000000 is above 4 GiB",
    ),
    (
        "notes-rescanned",
        many_note_segments_over_one_range(),
        f"PT_NOTE segment 2: more than {MAX_NOTE_BYTES >> 20} MiB of ELF notes in all "
        "(a kernel's take a few hundred bytes)",
    ),
    (
        "sections-past-end",
        notes_in_sections_only(shoff=0x7FFF_0000),
        "section header table at offset 0x7fff0000 size 0x40 runs past the end of the file "
        f"({len(notes_in_sections_only()):#x} bytes)",
    ),
    (
        "section-entsize",
        notes_in_sections_only(shentsize=12),
        "section header size 12, expected 64",
    ),
    (
        "section-count-extended",
        notes_in_sections_only(shnum=0, section0_size=1 << 40),
        "1099511627776 section headers, more than any kernel's",
    ),
    (
        "no-loadable-segment",
        Elf(
            segments=[
                Seg(PT_LOAD, 0x1000000, b"", memsz=0),
                Seg(PT_NOTE, 0, pvh_note(0x1000000), flags=PF_R),
            ]
        ).build(),
        "ELF has no loadable segment",
    ),
    (
        "no-pvh-note",
        Elf(
            segments=[
                Seg(PT_LOAD, 0x1000000, b"\x90" * 64),
                Seg(PT_NOTE, 0, note(b"Xen", 17, b"\0" * 4) + note(b"GNU", 18, b"\0" * 4)),
            ]
        ).build(),
        "no PVH entry note (Xen note type 18); build the kernel with CONFIG_PVH=y",
    ),
    (
        "entry-in-bss",
        Elf(
            segments=[
                Seg(PT_LOAD, 0x1000000, b"\x90" * 64, memsz=0x1000),
                Seg(PT_NOTE, 0, pvh_note(0x1000800), flags=PF_R),
            ]
        ).build(),
        "PVH entry 0x1000800 is not inside any loaded segment's file data",
    ),
    (
        "entry-below-every-segment",
        kernel_at(0x1000000, entry=0x100000),
        "PVH entry 0x100000 is not inside any loaded segment's file data",
    ),
    (
        "entry-in-data-segment",
        Elf(
            segments=[
                Seg(PT_LOAD, 0x1000000, b"\x90" * 64),
                Seg(PT_LOAD, 0x2000000, b"\0" * 64, flags=PF_R | PF_W),
                Seg(PT_NOTE, 0, pvh_note(0x2000000), flags=PF_R),
            ]
        ).build(),
        "PVH entry 0x2000000 is in a non-executable segment",
    ),
    (
        "over-bda-pointer",
        kernel_at(0x400),
        "segment 0 at 0x400-0x440 overlaps the BIOS data area's EBDA pointer (written by the "
        "firmware) at 0x40e-0x410",
    ),
    (
        "over-firmware-ram-end",
        kernel_at(0x9FF0),
        "segment 0 at 0x9ff0-0xa030 overlaps the firmware RAM (start_info, memory map, "
        "command line, stack, zero page) at 0x1000-0xa000",
    ),
    (
        "over-ebda",
        kernel_at(0x9FFF0),
        "segment 0 at 0x9fff0-0xa0030 overlaps the EBDA (the ACPI RSDP) at 0x9fc00-0xa0000",
    ),
    (
        "over-rom",
        kernel_at(0xFFFF0000),
        "segment 0 at 0xffff0000-0xffff0040 overlaps the firmware ROM below 4 GiB at "
        "0xffff0000-0x100000000",
    ),
]


def run_cli(tmp_path: Path, kernel: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = tmp_path / "out" / "bios.bin"
    status = main(["--kernel", str(kernel), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err


def assert_refused(tmp_path: Path, status: int, err: str, kernel: Path, problem: str) -> None:
    assert status == 1, err
    assert "Traceback" not in err
    assert err == f"build-fw: {kernel}: {problem}\n"
    assert not (tmp_path / "out").exists(), "a refused kernel left output behind"


@pytest.mark.parametrize(("data", "problem"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_kernel_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, problem: str
) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(data)
    started = time.monotonic()
    status, err = run_cli(tmp_path, kernel, capsys)
    # not a performance figure: a guard against a parser that loops over what a file claims
    assert time.monotonic() - started < 10
    assert_refused(tmp_path, status, err, kernel, problem)


def test_what_the_hostile_files_derive_from_builds() -> None:
    """The files the table edits build, and so do kernels right beside each refused area: each
    refusal comes from its edit."""
    beside = (0x3CE, 0x410, 0xA000, 0x9FBC0, 0x100000, 0xFFFEFFC0)
    for data in (GOOD64, GOOD32, *(kernel_at(load) for load in beside)):
        assert len(build(data, "k").image) == layout.IMAGE_SIZE


def test_fifo_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "vmlinux"
    os.mkfifo(fifo)
    status, err = run_cli(tmp_path, fifo, capsys)
    assert_refused(tmp_path, status, err, fifo, "not a regular file")


def test_headers_are_read_without_building_segment_objects() -> None:
    """4000 PT_DYNAMIC headers and 300 sections build, quickly: pyelftools' get_segment would
    build a DynamicSegment for each, which scans every section (1.2 million section objects)."""
    data = many_dynamic_segments_and_sections()
    started = time.monotonic()
    kernel = build(data, "k").kernel
    assert time.monotonic() - started < 10  # took minutes before; a guard, not a figure
    assert isinstance(kernel, Kernel)
    assert kernel.entry == 0x1000010 and [s.index for s in kernel.segments] == [0]


def test_largest_program_header_table_is_read_in_bounded_time() -> None:
    """65534 program headers (the most e_phnum allows short of PN_XNUM), all in the file."""
    segs = [Seg(PT_LOAD, 0x1000000, b"\x90" * 64), Seg(PT_NOTE, 0, pvh_note(0x1000010))]
    data = Elf(segments=segs + [Seg(0, 0, b"")] * (0xFFFE - 2)).build()
    started = time.monotonic()
    kernel = read_kernel(data, "k")
    assert time.monotonic() - started < 10
    assert kernel.entry == 0x1000010


def test_note_bytes_just_under_the_bound_are_scanned() -> None:
    """The bound on note bytes refuses only what no kernel has: notes filling 1 MiB (a PVH note
    followed by zero-length notes) are read, and the entry found."""
    region = pvh_note(0x1000010)
    region += bytes(MAX_NOTE_BYTES - len(region))
    data = Elf(segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 64), Seg(PT_NOTE, 0, region)]).build()
    started = time.monotonic()
    assert read_kernel(data, "k").entry == 0x1000010
    assert time.monotonic() - started < 10
    bigger = Elf(
        segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 64), Seg(PT_NOTE, 0, region + bytes(4))]
    ).build()
    with pytest.raises(BuildError, match=r"^k: PT_NOTE segment 1: more than 1 MiB of ELF notes"):
        read_kernel(bigger, "k")


# --- in a real process: nothing but the line reaches stderr ----------------------------------


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory, not a kernel file"),
        ("phdrs-cut", None),
        ("note-namesz-past-segment", None),
        ("section-count-extended", None),
        ("over-bda-pointer", None),
    ],
)
def test_refusals_in_a_process(tmp_path: Path, case: str, problem: str | None) -> None:
    if case == "missing":
        kernel = tmp_path / "nope"
    elif case == "directory":
        kernel = tmp_path / "dir"
        kernel.mkdir()
    else:
        data, problem = next((d, p) for name, d, p in HOSTILE if name == case)
        kernel = tmp_path / "vmlinux"
        kernel.write_bytes(data)
    script = shutil.which("build-fw")
    for command in ([sys.executable, "-m", "pvhfw.builder.cli"], [script] if script else None):
        need(command is not None, "build-fw console script not installed (pip install -e .)")
        assert command is not None
        out = tmp_path / "out" / "bios.bin"
        result = subprocess.run(
            [*command, "--kernel", str(kernel), "-o", str(out)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        assert result.stderr == f"build-fw: {kernel}: {problem}\n"
        assert not out.parent.exists()


# --- real kernels: the bzImage, the 32-bit ELF, header mutations ------------------------------


@pytest.fixture(scope="module")
def real_kernels(kernels_dir: Path) -> dict[str, Path]:
    try:
        return {
            "exitfirst": build_kernel("exitfirst", kernels_dir, 0x1000000),
            "pvhcheck": build_kernel("pvhcheck", kernels_dir, 0x1000000),
            "bzimage": build_bzimage(kernels_dir),
        }
    except KernelToolchainMissing as e:
        need(False, str(e))
        raise


def test_truncated_bzimage_is_refused_in_one_line(
    tmp_path: Path, real_kernels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A real bzImage cut short (a partial copy): its syssize says more than the file has."""
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(real_kernels["bzimage"].read_bytes()[:-512])
    status, err = run_cli(tmp_path, kernel, capsys)
    assert_refused(
        tmp_path,
        status,
        err,
        kernel,
        "truncated bzImage: the header's syssize says 0x1000 bytes of protected-mode code, the "
        "file has 0xe00",
    )


def test_32bit_kernel_with_pvh_note_builds(
    tmp_path: Path, real_kernels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 32-bit ELF with a PVH note is a kernel, not bad input."""
    kernel = real_kernels["pvhcheck"]
    out = tmp_path / "bios.bin"
    assert main(["--kernel", str(kernel), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    result = build(kernel.read_bytes(), str(kernel))
    assert isinstance(result.kernel, Kernel)
    assert result.kernel.elf_class == 32 and result.kernel.machine == "x86"
    assert result.kernel.entry == elf_pvh_entry(kernel)
    assert out.read_bytes() == result.image


def elf_regions(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of the ELF header, the program header table, every PT_NOTE segment's
    data and the section header table of a well-formed little-endian ELF."""
    is64 = data[4] == 2
    if is64:
        phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
        ehsize = 64
    else:
        phoff, shoff = struct.unpack_from("<II", data, 0x1C)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x2A)
        ehsize = 52
    regions = [(0, ehsize), (phoff, phoff + phnum * phentsize)]
    for i in range(phnum):
        at = phoff + i * phentsize
        if is64:
            ptype, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", data, at)
        else:
            ptype, offset, _, _, filesz = struct.unpack_from("<IIIII", data, at)
        if ptype == PT_NOTE:
            regions.append((offset, offset + filesz))
    if shoff and shnum:
        regions.append((shoff, min(len(data), shoff + shnum * shentsize)))
    return regions


INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 63]
Mutation = tuple[int, int, int, int]  # region index, position in it (scaled), width, value


def apply(
    data: bytes, regions: list[tuple[int, int]], mutations: list[Mutation], cut: int
) -> bytes:
    out = bytearray(data)
    for region, position, width, value in mutations:
        start, end = regions[region % len(regions)]
        at = start + position % max(1, end - start)
        out[at : at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        del out[len(data) :]  # an overwrite at the very end must not grow the file
    if cut:  # a truncation inside one of the regions
        start, end = regions[cut % len(regions)]
        del out[start + cut % max(1, end - start) :]
    return bytes(out)


mutations = st.lists(
    st.tuples(
        st.integers(0, 15),
        st.integers(0, 1 << 16),
        st.sampled_from([1, 2, 4, 8]),
        st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1)),
    ),
    min_size=1,
    max_size=6,
)
truncation = st.one_of(st.just(0), st.just(0), st.integers(1, 1 << 16))


def builds_or_refuses_cleanly(data: bytes, name: str) -> None:
    try:
        result = build(data, name)
    except BuildError as e:
        message = str(e)
        assert message.startswith(f"{name}: ") and "\n" not in message, message
        return
    k = result.kernel
    assert k is not None and len(result.image) == layout.IMAGE_SIZE
    if isinstance(k, BzImage):
        start, end = k.memory
        assert k.load_addr <= k.entry < k.load_addr + k.pm_size
        assert end <= 1 << 32 and k.setup_size + k.pm_size == len(data)
        assert not any(a.overlaps(start, end) for a in layout.RESERVED_AREAS)
        return
    assert any(s.paddr <= k.entry < s.paddr + s.filesz for s in k.segments)
    assert k.load_end <= 1 << 32
    assert not any(a.overlaps(s.paddr, s.end) for s in k.segments for a in layout.RESERVED_AREAS)


PROPERTY = settings(
    max_examples=150,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("which", ["exitfirst", "pvhcheck"])
def test_mutated_kernel_headers_build_or_refuse_cleanly(
    real_kernels: dict[str, Path], which: str
) -> None:
    """Random overwrites of the ELF header, program headers, note segments and section headers
    of a real kernel, and truncations inside them: the builder builds, or raises BuildError
    with one line naming the file; nothing else escapes, and each example is quick."""
    data = real_kernels[which].read_bytes()
    unmutated = build(data, which).kernel
    assert unmutated is not None and unmutated.entry == elf_pvh_entry(real_kernels[which])
    regions = elf_regions(data)

    @PROPERTY
    @given(mutations, truncation)
    def check(changes: list[Mutation], cut: int) -> None:
        builds_or_refuses_cleanly(apply(data, regions, changes, cut), which)

    check()


BZ_REGIONS = [(0x1F1, 0x268), (0x200, 0x400)]  # the setup header; the sector it ends in


def test_mutated_bzimage_headers_build_or_refuse_cleanly(real_kernels: dict[str, Path]) -> None:
    """Random overwrites of a real bzImage's setup header, and truncations: the builder builds
    (the Linux-protocol path) or refuses in one line."""
    data = real_kernels["bzimage"].read_bytes()
    assert build(data, "bz").boot_path == "linux32"  # unmutated

    @PROPERTY
    @given(mutations, truncation)
    def check(changes: list[Mutation], cut: int) -> None:
        builds_or_refuses_cleanly(apply(data, BZ_REGIONS, changes, cut), "bz")

    check()


def debian_cached(which: str, series: str) -> Path | None:
    """The Debian vmlinux or bzImage of a kernel series if tools/debian_kernel.py has already
    cached it (never downloads)."""
    from tools import debian_kernel

    package = debian_kernel.series_package(series)
    root = Path(os.environ.get(debian_kernel.ENV_CACHE) or Path.home() / ".cache" / "pvhfw")
    work = root.expanduser() / "debian" / package
    kernel = debian_kernel._from_stamp(work, package) if work.is_dir() else None
    if kernel is None:
        return None
    return kernel.vmlinux if which == "vmlinux" else kernel.bzimage


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_mutated_debian_bzimage_header_builds_or_refuses_cleanly(series: str) -> None:
    """The same for Debian's vmlinuz (the bzImage the vmlinux was extracted from; 6.1's
    payload LZ4, 6.12's zstd)."""
    path = debian_cached("bzimage", series)
    need(
        path is not None,
        f"Debian kernel not cached (python3 -m tools.debian_kernel --series {series})",
    )
    assert path is not None
    data = path.read_bytes()
    assert build(data, "vmlinuz").boot_path == "linux32"

    @settings(PROPERTY, max_examples=40)
    @given(mutations, truncation)
    def check(changes: list[Mutation], cut: int) -> None:
        builds_or_refuses_cleanly(apply(data, BZ_REGIONS, changes, cut), "vmlinuz")

    check()


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_mutated_debian_vmlinux_header_builds_or_refuses_cleanly(series: str) -> None:
    """The same for the real Debian kernel, its first 64 KiB only (ELF and program headers)."""
    path = debian_cached("vmlinux", series)
    need(
        path is not None,
        f"Debian vmlinux not cached (python3 -m tools.debian_kernel --series {series})",
    )
    assert path is not None
    data = path.read_bytes()
    regions = [(a, min(b, 64 * 1024)) for a, b in elf_regions(data) if a < 64 * 1024]

    @settings(PROPERTY, max_examples=40)
    @given(mutations, truncation)
    def check(changes: list[Mutation], cut: int) -> None:
        builds_or_refuses_cleanly(apply(data, regions, changes, cut), "vmlinux")

    check()
