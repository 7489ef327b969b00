"""Synthetic ELF files, as bytes, for testing the kernel reader without a compiler."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PT_LOAD, PT_NOTE = 1, 4
SHT_NOTE = 7
PF_R, PF_W, PF_X = 4, 2, 1


def note(owner: bytes, ntype: int, desc: bytes, align: int = 4) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % align)

    name = owner + b"\0"
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def pvh_note(entry: int, size: int = 4) -> bytes:
    return note(b"Xen", 18, entry.to_bytes(size, "little"))


@dataclass
class Seg:
    type: int
    paddr: int
    data: bytes
    memsz: int | None = None
    flags: int = PF_R | PF_X
    align: int = 4


@dataclass
class Elf:
    """An ELF with program headers and, optionally, SHT_NOTE sections (no other sections)."""

    elf_class: int = 64
    machine: int = 62
    segments: list[Seg] = field(default_factory=list)
    note_sections: list[bytes] = field(default_factory=list)
    big_endian: bool = False

    def build(self) -> bytes:
        is64 = self.elf_class == 64
        e = ">" if self.big_endian else "<"
        ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
        phoff = ehsize
        body = bytearray()
        data_start = phoff + phentsize * len(self.segments)
        offsets = []
        for seg in self.segments:
            offsets.append(data_start + len(body))
            body += seg.data
            body += b"\0" * (-len(body) % 8)
        sec_offsets = []
        for sec in self.note_sections:
            sec_offsets.append(data_start + len(body))
            body += sec
            body += b"\0" * (-len(body) % 8)
        shnum = len(self.note_sections) + 1 if self.note_sections else 0
        shoff = data_start + len(body) if shnum else 0

        ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if self.big_endian else 1, 1]) + bytes(9)
        if is64:
            hdr = ident + struct.pack(
                e + "HHIQQQIHHHHHH",
                2,
                self.machine,
                1,
                0,
                phoff,
                shoff,
                0,
                ehsize,
                phentsize,
                len(self.segments),
                shentsize,
                shnum,
                0,
            )
        else:
            hdr = ident + struct.pack(
                e + "HHIIIIIHHHHHH",
                2,
                self.machine,
                1,
                0,
                phoff,
                shoff,
                0,
                ehsize,
                phentsize,
                len(self.segments),
                shentsize,
                shnum,
                0,
            )
        phdrs = bytearray()
        for seg, off in zip(self.segments, offsets, strict=True):
            memsz = len(seg.data) if seg.memsz is None else seg.memsz
            if is64:
                phdrs += struct.pack(
                    e + "IIQQQQQQ",
                    seg.type,
                    seg.flags,
                    off,
                    seg.paddr,
                    seg.paddr,
                    len(seg.data),
                    memsz,
                    seg.align,
                )
            else:
                phdrs += struct.pack(
                    e + "IIIIIIII",
                    seg.type,
                    off,
                    seg.paddr,
                    seg.paddr,
                    len(seg.data),
                    memsz,
                    seg.flags,
                    seg.align,
                )
        shdrs = bytearray()
        if shnum:
            shdrs += bytes(shentsize)  # SHN_UNDEF
            for sec, off in zip(self.note_sections, sec_offsets, strict=True):
                if is64:
                    shdrs += struct.pack(
                        e + "IIQQQQIIQQ", 0, SHT_NOTE, 0, 0, off, len(sec), 0, 0, 4, 0
                    )
                else:
                    shdrs += struct.pack(
                        e + "IIIIIIIIII", 0, SHT_NOTE, 0, 0, off, len(sec), 0, 0, 4, 0
                    )
        return bytes(hdr + phdrs + body + shdrs)


def simple_kernel(
    entry: int = 0x1000010,
    load: int = 0x1000000,
    *,
    elf_class: int = 64,
    note_size: int = 4,
    code: bytes = b"\xf4" * 64,
) -> Elf:
    """A minimal 'kernel': one executable PT_LOAD and a PT_NOTE with the PVH entry."""
    return Elf(
        elf_class=elf_class,
        machine=62 if elf_class == 64 else 3,
        segments=[
            Seg(PT_LOAD, load, code),
            Seg(PT_NOTE, 0, pvh_note(entry, note_size), flags=PF_R),
        ],
    )
