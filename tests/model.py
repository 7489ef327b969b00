"""Reference models the tests compare the firmware against, written from the specs rather
than from the assembly: what the memory map, start_info and module list must be for a given
fw_cfg, and how Linux prints a PVH memory map back."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pvhfw.firmware import layout
from tests import spec

Range = tuple[int, int, int]  # addr, size, type

E820_RAM = spec.E820_RAM
E820_RESERVED = spec.E820_RESERVED
E820_ACPI = spec.E820_ACPI


def parse_e820_file(data: bytes) -> list[Range]:
    """fw_cfg "etc/e820": packed little-endian struct e820_entry[]."""
    return spec.e820_unpack(data)


def expected_memmap(e820: Sequence[Range]) -> list[Range]:
    """The PVH memory map the firmware must build from fw_cfg's e820 entries.

    RAM that starts below 1 MiB keeps [start, 640 KiB) and [1 MiB, end); the legacy hole
    between is left out; the ROM shadow [ROM_SHADOW_BASE, 1 MiB) is reserved, right after the
    first such split (or at the end if there is none). Other entries are copied in order.
    """
    out: list[Range] = []
    rom = (layout.ROM_SHADOW_BASE, layout.ROM_SHADOW_END - layout.ROM_SHADOW_BASE, E820_RESERVED)
    rom_done = False
    for addr, size, typ in e820:
        if typ == E820_RAM and addr < layout.HIGHMEM_START:
            end = addr + size
            if addr < layout.LOWMEM_END:
                out.append((addr, min(end, layout.LOWMEM_END) - addr, E820_RAM))
            if not rom_done:
                out.append(rom)
                rom_done = True
            if end > layout.HIGHMEM_START:
                out.append((layout.HIGHMEM_START, end - layout.HIGHMEM_START, E820_RAM))
        else:
            out.append((addr, size, typ))
    if not rom_done:
        out.append(rom)
    return out


def with_acpi(memmap: Sequence[Range], acpi_size: int, ebda: bool = True) -> list[Range]:
    """The map after the ACPI table-loader ran: the top `acpi_size` bytes of the highest RAM
    entry in [1 MiB, 4 GiB) become an ACPI entry, appended; with `ebda`, the EBDA's KiB is
    taken off the RAM entry that ends at 640 KiB and appended as reserved."""
    out = list(memmap)
    if acpi_size:
        below = [
            i
            for i, (a, s, t) in enumerate(out)
            if t == E820_RAM and a >= layout.HIGHMEM_START and a + s < 1 << 32
        ]
        i = max(below, key=lambda i: out[i][0] + out[i][1])
        a, s, t = out[i]
        out[i] = (a, s - acpi_size, t)
        out.append((a + s - acpi_size, acpi_size, E820_ACPI))
    if ebda:
        i = next(
            i
            for i, (a, s, t) in enumerate(out)
            if t == E820_RAM and a < layout.EBDA_BASE and a + s == layout.LOWMEM_END
        )
        a, s, t = out[i]
        out[i] = (a, layout.EBDA_BASE - a, t)
        out.append((layout.EBDA_BASE, layout.LOWMEM_END - layout.EBDA_BASE, E820_RESERVED))
    return out


def carve(memmap: Sequence[Range], start: int, size: int, typ: int) -> list[Range] | None:
    """The map after [start, start + size) is taken out of the RAM entry that holds it and
    appended as `typ` (memmap_carve's rule); None when no RAM entry lying wholly below 4 GiB
    holds it. The entry keeps what lies before the range, else what lies after it; with
    something on both sides, what lies after becomes a RAM entry, appended before the range."""
    end = start + size
    out = list(memmap)
    for i, (a, s, t) in enumerate(out):
        if t != E820_RAM or a + s >= 1 << 32 or not a <= start or end > a + s:
            continue
        head, tail = start - a, a + s - end
        out[i] = (end, tail, t) if head == 0 and tail else (a, head, t)
        if head and tail:
            out.append((end, tail, E820_RAM))
        out.append((start, size, typ))
        return out
    return None


def top_ram(memmap: Sequence[Range]) -> tuple[int, int]:
    """(start, end) of the RAM entry lying below 4 GiB, starting at or above 1 MiB, that ends
    highest (the first of equals); (0, 0) without one."""
    best = (0, 0)
    for a, s, t in memmap:
        if t == E820_RAM and a >= layout.HIGHMEM_START and a + s < 1 << 32 and a + s > best[1]:
            best = (a, a + s)
    return best


def acpi_size(memmap: Sequence[Range]) -> int:
    """The size of the (single) ACPI entry of a map; 0 without one."""
    sizes = [s for _, s, t in memmap if t == E820_ACPI]
    if len(sizes) > 1:
        raise ValueError(f"more than one ACPI entry: {memmap}")
    return sizes[0] if sizes else 0


def fallback_e820(ram_size: int) -> list[Range]:
    """What the firmware assumes without etc/e820: RAM from 0, capped below the PCI hole."""
    return [(0, min(ram_size, layout.FALLBACK_LOWMEM_MAX), E820_RAM)]


def linux_view(memmap: Sequence[Range], pvh: bool = True) -> list[Range]:
    """The map Linux prints as BIOS-e820: the firmware's table (for a PVH boot, plus the ISA
    range Linux reserves itself, arch/x86/platform/pvh/enlighten.c; a bzImage's e820_table is
    taken as it is), sanitized as e820__update_table does: where ranges overlap the higher
    type wins, adjacent ranges of one type merge, zero-sized ranges vanish."""
    isa = (layout.LOWMEM_END, layout.HIGHMEM_START - layout.LOWMEM_END, E820_RESERVED)
    ranges = [*memmap, isa] if pvh else list(memmap)
    points = sorted({p for a, s, _ in ranges if s for p in (a, a + s)})
    out: list[Range] = []
    for lo, hi in itertools.pairwise(points):
        types = [t for a, s, t in ranges if s and a <= lo and hi <= a + s]
        if not types:
            continue
        t = max(types)
        if out and out[-1][2] == t and out[-1][0] + out[-1][1] == lo:
            out[-1] = (out[-1][0], hi - out[-1][0], t)
        else:
            out.append((lo, hi - lo, t))
    return out


@dataclass(frozen=True)
class StartInfo:
    magic: int
    version: int
    flags: int
    nr_modules: int
    modlist_paddr: int
    cmdline_paddr: int
    rsdp_paddr: int
    memmap_paddr: int
    memmap_entries: int
    reserved: int

    @classmethod
    def unpack(cls, data: bytes) -> StartInfo:
        fields = spec.HVM_START_INFO.unpack(data)
        return cls(**{name: int(value) for name, value in fields.items()})


def unpack_memmap(data: bytes, count: int) -> list[tuple[int, int, int, int]]:
    entry = spec.HVM_MEMMAP_TABLE_ENTRY
    return [struct.unpack_from(entry.format, data, entry.size * i) for i in range(count)]
