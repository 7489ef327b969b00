"""What pvhfw leaves for the guest besides the PVH hand-off, under stock QEMU, read back by
pvhcheck (tests/kernels) and held against the same expectations the SeaBIOS and qboot runs
are held against (tests/test_qemu_guest_tables.py, tests/guest_expect.py): QEMU's SMBIOS
tables with this firmware's type 0 in front, q35's MMCONFIG, the MTRRs as SeaBIOS sets them,
the F segment made RAM, and an MP table only when QEMU offers no ACPI.

Where pvhfw chooses otherwise than SeaBIOS (docs/design.md says why) the test says so: the
F segment stays read/write RAM (SeaBIOS makes it read-only again), the MP table lists every
CPU fw_cfg counts (SeaBIOS one per package) on an ISA bus alone, qboot's way."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pvhfw import __version__
from pvhfw.firmware import layout
from tests import guest_expect as ge
from tests import model
from tests.acpi_loader import recording_of
from tests.kernels.build import Report
from tests.kernels.qemu import QemuRun
from tests.support import KernelGetter, need_kvm
from tests.test_qemu_guest_tables import (
    LOAD_ADDR,
    TABLE_CHECK_NAMES,
    TABLE_CHECKS,
    all_passed,
    assert_seabios_mtrrs,
    boot,
    in_f_segment,
    int_field,
)
from tools.qemu import qemu_version

pytestmark = pytest.mark.qemu

PAM0_RAM = 0x30  # PAM0's F-segment nibble read/write RAM (the low nibble is reserved)
PVHFW_MP_OEM = layout.MP_OEM.decode()
PVHFW_MP_PRODUCT = layout.MP_PRODUCT.decode()

ACCELS = [
    pytest.param("tcg", id="tcg"),
    pytest.param("kvm", id="kvm", marks=[pytest.mark.kvm, pytest.mark.slow]),
]


def boot_pvhfw(
    kernel: KernelGetter,
    image: Callable[[Path], Path],
    machine: str,
    *,
    accel: str = "tcg",
    smp: str = "2",
    extra: tuple[str, ...] = (),
) -> tuple[QemuRun, Report]:
    """pvhcheck through pvhfw, `-m 512 -smp <smp>`: the configuration of the recordings."""
    if accel == "kvm":
        need_kvm()
    elf = kernel("pvhcheck", LOAD_ADDR, **({"lar": False} if accel == "kvm" else {}))
    return boot(kernel, machine, smp=smp, bios=image(elf), extra=extra, accel=accel)


def assert_pvhfw_smbios(report: Report, machine: str, qemu: str) -> None:
    """QEMU's blob after pvhfw's type 0, all in the F segment, the entry point first in it."""
    sm = report.smbios
    assert (sm["anchor"], sm["version"], sm["layout"]) == ("_SM_", "2.8", "added")
    ep, table, length = int_field(sm, "ep"), int_field(sm, "table"), int_field(sm, "length")
    assert ep == layout.ROM_SHADOW_BASE  # the fseg zone's first allocation
    assert in_f_segment(table, length) and table % 16 == 0
    t0 = model.smbios_type0()
    first = report.smbios_structures[0]
    assert first.data + b"".join(s + b"\0" for s in first.strings) + b"\0" == t0
    assert length == int_field(sm, "tables_size") + len(t0)
    types = report.smbios_types
    assert sm["count"] == len(types) and types[0] == 0 and types.count(0) == 1
    assert report.smbios_bios == {
        "vendor": layout.SMBIOS_BIOS_VENDOR.encode(),
        "version": __version__.encode(),
        "date": layout.SMBIOS_BIOS_DATE.encode(),
    }
    rec = recording_of(machine, qemu_version(qemu))
    if rec is not None:  # byte for byte: the type 0, then QEMU's own blob (7.2, 10.0)
        tables = rec.files["etc/smbios/smbios-tables"]
        assert report.smbios["table_crc32"] == zlib.crc32(t0 + tables)


@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_pvhfw_tables_with_acpi(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], machine: str, accel: str
) -> None:
    """QEMU's default configuration (ACPI on): every table check passes; SMBIOS, MMCONFIG,
    PAM and the MTRRs as pvhfw sets them; no MP table, as the MADT has the CPUs."""
    run, report = boot_pvhfw(kernel, image, machine, accel=accel)
    all_passed(run, report)
    assert_pvhfw_smbios(report, machine, qemu)
    assert report.mptable["fp"] == "none"

    pcie = report.pcie
    if machine == "q35":
        assert pcie["pciexbar"] == ge.Q35_MMCONFIG_BASE | ge.PCIEXBAR_EN
        assert (pcie["base"], pcie["size"]) == (ge.Q35_MMCONFIG_BASE, ge.Q35_MMCONFIG_SIZE)
        assert pcie["ecam"] == "ok" and int_field(pcie, "devices") >= 1
        assert (ge.Q35_MMCONFIG_BASE, ge.Q35_MMCONFIG_SIZE, 2) in report.memmap
    else:
        assert (pcie["pciexbar"], pcie["ecam"]) == ("none", "off")

    pam = report.pam
    assert pam["reg"] == (0x59 if machine == "pc" else 0x90)
    assert pam["pam0"] == PAM0_RAM  # SeaBIOS: ge.SEABIOS_PAM0, read-only
    assert_seabios_mtrrs(report, machine)


@pytest.mark.parametrize(
    ("machine", "where"),
    [("pc", "fseg"), ("q35", "fseg"), ("microvm", "ebda")],
)
def test_pvhfw_mp_table_without_acpi(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], machine: str, where: str
) -> None:
    """`-machine acpi=off -smp 2` (two cores, one socket): both CPUs, APIC IDs 0 and 1, the
    IOAPIC at 0xfec00000, every ISA IRQ (IRQ 0 on pin 2), ExtINT and NMI on LINT0/1; the
    floating pointer in the F segment where it is RAM, else in the EBDA."""
    run, report = boot_pvhfw(kernel, image, f"{machine},acpi=off")
    all_passed(run, report)
    mp = report.mptable
    fp, table = int_field(mp, "fp"), int_field(mp, "table")
    assert table == fp + 16
    if where == "fseg":
        assert in_f_segment(fp, 16) and in_f_segment(table, int_field(mp, "length"))
        assert int_field(report.smbios, "ep") < fp  # after the SMBIOS tables
    else:
        assert fp == layout.EBDA_BASE
        assert (layout.EBDA_BASE, layout.LOWMEM_END - layout.EBDA_BASE, 2) in report.memmap
    assert (mp["spec"], mp["feature1"], mp["lapic"]) == (4, 0, ge.LAPIC_ADDR)
    assert (mp["oem"], mp["product"]) == (PVHFW_MP_OEM, PVHFW_MP_PRODUCT)
    assert mp["entries"] == mp["walked"]
    assert mp["cpus"] == report.fwcfg["nb_cpus"] == 2
    cpus = [(e["apic"], e["flags"]) for e in report.mptable_entries if e["kind"] == "cpu"]
    assert cpus == [(0, 3), (1, 1)]
    assert mp["ioapic"] == f"{layout.MP_IOAPIC_ID}@{ge.IOAPIC_ADDR:#x}"
    assert report.fwcfg["irq0_override"] == 1
    assert report.mptable_isa_irqs == ge.qboot_isa_irqs(True)
    buses = [(e["id"], e["type"]) for e in report.mptable_entries if e["kind"] == "bus"]
    assert buses == [(layout.MP_ISA_BUS, "ISA   ")]
    if machine == "microvm":
        assert report.smbios["ep"] == "none" and report.pam["reg"] == "none"


def test_pvhfw_smbios_30_entry_point(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]
) -> None:
    """`smbios-entry-point-type=64`: QEMU's 24-byte _SM3_ anchor, pvhfw's type 0 added."""
    run, report = boot_pvhfw(kernel, image, "pc,smbios-entry-point-type=64")
    all_passed(run, report)
    sm = report.smbios
    assert (sm["anchor"], sm["version"], sm["anchor_size"], sm["layout"]) == (
        "_SM3_",
        "3.0",
        24,
        "added",
    )
    assert report.smbios_bios["vendor"] == layout.SMBIOS_BIOS_VENDOR.encode()


def test_pvhfw_keeps_qemus_type0_and_oem_strings(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]
) -> None:
    """`-smbios type=0,...` (QEMU's own type 0: none added) and a type 11 OEM string, the
    place systemd takes credentials from: both reach the guest as QEMU made them."""
    credential = b"io.systemd.credential:pvhfw=yes"
    run, report = boot_pvhfw(
        kernel,
        image,
        "pc",
        extra=(
            "-smbios",
            "type=0,vendor=pvhcheck,version=7.7",
            "-smbios",
            f"type=11,value={credential.decode()}",
        ),
    )
    all_passed(run, report)
    assert report.smbios["layout"] == "whole"
    assert report.smbios_bios["vendor"] == b"pvhcheck"
    (oem,) = [s for s in report.smbios_structures if s.type == 11]
    assert oem.strings == (credential,)
    assert {name for name in report.checks if name.startswith(TABLE_CHECKS)} == TABLE_CHECK_NAMES
