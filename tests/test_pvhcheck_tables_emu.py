"""pvhcheck's BIOS-table checks failing where they should: pvhcheck run in unicorn
(tests/emu/guest.py) in front of tables built by tests/tablegen.py, correct ones and ones
broken in one place each. SeaBIOS and qboot show the checks passing on real firmware
(tests/test_qemu_guest_tables.py); these show that each failure mode is seen and named.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import spec
from tests import tablegen as tg
from tests.emu.fwcfg import SimFwCfg
from tests.emu.guest import DEFAULT_MEMMAP, RAM_SIZE, Guest, run_guest
from tests.kernels.build import Report, elf_symbol, parse_report
from tests.support import KernelGetter

EP_ADDR = 0xF5A00  # where SeaBIOS puts them, 16-byte aligned in the F segment
TABLE_ADDR = 0xF5A20
QBOOT_MP = 0x9FC00
TABLE_PREFIXES = ("smbios_", "mptable_", "pcie_", "mtrr_")
SMBIOS_ANCHOR, SMBIOS_TABLES = "etc/smbios/smbios-anchor", "etc/smbios/smbios-tables"
Q35, I440FX = 0x29C08086, 0x12378086
ECAM = 0xB000_0000
ECAM_RESERVED = (ECAM, 0x1000_0000, 2)


@dataclass(frozen=True)
class Pvhcheck:
    """pvhcheck (built with lar=False: unicorn's lar is not QEMU's), run in a made-up machine."""

    elf: Path
    start: int  # __kernel_start
    end: int  # __kernel_end

    def __call__(self, guest: Guest) -> Report:
        result = run_guest(self.elf, guest)
        assert result.error is None, result.error
        report = parse_report(result.serial)
        assert report.complete, result.serial[-2000:]
        # Only the table checks are under test; the others hold in every machine made here.
        others = {n: d for n, d in report.failed_checks.items() if not n.startswith(TABLE_PREFIXES)}
        assert others == {}, others
        return report


Run = Pvhcheck


@pytest.fixture(scope="module")
def run(kernel: KernelGetter) -> Pvhcheck:
    elf = kernel("pvhcheck", 0x1000000, lar=False)
    return Pvhcheck(elf, elf_symbol(elf, "__kernel_start"), elf_symbol(elf, "__kernel_end"))


def fwcfg(
    run: Run, files: dict[str, bytes] | None = None, cpus: int = 1, irq0_override: int = 1
) -> SimFwCfg:
    fw = SimFwCfg.for_pvh_boot(
        ram_below_4g=RAM_SIZE,
        kernel_entry=run.start,
        kernel_addr=run.start,
        kernel_size=run.end - run.start,
        extra_files=files,
    )
    fw.items[spec.FW_CFG_NB_CPUS] = struct.pack("<H", cpus)
    fw.items[spec.FW_CFG_ARCH_LOCAL + 2] = struct.pack("<I", irq0_override)  # irq0 override
    return fw


def table_failures(report: Report) -> dict[str, str]:
    return {n: d for n, d in report.failed_checks.items() if n.startswith(TABLE_PREFIXES)}


# ---- SMBIOS -------------------------------------------------------------------------------


def smbios_guest(
    run: Run,
    *,
    blob: bytes | None = None,
    table: bytes | None = None,
    ep: bytes | None = None,
    anchor: bytes | None = None,
    v3: bool = False,
    table_addr: int = TABLE_ADDR,
    files: bool = True,
) -> Guest:
    """QEMU's files for `blob` and what a BIOS installs: by default a type 0, then the blob."""
    blob = tg.qemu_blob() if blob is None else blob
    anchor = anchor or (tg.smbios30_anchor(blob) if v3 else tg.smbios21_anchor(blob))
    table = tg.bios_type0() + blob if table is None else table
    if ep is None:
        install = tg.smbios30_install if v3 else tg.smbios21_install
        ep = install(anchor, table, table_addr)
    fw = fwcfg(run, {SMBIOS_ANCHOR: anchor, SMBIOS_TABLES: blob} if files else None)
    return Guest(fwcfg=fw, memory={EP_ADDR: ep, table_addr: table})


def test_smbios_21_added_type0_passes(run: Run) -> None:
    report = run(smbios_guest(run))
    assert table_failures(report) == {}
    assert report.smbios["ep"] == EP_ADDR and report.smbios["table"] == TABLE_ADDR
    assert (report.smbios["anchor"], report.smbios["version"]) == ("_SM_", "2.8")
    assert report.smbios["layout"] == "added" and report.smbios["count"] == 4
    assert report.smbios_types == [0, 1, 3, 127]
    assert report.smbios_bios == {"vendor": b"TestBIOS", "version": b"0.1", "date": b"01/01/2026"}
    assert report.smbios_structures[1].string(5) == b"Standard PC"


def test_smbios_whole_and_30_pass(run: Run) -> None:
    blob = tg.qemu_blob(with_type0=True)
    report = run(smbios_guest(run, blob=blob, table=blob))
    assert table_failures(report) == {}
    assert report.smbios["layout"] == "whole"
    assert report.smbios_bios == {"vendor": b"QEMU", "version": b"1.0", "date": None}
    report = run(smbios_guest(run, v3=True))
    assert table_failures(report) == {}
    assert (report.smbios["anchor"], report.smbios["layout"]) == ("_SM3_", "added")


def test_smbios_rejected_entry_points(run: Run) -> None:
    """Checksums Linux tests: no SMBIOS for Linux (or only legacy DMI), a failure for us."""
    good = run(smbios_guest(run)).smbios
    assert good["ep"] == EP_ADDR
    base = smbios_guest(run)
    ep = bytearray(base.memory[EP_ADDR])
    ep[0x15] ^= 1  # the _DMI_ checksum: Linux rejects the whole entry point
    report = run(smbios_guest(run, ep=bytes(ep)))
    assert report.smbios["ep"] == "none"
    assert table_failures(report) == {
        "smbios_entry_point": f"_SM_ entry point whose _DMI_ part does not sum to 0 at "
        f"{EP_ADDR:#x}: Linux finds no SMBIOS"
    }
    ep = bytearray(base.memory[EP_ADDR])
    ep[0x04] ^= 1  # the _SM_ checksum: Linux falls back to the legacy _DMI_ part
    report = run(smbios_guest(run, ep=bytes(ep)))
    assert report.smbios["anchor"] == "_DMI_"
    assert table_failures(report)["smbios_entry_point"] == (
        f"Linux takes only the legacy _DMI_ part at {EP_ADDR + 16:#x}: "
        "the _SM_ entry point's bytes do not sum to 0"
    )
    ep3 = bytearray(smbios_guest(run, v3=True).memory[EP_ADDR])
    ep3[0x05] ^= 1
    report = run(smbios_guest(run, v3=True, ep=bytes(ep3)))
    assert table_failures(report) == {
        "smbios_entry_point": f"_SM3_ entry point whose bytes do not sum to 0 at "
        f"{EP_ADDR:#x}: Linux finds no SMBIOS"
    }


def test_smbios_count_and_length(run: Run) -> None:
    ep = smbios_guest(run).memory[EP_ADDR]
    more = bytearray(ep)
    struct.pack_into("<H", more, 0x1C, 5)  # one structure more than the table holds
    report = run(smbios_guest(run, ep=tg.resum21(bytes(more))))
    table_len = report.smbios["length"]
    assert table_failures(report) == {
        "smbios_structures": f"only 4 structures fit in length {table_len}, count is 5",
        "smbios_is_fwcfg": "structure count 5, fw_cfg's anchor count + added 4",
    }
    short = bytearray(ep)
    struct.pack_into("<H", short, 0x16, int(table_len) - 1)  # the last NUL outside
    report = run(smbios_guest(run, ep=tg.resum21(bytes(short))))
    failures = table_failures(report)
    assert failures["smbios_structures"].startswith("structure 3 at offset 0x")
    assert failures["smbios_structures"].endswith(
        ": formatted area or strings run past the table length"
    )
    assert failures["smbios_is_fwcfg"].startswith(f"table length {int(table_len) - 1} is neither")
    wrong_max = bytearray(ep)
    struct.pack_into("<H", wrong_max, 0x08, 10)
    report = run(smbios_guest(run, ep=tg.resum21(bytes(wrong_max))))
    largest = max(len(p) for p in tg.structures(tg.bios_type0() + tg.qemu_blob()))
    assert table_failures(report) == {
        "smbios_structures": f"max structure size 10, largest structure {largest}"
    }


def test_smbios_walk_needs_type_127(run: Run) -> None:
    blob = tg.qemu_blob()[:-6] + tg.smbios_struct(32, 0x2000, bytes(7))  # 127 replaced
    report = run(smbios_guest(run, blob=blob))
    assert table_failures(report) == {"smbios_structures": "the last structure is not type 127"}
    report = run(smbios_guest(run, blob=blob, v3=True))
    length = report.smbios["length"]
    assert table_failures(report) == {
        "smbios_structures": f"no type 127 within the maximum size {length}"
    }


def test_smbios_table_is_not_fwcfgs(run: Run) -> None:
    table = bytearray(tg.bios_type0() + tg.qemu_blob())
    at = len(tg.bios_type0()) + 30
    table[at] ^= 0x20  # a string byte of QEMU's type 1
    report = run(smbios_guest(run, table=bytes(table)))
    assert report.smbios["layout"] == "differs"
    assert table_failures(report) == {
        "smbios_is_fwcfg": "after its first structure (type 0) the table differs from "
        "fw_cfg's smbios-tables at offset 30"
    }
    blob0 = tg.qemu_blob(with_type0=True)
    report = run(smbios_guest(run, blob=blob0))  # a second type 0 put in front
    assert table_failures(report) == {
        "smbios_is_fwcfg": "a type 0 added although fw_cfg's tables have one"
    }
    report = run(smbios_guest(run, table=tg.qemu_blob()))  # no type 0 anywhere
    assert table_failures(report) == {
        "smbios_is_fwcfg": "fw_cfg's tables have no type 0 and none was added"
    }


def test_smbios_entry_point_keeps_qemus_fields(run: Run) -> None:
    anchor = tg.smbios21_anchor(tg.qemu_blob())
    table = tg.bios_type0() + tg.qemu_blob()
    ep = bytearray(tg.smbios21_install(anchor, table, TABLE_ADDR))
    ep[0x07] = 4  # SMBIOS 2.4, not QEMU's 2.8
    report = run(smbios_guest(run, ep=tg.resum21(bytes(ep))))
    assert table_failures(report) == {
        "smbios_is_fwcfg": "entry point byte 0x7=0x4, fw_cfg anchor 0x8"
    }
    v3 = tg.smbios30_anchor(tg.qemu_blob())
    report = run(smbios_guest(run, anchor=v3, ep=tg.smbios21_install(anchor, table, TABLE_ADDR)))
    assert table_failures(report) == {
        "smbios_is_fwcfg": "fw_cfg's anchor is 24 bytes, the entry point is _SM_"
    }


def test_smbios_placement_and_origin(run: Run) -> None:
    high = 0x0100_0000 + 0x80_0000  # RAM, above pvhcheck
    report = run(smbios_guest(run, table_addr=high))
    size = report.smbios["length"]
    assert table_failures(report) == {
        "smbios_not_in_ram": f"table {high:#x}+{size:#x} in a RAM entry "
        "(Linux reads it again at run time)"
    }
    report = run(smbios_guest(run, files=False))
    assert table_failures(report) == {
        "smbios_none_without_fwcfg": f"entry point at {EP_ADDR:#x} although fw_cfg has no "
        "etc/smbios/smbios-anchor"
    }


# ---- the MP table ----------------------------------------------------------------------------


def mp_guest(
    run: Run,
    entries: list[bytes] | None = None,
    *,
    cpus: int = 2,
    fw_cpus: int | None = None,
    irq0_override: int = 1,
    floating: bytes | None = None,
    config: bytes | None = None,
    at: int = QBOOT_MP,
    extra_memory: dict[int, bytes] | None = None,
) -> Guest:
    """qboot's MP table (or `entries`) at `at`, table 16 bytes after the pointer."""
    entries = tg.qboot_entries(cpus, bool(irq0_override)) if entries is None else entries
    config = tg.mp_config(entries) if config is None else config
    floating = tg.mp_floating(at + 16) if floating is None else floating
    fw = fwcfg(run, cpus=cpus if fw_cpus is None else fw_cpus, irq0_override=irq0_override)
    return Guest(fwcfg=fw, memory={at: floating + config, **(extra_memory or {})})


def test_mptable_qboot_like_passes(run: Run) -> None:
    report = run(mp_guest(run))
    assert table_failures(report) == {}
    mp = report.mptable
    assert (mp["fp"], mp["table"], mp["cpus"], mp["ioapic"]) == (
        QBOOT_MP,
        QBOOT_MP + 16,
        2,
        f"3@{tg.IOAPIC_ADDR:#x}",
    )
    assert mp["entries"] == mp["walked"] == len(report.mptable_entries) == 2 + 2 + 15 + 2
    assert report.mptable_isa_irqs == [0, 1, *range(3, 16)]
    assert mp["oem"] == "QBOOT   "
    report = run(mp_guest(run, irq0_override=0))
    assert table_failures(report) == {}
    assert report.mptable_isa_irqs == list(range(16))


def test_mptable_found_in_the_f_segment_and_the_ebda(run: Run) -> None:
    report = run(mp_guest(run, at=0xF7000))
    assert table_failures(report) == {} and report.mptable["fp"] == 0xF7000
    ebda = 0x9E000  # outside the fixed ranges: found only through the BDA's pointer
    report = run(mp_guest(run, at=ebda, extra_memory={0x40E: struct.pack("<H", ebda >> 4)}))
    assert table_failures(report) == {} and report.mptable["fp"] == ebda
    report = run(mp_guest(run, at=ebda))
    assert report.mptable["fp"] == "none"


def test_mptable_rejected_floating_pointer(run: Run) -> None:
    fp = bytearray(tg.mp_floating(QBOOT_MP + 16))
    fp[10] ^= 1
    report = run(mp_guest(run, floating=bytes(fp)))
    assert report.mptable["fp"] == "none"
    assert table_failures(report) == {
        "mptable_floating": f"_MP_ at {QBOOT_MP:#x}: its 16 bytes do not sum to 0 "
        "(Linux finds no MP table)"
    }
    default = tg.resum(tg.mp_floating(QBOOT_MP + 16)[:11] + b"\x05" + bytes(4), 10)
    report = run(mp_guest(run, floating=default))
    assert table_failures(report) == {
        "mptable_floating": "feature1=0x5: a default configuration, no table to check"
    }


def test_mptable_config_table(run: Run) -> None:
    config = bytearray(tg.mp_config(tg.qboot_entries(2)))
    config[7] ^= 1
    report = run(mp_guest(run, config=bytes(config)))
    assert table_failures(report) == {"mptable_config": "base table bytes do not sum to 0"}
    entries = tg.qboot_entries(2)
    bad = [*entries[:3], b"\x09" + bytes(7), *entries[3:]]
    report = run(mp_guest(run, bad))
    failures = table_failures(report)
    assert failures["mptable_config"] == f"entry at offset {44 + 20 * 2 + 8}: unknown type 9"
    cut = tg.mp_config(entries)
    cut = tg.resum(cut[:4] + struct.pack("<H", len(cut) - 4) + cut[6:], 7, 0, len(cut) - 4)
    report = run(mp_guest(run, config=cut))
    assert table_failures(report) == {
        "mptable_config": f"entry at offset {len(cut) - 8}: runs past the base length",
        "mptable_lint": "no NMI local interrupt on LINT1",  # the entry cut off
    }
    report = run(mp_guest(run, config=tg.mp_config(entries, lapic=0, spec=2)))
    assert table_failures(report) == {"mptable_config": "spec 2; local APIC address 0"}


def test_mptable_cpus(run: Run) -> None:
    entries = tg.qboot_entries(2)
    dup = [tg.mp_cpu(0, 3), tg.mp_cpu(0, 1), *entries[2:]]
    report = run(mp_guest(run, dup))
    assert table_failures(report) == {"mptable_cpus": "APIC ID 0 in two processor entries"}
    two_bsps = [tg.mp_cpu(0, 3), tg.mp_cpu(1, 3), *entries[2:]]
    report = run(mp_guest(run, two_bsps))
    assert table_failures(report) == {"mptable_cpus": "processor entries flagged bootstrap: 2"}
    other_bsp = [tg.mp_cpu(0, 1), tg.mp_cpu(1, 3), *entries[2:]]
    report = run(mp_guest(run, other_bsp))
    assert table_failures(report) == {"mptable_cpus": "bootstrap APIC ID 1, this CPU's 0"}
    report = run(mp_guest(run, fw_cpus=3))
    assert table_failures(report) == {"mptable_cpus": "enabled processors 2, fw_cfg NB_CPUS 3"}
    disabled = [tg.mp_cpu(0, 3), tg.mp_cpu(1, 0), *entries[2:]]
    report = run(mp_guest(run, disabled))
    assert table_failures(report) == {"mptable_cpus": "enabled processors 1, fw_cfg NB_CPUS 2"}


def test_mptable_ioapic_and_interrupts(run: Run) -> None:
    entries = tg.qboot_entries(2)
    moved = [*entries[:3], tg.mp_ioapic(3, addr=0xFEC01000), *entries[4:]]
    report = run(mp_guest(run, moved))
    assert table_failures(report)["mptable_ioapic"] == "no usable I/O APIC entry at 0xfec00000"
    wrong_dst = [*entries[:5], tg.mp_intsrc(tg.MP_INT, 0, 1, 7, 1), *entries[6:]]
    report = run(mp_guest(run, wrong_dst))
    assert table_failures(report) == {
        "mptable_ioapic": "I/O interrupt entry 5 targets I/O APIC 7, not 3"
    }
    irq0_pin0 = [*entries[:4], tg.mp_intsrc(tg.MP_INT, 0, 0, 3, 0), *entries[5:]]
    report = run(mp_guest(run, irq0_pin0))
    assert table_failures(report) == {"mptable_isa_irqs": "ISA IRQ 0 to pin 0, not 2"}
    with_irq2 = [*entries[:-2], tg.mp_intsrc(tg.MP_INT, 0, 2, 3, 2), *entries[-2:]]
    report = run(mp_guest(run, with_irq2))
    assert table_failures(report) == {
        "mptable_isa_irqs": "ISA IRQ 2 present with the irq0 override"
    }
    no_irq1 = [*entries[:5], *entries[6:]]
    report = run(mp_guest(run, no_irq1))
    assert table_failures(report) == {"mptable_isa_irqs": "ISA IRQ 1 not routed"}
    # SeaBIOS's way: IRQs 5, 9, 10, 11 through PCI entries instead is accepted.
    no_pci_irqs = [e for e in entries if not (e[0] == 3 and e[5] in (5, 9, 10, 11))]
    report = run(mp_guest(run, no_pci_irqs))
    assert table_failures(report) == {}
    assert report.mptable_isa_irqs == [0, 1, 3, 4, 6, 7, 8, 12, 13, 14, 15]
    report = run(mp_guest(run, entries[:-2]))
    assert table_failures(report) == {
        "mptable_lint": "no ExtINT local interrupt on LINT0; no NMI local interrupt on LINT1"
    }
    no_isa = [e for e in entries if e[0] != 1]
    report = run(mp_guest(run, no_isa))
    assert table_failures(report) == {"mptable_isa_irqs": "no ISA bus entry"}


# ---- PCIe MMCONFIG, PAM, MTRRs ---------------------------------------------------------------


def config_space(device_id: int, regs: dict[int, bytes] | None = None) -> bytes:
    data = bytearray(256)
    struct.pack_into("<I", data, 0, device_id)
    for offset, value in (regs or {}).items():
        data[offset : offset + len(value)] = value
    return bytes(data)


def q35_guest(run: Run, pciexbar: int, *, reserved: bool = True, ecam_id: int = Q35) -> Guest:
    mch = config_space(Q35, {0x60: struct.pack("<Q", pciexbar), 0x90: bytes(range(7))})
    lpc = config_space(0x29188086)
    pci = {0: mch, 0x1F << 3: lpc}
    memmap = (*DEFAULT_MEMMAP, ECAM_RESERVED) if reserved else DEFAULT_MEMMAP
    return Guest(
        fwcfg=fwcfg(run),
        pci=pci,
        ecam=ECAM,
        ecam_pci={0: config_space(ecam_id), 0x1F << 3: lpc},
        memmap=memmap,
    )


def test_pcie_ecam(run: Run) -> None:
    report = run(q35_guest(run, ECAM | 1))
    assert table_failures(report) == {}
    assert report.pcie == {
        "host": Q35,
        "pciexbar": ECAM | 1,
        "base": ECAM,
        "size": 0x1000_0000,
        "ecam": "ok",
        "devices": 2,
        "ext": 0,
    }
    assert report.pam == {"host": Q35, "reg": 0x90, **{f"pam{i}": i for i in range(7)}}
    report = run(q35_guest(run, ECAM | 1, reserved=False))
    assert table_failures(report) == {
        "pcie_ecam_reserved": "ECAM 0xb0000000+0x10000000 not covered by reserved (type 2) "
        "memory map entries"
    }
    report = run(q35_guest(run, ECAM | 1, ecam_id=0x12345678))
    assert report.pcie["ecam"] == "bad"
    assert table_failures(report) == {
        "pcie_ecam_config": f"device 0 reads 0x12345678 through ECAM, {Q35:#x} through CF8/CFC"
    }
    report = run(q35_guest(run, ECAM | 0b111))
    assert table_failures(report) == {
        "pcie_ecam_config": f"PCIEXBAR {ECAM | 7:#x} has the reserved LENGTH 3"
    }
    report = run(q35_guest(run, ECAM, reserved=False))  # disabled: nothing to hold
    assert table_failures(report) == {} and report.pcie["ecam"] == "off"


def test_pam_i440fx(run: Run) -> None:
    host = config_space(I440FX, {0x58: bytes([0x58, 0x10, 0x11, 0x11, 0x33, 0x33, 0x30, 0x31])})
    report = run(Guest(fwcfg=fwcfg(run), pci={0: host}))
    assert table_failures(report) == {}
    pams = [0x10, 0x11, 0x11, 0x33, 0x33, 0x30, 0x31]
    assert report.pam == {"host": I440FX, "reg": 0x59, **{f"pam{i}": v for i, v in enumerate(pams)}}
    assert report.pcie == {"host": I440FX, "pciexbar": "none", "ecam": "off"}


def test_mtrr_msrs_reported_by_index(run: Run) -> None:
    """Each MSR's value lands on its own index (distinct values, as pvhcheck prints them)."""
    msrs = {0x2FF: 0xC06, 0x250: 0x0606060606060606, 0x259: 0x1, 0x26F: 0x0505050505050505}
    msrs |= {0x200 + i: 0x1000 * (i + 1) | (0x800 if i % 2 else 6) for i in range(16)}
    report = run(Guest(fwcfg=fwcfg(run), msrs=msrs))
    assert table_failures(report) == {}
    assert report.mtrr[0xFE] == 0x508  # unicorn's (TCG's) MTRRcap: 8 ranges, fixed, WC
    assert {msr: report.mtrr[msr] for msr in msrs} == msrs
    assert set(report.mtrr) == {0xFE, 0x2FF, 0x250, 0x258, 0x259, *range(0x268, 0x270)} | {
        *range(0x200, 0x210)
    }
    assert report.cpuid["mtrr"] == 1 and isinstance(report.cpuid["phys_bits"], int)
