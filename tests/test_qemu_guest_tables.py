"""pvhcheck's BIOS-table checks proven against the firmware QEMU ships, before pvhfw relies on
them: SeaBIOS (+ pvh.bin) on pc and q35, which sets up SMBIOS, an MP table, Q35 MMCONFIG, PAM
and MTRRs, and qboot on microvm, which has an MP table and nothing else.

Every expected value comes from tests/guest_expect.py (SeaBIOS's and qboot's rules, written
from their sources) or from QEMU's own fw_cfg as pvhcheck read it; the recorded fw_cfg files
(tests/data) add SMBIOS byte for byte when the installed QEMU is the one they came from.

The topology: SeaBIOS's MP table lists only the first logical CPU of each package, so with
`-smp 2` (QEMU 7.2: two cores in one socket) it has one processor entry where fw_cfg says 2,
and pvhcheck's mptable_cpus fails (test_seabios_mptable_lists_packages); with one CPU per
socket (`-smp 2,sockets=2`) every check passes.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from tests import guest_expect as ge
from tests.acpi_loader import recording_of
from tests.kernels.build import EXIT_FAILURE, EXIT_SUCCESS, Report, parse_report
from tests.kernels.qemu import QemuRun, run_kernel
from tests.support import KernelGetter, need, need_kvm
from tools.qemu import SEABIOS_128K, data_file, qemu_version

pytestmark = pytest.mark.qemu

LOAD_ADDR = 0x1000000
MEMORY = "512"
SMP_SOCKETS = "2,sockets=2"  # one CPU per package: SeaBIOS lists both
TIMEOUT = 60.0
KVM_TIMEOUT = 90.0  # PVM: SeaBIOS runs in KVM's instruction emulator, seconds a boot
F_SEGMENT = (0xF0000, 0x100000)
SEABIOS_BANNER = re.compile(r"SeaBIOS \(version ([^)\s]+)\)")
TYPE1_PRODUCT = {
    "pc": b"Standard PC (i440FX + PIIX, 1996)",
    "q35": b"Standard PC (Q35 + ICH9, 2009)",
}
TABLE_CHECKS = ("smbios_", "mptable_", "pcie_", "mtrr_")
TABLE_CHECK_NAMES = {
    "smbios_entry_point",
    "smbios_structures",
    "smbios_is_fwcfg",
    "smbios_none_without_fwcfg",
    "smbios_not_in_ram",
    "mptable_floating",
    "mptable_config",
    "mptable_cpus",
    "mptable_ioapic",
    "mptable_isa_irqs",
    "mptable_lint",
    "pcie_ecam_config",
    "pcie_ecam_reserved",
    "mtrr_msrs_readable",
}
# qboot's known failures (tests/kernels/README.md): its memmap and where it puts start_info.
QBOOT_FAILURES = {"memmap", "start_info_placed", "memmap_placed", "cmdline_placed"}


def boot(
    kernel: KernelGetter,
    machine: str,
    *,
    smp: str = SMP_SOCKETS,
    memory: str = MEMORY,
    bios: Path | None = None,
    extra: tuple[str, ...] = (),
    accel: str = "tcg",
) -> tuple[QemuRun, Report]:
    """pvhcheck with QEMU's default firmware for `machine` (or `bios`); under KVM built with
    lar=False and run with tools.qemu's KVM CPU model (machines.md: PVM)."""
    if accel == "kvm":
        need_kvm()
    elf = kernel("pvhcheck", LOAD_ADDR, **({"lar": False} if accel == "kvm" else {}))
    run = run_kernel(
        elf, machine=machine, accel=accel, memory=memory, bios=bios,
        extra=("-smp", smp, *extra), timeout=KVM_TIMEOUT if accel == "kvm" else TIMEOUT,
    )  # fmt: skip
    report = parse_report(run.stdout)
    assert report.complete, run.describe()
    return run, report


def all_passed(run: QemuRun, report: Report) -> None:
    assert report.failed_checks == {}, run.describe()
    assert run.returncode == EXIT_SUCCESS, run.describe()
    assert {name for name in report.checks if name.startswith(TABLE_CHECKS)} == TABLE_CHECK_NAMES


def seabios_version(run: QemuRun) -> str:
    m = SEABIOS_BANNER.search(run.stdout)
    assert m, f"no SeaBIOS banner\n{run.describe()}"
    return m.group(1)


def e820(report: Report) -> list[tuple[int, int, int]]:
    value = report.fwcfg["e820"]
    assert isinstance(value, list)
    return value


def int_field(d: dict[str, int | str], key: str) -> int:
    value = d[key]
    assert isinstance(value, int), f"{key}={value!r}"
    return value


def in_f_segment(addr: int, size: int) -> bool:
    return F_SEGMENT[0] <= addr and addr + size <= F_SEGMENT[1]


def assert_seabios_mtrrs(report: Report, machine: str) -> None:
    """Every MTRR as SeaBIOS's mtrr_setup leaves it for this CPU and fw_cfg's e820."""
    assert report.cpuid["mtrr"] == 1 and report.cpuid["msr"] == 1
    cap = report.mtrr[ge.MSR_MTRRCAP]
    assert cap is not None and cap & ge.MTRRCAP_FIX
    phys_bits = report.cpuid["phys_bits"]
    expected = ge.seabios_mtrrs(
        e820(report), machine, phys_bits if isinstance(phys_bits, int) else None,
        cap & ge.MTRRCAP_VCNT,
    )  # fmt: skip
    assert {msr: v for msr, v in report.mtrr.items() if msr != ge.MSR_MTRRCAP} == expected
    assert report.mtrr[ge.MSR_MTRR_DEF_TYPE] == 0xC06


# ---- SeaBIOS: every check passes, every value is SeaBIOS's ----------------------------------


ACCELS = [
    pytest.param("tcg", id="tcg"),
    pytest.param("kvm", id="kvm", marks=[pytest.mark.kvm, pytest.mark.slow]),
]


@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_pvhcheck_reads_seabios_tables(
    qemu: str, kernel: KernelGetter, machine: str, accel: str
) -> None:
    run, report = boot(kernel, machine, accel=accel)
    all_passed(run, report)
    version = seabios_version(run)

    # SMBIOS 2.8 (QEMU 7.2's default 2.1 entry point), all of it in the F segment (SeaBIOS
    # puts tables of up to 600 bytes there): SeaBIOS's type 0, then QEMU's blob.
    sm = report.smbios
    assert (sm["anchor"], sm["version"], sm["layout"]) == ("_SM_", "2.8", "added")
    ep, table, length = int_field(sm, "ep"), int_field(sm, "table"), int_field(sm, "length")
    assert ep % 16 == 0 and in_f_segment(ep, 0x1F)
    assert in_f_segment(table, length)
    t0 = ge.seabios_type0(version)
    first = report.smbios_structures[0]
    assert first.data + b"".join(s + b"\0" for s in first.strings) + b"\0" == t0
    assert length == int_field(sm, "tables_size") + len(t0)
    assert sum(s.size for s in report.smbios_structures) == length
    types = report.smbios_types
    assert sm["count"] == len(types) == len(report.smbios_structures)
    assert types[0] == 0 and types[-1] == 127 and types.count(0) == 1
    assert types.count(4) == 2  # a processor structure per socket
    assert 2 not in types  # QEMU makes no baseboard structure unless asked
    assert report.smbios_bios == {
        "vendor": b"SeaBIOS",
        "version": version.encode(),
        "date": ge.SEABIOS_SMBIOS_DATE.encode(),
    }
    (system,) = [s for s in report.smbios_structures if s.type == 1]
    assert system.string(4) == b"QEMU"  # sys_vendor
    assert system.string(5) == TYPE1_PRODUCT[machine]  # product_name
    machine_version = system.string(6)
    assert machine_version and machine_version.startswith(
        b"pc-i440fx-" if machine == "pc" else b"pc-q35-"
    )
    (chassis,) = [s for s in report.smbios_structures if s.type == 3]
    assert chassis.string(4) == b"QEMU" and chassis.string(6) == machine_version

    # The MP table, in the F segment: both CPUs (one per socket), SeaBIOS's IOAPIC 0, its ISA
    # IRQs (not the PCI ones), a PCI bus then the ISA bus.
    mp = report.mptable
    fp = int_field(mp, "fp")
    assert fp % 16 == 0 and in_f_segment(fp, 16)
    assert in_f_segment(int_field(mp, "table"), int_field(mp, "length"))
    assert (mp["spec"], mp["feature1"], mp["lapic"]) == (4, 0, ge.LAPIC_ADDR)
    assert (mp["oem"], mp["product"]) == (ge.SEABIOS_MP_OEM, ge.SEABIOS_MP_PRODUCT)
    assert mp["entries"] == mp["walked"]
    assert mp["cpus"] == report.fwcfg["nb_cpus"] == 2
    assert mp["ioapic"] == f"0@{ge.IOAPIC_ADDR:#x}"
    assert report.fwcfg["irq0_override"] == 1
    assert report.mptable_isa_irqs == ge.seabios_isa_irqs(True)
    cpus = [(e["apic"], e["flags"]) for e in report.mptable_entries if e["kind"] == "cpu"]
    assert cpus == [(0, 3), (1, 1)]  # APIC IDs 0 and 1, both enabled, 0 the bootstrap one
    buses = [(e["id"], e["type"]) for e in report.mptable_entries if e["kind"] == "bus"]
    assert buses == [(0, "PCI   "), (1, "ISA   ")]

    # Q35's MMCONFIG at 0xb0000000 (256 MiB), reserved in the map pvh.bin got from SeaBIOS.
    pcie = report.pcie
    if machine == "q35":
        assert pcie["host"] == 0x29C08086
        assert pcie["pciexbar"] == ge.Q35_MMCONFIG_BASE | ge.PCIEXBAR_EN
        assert (pcie["base"], pcie["size"]) == (ge.Q35_MMCONFIG_BASE, ge.Q35_MMCONFIG_SIZE)
        assert pcie["ecam"] == "ok" and int_field(pcie, "devices") >= 1
        assert (ge.Q35_MMCONFIG_BASE, ge.Q35_MMCONFIG_SIZE, 2) in report.memmap
    else:
        assert (pcie["host"], pcie["pciexbar"], pcie["ecam"]) == (0x12378086, "none", "off")

    # PAM: the F segment read-only RAM (make_bios_readonly), each region RAM of some kind.
    pam = report.pam
    assert pam["reg"] == (0x59 if machine == "pc" else 0x90)
    assert pam["pam0"] == ge.SEABIOS_PAM0
    for i in range(1, 7):
        assert int_field(pam, f"pam{i}") & 0x11 == 0x11, pam  # both nibbles readable RAM

    assert_seabios_mtrrs(report, machine)


@pytest.mark.parametrize(
    ("machine", "memory"),
    [("pc", "2560"), ("pc", "3328"), ("q35", "2560")],
    ids=["pc-2560M", "pc-3328M", "q35-2560M"],
)
def test_seabios_mtrrs_by_ram_size(
    qemu: str, kernel: KernelGetter, machine: str, memory: str
) -> None:
    """pc's UC range starts at 3 GiB above 2 GiB of RAM, right after RAM above 3 GiB (3.25 GiB:
    a 768 MiB range, not a power of two, which SeaBIOS writes regardless); q35's stays at
    3 GiB."""
    run, report = boot(kernel, machine, memory=memory)
    all_passed(run, report)
    assert_seabios_mtrrs(report, machine)
    base = report.mtrr[ge.MSR_MTRR_PHYSBASE0]
    assert base == (0xD000_0000 if memory == "3328" else 0xC000_0000)


def test_seabios_smbios_30_entry_point(qemu: str, kernel: KernelGetter) -> None:
    """`smbios-entry-point-type=64`: QEMU's 24-byte _SM3_ anchor, SeaBIOS's type 0 added."""
    run, report = boot(kernel, "pc,smbios-entry-point-type=64")
    all_passed(run, report)
    sm = report.smbios
    assert (sm["anchor"], sm["version"], sm["count"], sm["max_size"]) == ("_SM3_", "3.0", "-", "-")
    assert (sm["anchor_size"], sm["layout"]) == (24, "added")
    assert report.smbios_types[0] == 0 and report.smbios_types[-1] == 127
    assert report.smbios_bios["vendor"] == b"SeaBIOS"


def test_qemu_type0_kept_whole(qemu: str, kernel: KernelGetter) -> None:
    """With `-smbios type=0,...` QEMU's blob has its own type 0 and SeaBIOS adds none."""
    run, report = boot(kernel, "pc", extra=("-smbios", "type=0,vendor=pvhcheck,version=7.7"))
    all_passed(run, report)
    assert report.smbios["layout"] == "whole"
    assert report.smbios["length"] == report.smbios["tables_size"]
    assert report.smbios_types.count(0) == 1
    assert report.smbios_bios["vendor"] == b"pvhcheck"
    assert report.smbios_bios["version"] == b"7.7"


# ---- the checks failing where the firmware deviates --------------------------------------


@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_seabios_mptable_lists_packages(qemu: str, kernel: KernelGetter, machine: str) -> None:
    """The configuration fw_cfg was recorded in (tests/data: `-m 512 -smp 2`, two cores in
    one socket): SeaBIOS's MP table has one processor entry, and only mptable_cpus fails.
    SMBIOS is SeaBIOS's type 0 followed by the recorded smbios-tables, byte for byte."""
    run, report = boot(kernel, machine, smp="2")
    assert report.failed_checks == {"mptable_cpus": "enabled processors 1, fw_cfg NB_CPUS 2"}
    assert run.returncode == EXIT_FAILURE, run.describe()
    assert report.mptable["cpus"] == 1 and report.fwcfg["nb_cpus"] == 2

    rec = recording_of(machine, qemu_version())
    need(
        rec is not None,
        f"tests/data has no recording by {qemu_version()}: record its fw_cfg files "
        "(PVHFW_QEMU=... python3 -m tools.record_fwcfg)",
    )
    assert rec is not None
    tables = rec.files["etc/smbios/smbios-tables"]
    assert report.smbios["tables_size"] == len(tables)
    assert report.smbios["tables_crc32"] == zlib.crc32(tables)
    t0 = ge.seabios_type0(seabios_version(run))
    assert report.smbios["table_crc32"] == zlib.crc32(t0 + tables)


def test_seabios_on_microvm_makes_smbios_without_fwcfg(qemu: str, kernel: KernelGetter) -> None:
    """microvm's fw_cfg has no SMBIOS files; SeaBIOS (its 128 KiB build) then builds tables
    of its own ("Bochs"), which smbios_none_without_fwcfg reports."""
    bios = Path(data_file(SEABIOS_128K))
    need(bios.is_file(), f"{bios} (SeaBIOS's 128 KiB build, package seabios)")
    run, report = boot(kernel, "microvm", smp="1", bios=bios)
    assert run.returncode == EXIT_FAILURE, run.describe()
    (detail,) = [d for name, d in report.failed_checks.items() if name.startswith(TABLE_CHECKS)]
    assert report.failed_checks["smbios_none_without_fwcfg"] == detail
    assert detail == (
        f"entry point at {report.smbios['ep']:#x} although fw_cfg has no etc/smbios/smbios-anchor"
    )
    assert report.smbios_bios["vendor"] == b"Bochs"
    assert report.smbios["anchor_size"] == "none" and report.smbios["layout"] == "none"


# ---- qboot (microvm's default firmware) -----------------------------------------------------


def test_pvhcheck_tables_under_qboot_microvm(qemu: str, kernel: KernelGetter) -> None:
    """qboot: no SMBIOS (microvm has no SMBIOS files), no PCI host bridge, MTRRs as the CPU
    came out of reset; its MP table at 639 KiB with IOAPIC ID N + 1 and every ISA IRQ."""
    run, report = boot(kernel, "microvm", smp="1")
    failed = set(report.failed_checks)
    assert failed <= QBOOT_FAILURES, run.describe()
    assert not {name for name in failed if name.startswith(TABLE_CHECKS)}
    assert report.smbios["ep"] == "none" and report.smbios["anchor_size"] == "none"
    assert report.pcie["pciexbar"] == "none" and report.pam["reg"] == "none"
    assert report.mtrr[ge.MSR_MTRR_DEF_TYPE] == 0
    mp = report.mptable
    assert (mp["fp"], mp["table"]) == (ge.QBOOT_MP_TABLE, ge.QBOOT_MP_TABLE + 16)
    assert mp["oem"] == ge.QBOOT_MP_OEM
    assert mp["entries"] == 0 and int_field(mp, "walked") > 0  # qboot leaves the count 0
    assert mp["cpus"] == report.fwcfg["nb_cpus"] == 1
    assert mp["ioapic"] == f"2@{ge.IOAPIC_ADDR:#x}"
    assert report.mptable_isa_irqs == ge.qboot_isa_irqs(report.fwcfg["irq0_override"] == 1)
