"""What a guest expects from its BIOS, checked in the emulator byte for byte against the
models (tests/model.py) written from the specifications: QEMU's SMBIOS tables (recorded from
QEMU 7.2 and 10.0, tests/data) installed in the F segment, the MP table without ACPI, and
the refusals."""

from __future__ import annotations

import struct

import pytest

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from tests import guest_expect as ge
from tests import model, spec
from tests.acpi_loader import BASE_QEMU, RECORDED_QEMUS, load_recording
from tests.emu.call import cpuid
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.test_firmware_emu import (
    ENTRY,
    KADDR,
    KSIZE,
    MiB,
    acpi_files,
    fatal_line,
    image_for,
    memmap,
)

PC = {spec.PCI_I440FX_HOST: spec.I440FX_ID}
Q35 = {spec.PCI_I440FX_HOST: spec.Q35_MCH_ID, spec.ICH9_LPC: spec.ICH9_LPC_ID}
MICROVM: dict[int, int] = {}
SMBIOS_FILES = ("etc/smbios/smbios-anchor", "etc/smbios/smbios-tables")


def smbios_files(machine: str, qemu: str = BASE_QEMU) -> dict[str, bytes]:
    """The SMBIOS anchor and tables QEMU `qemu` (a release series) gave on `machine`."""
    rec = load_recording(machine, qemu=qemu)
    return {name: rec.files[name] for name in SMBIOS_FILES}


def boot(
    fw: Firmware,
    files: dict[str, bytes],
    pci: dict[int, int] = PC,
    cpus: int = 1,
    reverse_dir: bool = False,
    cpuid: dict[int, tuple[int, int, int, int]] | None = None,
) -> RunResult:
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=256 * MiB,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        extra_files=files,
        cpus=cpus,
    )
    if reverse_dir:  # not sorted by name: the order of a legacy_fw_cfg_order machine
        sim.reorder_files(sorted(sim.file_keys, reverse=True))
    return run_firmware(image_for(fw), sim, ram_size=256 * MiB, stop_at=ENTRY, pci=pci, cpuid=cpuid)


def linux_finds_smbios(r: RunResult) -> tuple[int, bytes, int, int]:
    """dmi_scan_machine's search, 16-byte steps through the F segment, "_SM3_" first, then
    "_SM_" + "_DMI_": (entry point, its bytes, table address, table length), checksums held."""
    fseg = r.mem(0xF0000, 0x10000)
    for at in range(0, len(fseg) - 16, 16):
        if fseg[at : at + 5] == b"_SM3_":
            length = fseg[at + 6]
            assert sum(fseg[at : at + length]) & 0xFF == 0
            (size, address) = struct.unpack_from("<IQ", fseg, at + 12)
            return 0xF0000 + at, fseg[at : at + length], address, size
    for at in range(0, len(fseg) - 32, 16):
        if fseg[at : at + 4] == b"_SM_" and fseg[at + 16 : at + 21] == b"_DMI_":
            length = fseg[at + 5]
            assert sum(fseg[at : at + length]) & 0xFF == 0
            assert sum(fseg[at + 16 : at + 31]) & 0xFF == 0
            (size, address) = struct.unpack_from("<HI", fseg, at + 22)
            return 0xF0000 + at, fseg[at : at + length], address, size
    raise AssertionError("no SMBIOS entry point in the F segment")


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
@pytest.mark.parametrize("machine", ["pc", "q35", "pc-legacy-order"])
def test_qemus_smbios_tables_installed(pvh_firmware: Firmware, machine: str, qemu: str) -> None:
    """pc-legacy-order: the directory not sorted by name, the tables before the anchor (the
    firmware looks right after the anchor first, then through the whole directory)."""
    files = smbios_files(machine.removesuffix("-legacy-order"), qemu)
    pci = Q35 if machine == "q35" else PC
    r = boot(pvh_firmware, files, pci, reverse_dir=machine.endswith("-legacy-order"))
    assert r.stopped_at_entry, r.serial
    want = model.smbios_installed(files[SMBIOS_FILES[0]], files[SMBIOS_FILES[1]])
    ep_addr, ep, table_addr, length = linux_finds_smbios(r)
    assert (ep_addr, ep) == (want.ep_addr, want.ep)
    assert (table_addr, length) == (want.table_addr, len(want.table))
    assert r.mem(table_addr, length) == want.table
    structures = spec.smbios_structures(want.table)
    assert next(t for t, _ in structures) == 0 and structures[-1][0] == 127
    (count,) = struct.unpack_from("<H", ep, 28)
    assert count == len(structures)
    assert r.rom_writes == []


def _smbios30(anchor21: bytes, tables: bytes, address: int = 0) -> bytes:
    return spec.SMBIOS30_EP.pack(
        anchor_string=b"_SM3_",
        length=24,
        smbios_major_version=3,
        entry_point_revision=1,
        structure_table_max_size=len(tables),
        structure_table_address=address,
    )


def _with_type0(anchor21: bytes, tables: bytes) -> tuple[bytes, bytes]:
    """QEMU's files for -smbios type=0,vendor=...: its own type 0 first."""
    t0 = spec.SMBIOS_TYPE_0.pack(header=0 | 24 << 8, vendor_str=1) + b"QEMU-T0\0\0"
    f = spec.SMBIOS21_EP.unpack(anchor21)
    f["structure_table_length"] = len(tables) + len(t0)
    f["number_of_structures"] = int(f["number_of_structures"]) + 1
    return spec.SMBIOS21_EP.pack(**f), t0 + tables


@pytest.mark.parametrize("address", [0, (1 << 64) - 1], ids=["zero", "all-ones"])
@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
def test_smbios_30_entry_point(pvh_firmware: Firmware, qemu: str, address: int) -> None:
    """QEMU 10 with smbios-entry-point-type=64 (or pc-*-8.1/8.2): a 24-byte "_SM3_" entry
    point, a 64-bit address, a length but no count. The address is the firmware's to write,
    both halves, whatever the anchor file held in it."""
    anchor21, tables = smbios_files("pc", qemu).values()
    anchor = _smbios30(anchor21, tables, address)
    r = boot(pvh_firmware, {SMBIOS_FILES[0]: anchor, SMBIOS_FILES[1]: tables})
    assert r.stopped_at_entry, r.serial
    want = model.smbios_installed(anchor, tables)
    assert linux_finds_smbios(r) == (want.ep_addr, want.ep, want.table_addr, len(want.table))
    assert r.mem(want.table_addr, len(want.table)) == want.table


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_largest_structure_counts_the_added_type0(pvh_firmware: Firmware, delta: int) -> None:
    """SMBIOS 2.1's max_structure_size, on both sides of the type 0 the firmware adds: raised
    to it when smaller, kept otherwise."""
    anchor21, tables = smbios_files("pc", RECORDED_QEMUS[0]).values()
    fields = spec.SMBIOS21_EP.unpack(anchor21)
    fields["max_structure_size"] = layout.SMBIOS_TYPE0_SIZE + delta
    anchor = spec.SMBIOS21_EP.pack(**fields)
    r = boot(pvh_firmware, {SMBIOS_FILES[0]: anchor, SMBIOS_FILES[1]: tables})
    assert r.stopped_at_entry, r.serial
    want = model.smbios_installed(anchor, tables)
    assert linux_finds_smbios(r) == (want.ep_addr, want.ep, want.table_addr, len(want.table))


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
def test_qemus_own_type0_is_kept_alone(pvh_firmware: Firmware, qemu: str) -> None:
    anchor, tables = _with_type0(*smbios_files("pc", qemu).values())
    r = boot(pvh_firmware, {SMBIOS_FILES[0]: anchor, SMBIOS_FILES[1]: tables})
    assert r.stopped_at_entry, r.serial
    want = model.smbios_installed(anchor, tables)
    assert want.table == tables
    assert linux_finds_smbios(r) == (want.ep_addr, want.ep, want.table_addr, len(tables))
    assert r.mem(want.table_addr, len(tables)) == tables


NOT_AN_ENTRY_POINT = "bytes) is not an SMBIOS 2.1 or 3.0 entry point"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("short-anchor", f"fw_cfg etc/smbios/smbios-anchor (0x0000001e {NOT_AN_ENTRY_POINT}"),
        ("bad-anchor", f"fw_cfg etc/smbios/smbios-anchor (0x0000001f {NOT_AN_ENTRY_POINT}"),
        ("bad-dmi", f"fw_cfg etc/smbios/smbios-anchor (0x0000001f {NOT_AN_ENTRY_POINT}"),
        ("no-tables", "fw_cfg has etc/smbios/smbios-anchor but no etc/smbios/smbios-tables"),
        (
            "long-tables",
            "fw_cfg etc/smbios/smbios-tables is 0x00000142 bytes, its entry point says 0x00000141",
        ),
        (
            "no-pam",
            "no room for the SMBIOS tables in the F segment (not RAM on this machine, or full)",
        ),
    ],
)
def test_smbios_refusals(pvh_firmware: Firmware, change: str, message: str) -> None:
    anchor, tables = smbios_files("pc").values()
    files = {SMBIOS_FILES[0]: anchor, SMBIOS_FILES[1]: tables}
    pci = PC
    if change == "short-anchor":
        files[SMBIOS_FILES[0]] = anchor[:30]
    elif change == "bad-anchor":
        files[SMBIOS_FILES[0]] = b"_SN_" + anchor[4:]
    elif change == "bad-dmi":
        files[SMBIOS_FILES[0]] = anchor[:16] + b"_DMJ_" + anchor[21:]
    elif change == "no-tables":
        del files[SMBIOS_FILES[1]]
    elif change == "long-tables":
        files[SMBIOS_FILES[1]] = tables + b"\0"
    else:
        pci = MICROVM  # no host bridge: no PAM, the F segment stays ROM
    r = boot(pvh_firmware, files, pci)
    assert not r.stopped_at_entry
    assert fatal_line(r) == f"pvhfw: {message}"


@pytest.mark.parametrize("size", [spec.SMBIOS_HEADER.size - 1, spec.SMBIOS_HEADER.size])
def test_smbios_tables_of_one_header(pvh_firmware: Firmware, size: int) -> None:
    """A tables file of one structure's header (an end-of-table, type 127) is installed; a
    byte shorter, refused with its size, though the entry point agrees."""
    anchor21, _ = smbios_files("pc").values()
    fields = spec.SMBIOS21_EP.unpack(anchor21)
    fields["structure_table_length"], fields["number_of_structures"] = size, 1
    anchor = spec.SMBIOS21_EP.pack(**fields)
    tables = spec.SMBIOS_HEADER.pack(type=127, length=4, handle=0x7F00)[:size]
    r = boot(pvh_firmware, {SMBIOS_FILES[0]: anchor, SMBIOS_FILES[1]: tables})
    if size < spec.SMBIOS_HEADER.size:
        assert fatal_line(r) == (
            f"pvhfw: fw_cfg etc/smbios/smbios-tables is {size:#010x} bytes, less than one "
            "structure's header"
        )
        return
    assert r.stopped_at_entry, r.serial
    want = model.smbios_installed(anchor, tables)
    assert linux_finds_smbios(r) == (want.ep_addr, want.ep, want.table_addr, len(want.table))
    assert r.mem(want.table_addr, len(want.table)) == want.table


def test_no_smbios_files_no_entry_point(pvh_firmware: Firmware) -> None:
    r = boot(pvh_firmware, {}, MICROVM)
    assert r.stopped_at_entry, r.serial
    assert b"_SM" not in r.mem(0xF0000, 0x10000).replace(image_for(pvh_firmware)[-0x10000:], b"")


# ---- the MP table, without ACPI -------------------------------------------------------------


def cpu_signature() -> tuple[int, int]:
    eax, _, _, edx = cpuid(1)
    return eax, edx


@pytest.mark.parametrize(
    ("pci", "cpus", "at"),
    [
        (PC, 2, 0xF0000),  # the F segment, where SeaBIOS puts it
        (Q35, 1, 0xF0000),
        (MICROVM, 2, layout.EBDA_BASE),  # no F segment RAM: the EBDA, as qboot
        (MICROVM, 40, layout.EBDA_BASE),  # the most the EBDA's KiB holds
        (PC, 255, 0xF0000),  # the most an MP table describes
    ],
    ids=["pc-2", "q35-1", "microvm-2", "microvm-40", "pc-255"],
)
def test_mp_table_without_acpi(
    pvh_firmware: Firmware, pci: dict[int, int], cpus: int, at: int
) -> None:
    r = boot(pvh_firmware, {}, pci, cpus=cpus)
    assert r.stopped_at_entry, r.serial
    want = model.mptable(cpus, *cpu_signature(), at)
    assert r.mem(at, len(want)) == want
    ebda = (layout.EBDA_BASE, layout.LOWMEM_END - layout.EBDA_BASE, spec.E820_RESERVED)
    e820 = [(0, 256 * MiB, spec.E820_RAM)]
    assert (ebda in memmap(r)) == (at == layout.EBDA_BASE)
    machine = "microvm" if pci is MICROVM else "q35" if pci is Q35 else "pc"
    assert memmap(r) == model.machine_memmap(e820, machine)


@pytest.mark.parametrize(
    ("pci", "cpus", "message"),
    [
        (
            MICROVM,
            41,
            "no room for an MP table of 0x00000029 CPUs (the F segment is not RAM here, the "
            "EBDA holds 40)",
        ),
        (PC, 256, "fw_cfg counts 0x00000100 CPUs: an MP table (no ACPI) describes 255 at most"),
    ],
)
def test_mp_table_refusals(
    pvh_firmware: Firmware, pci: dict[int, int], cpus: int, message: str
) -> None:
    r = boot(pvh_firmware, {}, pci, cpus=cpus)
    assert fatal_line(r) == f"pvhfw: {message}"


def test_no_mp_table_with_acpi(pvh_firmware: Firmware) -> None:
    """With QEMU's table-loader the kernel reads the MADT: nowhere Linux scans has "_MP_"."""
    r = boot(pvh_firmware, acpi_files("pc"), PC, cpus=2)
    assert r.stopped_at_entry, r.serial
    for lo, size in ((0, 0x400), (0x9FC00, 0x400), (0xF0000, 0x10000)):
        assert b"_MP_" not in r.mem(lo, size), hex(lo)


# ---- the MTRRs -------------------------------------------------------------------------------


GiB = 1 << 30


@pytest.mark.parametrize(
    ("machine", "lowmem", "highmem"),
    [
        ("pc", 256 * MiB, 0),  # below 2 GiB: the hole from 2 GiB
        ("pc", 2560 * MiB, 0),  # above: from 3 GiB
        ("pc", 3328 * MiB, 0),  # above 3 GiB: where the RAM ends (768 MiB, not a power of 2)
        ("pc", 3 * GiB, 5 * GiB),  # RAM above 4 GiB changes nothing
        ("q35", 256 * MiB, 0),  # q35: from 3 GiB, always (its MMCONFIG, then the PCI hole)
        ("q35", 2 * GiB, 2 * GiB),
    ],
    ids=["pc-256M", "pc-2560M", "pc-3328M", "pc-8G", "q35-256M", "q35-4G"],
)
def test_mtrrs_as_seabios_sets_them(
    pvh_firmware: Firmware, machine: str, lowmem: int, highmem: int
) -> None:
    """Every MTRR as SeaBIOS's mtrr_setup leaves it (tests/guest_expect.py, written from its
    sources), for this CPU's MTRRcap and address width and fw_cfg's e820; RAM the emulator
    maps stays 256 MiB (no ACPI here: nothing is placed at the top of the RAM)."""
    e820 = [(0, lowmem, 1)] + ([(1 << 32, highmem, 1)] if highmem else [])
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=lowmem,
        ram_above_4g=highmem,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        e820=e820,
    )
    r = run_firmware(
        image_for(pvh_firmware),
        sim,
        ram_size=256 * MiB,
        stop_at=ENTRY,
        pci=Q35 if machine == "q35" else PC,
    )
    assert r.stopped_at_entry, r.serial
    cap = r.uc.msr_read(ge.MSR_MTRRCAP)
    phys_bits = cpuid(0x8000_0008)[0] & 0xFF
    want = ge.seabios_mtrrs(e820, machine, phys_bits, cap & ge.MTRRCAP_VCNT)
    assert {msr: r.uc.msr_read(msr) for msr in want} == want


@pytest.mark.parametrize("xlevel", [0x8000_0004, 0x8000_0007, 0x8000_0008])
def test_mtrr_address_width_without_cpuid_leaf_0x80000008(
    pvh_firmware: Firmware, xlevel: int
) -> None:
    """A CPU whose highest extended leaf is below 0x80000008 (QEMU's qemu32: 0x80000004) has
    no address width to read: the mask is for 36 bits, as SeaBIOS takes it; from 0x80000008
    on, the leaf's (40 bits on unicorn's CPU: the two differ)."""
    width = cpuid(0x8000_0008)[0] & 0xFF
    assert width != 36
    r = boot(pvh_firmware, {}, PC, cpuid={0x8000_0000: (xlevel, *cpuid(0x8000_0000)[1:])})
    assert r.stopped_at_entry, r.serial
    cap = r.uc.msr_read(ge.MSR_MTRRCAP)
    phys_bits = width if xlevel >= 0x8000_0008 else 36
    want = ge.seabios_mtrrs([(0, 256 * MiB, 1)], "pc", phys_bits, cap & ge.MTRRCAP_VCNT)
    assert {msr: r.uc.msr_read(msr) for msr in want} == want
