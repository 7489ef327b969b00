"""What a BIOS leaves for the guest beyond the boot protocol, as SeaBIOS and qboot do it:
the values the QEMU tests hold pvhcheck's reports (cpuid/mtrr/smbios/mptable lines,
tests/kernels/README.md) to.

Written from the firmware sources as docs describe them, never from pvhfw's code:

* MTRRs: SeaBIOS src/fw/mtrr.c ``mtrr_setup`` with ``RamSize`` (src/fw/paravirt.c
  ``qemu_early_e820``: the end of the highest fw_cfg ``etc/e820`` RAM entry starting below
  4 GiB) and ``pcimem_start`` (src/fw/pciinit.c ``pci_setup``, ``i440fx_mem_addr_setup``,
  ``mch_mem_addr_setup``).  qboot writes none.
* SMBIOS: SeaBIOS src/fw/biostables.c ``smbios_new_type_0`` (the type 0 it puts in front of
  QEMU's tables when they have none).
* MP table: SeaBIOS src/fw/mptable.c ``mptable_setup`` (ISA IRQs but the PCI ones) and qboot
  mptable.c ``setup_mptable``.
* Q35 MMCONFIG: SeaBIOS and qboot both enable PCIEXBAR at 0xb0000000, 256 MiB.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

Range = tuple[int, int, int]  # addr, size, type (fw_cfg etc/e820)

E820_RAM = 1
FOUR_GIB = 1 << 32

# ---- MTRRs (Intel SDM vol. 3 ch. 12.11) ------------------------------------------------------

MSR_MTRRCAP = 0xFE
MSR_MTRR_DEF_TYPE = 0x2FF
MSR_MTRR_FIX64K_00000 = 0x250
MSR_MTRR_FIX16K_80000 = 0x258
MSR_MTRR_FIX16K_A0000 = 0x259
MSR_MTRR_FIX4K_C0000 = 0x268  # ... 0x26F: 4 KiB ranges from 0xC0000 to 0xFFFFF, 8 a register
MSR_MTRR_PHYSBASE0 = 0x200  # PhysBase n = 0x200 + 2n, PhysMask n = 0x201 + 2n
FIXED_MTRR_MSRS = (
    MSR_MTRR_FIX64K_00000,
    MSR_MTRR_FIX16K_80000,
    MSR_MTRR_FIX16K_A0000,
    *range(MSR_MTRR_FIX4K_C0000, MSR_MTRR_FIX4K_C0000 + 8),
)
MTRR_UC, MTRR_WP, MTRR_WB = 0, 5, 6
MTRR_DEF_TYPE_E, MTRR_DEF_TYPE_FE = 1 << 11, 1 << 10
MTRR_PHYSMASK_VALID = 1 << 11
MTRRCAP_VCNT, MTRRCAP_FIX = 0xFF, 1 << 8
SEABIOS_DEFAULT_PHYS_BITS = 36  # without CPUID leaf 0x80000008

# ---- Q35 MMCONFIG, PAM -----------------------------------------------------------------------

Q35_MMCONFIG_BASE = 0xB000_0000
Q35_MMCONFIG_SIZE = 0x1000_0000
PCIEXBAR_EN = 1
# SeaBIOS's make_bios_readonly: the F segment (PAM0's high nibble) becomes read-only RAM.
SEABIOS_PAM0 = 0x10

# ---- SMBIOS and the MP table -----------------------------------------------------------------

SEABIOS_SMBIOS_DATE = "04/01/2014"  # src/fw/biostables.c, smbios_new_type_0
SEABIOS_MP_OEM = "BOCHSCPU"  # BUILD_CPUNAME8
SEABIOS_MP_PRODUCT = "0.1         "
SEABIOS_PCI_IRQS = (5, 9, 10, 11)  # BUILD_PCI_IRQS: no ISA entry in its MP table
QBOOT_MP_OEM = "QBOOT   "
QBOOT_MP_TABLE = 0x9FC00  # MPTABLE_START: the floating pointer; the table 16 bytes on
IOAPIC_ADDR = 0xFEC0_0000
LAPIC_ADDR = 0xFEE0_0000


def host_bridge(machine: str) -> str:
    """``"i440fx"`` or ``"q35"`` for a QEMU machine (``pc``, ``q35``, ``pc-i440fx-7.2``,
    ``pc-q35-7.2``, with or without ``,options``); ValueError for any other (microvm has no
    host bridge: SeaBIOS's PCI, MTRR and PAM code does nothing there)."""
    name = machine.split(",")[0]
    if name == "pc" or name.startswith("pc-i440fx"):
        return "i440fx"
    if name == "q35" or name.startswith("pc-q35"):
        return "q35"
    raise ValueError(f"machine {machine!r}: neither an i440FX (pc) nor a Q35 machine")


def seabios_ram_size(e820: Sequence[Range]) -> int:
    """SeaBIOS's ``RamSize``: the highest end of an ``etc/e820`` RAM entry that starts below
    4 GiB (0 without one)."""
    return max((a + s for a, s, t in e820 if t == E820_RAM and a < FOUR_GIB), default=0)


def seabios_pcimem_start(e820: Sequence[Range], machine: str) -> int:
    """The start of SeaBIOS's 32-bit PCI window: the Q35 MMCONFIG window's end; on i440FX
    ``RamSize`` rounded up to 2 GiB or 3 GiB, or ``RamSize`` itself above 3 GiB."""
    if host_bridge(machine) == "q35":
        return Q35_MMCONFIG_BASE + Q35_MMCONFIG_SIZE
    ram = seabios_ram_size(e820)
    if ram <= 0x8000_0000:
        return 0x8000_0000
    if ram <= 0xC000_0000:
        return 0xC000_0000
    return ram


def _bytes_mtrr(types: Sequence[int]) -> int:
    return int.from_bytes(bytes(types), "little")


def seabios_mtrrs(
    e820: Sequence[Range], machine: str, phys_bits: int | None, vcnt: int
) -> dict[int, int]:
    """Every MTRR MSR SeaBIOS's ``mtrr_setup`` leaves on the CPU (MSR index -> value), for a
    CPU whose MTRRcap has ``vcnt`` variable ranges and the fixed ones, whose CPUID leaf
    0x80000008 gives ``phys_bits`` (None: no such leaf, SeaBIOS takes 36).

    One byte per range in the fixed MTRRs: WB below ``RamSize`` in 0-0x9FFFF, UC in
    0xA0000-0xBFFFF, WP in 0xC0000-0xFFFFF (each range only as far as ``RamSize`` covers
    it).  Variable pair 0 makes [pcimem_start, 4 GiB) UC, the others are 0; the default type
    is WB with MTRRs and fixed MTRRs enabled (0xC06).  SeaBIOS computes the mask as
    ``-(4 GiB - pcimem_start)`` within the physical address width whether or not that size
    is a power of two, and so does this.
    """
    if vcnt < 1:
        raise ValueError(f"vcnt {vcnt}: SeaBIOS writes no MTRRs without variable ranges")
    ram = seabios_ram_size(e820)
    out: dict[int, int] = {}
    out[MSR_MTRR_FIX64K_00000] = _bytes_mtrr(
        [MTRR_WB if ram >= 0x10000 * (i + 1) else MTRR_UC for i in range(8)]
    )
    out[MSR_MTRR_FIX16K_80000] = _bytes_mtrr(
        [MTRR_WB if ram >= 0x80000 + 0x4000 * (i + 1) else MTRR_UC for i in range(8)]
    )
    out[MSR_MTRR_FIX16K_A0000] = 0
    for j in range(8):
        out[MSR_MTRR_FIX4K_C0000 + j] = _bytes_mtrr(
            [
                MTRR_WP if ram >= 0xC0000 + j * 0x8000 + 0x1000 * (i + 1) else MTRR_UC
                for i in range(8)
            ]
        )
    bits = SEABIOS_DEFAULT_PHYS_BITS if phys_bits is None else phys_bits
    phys_mask = (1 << bits) - 1
    for n in range(vcnt):
        out[MSR_MTRR_PHYSBASE0 + 2 * n] = 0
        out[MSR_MTRR_PHYSBASE0 + 2 * n + 1] = 0
    start = seabios_pcimem_start(e820, machine)
    out[MSR_MTRR_PHYSBASE0] = start | MTRR_UC
    out[MSR_MTRR_PHYSBASE0 + 1] = (-(FOUR_GIB - start) & phys_mask) | MTRR_PHYSMASK_VALID
    out[MSR_MTRR_DEF_TYPE] = MTRR_DEF_TYPE_E | MTRR_DEF_TYPE_FE | MTRR_WB
    return out


def seabios_type0(version: str) -> bytes:
    """The SMBIOS type 0 (BIOS information) structure SeaBIOS ``version`` (its build's
    VERSION string, as its banner prints it) writes in front of QEMU's tables: formatted
    area, then the strings "SeaBIOS", version, date and the closing NUL."""
    # type 0, length 0x18, handle 0; vendor, version: strings 1, 2; start segment 0xE800;
    # release date: string 3; ROM size 0; characteristics bit 3 ("not supported");
    # extension bytes 0x00 0x04 (targeted content distribution); release 0.0; no EC (FF.FF).
    formatted = struct.pack(
        "<BBHBBHBB8s2sBBBB", 0, 0x18, 0, 1, 2, 0xE800, 3, 0, b"\x08" + bytes(7), b"\x00\x04",
        0, 0, 0xFF, 0xFF,
    )  # fmt: skip
    strings = b"".join(s.encode() + b"\0" for s in ("SeaBIOS", version, SEABIOS_SMBIOS_DATE))
    return formatted + strings + b"\0"


def seabios_isa_irqs(irq0_override: bool) -> list[int]:
    """The ISA IRQs SeaBIOS's MP table routes: all but the PCI ones, and without IRQ 2 when
    fw_cfg's irq0 override moves IRQ 0 to its pin."""
    return [
        irq for irq in range(16) if irq not in SEABIOS_PCI_IRQS and not (irq0_override and irq == 2)
    ]


def qboot_isa_irqs(irq0_override: bool) -> list[int]:
    """qboot routes every ISA IRQ (IRQ 2 left out with the irq0 override)."""
    return [irq for irq in range(16) if not (irq0_override and irq == 2)]
