"""A model of QEMU 7.2's fw_cfg I/O-port device (hw/nvram/fw_cfg.c), for the unicorn bench.

Port map as on x86 (fw_cfg_init_io_dma(0x510, 0x514)):
- 0x510-0x511, "fwcfg" (little-endian): a 16-bit write selects an item (resets the offset);
  a byte read at either port returns the next byte of the item (0 past its end or for a missing
  key); byte writes are accepted and ignored; wider reads are rejected and read 0.
- 0x514-0x51b, "fwcfg.dma" (big-endian, only with DMA): 32-bit writes at 0x514 (high half of
  the address) and 0x518 (low half, starts the transfer); reads return "QEMU CFG".
Accesses are split the way QEMU's memory core does (the part of an access that falls outside a
region goes to unassigned ports, which read all ones) and accepted or rejected by the same
rules as the device. Every access is logged in `accesses`, every DMA transfer in `dma_log`, and
whatever QEMU rejects, ignores or would log as a guest error in `violations`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from tests import spec

PORT_SELECTOR = spec.FW_CFG_PORT_SEL
PORT_DATA = spec.FW_CFG_PORT_DATA
PORT_DMA_HIGH = spec.FW_CFG_PORT_DMA
PORT_DMA_LOW = spec.FW_CFG_PORT_DMA + 4
PORT_FIRST, PORT_LAST = PORT_SELECTOR, PORT_DMA_HIGH + 7


@dataclass(frozen=True)
class PortAccess:
    """One `in`/`out` as the CPU issued it; `insn` (0-based index of the instruction, set by
    the machine) does not take part in comparisons."""

    direction: Literal["in", "out"]
    port: int
    size: int
    value: int
    insn: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DmaTransfer:
    """One DMA transfer: where its descriptor was, what it asked, on which item, the outcome."""

    desc_addr: int
    control: int  # as read from the descriptor (0 if it could not be read)
    length: int
    address: int
    key: int | None  # the item selected once the select bit is applied; None: invalid
    offset: int  # item offset when the transfer started (after any select)
    status: int  # the control word written back: 0, or spec.FW_CFG_DMA_CTL_ERROR


class GuestMemory(Protocol):
    """Guest-physical memory as the DMA engine sees it."""

    def read(self, addr: int, size: int) -> bytes | None:
        """The bytes, or None if any of them is not backed by RAM or ROM."""
        ...

    def write(self, addr: int, data: bytes) -> bool:
        """Store the bytes; False (and nothing stored) if any is not writable RAM."""
        ...


class FlatMemory:
    """RAM from 0 to `size`: a GuestMemory for using SimFwCfg without a CPU."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)

    def read(self, addr: int, size: int) -> bytes | None:
        return bytes(self.data[addr : addr + size]) if addr + size <= len(self.data) else None

    def write(self, addr: int, data: bytes) -> bool:
        if addr + len(data) > len(self.data):
            return False
        self.data[addr : addr + len(data)] = data
        return True


def file_dir(
    files: dict[str, bytes], order: list[str] | None = None
) -> tuple[bytes, dict[str, int]]:
    """FW_CFG_FILE_DIR's contents and the key of each file, as QEMU builds them: sorted by
    name, or in `order` (every name once), as a machine with legacy_fw_cfg_order has them."""
    if len(files) > spec.FW_CFG_FILE_SLOTS_DFLT:
        raise ValueError(f"at most {spec.FW_CFG_FILE_SLOTS_DFLT} files")
    if order is not None and sorted(order) != sorted(files):
        raise ValueError("order must name every file once")
    keys: dict[str, int] = {}
    out = bytearray(spec.FW_CFG_FILES_COUNT.pack(count=len(files)))
    for i, name in enumerate(sorted(files) if order is None else order):
        raw = name.encode()
        if len(raw) >= spec.FW_CFG_MAX_FILE_PATH:
            raise ValueError(f"file name too long for fw_cfg: {name!r}")
        keys[name] = spec.FW_CFG_FILE_FIRST + i
        out += spec.FW_CFG_FILE.pack(size=len(files[name]), select=keys[name], name=raw)
    full = spec.FW_CFG_FILES_COUNT.size + spec.FW_CFG_FILE.size * spec.FW_CFG_FILE_SLOTS_DFLT
    out += bytes(full - len(out))
    return bytes(out), keys


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


class SimFwCfg:
    """QEMU's fw_cfg behind I/O ports 0x510-0x51b (see the module docstring)."""

    def __init__(
        self,
        items: dict[int, bytes] | None = None,
        files: dict[str, bytes] | None = None,
        dma: bool = True,
        present: bool = True,
    ) -> None:
        self.dma = dma
        self.present = present
        self.items: dict[int, bytes] = {
            spec.FW_CFG_SIGNATURE: spec.FW_CFG_SIGNATURE_BYTES,
            spec.FW_CFG_ID: _u32(spec.FW_CFG_VERSION | (spec.FW_CFG_VERSION_DMA if dma else 0)),
        }
        self.items.update(items or {})
        self.file_keys: dict[str, int] = {}
        if files:
            self.items[spec.FW_CFG_FILE_DIR], self.file_keys = file_dir(files)
            for name, key in self.file_keys.items():
                if key in self.items:
                    raise ValueError(f"item {key:#x} clashes with file {name!r}")
                self.items[key] = files[name]
        self.memory: GuestMemory | None = None  # set by the machine, needed for DMA
        self.accesses: list[PortAccess] = []
        self.dma_log: list[DmaTransfer] = []
        self.violations: list[str] = []
        self.key: int | None = spec.FW_CFG_SIGNATURE  # fw_cfg_reset selects the signature
        self.offset = 0
        self.dma_addr = 0
        self.writable: set[int] = set()  # keys of items DMA may write (QEMU: allow_write)

    def make_writable(self, name: str) -> None:
        """Let DMA write the file, as QEMU's fw_cfg_add_file_callback(read_only=false)."""
        self.writable.add(self.file_keys[name])

    def remove_file(self, name: str) -> None:
        """Drop a file, as a QEMU without it would have: the directory is rebuilt, and the
        remaining files keep their names but are renumbered in QEMU's sorted order."""
        files = {n: self.items.pop(k) for n, k in self.file_keys.items()}
        del files[name]
        self._set_files(files)

    def replace_file(self, name: str, data: bytes) -> None:
        """Give a file other contents, its directory entry the new size."""
        files = {n: self.items.pop(k) for n, k in self.file_keys.items()}
        files[name] = data
        self._set_files(files)

    def reorder_files(self, order: list[str]) -> None:
        """List the files in `order`, renumbered, as a machine type with legacy_fw_cfg_order
        (pc-*-2.4 and older) does instead of sorting them by name."""
        self._set_files({n: self.items.pop(k) for n, k in self.file_keys.items()}, order)

    def _set_files(self, files: dict[str, bytes], order: list[str] | None = None) -> None:
        self.items.pop(spec.FW_CFG_FILE_DIR, None)
        self.items[spec.FW_CFG_FILE_DIR], self.file_keys = file_dir(files, order)
        for n, key in self.file_keys.items():
            self.items[key] = files[n]

    @classmethod
    def for_pvh_boot(
        cls,
        *,
        ram_below_4g: int,
        ram_above_4g: int = 0,
        kernel_entry: int,
        kernel_addr: int,
        kernel_size: int,
        cmdline: bytes | None = None,
        initrd: bytes | None = None,
        initrd_addr: int | None = None,
        e820: list[tuple[int, int, int]] | None = None,
        setup_data: bytes | None = None,
        acpi_data_size: int = 0x28000,
        extra_files: dict[str, bytes] | None = None,
        dma: bool = True,
        cpus: int = 1,
    ) -> SimFwCfg:
        """The items QEMU 7.2's x86_load_linux sets for `-kernel <PVH ELF>` (its PVH branch),
        plus FW_CFG_RAM_SIZE, FW_CFG_NB_CPUS (`cpus`) and the files "etc/e820" and
        "etc/boot-fail-wait" (always present).

        `acpi_data_size` is the machine's: 0x28000 on pc and q35 in 7.2, 0 on microvm; the
        initrd goes at (below_4g - acpi_data_size - 1 - size) & ~4095 unless `initrd_addr`
        is given. `setup_data` stands for the first 8192 bytes of the kernel file (QEMU always
        publishes FW_CFG_SETUP_SIZE = 8192). The kernel's segments are not in fw_cfg: QEMU loads
        them into RAM itself (use run_firmware's ram_init for that).
        """

        cmd = cmdline or b""
        items = {
            spec.FW_CFG_KERNEL_ENTRY: _u32(kernel_entry),
            spec.FW_CFG_KERNEL_ADDR: _u32(kernel_addr),
            spec.FW_CFG_KERNEL_SIZE: _u32(kernel_size),
            spec.FW_CFG_CMDLINE_SIZE: _u32(len(cmd) + 1),
            spec.FW_CFG_CMDLINE_DATA: cmd + b"\0",
        }
        if setup_data is not None:
            header = setup_data[:8192].ljust(8192, b"\0")
            items[spec.FW_CFG_SETUP_SIZE] = _u32(len(header))
            items[spec.FW_CFG_SETUP_DATA] = header
        if initrd is not None:
            if initrd_addr is None:
                initrd_addr = (ram_below_4g - acpi_data_size - 1 - len(initrd)) & ~4095
            items[spec.FW_CFG_INITRD_ADDR] = _u32(initrd_addr)
            items[spec.FW_CFG_INITRD_SIZE] = _u32(len(initrd))
            items[spec.FW_CFG_INITRD_DATA] = initrd
        return cls._machine(items, ram_below_4g, ram_above_4g, e820, extra_files, dma, cpus)

    @classmethod
    def for_linux_boot(
        cls,
        bzimage: bytes,
        *,
        ram_below_4g: int,
        ram_above_4g: int = 0,
        cmdline: bytes | None = None,
        initrd: bytes | None = None,
        e820: list[tuple[int, int, int]] | None = None,
        acpi_data_size: int = 0x28000,
        extra_files: dict[str, bytes] | None = None,
        dma: bool = True,
        cpus: int = 1,
    ) -> SimFwCfg:
        """The items QEMU 7.2's x86_load_linux sets for `-kernel <bzImage>` (boot protocol
        >= 2.02, LOADED_HIGH: its "high and recent kernel" branch, no RNG seed as in Debian's
        7.2.22): the setup sectors with QEMU's edits to the header, the protected-mode code for
        the firmware to copy to 1 MiB, the command line for 0x20000, the initrd's place."""
        setup_size = spec.setup_size(bzimage)
        real_addr, cmdline_addr, prot_addr = 0x10000, 0x20000, 0x100000
        setup = bytearray(bzimage[:setup_size])
        cmd = cmdline or b""
        spec.bp_write(setup, "cmd_line_ptr", cmdline_addr)
        spec.bp_write(setup, "type_of_loader", 0xB0)  # "QEMU"
        spec.bp_write(setup, "loadflags", spec.bp_read(setup, "loadflags") | spec.CAN_USE_HEAP)
        spec.bp_write(setup, "heap_end_ptr", cmdline_addr - real_addr - 0x200)
        items = {
            spec.FW_CFG_CMDLINE_ADDR: _u32(cmdline_addr),
            spec.FW_CFG_CMDLINE_SIZE: _u32(len(cmd) + 1),
            spec.FW_CFG_CMDLINE_DATA: cmd + b"\0",
            spec.FW_CFG_KERNEL_ADDR: _u32(prot_addr),
            spec.FW_CFG_KERNEL_SIZE: _u32(len(bzimage) - setup_size),
            spec.FW_CFG_KERNEL_DATA: bzimage[setup_size:],
            spec.FW_CFG_SETUP_ADDR: _u32(real_addr),
            spec.FW_CFG_SETUP_SIZE: _u32(setup_size),
        }
        if initrd is not None:
            initrd_max = spec.bp_read(setup, "initrd_addr_max")
            initrd_max = min(initrd_max, ram_below_4g - acpi_data_size - 1)
            initrd_addr = (initrd_max - len(initrd)) & ~4095
            spec.bp_write(setup, "ramdisk_image", initrd_addr)
            spec.bp_write(setup, "ramdisk_size", len(initrd))
            items[spec.FW_CFG_INITRD_ADDR] = _u32(initrd_addr)
            items[spec.FW_CFG_INITRD_SIZE] = _u32(len(initrd))
            items[spec.FW_CFG_INITRD_DATA] = initrd
        items[spec.FW_CFG_SETUP_DATA] = bytes(setup)
        return cls._machine(items, ram_below_4g, ram_above_4g, e820, extra_files, dma, cpus)

    @classmethod
    def _machine(
        cls,
        items: dict[int, bytes],
        ram_below_4g: int,
        ram_above_4g: int,
        e820: list[tuple[int, int, int]] | None,
        extra_files: dict[str, bytes] | None,
        dma: bool,
        cpus: int,
    ) -> SimFwCfg:
        """What every x86 machine adds to the kernel's items: FW_CFG_RAM_SIZE, FW_CFG_NB_CPUS
        (a u16: the CPUs QEMU starts), etc/e820 (from the RAM sizes unless given) and
        etc/boot-fail-wait."""
        items[spec.FW_CFG_RAM_SIZE] = struct.pack("<Q", ram_below_4g + ram_above_4g)
        items[spec.FW_CFG_NB_CPUS] = struct.pack("<H", cpus)
        if e820 is None:
            e820 = [(0, ram_below_4g, 1)]
            if ram_above_4g:
                e820.append((1 << 32, ram_above_4g, 1))
        files = {
            "etc/e820": spec.e820_pack(e820),
            "etc/boot-fail-wait": _u32(0xFFFFFFFF),
            **(extra_files or {}),
        }
        return cls(items=items, files=files, dma=dma)

    # -- the port interface used by the machine ------------------------------------------

    @staticmethod
    def handles(port: int) -> bool:
        return PORT_FIRST <= port <= PORT_LAST

    def port_in(self, port: int, size: int, insn: int | None = None) -> int:
        value = 0
        for region, offset, length, pos in self._split(port, size):
            if region == "comb" and length == 1:
                part = self._read_data_byte()
            elif region == "comb":  # fw_cfg_comb_valid: reads are byte-wide only
                self.violations.append(f"{8 * length}-bit read of port {port:#x}: rejected")
                part = 0
            elif region == "dma":
                part = int.from_bytes(spec.FW_CFG_DMA_SIGNATURE[offset : offset + length], "little")
            else:
                part = (1 << (8 * length)) - 1
            value |= part << (8 * pos)
        self.accesses.append(PortAccess("in", port, size, value, insn))
        return value

    def port_out(self, port: int, size: int, value: int, insn: int | None = None) -> None:
        self.accesses.append(PortAccess("out", port, size, value, insn))
        for region, offset, length, pos in self._split(port, size):
            part = (value >> (8 * pos)) & ((1 << (8 * length)) - 1)
            if region == "comb" and length == 2:
                self.select(part)
            elif region == "comb":
                what = "selector (needs 16 bits)" if offset == 0 else "data port (no writes)"
                self.violations.append(f"8-bit write to the {what}: ignored")
            elif region == "dma" and length == 4 and offset in (0, 4):
                register = int.from_bytes(part.to_bytes(4, "little"), "big")  # big-endian
                if offset == 0:
                    self.dma_addr = register << 32
                else:
                    self.dma_addr |= register
                    self._dma_transfer()
            elif region == "dma":
                bits = 8 * length
                self.violations.append(f"{bits}-bit write to DMA register +{offset}: rejected")

    # -- the device ----------------------------------------------------------------------

    def select(self, key: int) -> None:
        """fw_cfg_select: keys past the last file slot are invalid."""
        self.offset = 0
        self.key = (
            key
            if (key & spec.FW_CFG_ENTRY_MASK) < spec.FW_CFG_FILE_FIRST + spec.FW_CFG_FILE_SLOTS_DFLT
            else None
        )

    def current(self) -> bytes | None:
        """The selected item's bytes; None for an invalid key or an empty slot."""
        if self.key is None:
            return None
        return self.items.get(
            (self.key & spec.FW_CFG_ARCH_LOCAL) | (self.key & spec.FW_CFG_ENTRY_MASK)
        )

    def _read_data_byte(self) -> int:
        item = self.current()
        if item is None or self.offset >= len(item):
            return 0
        self.offset += 1
        return item[self.offset - 1]

    def _split(self, port: int, size: int) -> list[tuple[str | None, int, int, int]]:
        """(region, offset in region, length, byte position in the access) pieces, cut as
        flatview_read/write_continue and memory_access_size cut them (aligned powers of 2).
        Region None: an unassigned port (reads all ones, ignores writes)."""
        regions: list[tuple[str, int, int]] = []
        if self.present:
            regions.append(("comb", PORT_SELECTOR, 2))
            if self.dma:
                regions.append(("dma", PORT_DMA_HIGH, 8))
        pieces: list[tuple[str | None, int, int, int]] = []
        pos = 0
        while pos < size:
            p = port + pos
            hit = [(name, base, n) for name, base, n in regions if base <= p < base + n]
            if not hit:
                pieces.append((None, 0, 1, pos))
                pos += 1
                continue
            name, base, n = hit[0]
            offset = p - base
            length = min(size - pos, base + n - p)
            if offset:
                length = min(length, offset & -offset)
            length = 1 << (length.bit_length() - 1)
            pieces.append((name, offset, length, pos))
            pos += length
        if self.present and any(region is None for region, *_ in pieces):
            dma_port = PORT_DMA_HIGH <= port <= PORT_LAST
            why = "DMA is disabled" if dma_port and not self.dma else "unassigned ports"
            self.violations.append(f"{8 * size}-bit access at {port:#x} reaches {why}")
        return pieces

    def _dma_transfer(self) -> None:
        """fw_cfg_dma_transfer."""
        desc, self.dma_addr = self.dma_addr, 0
        mem = self.memory
        if mem is None:
            raise RuntimeError("SimFwCfg.memory must be set before a DMA transfer")
        raw = mem.read(desc, 16)
        if raw is None:
            mem.write(desc, struct.pack(">I", spec.FW_CFG_DMA_CTL_ERROR))
            self.dma_log.append(
                DmaTransfer(desc, 0, 0, 0, self.key, self.offset, spec.FW_CFG_DMA_CTL_ERROR)
            )
            self.violations.append(f"DMA descriptor at {desc:#x} not in memory")
            return
        control, length, address = struct.unpack(spec.FW_CFG_DMA_ACCESS.format, raw)
        if control & spec.FW_CFG_DMA_CTL_SELECT:
            self.select(control >> 16)
        item = self.current()
        transfer = DmaTransfer(desc, control, length, address, self.key, self.offset, 0)
        read = bool(control & spec.FW_CFG_DMA_CTL_READ)
        write = not read and bool(control & spec.FW_CFG_DMA_CTL_WRITE)
        if not control & (
            spec.FW_CFG_DMA_CTL_READ | spec.FW_CFG_DMA_CTL_WRITE | spec.FW_CFG_DMA_CTL_SKIP
        ):
            length = 0
        status = 0
        while length and not status & spec.FW_CFG_DMA_CTL_ERROR:
            if item is None or self.offset >= len(item):
                n = length  # past the end: reads give zeros, writes fail
                if read and not self._zero_fill(address, n):
                    status |= spec.FW_CFG_DMA_CTL_ERROR
                if write:
                    status |= spec.FW_CFG_DMA_CTL_ERROR
            else:
                n = min(length, len(item) - self.offset)
                if read and not mem.write(address, item[self.offset : self.offset + n]):
                    status |= spec.FW_CFG_DMA_CTL_ERROR
                if write:  # QEMU: only allow_write items, and never past their end
                    data = mem.read(address, n)
                    if self.key not in self.writable or n != length or data is None:
                        status |= spec.FW_CFG_DMA_CTL_ERROR
                    else:
                        item = item[: self.offset] + data + item[self.offset + n :]
                        self.items[self.key] = item
                self.offset += n
            address += n
            length -= n
        mem.write(desc, struct.pack(">I", status))
        self.dma_log.append(replace(transfer, status=status))
        if status:
            self.violations.append(f"DMA transfer {control:#x} at {desc:#x} failed")

    def _zero_fill(self, address: int, n: int) -> bool:
        assert self.memory is not None
        chunk = 1 << 20
        return all(
            self.memory.write(a, bytes(min(chunk, address + n - a)))
            for a in range(address, address + n, chunk)
        )
