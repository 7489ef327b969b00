"""tests/guest_expect.py against values worked out by hand from SeaBIOS's and qboot's
sources, and against what SeaBIOS 1.16.2 was seen to write."""

from __future__ import annotations

import pytest

from tests import guest_expect as ge

MiB = 1 << 20
GiB = 1 << 30
AMD_HT_HOLE = (0xFD_0000_0000, 0x3_0000_0000, 2)  # in QEMU's e820 for an AMD CPU model


def e820_low(ram_below_4g: int, *, high: int = 0) -> list[tuple[int, int, int]]:
    """fw_cfg's etc/e820 as QEMU writes it: the HT hole, low RAM, RAM above 4 GiB."""
    out = [AMD_HT_HOLE, (0, ram_below_4g, 1)]
    if high:
        out.append((4 * GiB, high, 1))
    return out


def test_host_bridge() -> None:
    assert ge.host_bridge("pc") == ge.host_bridge("pc-i440fx-7.2,acpi=off") == "i440fx"
    assert ge.host_bridge("q35") == ge.host_bridge("pc-q35-10.0") == "q35"
    with pytest.raises(ValueError, match="microvm"):
        ge.host_bridge("microvm")


def test_ram_size_is_the_highest_ram_end_below_4g() -> None:
    assert ge.seabios_ram_size(e820_low(128 * MiB)) == 128 * MiB
    assert ge.seabios_ram_size(e820_low(3 * GiB, high=5 * GiB)) == 3 * GiB
    split = [
        (0, 0x9FC00, 1),
        (0xF0000, 0x10000, 2),
        (1 * MiB, 255 * MiB, 1),
        (0xFFFC0000, 0x40000, 2),
    ]
    assert ge.seabios_ram_size(split) == 256 * MiB  # reserved entries do not count
    assert ge.seabios_ram_size([AMD_HT_HOLE]) == 0


@pytest.mark.parametrize(
    ("machine", "ram", "start"),
    [
        ("pc", 128 * MiB, 0x8000_0000),
        ("pc", 2 * GiB, 0x8000_0000),  # <= 2 GiB: the window starts at 2 GiB
        ("pc", 2 * GiB + 4096, 0xC000_0000),
        ("pc", 3 * GiB, 0xC000_0000),
        ("pc", 0xD000_0000, 0xD000_0000),  # above 3 GiB: right after RAM
        ("q35", 128 * MiB, 0xC000_0000),  # always after the MMCONFIG window
        ("q35", 0xB000_0000, 0xC000_0000),
    ],
)
def test_pcimem_start(machine: str, ram: int, start: int) -> None:
    assert ge.seabios_pcimem_start(e820_low(ram), machine) == start


def test_mtrrs_q35_worked_example() -> None:
    """The research notes' table: q35, 40 physical address bits, 8 variable ranges."""
    m = ge.seabios_mtrrs(e820_low(512 * MiB), "q35", 40, 8)
    assert m[0x2FF] == 0xC06
    assert m[0x250] == m[0x258] == 0x0606_0606_0606_0606
    assert m[0x259] == 0
    assert [m[msr] for msr in range(0x268, 0x270)] == [0x0505_0505_0505_0505] * 8
    assert m[0x200] == 0xC000_0000
    assert m[0x201] == 0xFF_C000_0800
    assert all(m[msr] == 0 for msr in range(0x202, 0x210))
    assert set(m) == {0x2FF, *ge.FIXED_MTRR_MSRS, *range(0x200, 0x210)}


def test_mtrrs_pc_below_2g_and_phys_bits() -> None:
    m = ge.seabios_mtrrs(e820_low(128 * MiB), "pc", 40, 8)
    assert (m[0x200], m[0x201]) == (0x8000_0000, 0xFF_8000_0800)
    # No CPUID leaf 0x80000008: SeaBIOS assumes 36 bits.
    m = ge.seabios_mtrrs(e820_low(128 * MiB), "pc", None, 8)
    assert (m[0x200], m[0x201]) == (0x8000_0000, 0xF_8000_0800)
    m = ge.seabios_mtrrs(e820_low(128 * MiB), "pc", 46, 10)
    assert m[0x201] == 0x3FFF_8000_0800
    assert set(m) == {0x2FF, *ge.FIXED_MTRR_MSRS, *range(0x200, 0x214)}


def test_mtrrs_pc_mask_not_a_power_of_two() -> None:
    """3.25 GiB on pc: the UC range [0xD0000000, 4 GiB) is 768 MiB, not a power of two;
    SeaBIOS writes -(768 MiB) masked to the address width all the same."""
    m = ge.seabios_mtrrs(e820_low(0xD000_0000), "pc", 40, 8)
    assert m[0x200] == 0xD000_0000
    assert m[0x201] == 0xFF_D000_0800


def test_mtrrs_fixed_ranges_follow_ram_size() -> None:
    """With RAM ending at 0x90000 (RamSize as SeaBIOS computes it): WB for the 64 KiB ranges
    up to 0x80000, for the first four 16 KiB ranges (0x80000-0x8FFFF), no WB beyond, and
    no WP in the 4 KiB ranges above 0xC0000 (not covered)."""
    m = ge.seabios_mtrrs([(0, 0x90000, 1)], "pc", 40, 8)
    assert m[0x250] == 0x0606_0606_0606_0606
    assert m[0x258] == 0x0000_0000_0606_0606
    assert all(m[msr] == 0 for msr in range(0x268, 0x270))
    # RAM up to 0xC3000: the first three 4 KiB ranges of fix4K_C0000.
    m = ge.seabios_mtrrs([(0, 0xC3000, 1)], "pc", 40, 8)
    assert m[0x268] == 0x05_0505
    assert m[0x269] == 0


def test_mtrrs_need_variable_ranges() -> None:
    with pytest.raises(ValueError, match="vcnt 0"):
        ge.seabios_mtrrs(e820_low(128 * MiB), "pc", 40, 0)
    with pytest.raises(ValueError, match="microvm"):
        ge.seabios_mtrrs(e820_low(128 * MiB), "microvm", 40, 8)


def test_seabios_type0_is_what_seabios_1_16_2_wrote() -> None:
    """The bytes read back from a SeaBIOS 1.16.2 (Debian) boot: 67 bytes."""
    t0 = ge.seabios_type0("1.16.2-debian-1.16.2-1")
    assert t0[:24] == bytes.fromhex("00180000010200e80300080000000000000000040000ffff")
    assert t0[24:].split(b"\x00") == [
        b"SeaBIOS",
        b"1.16.2-debian-1.16.2-1",
        b"04/01/2014",
        b"",
        b"",
    ]
    assert len(t0) == 67


def test_isa_irqs() -> None:
    assert ge.seabios_isa_irqs(True) == [0, 1, 3, 4, 6, 7, 8, 12, 13, 14, 15]
    assert ge.seabios_isa_irqs(False) == [0, 1, 2, 3, 4, 6, 7, 8, 12, 13, 14, 15]
    assert ge.qboot_isa_irqs(True) == [0, 1, *range(3, 16)]
    assert ge.qboot_isa_irqs(False) == list(range(16))
