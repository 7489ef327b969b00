"""Reading a kernel: the ELF header and program headers (pyelftools), the PVH entry note.

Everything here is a function of the file's bytes. Notes are parsed by our own bounded
parser rather than pyelftools' iter_notes, so that a note running past its segment is a clean
error, not an exception from deep inside a library (docs/design.md).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.elffile import ELFFile

from pvhfw.builder.bzimage import payload_format
from pvhfw.builder.errors import BuildError
from pvhfw.firmware import abi

XEN_NOTE_OWNER = b"Xen"
XEN_ELFNOTE_PHYS32_ENTRY = abi.XEN_ELFNOTE_PHYS32_ENTRY
EM_386 = 3
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
SHT_NOTE = 7
SHT_NOBITS = 8
PF_X = 1
PN_XNUM = 0xFFFF  # e_phnum escape: the real count is in section 0 (never in a kernel)
# Bounds on the work a hostile file can cause. Linux's notes take a few hundred bytes and it has
# a few dozen sections; these are far above any kernel and keep every scan short.
MAX_NOTE_BYTES = 1 << 20  # note data scanned in all, over every note segment and section
MAX_SECTIONS = 0xFFFF  # section headers read when the PVH note is not in a PT_NOTE segment


@dataclass(frozen=True)
class Note:
    owner: bytes
    type: int
    desc: bytes
    offset: int  # file offset of the note header


@dataclass(frozen=True)
class Segment:
    index: int
    type: int
    offset: int
    paddr: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int
    align: int

    @property
    def end(self) -> int:
        return self.paddr + self.memsz


@dataclass(frozen=True)
class Kernel:
    """What the builder needs to know of a PVH kernel."""

    elf_class: int  # 32 or 64
    machine: str  # "x86" or "x86-64"
    entry: int  # XEN_ELFNOTE_PHYS32_ENTRY
    entry_source: str  # where the note was found, e.g. "PT_NOTE segment 2"
    segments: tuple[Segment, ...]  # PT_LOAD with p_memsz > 0, in file order

    @property
    def load_addr(self) -> int:
        """FW_CFG_KERNEL_ADDR as QEMU computes it: the lowest p_paddr of the segments."""
        return min(s.paddr for s in self.segments)

    @property
    def load_end(self) -> int:
        return max(s.end for s in self.segments)

    @property
    def load_size(self) -> int:
        """FW_CFG_KERNEL_SIZE as QEMU computes it: highest end minus lowest start."""
        return self.load_end - self.load_addr


def segment_header(elf: ELFFile, index: int) -> Any:
    """Program header `index` alone. pyelftools' public get_segment builds a segment object,
    and for PT_DYNAMIC that scans every section (quadratic on a hostile file), so this uses
    its private ELFFile._get_segment_header; pyproject bounds pyelftools' version and
    tests/test_builder.py holds this against the public API."""
    return elf._get_segment_header(index)


def section_header(elf: ELFFile, index: int) -> Any:
    """Section header `index` alone, through pyelftools' private _get_section_header (see
    segment_header)."""
    return elf._get_section_header(index)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)


def parse_notes(
    data: bytes | memoryview, base_offset: int, alignment: int, where: str
) -> list[Note]:
    """The notes in one PT_NOTE segment or SHT_NOTE section (data = its bytes).

    Each note: namesz u32, descsz u32, type u32, name padded to `alignment`, desc padded to
    `alignment` (4 for everything Linux emits; 8 where the segment says so).
    """
    data = memoryview(data)
    notes = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            # Trailing padding shorter than a header is harmless; anything else is not.
            if any(data[pos:]):
                raise BuildError(
                    f"{where}: note header at offset {base_offset + pos:#x} is truncated"
                )
            break
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_at = pos + 12
        desc_at = name_at + _align(namesz, alignment)
        end = desc_at + _align(descsz, alignment)
        if desc_at + descsz > len(data):
            raise BuildError(
                f"{where}: note at offset {base_offset + pos:#x} runs past the end "
                f"({namesz} name bytes, {descsz} descriptor bytes)"
            )
        owner = bytes(data[name_at : name_at + namesz]).rstrip(b"\0")
        notes.append(Note(owner, ntype, bytes(data[desc_at : desc_at + descsz]), base_offset + pos))
        pos = min(end, len(data))
    return notes


def pvh_entry_from_notes(notes: list[Note], where: str) -> int | None:
    """The PHYS32_ENTRY value among notes: None if absent; an error if ambiguous or malformed."""
    values = set()
    for note in notes:
        if note.owner != XEN_NOTE_OWNER or note.type != XEN_ELFNOTE_PHYS32_ENTRY:
            continue
        if len(note.desc) == 4:
            values.add(struct.unpack("<I", note.desc)[0])
        elif len(note.desc) == 8:
            value = struct.unpack("<Q", note.desc)[0]
            if value >> 32:
                raise BuildError(f"{where}: PVH entry {value:#x} is above 4 GiB")
            values.add(value)
        else:
            raise BuildError(
                f"{where}: PVH entry note has a {len(note.desc)}-byte descriptor (expected 4 or 8)"
            )
    if len(values) > 1:
        listed = ", ".join(f"{v:#x}" for v in sorted(values))
        raise BuildError(f"{where}: conflicting PVH entry notes ({listed})")
    return values.pop() if values else None


def _file_range(data: bytes, offset: int, size: int, what: str, name: str) -> memoryview:
    """data[offset:offset + size] without a copy, or an error if it is not all in the file."""
    if offset < 0 or size < 0 or offset + size > len(data):
        raise BuildError(
            f"{name}: {what} at offset {offset:#x} size {size:#x} runs past the end of the "
            f"file ({len(data):#x} bytes)"
        )
    return memoryview(data)[offset : offset + size]


def _not_elf(data: bytes, name: str) -> BuildError:
    """Why a file without the ELF magic is not a kernel we can read, as precisely as we can."""
    fmt = payload_format(data)
    if fmt is not None:
        return BuildError(
            f"{name}: {fmt}-compressed data, not an ELF file or a bzImage; decompress it"
        )
    return BuildError(f"{name}: neither an ELF file (no ELF magic) nor a bzImage (no HdrS)")


def read_kernel(data: bytes, name: str) -> Kernel:
    """Parse a PVH kernel ELF; every problem is a BuildError naming `name`.

    The work is bounded whatever the bytes say: the program header table must lie in the file
    (at most 65535 entries), note scanning stops at MAX_NOTE_BYTES, section headers at
    MAX_SECTIONS, and only headers are parsed (no pyelftools segment or section objects,
    some of which scan every section when built).
    """
    if len(data) == 0:
        raise BuildError(f"{name}: empty file")
    if data[:4] != b"\x7fELF":
        raise _not_elf(data, name)
    if len(data) < 16:
        raise BuildError(f"{name}: truncated ELF header ({len(data)} bytes)")
    if data[4] not in (1, 2):
        raise BuildError(f"{name}: unknown ELF class {data[4]} (expected 1, 32-bit, or 2, 64-bit)")
    if data[5] == 2:
        raise BuildError(f"{name}: not a little-endian ELF (x86 kernels are little-endian)")
    if data[5] != 1:
        raise BuildError(f"{name}: unknown ELF data encoding {data[5]} (x86 is 1, little-endian)")
    header_size = 52 if data[4] == 1 else 64
    if len(data) < header_size:
        raise BuildError(f"{name}: truncated ELF header ({len(data)} bytes)")
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if machine not in ("EM_386", "EM_X86_64"):
            what = f"machine {machine}" if isinstance(machine, int) else machine
            raise BuildError(f"{name}: ELF for {what}, not x86")
        phnum = elf["e_phnum"]
        phoff = elf["e_phoff"]
        phentsize = elf["e_phentsize"]
        if phnum == 0:
            raise BuildError(f"{name}: ELF has no program headers")
        if phnum == PN_XNUM:
            raise BuildError(
                f"{name}: e_phnum is PN_XNUM ({PN_XNUM:#x}, extended numbering), which no "
                "kernel uses"
            )
        expected = 32 if elf.elfclass == 32 else 56
        if phentsize != expected:
            raise BuildError(f"{name}: program header size {phentsize}, expected {expected}")
        _file_range(data, phoff, phnum * phentsize, "program header table", name)
        segments = []
        for index in range(phnum):
            h = segment_header(elf, index)
            ptype = h["p_type"]
            segments.append(
                Segment(
                    index=index,
                    type=ptype if isinstance(ptype, int) else _PT_NUMBERS.get(ptype, -1),
                    offset=h["p_offset"],
                    paddr=h["p_paddr"],
                    vaddr=h["p_vaddr"],
                    filesz=h["p_filesz"],
                    memsz=h["p_memsz"],
                    flags=h["p_flags"],
                    align=h["p_align"],
                )
            )
        entry, source = _find_entry(elf, data, segments, name)
    except (ELFError, ELFParseError, struct.error, ValueError) as e:
        detail = " ".join(str(e).split())  # one line, whatever the library said
        raise BuildError(f"{name}: malformed ELF: {detail}") from None

    loads = []
    for s in segments:
        if s.type != PT_LOAD:
            continue
        if s.memsz < s.filesz:
            raise BuildError(
                f"{name}: segment {s.index} has p_memsz {s.memsz:#x} < p_filesz {s.filesz:#x}"
            )
        _file_range(data, s.offset, s.filesz, f"segment {s.index}", name)
        if s.paddr + s.memsz > 1 << 32:
            raise BuildError(
                f"{name}: segment {s.index} at {s.paddr:#x}+{s.memsz:#x} ends above 4 GiB"
            )
        if s.memsz:
            loads.append(s)
    if not loads:
        raise BuildError(f"{name}: ELF has no loadable segment")
    return Kernel(
        elf_class=elf.elfclass,
        machine="x86-64" if machine == "EM_X86_64" else "x86",
        entry=entry,
        entry_source=source,
        segments=tuple(loads),
    )


_PT_NUMBERS = {
    "PT_NULL": 0,
    "PT_LOAD": 1,
    "PT_DYNAMIC": 2,
    "PT_INTERP": 3,
    "PT_NOTE": 4,
    "PT_SHLIB": 5,
    "PT_PHDR": 6,
    "PT_TLS": 7,
}


class _NoteScanner:
    """Searches note regions for the PVH entry, MAX_NOTE_BYTES at most in all: many note
    segments or sections pointing at the same large range would otherwise rescan it each time."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.scanned = 0

    def entry(self, offset: int, size: int, alignment: int, what: str) -> int | None:
        blob = _file_range(self.data, offset, size, what, self.name)
        where = f"{self.name}: {what}"
        self.scanned += size
        if self.scanned > MAX_NOTE_BYTES:
            raise BuildError(
                f"{where}: more than {MAX_NOTE_BYTES >> 20} MiB of ELF notes in all "
                "(a kernel's take a few hundred bytes)"
            )
        align = 8 if alignment == 8 else 4
        return pvh_entry_from_notes(parse_notes(blob, offset, align, where), where)


def _find_entry(elf: ELFFile, data: bytes, segments: list[Segment], name: str) -> tuple[int, str]:
    """The PVH entry from every PT_NOTE segment (all of them: a loader that stops at the first
    misses notes behind another), else from SHT_NOTE sections."""
    found: dict[int, str] = {}
    scanner = _NoteScanner(data, name)
    for s in segments:
        if s.type != PT_NOTE:
            continue
        value = scanner.entry(s.offset, s.filesz, s.align, f"PT_NOTE segment {s.index}")
        if value is not None:
            found.setdefault(value, f"PT_NOTE segment {s.index}")
    if not found:
        for index in _section_indices(elf, data, name):
            h = section_header(elf, index)
            if h["sh_type"] not in ("SHT_NOTE", SHT_NOTE):
                continue
            what = f"SHT_NOTE section {index}"
            value = scanner.entry(h["sh_offset"], h["sh_size"], h["sh_addralign"], what)
            if value is not None:
                found.setdefault(value, what)
    if len(found) > 1:
        listed = ", ".join(f"{v:#x}" for v in sorted(found))
        raise BuildError(f"{name}: conflicting PVH entry notes ({listed})")
    if not found:
        raise BuildError(
            f"{name}: no PVH entry note (Xen note type {XEN_ELFNOTE_PHYS32_ENTRY}); "
            "build the kernel with CONFIG_PVH=y"
        )
    ((entry, source),) = found.items()
    return entry, source


def _section_indices(elf: ELFFile, data: bytes, name: str) -> range:
    """The section header indices to read, once the table is known to lie in the file."""
    shoff = elf["e_shoff"]
    if shoff == 0:
        return range(0)
    shentsize = elf["e_shentsize"]
    expected = 40 if elf.elfclass == 32 else 64
    if shentsize != expected:
        raise BuildError(f"{name}: section header size {shentsize}, expected {expected}")
    # with e_shnum 0 the count is section 0's sh_size (extended numbering): read it safely
    _file_range(data, shoff, shentsize, "section header table", name)
    count = elf.num_sections()
    if count > MAX_SECTIONS:
        raise BuildError(f"{name}: {count} section headers, more than any kernel's")
    _file_range(data, shoff, count * shentsize, "section header table", name)
    return range(count)
