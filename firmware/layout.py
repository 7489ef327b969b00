"""Every address the firmware uses, in ROM and in RAM, its limits and its patch table.

The numbers of the interfaces it speaks (fw_cfg, PVH, the Linux boot protocol, ...) are in
abi.py. The assembler injects both modules' constants into the assembly sources as ``.equ``,
the builder checks kernels against the RAM areas here, and the tests read the same names.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

from pvhfw import __version__
from pvhfw.firmware import abi

KiB: Final = 1024
MiB: Final = 1024 * KiB

# --- ROM ---------------------------------------------------------------------------------
# QEMU maps the -bios image so that it ends at 4 GiB; the CPU starts at 0xFFFFFFF0 in real
# mode with CS base 0xFFFF0000 and IP 0xFFF0. The last 128 KiB (here: all 64 KiB) are also
# visible below 1 MiB, ending at 0xFFFFF.
IMAGE_SIZE: Final = 64 * KiB  # a multiple of 64 KiB, as QEMU requires for -bios
ROM_BASE: Final = 0x1_0000_0000 - IMAGE_SIZE  # 0xFFFF0000: linear address of image offset 0
ROM_SHADOW_BASE: Final = 0x10_0000 - IMAGE_SIZE  # 0xF0000: the same bytes below 1 MiB
ROM_SHADOW_END: Final = 0x10_0000

CODE32_OFFSET: Final = 0x0000  # 32-bit code and data, assembled at ROM_BASE + CODE32_OFFSET
RESET16_OFFSET: Final = 0xFF00  # 16-bit code: fw_start event, GDT load, switch to 32-bit
GDT_DESC_OFFSET: Final = RESET16_OFFSET  # the lgdt operand, first in the 16-bit block
RESET_VECTOR_OFFSET: Final = 0xFFF0  # CS:IP = F000:FFF0 at reset, the last 16 bytes
RESET16_MAX: Final = RESET_VECTOR_OFFSET - RESET16_OFFSET

# GDT selectors. 0x10/0x18 are also the Linux boot protocol's __BOOT_CS/__BOOT_DS, so one
# GDT serves both entry protocols.
SEL_CODE32: Final = 0x10
SEL_DATA32: Final = 0x18

# --- RAM used by the firmware ------------------------------------------------------------
# One block in low memory, below anything a kernel is loaded at. Linux reserves the first
# MiB itself, and it copies start_info, the memory map and the command line before it
# allocates anything, so the block stays RAM in the map (see docs/design.md).
FW_RAM_BASE: Final = 0x1000

# The firmware's state, laid out from this list at FW_RAM_BASE in order (16-byte items first:
# the DMA control structure stays aligned). RAM is not cleared on a guest reboot: each is
# written before it is read. The assembler knows each name as its address.
VARIABLES: Final = (
    ("DMA_CTL", 16, "fw_cfg DMA control structure, FWCfgDmaAccess (big-endian)"),
    ("SCRATCH", 16, "fw_cfg items read as numbers; a pointer value written back"),
    ("ERR_ARGS", 16, "u32[4]: the numbers an error message prints, in order"),
    ("VAR_DMA", 4, "nonzero when fw_cfg has the DMA interface"),
    ("VAR_DIR_END", 4, "FILE_DIR: the name of the slot after the last entry (the sentinel)"),
    ("VAR_LEFT", 4, "e820 entries still to convert"),
    ("VAR_ROM_DONE", 4, "the ROM shadow entry is in the memory map"),
    ("VAR_MEMMAP_N", 4, "entries in the memory map"),
    ("VAR_LOWMEM_TOP", 4, "the end of the RAM that starts below 1 MiB (below 4 GiB)"),
    ("VAR_CMDLINE_SIZE", 4, "FW_CFG_CMDLINE_SIZE"),
    ("VAR_INITRD_ADDR", 4, "FW_CFG_INITRD_ADDR"),
    ("VAR_INITRD_SIZE", 4, "FW_CFG_INITRD_SIZE"),
    ("VAR_KERNEL_ADDR", 4, "FW_CFG_KERNEL_ADDR"),
    ("VAR_KERNEL_SIZE", 4, "FW_CFG_KERNEL_SIZE"),
    ("VAR_KERNEL_END", 4, "end of the kernel's memory (a bzImage's: decompression too)"),
    ("VAR_LINUX32", 4, "nonzero: QEMU loaded a bzImage, boot it by the Linux protocol"),
    ("VAR_ENTRY", 4, "the kernel's entry (PVH or code32_start), checked: the hand-off's jump"),
    ("VAR_HIGH_TOP", 4, "allocator, high zone: the next allocation ends here (grows down)"),
    ("VAR_HIGH_END", 4, "... where it started: the end of the highest RAM below 4 GiB"),
    ("VAR_HIGH_FLOOR", 4, "... no allocation below this (kernel, initrd, RAM start)"),
    ("VAR_EBDA_NEXT", 4, "allocator, ebda zone: the next free byte"),
    ("VAR_FSEG_NEXT", 4, "allocator, fseg zone (the F segment): the next free byte, 0: closed"),
    ("VAR_HOST_BRIDGE", 4, "PCI 00:00.0's vendor and device ID (all ones: no PCI, microvm)"),
    ("VAR_SMBIOS_EP", 4, "the SMBIOS entry point, in the F segment"),
    ("VAR_SMBIOS_TABLES", 4, "the SMBIOS structures, in the F segment"),
    ("VAR_SMBIOS_LEN", 4, "... their length"),
    ("VAR_ACPI", 4, "nonzero: QEMU has a table-loader (ACPI tables)"),
    ("VAR_MP_FLOATING", 4, "the MP table's floating pointer (the table follows it)"),
    ("VAR_ALLOC_N", 4, "files allocated by the table-loader"),
    ("VAR_RSDP", 4, "the RSDP's address (0: no ACPI)"),
    ("VAR_LOADER_LEFT", 4, "table-loader commands still to run"),
)


def _variables() -> dict[str, int]:
    out, at = {}, FW_RAM_BASE
    for name, size, _ in VARIABLES:
        out[name] = at
        at += size
    out["VARS_END"] = at
    return out


VARIABLE_ADDRESSES: Final = _variables()
# fw_cfg's DMA register takes the control structure's address big-endian.
DMA_CTL_BE: Final = int.from_bytes(VARIABLE_ADDRESSES["DMA_CTL"].to_bytes(4, "little"), "big")
START_INFO: Final = 0x1100  # struct hvm_start_info
MODLIST: Final = 0x1140  # struct hvm_modlist_entry[1]
MEMMAP: Final = 0x1200  # struct hvm_memmap_table_entry[MEMMAP_MAX]
# Linux copies the table into boot_params.e820_table (128 slots) without a bound check and
# then appends the ISA range itself, so stay below 127.
MEMMAP_MAX: Final = 126
E820_BUF: Final = 0x1E00  # fw_cfg "etc/e820": struct e820_entry[E820_MAX]
E820_MAX: Final = 128
FILE_DIR: Final = 0x2800  # fw_cfg file directory: FWCfgFiles.count (host order) + entries
FILE_DIR_MAX: Final = 128
FILE_DIR_SLOTS: Final = FILE_DIR_MAX + 1  # one more: fwcfg_find's sentinel after the last
FW_CFG_FILE_SHIFT: Final = 6  # log2(sizeof(FWCfgFile)): entries -> bytes
ALLOC_TABLE: Final = 0x4900  # table-loader allocations: {u32 name ptr, u32 addr, u32 size}
ALLOC_NAME: Final = 0  # ... offsets in one allocation
ALLOC_ADDR: Final = 4
ALLOC_SIZE: Final = 8
SIZEOF_ALLOC: Final = 12
ALLOC_MAX: Final = 16
CMDLINE: Final = 0x5000  # kernel command line, NUL-terminated
CMDLINE_MAX: Final = 0x2000  # bytes, NUL included
STACK_TOP: Final = 0x8000  # firmware stack grows down from here
LOADER_BUF: Final = 0x8000  # fw_cfg "etc/table-loader": BiosLinkerLoaderEntry[]
LOADER_MAX: Final = 0x1000  # bytes (QEMU's is 4 KiB: 32 commands)
LOADER_SHIFT: Final = 7  # log2(SIZEOF_LOADER): commands = bytes >> LOADER_SHIFT
LOADER_NAME_DWORDS: Final = abi.LOADER_FILESZ // 4  # a file name field, compared as dwords
ZERO_PAGE: Final = 0x9000  # Linux boot protocol (bzImage): struct boot_params
FW_RAM_END: Final = 0xA000
EBDA_BASE: Final = 0x9FC00  # the EBDA's 1 KiB: the allocator's "fseg" zone (the RSDP)
BDA_EBDA_SEGMENT: Final = 0x40E  # BIOS data area: u16 segment of the EBDA (legacy RSDP scan)

# The memory map types of the allocator's zones (asm/alloc.s), once they are used (the fseg
# zone, the F segment, is the ROM shadow's reserved entry).
HIGH_ZONE_TYPE: Final = abi.E820_ACPI
EBDA_ZONE_TYPE: Final = abi.E820_RESERVED

# When fw_cfg has no "etc/e820" (QEMU before 1.7), RAM below 4 GiB is taken from
# FW_CFG_RAM_SIZE, capped at the lowest start of the PCI hole of any x86 machine type.
FALLBACK_LOWMEM_MAX: Final = 0x8000_0000

# --- The legacy hole in the memory map -----------------------------------------------------
LOWMEM_END: Final = 0xA0000  # conventional memory ends at 640 KiB
HIGHMEM_START: Final = 0x10_0000  # extended memory starts at 1 MiB

# After a failed boot (asm/failure.s): polls of the PIT that may see its count unchanged
# before the firmware takes it that there is no PIT (its ports read all ones) and resets at
# once. A running PIT ticks every 0.84 us, a poll is three port accesses: a few polls a tick.
PIT_STALL_POLLS: Final = 4096

# The chipset's ACPI PM I/O block (asm/chipset.s): where SeaBIOS 1.16 puts it on pc and q35
# (the kernel logs "ACPI: PM-Timer IO Port: 0x608" with either), so QEMU's FADT and DSDT
# say the same.
PM_IO_BASE: Final = 0x600
# PAM0's value that maps the F segment to read/write RAM (its high nibble; the low one is
# reserved). SeaBIOS write-protects it again before booting; qboot and pvhfw leave it so.
PAM0_FSEG_RAM: Final = (abi.PAM_RE | abi.PAM_WE) << 4
# The MTRRs as SeaBIOS sets them (asm/mtrr.s): the first MiB's fixed ranges (a type byte for
# each piece: RAM write-back, the VGA window uncached, the BIOS areas write-protected: the
# RAM below them is above 1 MiB on any machine a kernel boots on), the PCI hole below 4 GiB
# uncached from PCI_HOLE_* (q35: from 0xC0000000 always; elsewhere from the first of these
# that holds the RAM below 4 GiB, or from its end), write-back by default. A CPU whose CPUID
# gives no address width has 36 bits.
MTRR_CPUID_NEEDS: Final = abi.CPUID_1_EDX_MTRR | abi.CPUID_1_EDX_MSR
MTRR_FIX_WB: Final = abi.MTRR_TYPE_WB * 0x0101_0101
MTRR_FIX_WP: Final = abi.MTRR_TYPE_WP * 0x0101_0101
MTRR_DEFAULT: Final = abi.MTRR_DEF_TYPE_E | abi.MTRR_DEF_TYPE_FE | abi.MTRR_TYPE_WB
PCI_HOLE_LOW: Final = 0x8000_0000
PCI_HOLE_HIGH: Final = 0xC000_0000
PCI_HOLE_Q35: Final = 0xC000_0000
PHYS_BITS_DEFAULT: Final = 36
# q35's PCIe MMCONFIG (ECAM) window, as SeaBIOS and qboot place it: 256 buses of 1 MiB.
PCIE_MMCONFIG_BASE: Final = 0xB000_0000
PCIE_MMCONFIG_SIZE: Final = 0x1000_0000

# --- Kernels ----------------------------------------------------------------------------------
LINUX32_MIN_VERSION: Final = 0x020A  # 2.10: init_size and pref_address (Linux 2.6.31)
BZIMAGE_LOAD_ADDR: Final = 0x10_0000  # where QEMU (and every loader) puts a bzImage's code

# --- SMBIOS ---------------------------------------------------------------------------------
# The BIOS information structure (type 0) the firmware adds when QEMU's tables have none (QEMU
# builds one only for -smbios type=0,...), as SeaBIOS's smbios_new_type_0 and qboot's do, with
# this firmware's name, version and release date.
SMBIOS_BIOS_VENDOR: Final = "pvhfw"
SMBIOS_BIOS_DATE: Final = "12/01/2026"  # MM/DD/YYYY
SMBIOS_BIOS_SEGMENT: Final = 0xE800  # as SeaBIOS and qboot say
SMBIOS_CHARACTERISTICS_NOT_SUPPORTED: Final = 0x08  # bit 3: BIOS characteristics not supported
SMBIOS_EXTENSION_2_TARGETED: Final = 0x04  # extension byte 2, bit 2: targeted content distribution


def _smbios_type0() -> bytes:
    t0 = bytearray(abi.SMBIOS_TYPE_0.size)

    def put(name: str, value: int) -> None:
        f = abi.SMBIOS_TYPE_0.field(name)
        t0[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")

    header = abi.SMBIOS_TYPE_BIOS | abi.SMBIOS_TYPE_0.size << 8  # handle 0
    put("header", header)
    put("vendor_str", 1)
    put("bios_version_str", 2)
    put("bios_starting_address_segment", SMBIOS_BIOS_SEGMENT)
    put("bios_release_date_str", 3)
    put("bios_characteristics", SMBIOS_CHARACTERISTICS_NOT_SUPPORTED)
    put("bios_characteristics_extension_bytes", SMBIOS_EXTENSION_2_TARGETED << 8)
    put("embedded_controller_major_release", 0xFF)  # no embedded controller
    put("embedded_controller_minor_release", 0xFF)
    strings = (SMBIOS_BIOS_VENDOR, __version__, SMBIOS_BIOS_DATE)
    return bytes(t0) + b"".join(s.encode("ascii") + b"\0" for s in strings) + b"\0"


SMBIOS_TYPE0: Final = _smbios_type0()
SMBIOS_TYPE0_SIZE: Final = len(SMBIOS_TYPE0)

# --- The MP table (asm/mptable.s), when QEMU offers no ACPI: like qboot's, with the IOAPIC id
# and version of SeaBIOS's (the id QEMU's MADT gives it). The floating pointer, the table's
# header and its entries but the processors' are built here; the firmware copies them, adds a
# processor entry for each CPU fw_cfg counts (APIC IDs 0..N-1, as qboot), the lengths and the
# checksums. ISA IRQs 0-15 go to the IOAPIC's pins of the same number, but IRQ 0 to pin 2 and
# no IRQ 2: QEMU's fw_cfg says "irq0 override" on every x86 machine (7.2 and 10.0).
MP_OEM: Final = b"PVHFW   "  # 8 bytes
MP_PRODUCT: Final = __version__.encode("ascii").ljust(12)  # 12 bytes
MP_IOAPIC_ID: Final = 0
MP_ISA_BUS: Final = 0


def _struct(s: abi.Struct, **values: int | bytes) -> bytes:
    out = bytearray(s.size)
    for name, value in values.items():
        f = s.field(name)
        raw = value if isinstance(value, bytes) else value.to_bytes(f.size, "little")
        if len(raw) != f.size:
            raise AssertionError(f"layout: {s.c_name}.{name} takes {f.size} bytes")
        out[f.offset : f.offset + f.size] = raw
    return bytes(out)


def _mp_templates() -> tuple[bytes, bytes, bytes]:
    """The floating pointer (no table address, no checksum), the table's header (no lengths,
    no checksum) and the entries after the processors'."""
    floating = _struct(
        abi.MP_FLOATING,
        signature=abi.MP_FLOATING_SIGNATURE,
        length=abi.MP_FLOATING.size // 16,
        specification=abi.MP_SPEC_1_4,
    )
    header = _struct(
        abi.MP_CONFIG,
        signature=abi.MP_CONFIG_SIGNATURE,
        spec=abi.MP_SPEC_1_4,
        oem=MP_OEM,
        productid=MP_PRODUCT,
        lapic=abi.LAPIC_DEFAULT_BASE,
    )
    tail = _struct(abi.MP_BUS_ENTRY, type=abi.MP_BUS, busid=MP_ISA_BUS, bustype=b"ISA   ")
    tail += _struct(
        abi.MP_IOAPIC_ENTRY,
        type=abi.MP_IOAPIC,
        apicid=MP_IOAPIC_ID,
        apicver=abi.IOAPIC_VERSION,
        flags=abi.MP_IOAPIC_USABLE,
        apicaddr=abi.IOAPIC_DEFAULT_BASE,
    )
    for irq in range(abi.ISA_IRQS):
        if irq == 2:
            continue  # the cascade: IRQ 0 takes its pin
        tail += _struct(
            abi.MP_INTSRC_ENTRY,
            type=abi.MP_INTSRC,
            irqtype=abi.MP_INT,
            srcbus=MP_ISA_BUS,
            srcbusirq=irq,
            dstapic=MP_IOAPIC_ID,
            dstirq=2 if irq == 0 else irq,
        )
    for irqtype, lapic, lint in ((abi.MP_EXTINT, 0, 0), (abi.MP_NMI, 0xFF, 1)):
        tail += _struct(
            abi.MP_INTSRC_ENTRY,
            type=abi.MP_LINTSRC,
            irqtype=irqtype,
            srcbus=MP_ISA_BUS,
            dstapic=lapic,
            dstirq=lint,
        )
    return floating, header, tail


MP_FLOATING_TEMPLATE, MP_HEADER_TEMPLATE, MP_TAIL_TEMPLATE = _mp_templates()
MP_TAIL_SIZE: Final = len(MP_TAIL_TEMPLATE)
MP_TAIL_ENTRIES: Final = 1 + 1 + (abi.ISA_IRQS - 1) + 2  # bus, IOAPIC, ISA IRQs, LINT0/1
MP_FLOATING_SUM: Final = sum(MP_FLOATING_TEMPLATE) & 0xFF
MP_TABLE_SUM: Final = (sum(MP_HEADER_TEMPLATE) + sum(MP_TAIL_TEMPLATE)) & 0xFF
MP_CPU_WORD0: Final = (  # a processor entry's first dword, but its APIC ID (byte 1)
    abi.MP_PROCESSOR | abi.LAPIC_VERSION << 16 | abi.MP_CPU_ENABLED << 24
)
MP_CPU_BSP_WORD0: Final = abi.MP_CPU_BSP << 24
MP_MAX_CPUS: Final = 255  # an APIC ID is one byte in the table

# --- The patch table (build-fw writes it; the firmware checks it against fw_cfg) -------------
PATCH_MAGIC: Final = b"PVHFWPT2"  # magic and version, then each field, little-endian


@dataclass(frozen=True)
class PatchField:
    name: str  # the assembler knows the field as patch_<name>
    description: str
    size: int = 4

    @property
    def symbol(self) -> str:
        return f"patch_{self.name}"


PATCH_FIELDS: Final = (
    PatchField(
        "entry",
        "PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) = FW_CFG_KERNEL_ENTRY, or a bzImage's "
        "code32_start; 0 for any kernel",
    ),
    PatchField(
        "kernel_addr",
        "lowest PT_LOAD p_paddr, or 1 MiB for a bzImage = FW_CFG_KERNEL_ADDR; 0 for any kernel",
    ),
    PatchField(
        "kernel_size",
        "PT_LOAD span, or a bzImage's protected-mode size = FW_CFG_KERNEL_SIZE; 0 for any kernel",
    ),
    PatchField(
        "boot_path",
        "BOOT_PATH_PVH: an ELF's PVH entry; BOOT_PATH_LINUX32: a bzImage's; BOOT_PATH_ANY: "
        "either, checked at run time",
    ),
)
# The patch table's kinds. PVH and LINUX32 tie an image to one kernel ("pre-patched", the
# fast path); ANY (build-fw --any-kernel) boots whichever kernel QEMU loaded, checking at run
# time what the builder would have checked (asm/kernel.s, kernel_check_any).
BOOT_PATH_PVH: Final = 1
BOOT_PATH_LINUX32: Final = 2
BOOT_PATH_ANY: Final = 3


@dataclass(frozen=True)
class Area:
    """A range of guest-physical memory the firmware owns; kernels must not overlap it."""

    name: str
    start: int
    end: int  # exclusive

    def overlaps(self, start: int, end: int) -> bool:
        return start < self.end and self.start < end


# What the builder refuses kernel segments in.
RESERVED_AREAS: Final = (
    Area(
        "firmware RAM (start_info, memory map, command line, stack, zero page)",
        FW_RAM_BASE,
        FW_RAM_END,
    ),
    Area("firmware ROM shadow below 1 MiB", ROM_SHADOW_BASE, ROM_SHADOW_END),
    Area("EBDA (the ACPI RSDP)", EBDA_BASE, LOWMEM_END),
    Area("legacy hole (VGA memory, option ROMs: not RAM)", LOWMEM_END, ROM_SHADOW_BASE),
    Area(
        "BIOS data area's EBDA pointer (written by the firmware)",
        BDA_EBDA_SEGMENT,
        BDA_EBDA_SEGMENT + 2,
    ),
    Area("firmware ROM below 4 GiB", ROM_BASE, 0x1_0000_0000),
)


def asm_constants() -> dict[str, int]:
    """Every integer constant of this module and of abi.py, and every variable's address,
    for injection into the assembly as .equ."""
    out = abi.constants()
    ours = {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
    }
    for name, value in (*ours.items(), *VARIABLE_ADDRESSES.items()):
        if name in out:
            raise AssertionError(f"layout: {name} is also an ABI name")
        out[name] = value
    return out


def _check_layout() -> None:
    ram = [
        ("variables", FW_RAM_BASE, VARIABLE_ADDRESSES["VARS_END"] - FW_RAM_BASE),
        ("START_INFO", START_INFO, abi.HVM_START_INFO.size),
        ("MODLIST", MODLIST, abi.HVM_MODLIST_ENTRY.size),
        ("MEMMAP", MEMMAP, MEMMAP_MAX * abi.HVM_MEMMAP_TABLE_ENTRY.size),
        ("E820_BUF", E820_BUF, E820_MAX * abi.E820_ENTRY.size),
        ("FILE_DIR", FILE_DIR, abi.FW_CFG_FILES.size + FILE_DIR_SLOTS * abi.FW_CFG_FILE.size),
        ("ALLOC_TABLE", ALLOC_TABLE, ALLOC_MAX * SIZEOF_ALLOC),
        ("CMDLINE", CMDLINE, CMDLINE_MAX),
        ("LOADER_BUF", LOADER_BUF, LOADER_MAX),
        ("ZERO_PAGE", ZERO_PAGE, abi.BOOT_PARAMS.size),
    ]
    ram.sort(key=lambda r: r[1])
    for (n1, a1, s1), (n2, a2, _) in itertools.pairwise(ram):
        if a1 + s1 > a2:
            raise AssertionError(f"layout: {n1} overlaps {n2}")
    below_stack = [r for r in ram if r[1] < STACK_TOP]
    last = below_stack[-1]
    if last[1] + last[2] > STACK_TOP - 1024 or ram[0][1] < FW_RAM_BASE:
        raise AssertionError("layout: RAM areas leave no room for the stack")
    if LOADER_BUF < STACK_TOP or ram[-1][1] + ram[-1][2] > FW_RAM_END:
        raise AssertionError("layout: the areas above the stack do not fit in firmware RAM")
    e820_table = abi.BOOT_PARAMS.field("e820_table")
    if MEMMAP_MAX * abi.E820_ENTRY.size > e820_table.size:
        raise AssertionError("layout: the memory map does not fit the zero page's e820_table")
    if abi.BOOT_PARAMS.offset("hdr") % 4 != 1 or abi.BOOT_PARAMS.offset("edd_mbr_sig_buffer") % 4:
        raise AssertionError("layout: linux32.s zeroes the zero page in dwords around the header")
    if MEMMAP_MAX > abi.E820_MAX_ENTRIES_ZEROPAGE:
        raise AssertionError("layout: the memory map has more entries than e820_table")
    if abi.FW_CFG_FILE.size != 1 << FW_CFG_FILE_SHIFT:
        raise AssertionError("layout: FW_CFG_FILE_SHIFT is not log2 of a FWCfgFile")
    if abi.LOADER_ENTRY.size != 1 << LOADER_SHIFT:
        raise AssertionError("layout: LOADER_SHIFT is not log2 of a table-loader command")
    if LOADER_MAX % abi.LOADER_ENTRY.size or abi.LOADER_FILESZ % 4:
        raise AssertionError("layout: the table-loader buffer is not whole commands")


_check_layout()
