"""Every parser of fw_cfg data, property-tested in the emulator: hypothesis mutates the files
QEMU 7.2 gave (tests/data: the file directory, etc/e820, etc/table-loader, the SMBIOS anchor
and tables: their sizes, counts, offsets, lengths, names) and each run must

- either reach the kernel entry with what tests/boot_model.py expects (the memory map,
  rsdp_paddr, every table's bytes), or print exactly one "pvhfw:" line, the model's, and halt;
- write nothing outside the firmware's own RAM, the BDA's EBDA word and the zones its
  allocator handed out (which the final map gives away: none of them is RAM there);
- execute nothing outside its ROM, and stop within MAX_STEPS instructions.

The examples are derandomized: CI runs the same ones every time. `PVHFW_FUZZ_SCALE=N` runs N
times as many, `PVHFW_FUZZ_RANDOM=1` draws new ones each run (hypothesis then keeps what
failed in .hypothesis/ and replays it first)."""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import assemble_firmware
from tests import spec
from tests.acpi_loader import BASE_QEMU, RECORDED_QEMUS, load_recording
from tests.boot_model import BootModel, Outcome
from tests.emu.call import cpuid
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.model import StartInfo, unpack_memmap
from tests.test_firmware_emu import ENTRY, KADDR, KSIZE, STALE_RAM, MiB, image_for

FIRMWARE = assemble_firmware("pvh")  # module level: hypothesis tests take no fixtures
IMAGE = image_for(FIRMWARE)
RAM = 512 * MiB  # the recordings' -m 512
MAX_STEPS = 1_000_000
PCI = {
    "pc": {spec.PCI_I440FX_HOST: spec.I440FX_ID},
    "q35": {spec.PCI_I440FX_HOST: spec.Q35_MCH_ID, spec.ICH9_LPC: spec.ICH9_LPC_ID},
    "microvm": {},
}
MACHINES = tuple(PCI)
_CPUID1 = cpuid(1)
CPUID1 = (_CPUID1[0], _CPUID1[3])
EXAMPLES = float(os.environ.get("PVHFW_FUZZ_SCALE", "1"))  # more examples: > 1
RANDOM = os.environ.get("PVHFW_FUZZ_RANDOM") == "1"


def fuzz(examples: int) -> settings:
    """Each test's examples: as many as its mutations need to reach the firmware's checks
    (a check removed from acpi.s is found within them), times PVHFW_FUZZ_SCALE."""
    return settings(
        max_examples=max(1, int(examples * EXAMPLES)),
        deadline=None,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def recorded_files(machine: str, qemu: str = BASE_QEMU) -> dict[str, bytes]:
    """The files QEMU `qemu` (7.2 unless told another release series) gave on `machine`
    (-m 512 -smp 2), and its etc/boot-fail-wait."""
    files = dict(load_recording(machine, qemu=qemu).files)
    files["etc/boot-fail-wait"] = struct.pack("<I", 0xFFFFFFFF)
    return files


@dataclass
class Case:
    """One fuzzed configuration: the machine and the fw_cfg it boots with."""

    machine: str
    sim: SimFwCfg
    ram: int = RAM  # what the emulator maps
    ram_init: dict[int, bytes] | None = None  # RAM's contents before the run (None: zero)

    def run(self) -> tuple[RunResult, Outcome]:
        want = BootModel(
            self.sim.items,
            self.machine,
            dma=self.sim.dma,
            writable=frozenset(self.sim.writable),
            kernel_end=KADDR + KSIZE,
            cpuid1=CPUID1,
        ).boot()
        r = run_firmware(
            IMAGE,
            self.sim,
            ram_size=self.ram,
            stop_at=ENTRY,
            max_instructions=MAX_STEPS,
            pci=PCI[self.machine],
            track_writes=True,
            ram_init=self.ram_init,
        )
        return r, want


def make_case(machine: str, files: dict[str, bytes], *, dma: bool = True, cpus: int = 2) -> Case:
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=RAM,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        extra_files=files,
        dma=dma,
        cpus=cpus,
    )
    return Case(machine, sim)


def check(case: Case) -> RunResult:
    """The run against the model: the properties of the module's docstring."""
    r, want = case.run()
    if currently_in_test_context():  # hypothesis's statistics: how the examples ended
        event(re.sub(r"0x[0-9a-f]+", "N", f"refused: {want.refusal}") if want.refusal else "entry")
    assert r.error is None, r.error
    assert r.exception is None and not r.timeout, (r.exception, r.timeout, r.instructions)
    for addr, size in r.writes:
        assert any(lo <= addr and addr + size <= hi for lo, hi in want.writable), (
            f"write of {size} at {addr:#x}, outside {[(hex(a), hex(b)) for a, b in want.writable]}"
        )
    if want.refusal is not None:
        assert r.halted and not r.stopped_at_entry, (want.refusal, r.serial)
        assert r.serial == f"pvhfw: {want.refusal}\r\n"
        return r
    assert r.stopped_at_entry, f"stopped: {r.serial!r}"
    assert r.serial == ""
    assert case.sim.violations == []
    si = StartInfo.unpack(r.mem(layout.START_INFO, spec.HVM_START_INFO.size))
    entries = unpack_memmap(r.mem(si.memmap_paddr, 24 * si.memmap_entries), si.memmap_entries)
    assert [(a, s, t) for a, s, t, _ in entries] == want.memmap
    assert si.rsdp_paddr == want.rsdp
    assert {key: case.sim.items.get(key, b"") for key in want.fwcfg} == want.fwcfg
    for addr, data in want.memory.items():
        assert r.mem(addr, len(data)) == data, f"{len(data)} bytes at {addr:#x}"
    given_away = [(a, a + s) for a, s, t in want.memmap if t != spec.E820_RAM]
    for lo, hi in want.writable:
        if lo >= layout.FW_RAM_END:  # the zones: none may stay RAM for the kernel
            assert any(a <= lo and hi <= b for a, b in given_away), (hex(lo), hex(hi))
    return r


# ---- the recordings themselves -----------------------------------------------------------------


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
@pytest.mark.parametrize("acpi", [True, False], ids=["acpi", "acpi-off"])
@pytest.mark.parametrize("machine", MACHINES)
def test_the_model_and_the_firmware_agree_on_qemus_files(
    machine: str, acpi: bool, qemu: str
) -> None:
    """QEMU 7.2's and 10.0's files as they are, with their table-loader and without."""
    files = recorded_files(machine, qemu)
    if not acpi:
        files = {n: d for n, d in files.items() if n != "etc/table-loader"}
    r = check(make_case(machine, files))
    assert r.stopped_at_entry


@pytest.mark.parametrize("acpi", [True, False], ids=["acpi", "acpi-off"])
@pytest.mark.parametrize("machine", MACHINES)
def test_the_model_and_the_firmware_agree_over_a_previous_boots_ram(
    machine: str, acpi: bool
) -> None:
    """A guest reboot runs the firmware over the RAM the previous boot left: its own RAM and
    the EBDA hold old bytes, and the boot must still end as the model says, from zero."""
    files = recorded_files(machine)
    if not acpi:
        files = {n: d for n, d in files.items() if n != "etc/table-loader"}
    case = make_case(machine, files)
    ebda = layout.LOWMEM_END - layout.EBDA_BASE
    case.ram_init = {layout.FW_RAM_BASE: STALE_RAM, layout.EBDA_BASE: STALE_RAM[:ebda]}
    assert check(case).stopped_at_entry


# ---- mutations -----------------------------------------------------------------------------


def _u32(at_most: int) -> st.SearchStrategy[int]:
    """Interesting u32s: small, near a limit, anything."""
    return st.one_of(
        st.integers(0, 16),
        st.integers(max(0, at_most - 8), at_most + 8),
        st.integers(0, (1 << 32) - 1),
    )


@dataclass(frozen=True)
class NameEdit:
    """A name field (56 bytes) broken one way: unterminated, a byte changed, junk after the
    NUL, or another file's name."""

    kind: str
    at: int = 0  # a fraction of the place, in 1/256ths
    byte: int = 0
    other: str = ""

    def apply(self, field: bytes) -> bytes:
        out = bytearray(field)
        end = out.index(0) if 0 in out else len(out)
        if self.kind == "unterminated":
            out[end:] = b"x" * (len(out) - end)
        elif self.kind == "byte":
            out[self.at * (end + 1) // 256] = self.byte
        elif self.kind == "junk" and end + 1 < len(out):
            out[end + 1 + self.at * (len(out) - end - 1) // 256] = self.byte | 1
        elif self.kind == "other":
            out[:] = self.other.encode().ljust(len(out), b"\0")
        return bytes(out)


ALL_NAMES = sorted({n for m in MACHINES for n in recorded_files(m)} | {"etc/acpi/rsdp"})
name_edits = st.builds(
    NameEdit,
    kind=st.sampled_from(["unterminated", "byte", "junk", "other"]),
    at=st.integers(0, 255),
    byte=st.integers(0, 255),
    other=st.sampled_from(ALL_NAMES),
)


@fuzz(80)
@given(
    machine=st.sampled_from(MACHINES),
    dma=st.sampled_from([True] * 7 + [False]),  # I/O ports: slow (a port read a byte)
    edits=st.lists(st.tuples(st.integers(0, 15), name_edits), max_size=3),
    count=st.none() | _u32(layout.FILE_DIR_MAX),
)
def test_fuzz_file_directory(
    machine: str, dma: bool, edits: list[tuple[int, NameEdit]], count: int | None
) -> None:
    """The directory's count and its entries' names: files hidden, renamed, unterminated."""
    c = make_case(machine, recorded_files(machine), dma=dma)
    data = bytearray(c.sim.items[spec.FW_CFG_FILE_DIR])
    entries = len(c.sim.file_keys)
    for i, edit in edits:
        at = 4 + (i % entries) * spec.FW_CFG_FILE.size + spec.FW_CFG_FILE.offset("name")
        end = at + spec.FW_CFG_MAX_FILE_PATH
        data[at:end] = edit.apply(bytes(data[at:end]))
    if count is not None:
        data[:4] = struct.pack(">I", count)
    c.sim.items[spec.FW_CFG_FILE_DIR] = bytes(data)
    check(c)


# ---- etc/e820 ------------------------------------------------------------------------------

BIG_RAM = 0xE000_0000  # the emulator's RAM: every RAM entry below 4 GiB lies under it
ADDRESSES = [
    0, 0x1000, 0x9_FC00, 0xA_0000, 0xF_0000, 0x10_0000, KADDR, KADDR + KSIZE,
    0x1F00_0000, 0x2000_0000, 0x8000_0000, 0xB000_0000, 0xC000_0000, BIG_RAM, 0xFEFF_C000,
    1 << 32, (1 << 64) - 0x1000,
]  # fmt: skip
SIZES = [0, 1, 0x400, 0x1000, 0x9_FC00, 0xA_0000, 0x10_0000, RAM, 1 << 32, (1 << 64) - 1]


@st.composite
def e820_entries(draw: st.DrawFn) -> tuple[int, int, int]:
    typ = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 5]) | st.integers(0, (1 << 32) - 1))
    addr = draw(st.sampled_from(ADDRESSES) | st.integers(0, (1 << 64) - 1))
    size = draw(st.sampled_from(SIZES) | st.integers(0, (1 << 64) - 1))
    if typ == spec.E820_RAM and addr < 1 << 32 and addr >= layout.HIGHMEM_START:
        addr = min(addr, BIG_RAM)  # RAM the firmware may put tables in: backed
        size = min(size, BIG_RAM - addr)
    return addr, size, typ


@fuzz(150)
@given(
    machine=st.sampled_from(MACHINES),
    acpi=st.booleans(),
    entries=st.lists(e820_entries(), max_size=8)
    | st.lists(e820_entries(), min_size=layout.E820_MAX - 2, max_size=layout.E820_MAX + 2),
    tail=st.binary(max_size=spec.E820_ENTRY.size - 1),
    missing=st.booleans(),
)
def test_fuzz_e820(
    machine: str, acpi: bool, entries: list[tuple[int, int, int]], tail: bytes, missing: bool
) -> None:
    """etc/e820: any entries (a partial one at the end), too many, none, or no file (the
    fallback from FW_CFG_RAM_SIZE); with ACPI the tables go where the map's top RAM is."""
    files = recorded_files(machine)
    if not acpi:
        del files["etc/table-loader"]
    files["etc/e820"] = spec.e820_pack(entries) + tail
    c = make_case(machine, files)
    if missing:
        c.sim.remove_file("etc/e820")
    c.ram = BIG_RAM
    check(c)


# ---- etc/table-loader ----------------------------------------------------------------------

CMD = spec.LOADER_ENTRY_SIZE
WRITABLE = "etc/fuzz-writable"  # a file DMA may write (QEMU's vmgenid-addr is one such)
WRITE_POINTER = spec.loader_command(  # the tables' address + 0x40 into it, 8 bytes
    spec.LOADER_COMMAND_WRITE_POINTER,
    dest_file=WRITABLE,
    src_file="etc/acpi/tables",
    dst_offset=0,
    src_offset=0x40,
    size=8,
)


@dataclass(frozen=True)
class LoaderEdit:
    """One change to the loader: a field of a command set (one of that command's own
    fields, tests/spec.py; a number near the size of the file it names, small, or any), a
    name broken, the command's type changed, commands swapped or repeated, or the file cut."""

    kind: str
    index: int
    field: int = 0  # into the command's fields
    mode: str = "any"  # a number: "near" the named file's size, "small", "any"
    value: int = 0
    name: NameEdit | None = None
    other: int = 0

    def apply(self, data: bytearray, sizes: dict[bytes, int]) -> bytearray:
        commands = max(len(data) // CMD, 1)
        i, j = self.index % commands, self.other % commands
        if self.kind in ("field", "type"):  # mostly the commands in use, not the padding
            i = self.index % (used_commands(bytes(data)) + 1)
        base = i * CMD
        if base + 4 > len(data):
            return data
        cmd = bytes(data[base : base + CMD]).ljust(CMD, b"\0")
        kind = struct.unpack_from("<I", cmd)[0]
        layout_ = spec.LOADER_COMMANDS.get(kind)
        if self.kind == "type" or (self.kind == "field" and layout_ is None):
            struct.pack_into("<I", data, base, self.value % 7 if self.mode != "any" else self.value)
        elif self.kind == "field" and layout_ is not None and base + CMD <= len(data):
            numbers = [(n, f) for n, f in layout_.fields if n != "command" and f[-1] != "s"]
            names = [(n, f) for n, f in layout_.fields if f[-1] == "s"]
            fields = names if self.name is not None and self.field % 4 == 0 else numbers
            name, fmt = fields[self.field // 4 % len(fields)]
            at = base + layout_.offset(name)
            if fmt.endswith("s"):
                if self.name is not None:
                    data[at : at + NAME_SIZE] = self.name.apply(bytes(data[at : at + NAME_SIZE]))
                return data
            width = struct.calcsize(fmt)
            value = self.value
            if self.mode == "near":  # around the size of the first file the command names
                named = bytes(cmd[4 : 4 + NAME_SIZE]).split(b"\0")[0]
                value = max(sizes.get(named, 0) + self.value % 17 - 8, 0)
            elif self.mode == "small":
                value %= 33
            struct.pack_into("<" + fmt, data, at, value & ((1 << 8 * width) - 1))
        elif self.kind == "swap":
            a, b = bytes(data[base : base + CMD]), bytes(data[j * CMD : j * CMD + CMD])
            data[base : base + CMD], data[j * CMD : j * CMD + CMD] = b, a
        elif self.kind == "duplicate":
            data[j * CMD : j * CMD] = data[base : base + CMD]
        elif self.kind == "cut":
            del data[self.value % (len(data) + 1) :]
        return data


NAME_SIZE = spec.BIOS_LINKER_LOADER_FILESZ
loader_edits = st.builds(
    LoaderEdit,
    kind=st.sampled_from(["field"] * 8 + ["type", "swap", "duplicate", "cut"]),
    index=st.integers(0, 40),
    field=st.integers(0, 23),  # % 4 == 0 (with a NameEdit): a name, else a number
    mode=st.sampled_from(["near", "near", "near", "near", "small", "any"]),
    value=st.integers(0, (1 << 32) - 1),
    name=st.none() | name_edits,
    other=st.integers(0, 40),
)


def used_commands(data: bytes | bytearray) -> int:
    """How many commands QEMU's loader has before its padding."""
    return next(
        (i for i in range(len(data) // CMD) if not any(data[i * CMD : i * CMD + 4])),
        len(data) // CMD,
    )


@fuzz(400)
@given(
    machine=st.sampled_from(MACHINES),
    edits=st.lists(loader_edits, min_size=1, max_size=4),
    write_pointer=st.booleans(),
)
def test_fuzz_table_loader(machine: str, edits: list[LoaderEdit], write_pointer: bool) -> None:
    """QEMU's table-loader with commands changed, broken, reordered, repeated or cut off;
    with `write_pointer`, a WRITE_POINTER command into a file DMA may write (as vmgenid's),
    which the edits may break too."""
    files = recorded_files(machine)
    data = bytearray(files["etc/table-loader"])
    if write_pointer:
        at = used_commands(data) * CMD  # QEMU pads its loader with unused commands
        data[at : at + CMD] = WRITE_POINTER
        files[WRITABLE] = bytes(8)
    sizes = {name.encode(): len(d) for name, d in files.items()}
    for edit in edits:
        data = edit.apply(data, sizes)
    files["etc/table-loader"] = bytes(data)
    c = make_case(machine, files)
    if write_pointer:
        c.sim.make_writable(WRITABLE)
    check(c)


def test_write_pointer_reaches_fw_cfg() -> None:
    """The WRITE_POINTER the loader fuzzing starts from: the tables' address + 0x40 lands in
    the writable file, as the model says (and QEMU's vmgenid-addr would get it)."""
    files = recorded_files("pc")
    loader = files["etc/table-loader"].rstrip(b"\0")
    files["etc/table-loader"] = loader + bytes(-len(loader) % CMD) + WRITE_POINTER
    files[WRITABLE] = bytes(8)
    c = make_case("pc", files)
    c.sim.make_writable(WRITABLE)
    r = check(c)
    assert r.stopped_at_entry
    (address,) = struct.unpack("<Q", c.sim.items[c.sim.file_keys[WRITABLE]])
    assert layout.ROM_SHADOW_END < address - 0x40 < RAM


# ---- SMBIOS --------------------------------------------------------------------------------

ANCHOR, TABLES = "etc/smbios/smbios-anchor", "etc/smbios/smbios-tables"


def smbios30(anchor21: bytes, tables: bytes) -> bytes:
    """QEMU's 3.0 entry point (-machine smbios-entry-point-type=64) for the same tables."""
    f = spec.SMBIOS21_EP.unpack(anchor21)
    return spec.SMBIOS30_EP.pack(
        anchor_string=spec.SMBIOS30_ANCHOR,
        length=spec.SMBIOS30_EP.size,
        smbios_major_version=3,
        smbios_minor_version=int(f["smbios_minor_version"]),
        entry_point_revision=1,
        structure_table_max_size=len(tables),
    )


@dataclass(frozen=True)
class ByteEdit:
    """Bytes of a file changed (`at`: a fraction of its length, in 1/256ths), or the file
    cut or grown (with `value`'s bytes) to a few bytes or a fraction of twice its length."""

    kind: str
    at: int
    value: bytes

    def apply(self, data: bytes) -> bytes:
        if self.kind == "resize":  # a few bytes, or up to twice as long
            size = self.at % 8 if self.value[0] & 1 else self.at * 2 * max(len(data), 1) // 256
            return data[:size] + self.value * (size - len(data)) if self.value else data[:size]
        if not data:
            return data
        i = self.at * len(data) // 256
        return data[:i] + self.value + data[i + len(self.value) :]


byte_edits = st.builds(
    ByteEdit,
    kind=st.sampled_from(["bytes", "bytes", "resize"]),
    at=st.integers(0, 255),
    value=st.binary(min_size=1, max_size=4),
)
# The fields the firmware reads, by offset: 2.1's anchors, length, count and largest size;
# 3.0's anchor and maximum size; a structure's type and length.
FIELD_EDITS = st.sampled_from([0, 4, 5, 8, 12, 16, 20, 22, 23, 28]).flatmap(
    lambda at: st.tuples(st.just(at), st.binary(min_size=1, max_size=2))
)


@fuzz(400)
@given(
    machine=st.sampled_from(["pc", "q35"]),
    version=st.sampled_from(["2.1", "3.0"]),
    anchor_edits=st.lists(FIELD_EDITS, max_size=2) | st.just([]),  # half of them intact
    tables_edits=st.lists(byte_edits, max_size=2),
    length_follows=st.booleans(),
    anchor_size=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 40)),
    drop=st.sampled_from([None, ANCHOR, TABLES, "etc/table-loader"]),
)
def test_fuzz_smbios(
    machine: str,
    version: str,
    anchor_edits: list[tuple[int, bytes]],
    tables_edits: list[ByteEdit],
    length_follows: bool,
    anchor_size: int | None,
    drop: str | None,
) -> None:
    """QEMU's SMBIOS files, 2.1 or 3.0, with the entry point's fields, size and the tables'
    bytes and length changed (the entry point's length following the tables' or not), or a
    file missing; with or without ACPI (the MP table then shares the F segment)."""
    files = recorded_files(machine)
    anchor, tables = files[ANCHOR], files[TABLES]
    for edit in tables_edits:
        tables = edit.apply(tables)
    if version == "3.0":
        anchor = smbios30(anchor, tables if length_follows else files[TABLES])
    elif length_follows:
        f = spec.SMBIOS21_EP.unpack(anchor)
        anchor = spec.SMBIOS21_EP.pack(**{**f, "structure_table_length": len(tables) & 0xFFFF})
    for at, value in anchor_edits:
        anchor = anchor[:at] + value + anchor[at + len(value) :]
    if anchor_size is not None:
        anchor = anchor[:anchor_size].ljust(anchor_size, b"\0")
    files[ANCHOR], files[TABLES] = anchor, tables
    if drop is not None:
        del files[drop]
    check(make_case(machine, files))
