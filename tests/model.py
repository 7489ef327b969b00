"""Reference models the tests compare the firmware against, written from the specs rather
than from the assembly: what the memory map, start_info and module list must be for a given
fw_cfg, and how Linux prints a PVH memory map back."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pvhfw import __version__
from pvhfw.firmware import layout
from tests import spec

Range = tuple[int, int, int]  # addr, size, type

E820_RAM = spec.E820_RAM
E820_RESERVED = spec.E820_RESERVED
E820_ACPI = spec.E820_ACPI
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


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
            end = (addr + size) & MASK64  # u64 arithmetic, as the fields are
            if addr < layout.LOWMEM_END:  # (an end that wrapped below addr: a u32 size)
                out.append((addr, (min(end, layout.LOWMEM_END) - addr) & MASK32, E820_RAM))
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


MMCONFIG: Range = (layout.PCIE_MMCONFIG_BASE, layout.PCIE_MMCONFIG_SIZE, E820_RESERVED)


def machine_memmap(
    e820: Sequence[Range], machine: str, acpi_size: int | None = None
) -> list[Range]:
    """The map a boot on `machine` ("pc", "q35", "microvm") hands the kernel: the e820 rule
    (expected_memmap); q35's MMCONFIG window, reserved; then what the tables take: with ACPI
    (`acpi_size`: its zone's size) the ACPI entry and the EBDA (the RSDP); without (None) the
    EBDA only where the MP table goes there, on a machine whose F segment is not RAM
    (microvm; pc and q35 put it in the F segment, reserved already)."""
    out = expected_memmap(e820)
    if machine == "q35":
        out.append(MMCONFIG)
    if acpi_size is not None:
        return with_acpi(out, acpi_size)
    return with_acpi(out, 0) if machine == "microvm" else out


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


# ---- SMBIOS and the MP table, as the firmware must install them --------------------------------


def _align16(addr: int) -> int:
    return (addr + 15) & ~15


def smbios_type0() -> bytes:
    """The BIOS information structure the firmware adds (SeaBIOS's smbios_new_type_0, with
    this firmware's vendor, version and date): written from DSP0134's layout (tests/spec.py)."""
    fields = {
        "header": 0 | spec.SMBIOS_TYPE_0.size << 8,  # type 0, length, handle 0
        "vendor_str": 1,
        "bios_version_str": 2,
        "bios_starting_address_segment": 0xE800,
        "bios_release_date_str": 3,
        "bios_characteristics": 0x08,  # "BIOS characteristics not supported"
        "bios_characteristics_extension_bytes": 0x0400,  # byte 2 bit 2: targeted content
        "embedded_controller_major_release": 0xFF,
        "embedded_controller_minor_release": 0xFF,
    }
    strings = (layout.SMBIOS_BIOS_VENDOR, __version__, layout.SMBIOS_BIOS_DATE)
    return spec.SMBIOS_TYPE_0.pack(**fields) + b"".join(s.encode() + b"\0" for s in strings) + b"\0"


@dataclass(frozen=True)
class Smbios:
    ep_addr: int
    ep: bytes
    table_addr: int
    table: bytes
    end: int  # the F segment's next free byte


def smbios_installed(anchor: bytes, tables: bytes, fseg: int = layout.ROM_SHADOW_BASE) -> Smbios:
    """Where and what QEMU's entry point and tables become in the F segment: the entry point
    first (16-byte aligned), then room for a type 0 and QEMU's tables (16-byte aligned); our
    type 0 goes in front when QEMU's first structure is not one. The entry point gets the
    address, the length, (2.1) the count and the largest size, and its checksums."""
    t0 = smbios_type0()
    ep_addr = _align16(fseg)
    room = _align16(ep_addr + len(anchor))
    if tables[0] == 0:
        table_addr, table = room + len(t0), tables
    else:
        table_addr, table = room, t0 + tables
    if anchor.startswith(spec.SMBIOS30_ANCHOR):
        f30 = spec.SMBIOS30_EP.unpack(anchor)
        f30 |= {"checksum": 0, "structure_table_address": table_addr}
        f30["structure_table_max_size"] = len(table)
        ep = bytearray(spec.SMBIOS30_EP.pack(**f30))
        ep[5] = -sum(ep) & 0xFF
    else:
        f21 = spec.SMBIOS21_EP.unpack(anchor)
        added = table is not tables
        f21 |= {
            "checksum": 0,
            "intermediate_checksum": 0,
            "structure_table_address": table_addr,
            "structure_table_length": len(table),
        }
        if added:
            f21["number_of_structures"] = (int(f21["number_of_structures"]) + 1) & 0xFFFF
            f21["max_structure_size"] = max(int(f21["max_structure_size"]), len(t0))
        ep = bytearray(spec.SMBIOS21_EP.pack(**f21))
        ep[4] = -sum(ep[:16]) & 0xFF  # the "_SM_" part ...
        ep[21] = -sum(ep[16:]) & 0xFF  # ... and the "_DMI_" part each sum to 0
    return Smbios(ep_addr, bytes(ep), table_addr, table, room + len(t0) + len(tables))


def mptable(ncpus: int, signature: int, features: int, at: int) -> bytes:
    """The MP floating pointer at `at` and its table after it (MPS 1.4), as the firmware must
    write them: a processor entry per CPU (APIC IDs 0..N-1, version 0x14, the boot CPU first),
    the ISA bus, the IOAPIC (id 0, version 0x11, as SeaBIOS gives them), ISA IRQs 0-15 on the
    IOAPIC's pins of the same number but IRQ 0 on pin 2 and no IRQ 2, ExtINT on LINT0 and
    NMI on LINT1 of every local APIC."""
    entries = [
        spec.MP_CPU.pack(
            type=0,
            apicid=i,
            apicver=0x14,
            cpuflag=spec.MP_CPU_ENABLED | (spec.MP_CPU_BSP if i == 0 else 0),
            cpufeature=signature,
            featureflag=features,
        )
        for i in range(ncpus)
    ]
    entries.append(spec.MP_BUS.pack(type=1, busid=0, bustype=b"ISA   "))
    entries.append(
        spec.MP_IOAPIC.pack(type=2, apicid=0, apicver=0x11, flags=1, apicaddr=0xFEC00000)
    )
    for irq in (i for i in range(16) if i != 2):
        entries.append(
            spec.MP_INTSRC.pack(type=3, srcbusirq=irq, dstapic=0, dstirq=2 if irq == 0 else irq)
        )
    entries.append(spec.MP_INTSRC.pack(type=4, irqtype=spec.MP_EXTINT, dstapic=0, dstirq=0))
    entries.append(spec.MP_INTSRC.pack(type=4, irqtype=spec.MP_NMI, dstapic=0xFF, dstirq=1))
    body = b"".join(entries)
    header = bytearray(
        spec.MP_CONFIG.pack(
            signature=b"PCMP",
            length=spec.MP_CONFIG.size + len(body),
            spec=4,
            oem=layout.MP_OEM,
            productid=layout.MP_PRODUCT,
            oemcount=len(entries),
            lapic=0xFEE00000,
        )
    )
    header[7] = -(sum(header) + sum(body)) & 0xFF
    pointer = bytearray(
        spec.MP_FLOATING.pack(signature=b"_MP_", physptr=at + 16, length=1, specification=4)
    )
    pointer[10] = -sum(pointer) & 0xFF
    return bytes(pointer) + bytes(header) + body
