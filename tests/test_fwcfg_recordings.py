"""The fw_cfg recordings (tests/data/fwcfg-acpi-<machine>.json from QEMU 7.2,
fwcfg-acpi-<machine>-qemu10.0.json from QEMU 10.0; `python3 -m tools.record_fwcfg`) are what
stock QEMU gives: checks that hold whatever our firmware does. The last test (marked qemu)
records again and compares, each series' recordings with a QEMU of exactly the release they
came from: the one the tests run ($PVHFW_QEMU), or the QEMU 10 tools/alt_qemu.py installed."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tests.acpi_loader import (
    COMMAND_SIZE,
    RECORDED_QEMUS,
    ZONE_FSEG,
    ZONE_HIGH,
    AddChecksum,
    AddPointer,
    Allocate,
    Command,
    Recording,
    WritePointer,
    load_recording,
    parse_table_loader,
    recording_of,
    recording_path,
    replay,
)
from tests.kernels.build import KernelToolchainMissing
from tests.support import need, need_qemu
from tools import alt_qemu, record_fwcfg
from tools.qemu import DEFAULT_QEMU, MACHINES, QEMU_ENV, qemu_path, qemu_version

WANTED = ("etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables", "etc/e820")
SMBIOS = ("etc/smbios/smbios-anchor", "etc/smbios/smbios-tables")  # not on microvm
E820_ENTRY = 20
E820_RAM = 1


RECORDINGS = [(q, m) for q in RECORDED_QEMUS for m in MACHINES]


@pytest.fixture(scope="module", params=RECORDINGS, ids=[f"{q}-{m}" for q, m in RECORDINGS])
def rec(request: pytest.FixtureRequest) -> Recording:
    series, machine = request.param
    assert recording_path(machine, qemu=series).is_file(), (
        f"run `python3 -m tools.record_fwcfg` with QEMU {series} ({machine})"
    )
    return load_recording(machine, qemu=series)


def test_recording_metadata(rec: Recording) -> None:
    assert rec.qemu.startswith("QEMU emulator version ")
    assert rec.series in RECORDED_QEMUS
    assert rec.smp == 2 and rec.memory_mib == 512
    cmd = rec.command
    assert cmd[cmd.index("-M") + 1] == rec.machine
    assert cmd[cmd.index("-bios") + 1] == "<bios>"
    assert cmd[cmd.index("-kernel") + 1] == "<pvhcheck>"
    assert cmd[cmd.index("-smp") + 1] == "2" and cmd[cmd.index("-m") + 1] == "512"


def test_files_match_directory(rec: Recording) -> None:
    assert rec.missing == (SMBIOS if rec.machine == "microvm" else ())
    names = [e.name for e in rec.directory]
    assert len(set(names)) == len(names)
    assert len({e.select for e in rec.directory}) == len(names)
    assert all(e.select >= 0x20 for e in rec.directory)  # FW_CFG_FILE_FIRST
    for name in (*WANTED, *(SMBIOS if rec.machine != "microvm" else ())):
        assert len(rec.files[name]) == rec.entry(name).size > 0, name


def test_rsdp_signature(rec: Recording) -> None:
    rsdp = rec.files["etc/acpi/rsdp"]
    assert rsdp.startswith(b"RSD PTR ")
    assert len(rsdp) == (20 if rsdp[15] == 0 else 36)  # revision 0: ACPI 1.0 layout


def test_e820(rec: Recording) -> None:
    e820 = rec.files["etc/e820"]
    assert len(e820) % E820_ENTRY == 0
    entries = [struct.unpack_from("<QQI", e820, i) for i in range(0, len(e820), E820_ENTRY)]
    assert (0, rec.memory_mib << 20, E820_RAM) in entries
    assert sum(size for _, size, kind in entries if kind == E820_RAM) == rec.memory_mib << 20


def test_table_loader_commands(rec: Recording) -> None:
    blob = rec.files["etc/table-loader"]
    assert len(blob) % COMMAND_SIZE == 0
    commands = parse_table_loader(blob)
    assert commands
    allocated: dict[str, Allocate] = {}
    for c in commands:
        if isinstance(c, Allocate):
            assert c.file not in allocated, f"{c.file} allocated twice"
            assert c.file in rec.files, f"ALLOCATE names {c.file}, not recorded"
            rec.entry(c.file)  # in QEMU's directory
            assert c.align > 0 and c.align & (c.align - 1) == 0, c
            assert c.zone in (ZONE_HIGH, ZONE_FSEG), c
            allocated[c.file] = c
        elif isinstance(c, AddPointer):
            assert {c.dest_file, c.src_file} <= set(allocated), f"{c} before its ALLOCATE"
            assert c.size in (1, 2, 4, 8), c
            assert c.offset + c.size <= len(rec.files[c.dest_file]), c
        elif isinstance(c, AddChecksum):
            assert c.file in allocated, f"{c} before its ALLOCATE"
            assert c.start <= c.offset < c.start + c.length <= len(rec.files[c.file]), c
        else:
            assert isinstance(c, WritePointer)
            assert c.src_file in allocated, c
            assert c.dst_offset + c.size <= rec.entry(c.dest_file).size, c
    assert allocated["etc/acpi/rsdp"].zone == ZONE_FSEG


def test_recordings_by_release_series(tmp_path: Path) -> None:
    """7.2's names carry no series, another series' do; a file must hold what its name says;
    recording_of finds a QEMU's own recordings by its exact --version line."""
    assert recording_path("pc").name == "fwcfg-acpi-pc.json"
    assert recording_path("q35", qemu="10.0").name == "fwcfg-acpi-q35-qemu10.0.json"
    seven = load_recording("pc")
    assert seven.series == "7.2" and load_recording("pc", qemu="10.0").series == "10.0"
    assert recording_of("pc", seven.qemu) == seven
    assert recording_of("pc", seven.qemu.replace("7.2.", "7.2.9999", 1)) is None
    assert recording_of("pc", "QEMU emulator version 9.2.0") is None  # no such series here
    assert recording_of("pc", "not found") is None
    shutil.copy(recording_path("pc"), recording_path("pc", tmp_path, "10.0"))
    with pytest.raises(ValueError, match=r"fwcfg-acpi-pc-qemu10\.0\.json: recorded by 'QEMU "):
        load_recording("pc", tmp_path, "10.0")


def test_parse_table_loader_layout() -> None:
    """Each command type at the offsets QEMU's bios-linker-loader.c uses."""

    def name(s: str) -> bytes:
        return s.encode().ljust(56, b"\0")

    def cmd(kind: int, body: bytes) -> bytes:
        return (struct.pack("<I", kind) + body).ljust(COMMAND_SIZE, b"\0")

    blob = b"".join(
        [
            cmd(1, name("a") + struct.pack("<IB", 64, 1)),
            cmd(2, name("a") + name("b") + struct.pack("<IB", 0x10, 4)),
            cmd(3, name("a") + struct.pack("<III", 9, 0, 36)),
            cmd(4, name("w") + name("a") + struct.pack("<IIB", 8, 3, 8)),
            bytes(COMMAND_SIZE),
        ]
    )
    expected: list[Command] = [
        Allocate("a", 64, 1),
        AddPointer("a", "b", 0x10, 4),
        AddChecksum("a", 9, 0, 36),
        WritePointer("w", "a", 8, 3, 8),
    ]
    assert parse_table_loader(blob) == expected
    with pytest.raises(ValueError, match="multiple of 128"):
        parse_table_loader(bytes(100))
    with pytest.raises(ValueError, match="unknown"):
        parse_table_loader(cmd(9, b""))
    with pytest.raises(ValueError, match="NUL"):
        parse_table_loader(cmd(1, b"x" * 56))


# ---- a replay: what any firmware following the loader would get ----------------------------


def _replay(rec: Recording) -> tuple[dict[str, bytearray], dict[str, int]]:
    """The loader over the recorded files at made-up addresses (FSEG from 0xe0000, HIGH down
    from 0x2000000)."""
    return replay(rec.table_loader, rec.files, 0x2000000, 0xE0000)


def _table_at(blobs: dict[str, bytearray], addrs: dict[str, int], addr: int) -> bytes:
    for name, base in addrs.items():
        if base <= addr < base + len(blobs[name]):
            off = addr - base
            length = struct.unpack_from("<I", blobs[name], off + 4)[0]
            return bytes(blobs[name][off : off + length])
    raise AssertionError(f"no loaded file at {addr:#x}")


def test_replayed_tables_are_valid(rec: Recording) -> None:
    """After the loader, the RSDP and every table it leads to checksum to 0, and the MADT
    lists the recording's two CPUs."""
    blobs, addrs = _replay(rec)
    rsdp = bytes(blobs["etc/acpi/rsdp"])
    assert sum(rsdp[:20]) & 0xFF == 0
    if rsdp[15] >= 2:
        assert sum(rsdp[:36]) & 0xFF == 0
        root, width = struct.unpack_from("<Q", rsdp, 24)[0], 8
    else:
        root, width = struct.unpack_from("<I", rsdp, 16)[0], 4
    sdt = _table_at(blobs, addrs, root)
    assert sdt[:4] == (b"XSDT" if width == 8 else b"RSDT")
    pointers = [int.from_bytes(sdt[i : i + width], "little") for i in range(36, len(sdt), width)]
    tables = {sdt[:4]: sdt}
    for p in pointers:
        table = _table_at(blobs, addrs, p)
        assert sum(table) & 0xFF == 0, table[:4]
        tables[table[:4]] = table
    assert sum(sdt) & 0xFF == 0
    assert {b"FACP", b"APIC"} <= set(tables)
    fadt = tables[b"FACP"]
    dsdt = _table_at(
        blobs,
        addrs,
        struct.unpack_from("<I", fadt, 40)[0] or struct.unpack_from("<Q", fadt, 140)[0],
    )
    assert dsdt[:4] == b"DSDT" and sum(dsdt) & 0xFF == 0
    madt = tables[b"APIC"]
    local_apics, pos = 0, 44
    while pos < len(madt):
        kind, length = madt[pos], madt[pos + 1]
        assert length >= 2
        local_apics += kind == 0
        pos += length
    assert local_apics == rec.smp


# ---- the recorder's parser and a fresh recording ------------------------------------------

DUMP = """\
PVHCHECK fwdump begin\r
PVHCHECK fwdump file=etc/table-loader size=256 used=65\r
PVHCHECK fwdump-data file=etc/table-loader offset=0x0 hex={first}\r
PVHCHECK fwdump-data file=etc/table-loader offset=0x40 hex=07\r
PVHCHECK fwdump file=etc/acpi/rsdp missing\r
PVHCHECK fwdump file=etc/acpi/tables missing\r
PVHCHECK fwdump file=etc/e820 size=20 used=0\r
PVHCHECK fwdump file=etc/smbios/smbios-anchor missing\r
PVHCHECK fwdump file=etc/smbios/smbios-tables missing\r
PVHCHECK fwdump-dir name=etc/e820 size=20 select=0x20\r
PVHCHECK fwdump-dir name=etc/table-loader size=256 select=0x21\r
PVHCHECK fwdump done files=2\r
""".format(first="01" * 64)


def test_parse_dump() -> None:
    dump = record_fwcfg.parse_dump("firmware noise\n" + DUMP)
    assert dump.files["etc/table-loader"].data == b"\x01" * 64 + b"\x07"
    assert dump.files["etc/e820"].size == 20 and dump.files["etc/e820"].data == b""
    assert dump.missing == ["etc/acpi/rsdp", "etc/acpi/tables", *SMBIOS]
    assert dump.directory == [
        {"name": "etc/e820", "size": 20, "select": 0x20},
        {"name": "etc/table-loader", "size": 256, "select": 0x21},
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("used=65", "used=66", "hex digits"),
        ("hex=07", "hex=0700", "hex digits"),
        ("offset=0x40", "offset=0x41", "data line"),
        ("PVHCHECK fwdump done files=2\r\n", "", "incomplete"),
        ("files=2", "files=3", "directory lines"),
        ("size=20 used=0", "size=40 used=0", "directory says"),
    ],
)
def test_parse_dump_rejects(old: str, new: str, message: str) -> None:
    assert old in DUMP
    with pytest.raises(record_fwcfg.RecordError, match=message):
        record_fwcfg.parse_dump(DUMP.replace(old, new))


def qemus_here() -> dict[str, str]:
    """The QEMUs of this machine, by their --version line: the one the tests run, the
    system's (qemu-system-x86_64) and the QEMU 10 tools/alt_qemu.py installed."""
    binaries = [qemu_path(), qemu_path(DEFAULT_QEMU)]
    alt = alt_qemu.installed()
    if alt is not None:
        binaries.append(str(alt.wrapper))
    return {qemu_version(b): b for b in reversed(binaries) if b is not None}


@pytest.mark.qemu
@pytest.mark.parametrize("series", RECORDED_QEMUS)
def test_recordings_are_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, series: str
) -> None:
    """pvhcheck's dump mode under a QEMU of the recordings' own release reproduces the
    committed files."""
    need_qemu()
    need(shutil.which("gcc") is not None, "gcc not installed")
    recorded = load_recording("pc", qemu=series).qemu
    here = qemus_here()
    need(
        recorded in here,
        f"the QEMU {series} recordings come from {recorded!r}; this machine has "
        f"{', '.join(repr(v) for v in here) or 'no QEMU'}: re-take them with a QEMU "
        f"{series} of this machine (PVHFW_QEMU=... python3 -m tools.record_fwcfg)",
    )
    monkeypatch.setenv(QEMU_ENV, here[recorded])
    try:
        status = record_fwcfg.main(["--out-dir", str(tmp_path)])
    except KernelToolchainMissing as exc:
        need(False, str(exc))
    assert status == 0
    for machine in MACHINES:
        fresh = recording_path(machine, tmp_path, series).read_text()
        assert fresh == recording_path(machine, qemu=series).read_text(), (
            f"{machine}: QEMU {series} gives other files now: re-run "
            "`python3 -m tools.record_fwcfg` with it"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        recording_path(m, tmp_path, series).name for m in MACHINES
    )
