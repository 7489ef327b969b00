"""QEMU's ACPI table loader (fw_cfg ``etc/table-loader``) and the recorded fw_cfg files.

``parse_table_loader(data)`` decodes the loader's 128-byte commands (QEMU
hw/acpi/bios-linker-loader.c; all numbers little-endian, file names NUL-padded to 56 bytes):

=====  =============  ========================================================================
type   command        fields (byte offset)
=====  =============  ========================================================================
0      (unused)       padding at the end of the blob: skipped
1      ALLOCATE       file[56] @4, align u32 @60, zone u8 @64 (1 HIGH, 2 FSEG)
2      ADD_POINTER    dest_file[56] @4, src_file[56] @60, offset u32 @116, size u8 @120
3      ADD_CHECKSUM   file[56] @4, offset u32 @60, start u32 @64, length u32 @68
4      WRITE_POINTER  dest_file[56] @4, src_file[56] @60, dst_offset u32 @116,
                      src_offset u32 @120, size u8 @124
=====  =============  ========================================================================

``load_recording(machine)`` reads ``tests/data/fwcfg-acpi-<machine>.json``, written by
``python3 -m tools.record_fwcfg`` from stock QEMU 7.2: the files ``etc/table-loader``,
``etc/acpi/rsdp``, ``etc/acpi/tables``, ``etc/e820`` and the SMBIOS anchor and tables (padded
back to their full size with zeros) and the fw_cfg file directory, for emulator tests to
replay. ``load_recording(machine, qemu="10.0")`` reads the recording of another QEMU release
series, ``fwcfg-acpi-<machine>-qemu10.0.json``: :data:`RECORDED_QEMUS` lists the series
tests/data holds, :func:`recording_of` finds the one a given QEMU made.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from tests import spec
from tools.qemu import qemu_series

__all__ = [
    "BASE_QEMU",
    "COMMAND_SIZE",
    "DATA_DIR",
    "FILE_NAME_SIZE",
    "RECORDED_QEMUS",
    "ZONE_FSEG",
    "ZONE_HIGH",
    "AddChecksum",
    "AddPointer",
    "Allocate",
    "Command",
    "DirEntry",
    "Recording",
    "WritePointer",
    "load_recording",
    "parse_table_loader",
    "recording_of",
    "recording_path",
    "replay",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
BASE_QEMU = "7.2"  # Debian 12's QEMU: its recordings' names carry no series
RECORDED_QEMUS = (BASE_QEMU, "10.0")  # the QEMU release series tests/data has recordings of
COMMAND_SIZE = spec.LOADER_ENTRY_SIZE
FILE_NAME_SIZE = spec.BIOS_LINKER_LOADER_FILESZ

CMD_UNUSED = 0
ZONE_HIGH = spec.LOADER_ALLOC_ZONE_HIGH  # anywhere in RAM below 4 GiB
ZONE_FSEG = spec.LOADER_ALLOC_ZONE_FSEG  # the 0xe0000-0xfffff BIOS area (a legacy scan)


@dataclass(frozen=True)
class Allocate:
    """Load ``file`` into guest memory aligned to ``align``, in ``zone``."""

    file: str
    align: int
    zone: int


@dataclass(frozen=True)
class AddPointer:
    """Add the guest address of ``src_file`` to the ``size``-byte little-endian value at
    ``offset`` in ``dest_file``."""

    dest_file: str
    src_file: str
    offset: int
    size: int


@dataclass(frozen=True)
class AddChecksum:
    """Set the byte at ``offset`` in ``file`` so that bytes [start, start + length) sum to 0
    (the byte itself lies in that range)."""

    file: str
    offset: int
    start: int
    length: int


@dataclass(frozen=True)
class WritePointer:
    """Write the guest address of ``src_file`` + ``src_offset`` (``size`` bytes) into the
    fw_cfg file ``dest_file`` at ``dst_offset`` (a write back to QEMU)."""

    dest_file: str
    src_file: str
    dst_offset: int
    src_offset: int
    size: int


Command = Allocate | AddPointer | AddChecksum | WritePointer


def _name(raw: bytes, field: str) -> str:
    end = raw.find(b"\0")
    if end < 0:
        raise ValueError(f"file name {field} is not NUL-terminated within {FILE_NAME_SIZE} bytes")
    if any(raw[end:]):
        raise ValueError(f"file name {field} has bytes after its NUL")
    return raw[:end].decode("ascii")


_COMMANDS: dict[int, type[Allocate | AddPointer | AddChecksum | WritePointer]] = {
    spec.LOADER_COMMAND_ALLOCATE: Allocate,
    spec.LOADER_COMMAND_ADD_POINTER: AddPointer,
    spec.LOADER_COMMAND_ADD_CHECKSUM: AddChecksum,
    spec.LOADER_COMMAND_WRITE_POINTER: WritePointer,
}


def _parse_command(cmd: bytes) -> Command | None:
    (kind,) = struct.unpack_from("<I", cmd)
    if kind == CMD_UNUSED:
        return None
    if kind not in _COMMANDS:
        raise ValueError(f"unknown table-loader command type {kind}")
    fields = spec.LOADER_COMMANDS[kind].unpack(cmd)
    del fields["command"]
    values = {k: _name(v, k) if isinstance(v, bytes) else v for k, v in fields.items()}
    return _COMMANDS[kind](**values)  # type: ignore[arg-type]


def parse_table_loader(data: bytes) -> list[Command]:
    """The commands of an ``etc/table-loader`` blob, in order; unused (type 0) entries are
    dropped.  ValueError on a length that is not a multiple of 128, an unknown command type or
    a malformed file name."""
    if len(data) % COMMAND_SIZE:
        raise ValueError(f"table-loader length {len(data)} is not a multiple of {COMMAND_SIZE}")
    commands = []
    for pos in range(0, len(data), COMMAND_SIZE):
        try:
            command = _parse_command(data[pos : pos + COMMAND_SIZE])
        except ValueError as e:
            raise ValueError(f"table-loader command at {pos:#x}: {e}") from e
        if command is not None:
            commands.append(command)
    return commands


# ---- recordings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirEntry:
    """One fw_cfg file directory entry."""

    name: str
    size: int
    select: int


@dataclass(frozen=True)
class Recording:
    """One machine type's recording (see tools/record_fwcfg.py)."""

    machine: str
    qemu: str  # first line of `qemu-system-x86_64 --version`
    command: tuple[str, ...]  # "<bios>" and "<pvhcheck>" stand for the paths
    smp: int
    memory_mib: int
    files: dict[str, bytes]  # name -> the whole file (zero bytes after the recorded ones)
    directory: tuple[DirEntry, ...]  # in QEMU's order
    missing: tuple[str, ...] = ()  # wanted files QEMU did not have

    def entry(self, name: str) -> DirEntry:
        for e in self.directory:
            if e.name == name:
                return e
        raise KeyError(name)

    @property
    def table_loader(self) -> list[Command]:
        return parse_table_loader(self.files["etc/table-loader"])

    @property
    def series(self) -> str | None:
        """The QEMU release series that made it ("7.2", "10.0")."""
        return qemu_series(self.qemu)


def recording_path(machine: str, data_dir: Path = DATA_DIR, qemu: str = BASE_QEMU) -> Path:
    """``fwcfg-acpi-<machine>.json`` for QEMU 7.2, ``fwcfg-acpi-<machine>-qemu<series>.json``
    for another release series (``qemu``: "10.0")."""
    suffix = "" if qemu == BASE_QEMU else f"-qemu{qemu}"
    return data_dir / f"fwcfg-acpi-{machine}{suffix}.json"


def load_recording(machine: str, data_dir: Path = DATA_DIR, qemu: str = BASE_QEMU) -> Recording:
    """Read the recording of ``machine`` by QEMU ``qemu`` (a release series: "7.2",
    "10.0"): each file padded back to its size with zeros. ValueError when it was made by
    another series than its name says."""
    path = recording_path(machine, data_dir, qemu)
    raw = json.loads(path.read_text())
    if raw.get("format") != 1:
        raise ValueError(f"{path.name}: unknown recording format {raw.get('format')!r}")
    if qemu_series(str(raw.get("qemu"))) != qemu:
        raise ValueError(f"{path.name}: recorded by {raw.get('qemu')!r}, not QEMU {qemu}")
    files = {}
    for name, f in raw["files"].items():
        data = bytes.fromhex(f["hex"])
        size = int(f["size"])
        if len(data) > size:
            raise ValueError(f"{path.name}: {name} has {len(data)} bytes, more than size {size}")
        files[name] = data + bytes(size - len(data))
    return Recording(
        machine=raw.get("machine", machine),
        qemu=raw["qemu"],
        command=tuple(raw["command"]),
        smp=int(raw["smp"]),
        memory_mib=int(raw["memory_mib"]),
        files=files,
        directory=tuple(
            DirEntry(str(e["name"]), int(e["size"]), int(e["select"])) for e in raw["directory"]
        ),
        missing=tuple(raw.get("missing", ())),
    )


def recording_of(machine: str, version: str, data_dir: Path = DATA_DIR) -> Recording | None:
    """The recording of ``machine`` that the QEMU whose ``--version`` line is ``version``
    made (tools.qemu.qemu_version), or None: tests/data has none of its series, or one of
    another release in that series."""
    series = qemu_series(version)
    if series not in RECORDED_QEMUS:
        return None
    rec = load_recording(machine, data_dir, series)
    return rec if rec.qemu == version else None


def replay(
    commands: list[Command], files: dict[str, bytes], high_top: int, fseg_base: int
) -> tuple[dict[str, bytearray], dict[str, int]]:
    """The loader as pvhfw runs it, in Python: HIGH allocations go downwards from `high_top`,
    FSEG ones upwards from `fseg_base`, each aligned; returns each file's final bytes and its
    address. (WRITE_POINTER changes fw_cfg, not memory: not replayed.)"""
    blobs: dict[str, bytearray] = {}
    addrs: dict[str, int] = {}
    top, fseg = high_top, fseg_base
    for c in commands:
        if isinstance(c, Allocate):
            size, align = len(files[c.file]), max(c.align, 1)
            if c.zone == ZONE_HIGH:
                top = (top - size) // align * align
                addr = top
            else:
                addr = -(-fseg // align) * align
                fseg = addr + size
            blobs[c.file], addrs[c.file] = bytearray(files[c.file]), addr
        elif isinstance(c, AddPointer):
            dest = blobs[c.dest_file]
            value = int.from_bytes(dest[c.offset : c.offset + c.size], "little")
            value = (value + addrs[c.src_file]) % (1 << (8 * c.size))
            dest[c.offset : c.offset + c.size] = value.to_bytes(c.size, "little")
        elif isinstance(c, AddChecksum):
            blob = blobs[c.file]
            blob[c.offset] = (blob[c.offset] - sum(blob[c.start : c.start + c.length])) & 0xFF
    return blobs, addrs
