"""The whole boot as a model: given fw_cfg's items (any bytes at all), what the firmware must
leave in memory and hand the kernel, or the one line it must stop with. The fuzz tests
(tests/test_firmware_fuzz.py) hold the firmware against it.

Written from the interfaces (tests/spec.py: fw_cfg, e820, the table-loader, SMBIOS, MP) and
the firmware's documented rules (docs/design.md, the comments of asm/*.s), not from its
instructions; the pieces of tests/model.py (the e820 rule, carving, the SMBIOS and MP bytes)
are reused. The rules a hostile fw_cfg meets:

- fw_cfg: an item read past its end reads zeros; the file directory lists `count` entries
  (more than FILE_DIR_MAX: refused); a name matches an entry when the entry's name field
  equals the name's field, NUL-padded, over the name's dwords (its bytes up to the NUL,
  rounded up to 4) and at least its first 8 bytes; the first such entry is the file.
- etc/e820: its bytes / 20 entries (more than E820_MAX entries' bytes: refused), addresses
  and sizes 64-bit modulo 2^64, each entry as tests/model.expected_memmap says.
- the table-loader: as acpi.s's header says (QEMU's bios-linker-loader); every offset, size
  and name checked before use; zones from the allocator's rules (alloc.s).
- SMBIOS: the anchor is 31 bytes ("_SM_" ... "_DMI_") or 24 ("_SM3_"); the tables file as
  long as the anchor says, 4 bytes at least; both placed in the F segment.
- no table-loader: an MP table for FW_CFG_NB_CPUS CPUs (at most 255), F segment or EBDA.

The kernel is taken as valid (the fuzz tests leave its items alone) and there is no initrd.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from pvhfw.firmware import layout
from tests import model, spec

Range = tuple[int, int, int]
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
NAME_SIZE = spec.BIOS_LINKER_LOADER_FILESZ
BDA_EBDA_WORD = (layout.BDA_EBDA_SEGMENT, layout.BDA_EBDA_SEGMENT + 2)


class Refused(Exception):
    """The firmware's one line, without the "pvhfw: " prefix."""


def _hex(value: int) -> str:
    return f"{value & MASK32:#010x}"


@dataclass
class Zone:
    """An allocator zone [start, end): growing up from `start` (ebda, fseg: `next` is the
    next free byte) or, `down`, from `end` (high: `next` is the lowest byte allocated)."""

    start: int
    end: int
    next: int
    down: bool = False

    @property
    def used(self) -> tuple[int, int] | None:
        lo, hi = (self.next, self.end) if self.down else (self.start, self.next)
        return (lo, hi) if hi > lo else None


def alloc_up(zone: Zone | None, size: int, align: int) -> int | None:
    """alloc.s alloc_up: aligned up from the next free byte, 32-bit, within the zone."""
    if zone is None:
        return None
    start = ((zone.next + align - 1) & MASK32) & (-align & MASK32)
    end = start + size
    if end > MASK32 or end > zone.end:
        return None
    zone.next = end
    return start


@dataclass
class Outcome:
    """What a boot leaves: the map, the RSDP, the bytes at each address, the areas written."""

    memmap: list[Range] = field(default_factory=list)
    rsdp: int = 0
    memory: dict[int, bytes] = field(default_factory=dict)
    writable: list[tuple[int, int]] = field(default_factory=list)  # [lo, hi) it may write
    refusal: str | None = None
    fwcfg: dict[int, bytes] = field(default_factory=dict)  # the writable items, at the end


class BootModel:
    """Run it with `boot()`; `machine` is "pc", "q35" or "microvm" (its host bridge: PAM and
    the F segment, q35's MMCONFIG); `cpuid1` the CPU's signature and features (MP table)."""

    def __init__(
        self,
        items: Mapping[int, bytes],
        machine: str,
        *,
        dma: bool = True,
        writable: frozenset[int] = frozenset(),
        kernel_end: int,
        cpuid1: tuple[int, int] = (0, 0),
    ) -> None:
        self.items = dict(items)
        self.machine = machine
        self.dma = dma
        self.writable = writable
        self.kernel_end = kernel_end
        self.cpuid1 = cpuid1
        self.memmap: list[Range] = []
        self.high: Zone | None = None  # placed at its first allocation
        self.ebda = Zone(layout.EBDA_BASE, layout.LOWMEM_END, layout.EBDA_BASE)
        self.fseg = (
            None
            if machine == "microvm"
            else Zone(layout.ROM_SHADOW_BASE, layout.ROM_SHADOW_END, layout.ROM_SHADOW_BASE)
        )
        self.memory: dict[int, bytes] = {}
        self.directory: list[tuple[bytes, int, int]] = []  # (name field, key, size)

    # ---- fw_cfg --------------------------------------------------------------------------

    def read(self, key: int, size: int) -> bytes:
        data = self.items.get(key, b"")[:size]
        return data + bytes(size - len(data))

    def load_directory(self) -> None:
        raw = self.items.get(spec.FW_CFG_FILE_DIR, b"")
        (count,) = struct.unpack(">I", self.read(spec.FW_CFG_FILE_DIR, 4))
        if count > layout.FILE_DIR_MAX:
            raise Refused(
                f"fw_cfg file directory has {_hex(count)} entries, more than "
                f"{_hex(layout.FILE_DIR_MAX)}"
            )
        raw = self.read(spec.FW_CFG_FILE_DIR, 4 + count * spec.FW_CFG_FILE.size)
        for i in range(count):
            f = spec.FW_CFG_FILE.unpack(raw, 4 + i * spec.FW_CFG_FILE.size)
            self.directory.append((bytes(f["name"]), int(f["select"]), int(f["size"])))

    def find(self, name: bytes, after: int = -1) -> tuple[int, int, int] | None:
        """(index, key, size) of the file `name` (a NUL-padded field), after entry `after`."""
        field = name.ljust(NAME_SIZE, b"\0")
        n = field.index(0) + 1 if 0 in field else NAME_SIZE
        length = max(-(-n // 4) * 4, 8)
        for i in range(after + 1, len(self.directory)):
            entry, key, size = self.directory[i]
            if entry[:length] == field[:length]:
                return i, key, size
        return None

    def read_u32(self, key: int) -> int:
        return int.from_bytes(self.read(key, 4), "little")

    # ---- the memory map ------------------------------------------------------------------

    def check_memmap(self) -> None:
        if len(self.memmap) > layout.MEMMAP_MAX:
            raise Refused(f"memory map needs more than {_hex(layout.MEMMAP_MAX)} entries")

    def build_memmap(self) -> None:
        hit = self.find(b"etc/e820")
        if hit is None:
            ram = int.from_bytes(self.read(spec.FW_CFG_RAM_SIZE, 8), "little")
            e820 = model.fallback_e820(ram)
        else:
            _, key, size = hit
            if size > layout.E820_MAX * spec.E820_ENTRY.size:
                raise Refused(
                    f"fw_cfg etc/e820 is {_hex(size)} bytes, more than "
                    f"{_hex(layout.E820_MAX * spec.E820_ENTRY.size)}"
                )
            data = self.read(key, size)
            e820 = spec.e820_unpack(data, size // spec.E820_ENTRY.size)
        self.memmap = model.expected_memmap(e820)
        self.check_memmap()
        if self.machine == "q35":
            self.memmap.append(model.MMCONFIG)
            self.check_memmap()

    def carve(self, lo: int, hi: int, typ: int) -> None:
        out = model.carve(self.memmap, lo, hi - lo, typ)
        if out is None:
            raise Refused(
                f"memory map: no RAM entry below 4 GiB holds {_hex(lo)}+{_hex(hi - lo)}, "
                "which the firmware's tables need"
            )
        self.memmap = out
        self.check_memmap()

    # ---- the allocator ---------------------------------------------------------------------

    def alloc_high(self, size: int, align: int) -> int | None:
        if self.high is None:  # the highest RAM below 4 GiB, above the kernel
            start, end = model.top_ram(self.memmap)
            self.high = Zone(max(start, self.kernel_end), end, end, down=True)
        top = self.high.next - size
        if top < 0:
            return None
        top &= -align & MASK32
        if top < self.high.start:
            return None
        self.high.next = top
        return top

    # ---- ACPI: the table-loader ------------------------------------------------------------

    def table_loader(self) -> bool:
        """True when fw_cfg has a table-loader (ACPI: no MP table)."""
        hit = self.find(b"etc/table-loader")
        if hit is None:
            return False
        _, key, size = hit
        if size > layout.LOADER_MAX:
            raise Refused(
                f"fw_cfg etc/table-loader is {_hex(size)} bytes, more than "
                f"{_hex(layout.LOADER_MAX)}"
            )
        loader = self.read(key, size)
        allocs: list[tuple[bytes, int, int, bytearray]] = []  # (name field, address, size, bytes)
        size_of = spec.LOADER_ENTRY_SIZE
        for at in range(0, size // size_of * size_of, size_of):
            self._loader_command(at, loader[at : at + size_of], allocs)
        rsdp = b"etc/acpi/rsdp".ljust(NAME_SIZE, b"\0")
        self.rsdp = next((addr for n, addr, _, _ in allocs if n == rsdp), 0)
        self.memory.update({addr: bytes(blob) for _, addr, _, blob in allocs if blob})
        return True

    def _loader_command(
        self, at: int, cmd: bytes, allocs: list[tuple[bytes, int, int, bytearray]]
    ) -> None:
        """One command at offset `at`; ALLOCATE appends to `allocs`."""
        (kind,) = struct.unpack_from("<I", cmd)

        def bad(what: str = "is malformed", at: int = at) -> Refused:
            return Refused(f"fw_cfg etc/table-loader: command at offset {_hex(at)} {what}")

        def name(offset: int) -> bytes:
            field = cmd[offset : offset + NAME_SIZE]
            if 0 not in field:
                raise bad()
            return field

        def lookup(offset: int) -> tuple[int, bytearray]:
            field = cmd[offset : offset + NAME_SIZE]
            for n, addr, _, blob in allocs:
                if n == field:
                    return addr, blob
            raise bad("names a file not allocated before")

        def in_file(offset: int, length: int, file_size: int) -> None:
            if offset > file_size or length > file_size - offset:
                raise bad()

        if kind == spec.LOADER_COMMAND_ALLOCATE:
            f = spec.LOADER_COMMANDS[kind].unpack(cmd)
            hit = self.find(name(4))
            if hit is None:
                raise bad("names a file fw_cfg does not have")
            _, fkey, fsize = hit
            align = int(f["align"]) or 1
            if align & (align - 1):
                raise bad()
            zone = int(f["zone"])
            if zone == spec.LOADER_ALLOC_ZONE_HIGH:
                addr = self.alloc_high(fsize, align)
            elif zone == spec.LOADER_ALLOC_ZONE_FSEG:
                addr = alloc_up(self.ebda, fsize, align)
            else:
                raise bad()
            if addr is None:
                raise bad(f"allocates {_hex(fsize)} bytes, with no room left")
            if len(allocs) >= layout.ALLOC_MAX:
                raise bad()
            allocs.append((cmd[4 : 4 + NAME_SIZE], addr, fsize, bytearray(self.read(fkey, fsize))))
        elif kind == spec.LOADER_COMMAND_ADD_POINTER:
            f = spec.LOADER_COMMANDS[kind].unpack(cmd)
            src, _ = lookup(spec.LOADER_COMMANDS[kind].offset("src_file"))
            _, blob = lookup(4)
            offset, width = int(f["offset"]), int(f["size"])
            in_file(offset, width, len(blob))
            if width not in (1, 2, 4, 8):
                raise bad()
            value = int.from_bytes(blob[offset : offset + width], "little") + src
            blob[offset : offset + width] = (value % (1 << 8 * width)).to_bytes(width, "little")
        elif kind == spec.LOADER_COMMAND_ADD_CHECKSUM:
            f = spec.LOADER_COMMANDS[kind].unpack(cmd)
            _, blob = lookup(4)
            offset, start, length = int(f["offset"]), int(f["start"]), int(f["length"])
            if offset >= len(blob):
                raise bad()
            in_file(start, length, len(blob))
            blob[offset] = (blob[offset] - sum(blob[start : start + length])) & 0xFF
        elif kind == spec.LOADER_COMMAND_WRITE_POINTER:
            f = spec.LOADER_COMMANDS[kind].unpack(cmd)
            if not self.dma:
                raise bad("writes to fw_cfg, which needs DMA")
            src, _ = lookup(spec.LOADER_COMMANDS[kind].offset("src_file"))
            value = (src + int(f["src_offset"])) & MASK64
            hit = self.find(name(4))
            if hit is None:
                raise bad("names a file fw_cfg does not have")
            _, dkey, dsize = hit
            offset, width = int(f["dst_offset"]), int(f["size"])
            if width > 8:
                raise bad()
            in_file(offset, width, dsize)
            if width:
                if dkey not in self.writable:
                    raise Refused("fw_cfg DMA transfer failed")
                item = bytearray(self.read(dkey, max(len(self.items.get(dkey, b"")), dsize)))
                item[offset : offset + width] = value.to_bytes(8, "little")[:width]
                self.items[dkey] = bytes(item)

    # ---- SMBIOS ----------------------------------------------------------------------------

    def smbios(self) -> None:
        anchor_hit = self.find(b"etc/smbios/smbios-anchor")
        if anchor_hit is None:
            return
        index, akey, asize = anchor_hit
        tables_hit = self.find(b"etc/smbios/smbios-tables", index) or self.find(
            b"etc/smbios/smbios-tables"
        )
        bad_anchor = Refused(
            f"fw_cfg etc/smbios/smbios-anchor ({_hex(asize)} bytes) is not an SMBIOS 2.1 or "
            "3.0 entry point"
        )
        if asize not in (spec.SMBIOS21_EP.size, spec.SMBIOS30_EP.size):
            raise bad_anchor
        no_room = Refused(
            "no room for the SMBIOS tables in the F segment (not RAM on this machine, or full)"
        )
        ep_addr = alloc_up(self.fseg, asize, 16)
        if ep_addr is None:
            raise no_room
        anchor = self.read(akey, asize)
        v30 = asize == spec.SMBIOS30_EP.size
        if v30:
            if not anchor.startswith(spec.SMBIOS30_ANCHOR):
                raise bad_anchor
            length = int(spec.SMBIOS30_EP.unpack(anchor)["structure_table_max_size"])
        else:
            f21 = spec.SMBIOS21_EP.unpack(anchor)
            if f21["anchor_string"] != spec.SMBIOS21_ANCHOR or (
                f21["intermediate_anchor_string"] != spec.SMBIOS21_INTERMEDIATE
            ):
                raise bad_anchor
            length = int(f21["structure_table_length"])
        if tables_hit is None:
            raise Refused("fw_cfg has etc/smbios/smbios-anchor but no etc/smbios/smbios-tables")
        _, tkey, tsize = tables_hit
        if tsize != length:
            raise Refused(
                f"fw_cfg etc/smbios/smbios-tables is {_hex(tsize)} bytes, its entry point "
                f"says {_hex(length)}"
            )
        if tsize < spec.SMBIOS_HEADER.size:
            raise Refused(
                f"fw_cfg etc/smbios/smbios-tables is {_hex(tsize)} bytes, less than one "
                "structure's header"
            )
        t0 = model.smbios_type0()
        room = alloc_up(self.fseg, tsize + len(t0), 16)
        if room is None:
            raise no_room
        tables = self.read(tkey, tsize)
        installed = model.smbios_installed(anchor, tables, ep_addr)
        assert (installed.ep_addr, installed.end) == (ep_addr, room + len(t0) + tsize)
        self.memory[ep_addr] = installed.ep
        self.memory[installed.table_addr] = installed.table

    # ---- the MP table ----------------------------------------------------------------------

    def mptable(self) -> None:
        ncpus = self.read_u32(spec.FW_CFG_NB_CPUS) & 0xFFFF
        if ncpus > layout.MP_MAX_CPUS:
            raise Refused(
                f"fw_cfg counts {_hex(ncpus)} CPUs: an MP table (no ACPI) describes 255 at most"
            )
        ncpus = ncpus or 1
        size = len(model.mptable(ncpus, 0, 0, 0))
        at = alloc_up(self.fseg, size, 16)
        if at is None:
            at = alloc_up(self.ebda, size, 16)
        if at is None:
            raise Refused(
                f"no room for an MP table of {_hex(ncpus)} CPUs (the F segment is not RAM "
                "here, the EBDA holds 40)"
            )
        self.memory[at] = model.mptable(ncpus, *self.cpuid1, at)

    # ---- the whole boot --------------------------------------------------------------------

    def writable_areas(self) -> list[tuple[int, int]]:
        """The firmware's own RAM, the BDA's EBDA word, and what the zones hold so far."""
        areas = [(layout.FW_RAM_BASE, layout.FW_RAM_END), BDA_EBDA_WORD]
        for zone in (self.high, self.ebda, self.fseg):
            if zone is not None and zone.used:
                areas.append(zone.used)
        return areas

    def boot(self) -> Outcome:
        self.rsdp = 0
        try:
            self.load_directory()
            self.build_memmap()
            acpi = self.table_loader()
            self.smbios()
            if not acpi:
                self.mptable()
            if self.high is not None and self.high.used:
                self.carve(*self.high.used, layout.HIGH_ZONE_TYPE)
            if self.ebda.used:
                self.carve(layout.EBDA_BASE, layout.LOWMEM_END, layout.EBDA_ZONE_TYPE)
                self.memory[layout.BDA_EBDA_SEGMENT] = struct.pack("<H", layout.EBDA_BASE >> 4)
        except Refused as refusal:
            return Outcome(writable=self.writable_areas(), refusal=str(refusal))
        written = {key: self.items.get(key, b"") for key in self.writable}
        return Outcome(self.memmap, self.rsdp, self.memory, self.writable_areas(), None, written)
