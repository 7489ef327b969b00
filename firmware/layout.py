"""Every address the firmware uses, in ROM and in RAM, and the ABI numbers it speaks.

This module is the single source of truth: the assembler injects each constant into the
assembly sources as an ``.equ``, the builder checks kernels against the RAM areas, and the
tests read the same names.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

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
DMA_CTL: Final = 0x1000  # 16 bytes: fw_cfg DMA control structure (big-endian)
SCRATCH: Final = 0x1010  # 16 bytes: fw_cfg items read as numbers
# Variables, each a u32 (RAM is not cleared on a guest reboot: each is written before it is read).
VAR_DMA: Final = 0x1020  # nonzero when fw_cfg has the DMA interface
VAR_LEFT: Final = 0x1024  # e820 entries still to convert
VAR_ROM_DONE: Final = 0x1028  # the ROM shadow entry is in the memory map
VAR_MEMMAP_N: Final = 0x102C  # entries in the memory map
VAR_CMDLINE_SIZE: Final = 0x1030  # FW_CFG_CMDLINE_SIZE
VAR_INITRD_ADDR: Final = 0x1034  # FW_CFG_INITRD_ADDR
VAR_INITRD_SIZE: Final = 0x1038  # FW_CFG_INITRD_SIZE
VAR_KERNEL_ADDR: Final = 0x103C  # FW_CFG_KERNEL_ADDR
VAR_KERNEL_SIZE: Final = 0x1040  # FW_CFG_KERNEL_SIZE
ERR_ARGS: Final = 0x1050  # u32[4]: the numbers an error message prints, in order
VAR_ACPI_TOP: Final = 0x1060  # ACPI "high" zone: next allocation ends here (grows down)
VAR_ACPI_TOP0: Final = 0x1064  # ... where it started: the end of the highest RAM below 4 GiB
VAR_ACPI_FLOOR: Final = 0x1068  # ... no allocation below this (kernel, initrd, RAM start)
VAR_ACPI_ENTRY: Final = 0x106C  # the memory map entry the high zone is carved from
VAR_FSEG_NEXT: Final = 0x1070  # ACPI "fseg" zone (the EBDA): next free byte
VAR_ALLOC_N: Final = 0x1074  # files allocated by the table-loader
VAR_RSDP: Final = 0x1078  # the RSDP's address (0: no ACPI)
VAR_LOADER_LEFT: Final = 0x107C  # table-loader commands still to run
VAR_LINUX32: Final = 0x1080  # nonzero: QEMU loaded a bzImage, boot it by the Linux protocol
VAR_KERNEL_END: Final = 0x1084  # end of the kernel's memory (a bzImage's: decompression too)
VARS_END: Final = 0x1088
START_INFO: Final = 0x1100  # struct hvm_start_info, 56 bytes
MODLIST: Final = 0x1140  # struct hvm_modlist_entry[1], 32 bytes
MEMMAP: Final = 0x1200  # struct hvm_memmap_table_entry[MEMMAP_MAX]
# Linux copies the table into boot_params.e820_table (128 slots) without a bound check and
# then appends the ISA range itself, so stay below 127.
MEMMAP_MAX: Final = 126
E820_BUF: Final = 0x1E00  # fw_cfg "etc/e820": 20-byte entries
E820_MAX: Final = 128
FILE_DIR: Final = 0x2800  # fw_cfg file directory: u32 count + 64-byte entries
FILE_DIR_MAX: Final = 128
ALLOC_TABLE: Final = 0x4900  # table-loader allocations: {u32 name ptr, u32 addr, u32 size}
ALLOC_ENTRY_SIZE: Final = 12
ALLOC_MAX: Final = 16
CMDLINE: Final = 0x5000  # kernel command line, NUL-terminated
CMDLINE_MAX: Final = 0x2000  # bytes, NUL included
STACK_TOP: Final = 0x8000  # firmware stack grows down from here
LOADER_BUF: Final = 0x8000  # fw_cfg "etc/table-loader": 128-byte commands
LOADER_MAX: Final = 0x1000  # bytes (QEMU's is 4 KiB: 32 commands)
ZERO_PAGE: Final = 0x9000  # Linux boot protocol (bzImage): struct boot_params, 4 KiB
ZERO_PAGE_SIZE: Final = 0x1000
FW_RAM_END: Final = 0xA000
EBDA_BASE: Final = 0x9FC00  # the EBDA's 1 KiB: the ACPI table-loader's "fseg" zone (RSDP)
BDA_EBDA_SEGMENT: Final = 0x40E  # BIOS data area: u16 segment of the EBDA (legacy RSDP scan)

# When fw_cfg has no "etc/e820" (QEMU before 1.7), RAM below 4 GiB is taken from
# FW_CFG_RAM_SIZE, capped at the lowest start of the PCI hole of any x86 machine type.
FALLBACK_LOWMEM_MAX: Final = 0x8000_0000

# --- The legacy hole in the memory map -----------------------------------------------------
LOWMEM_END: Final = 0xA0000  # conventional memory ends at 640 KiB
HIGHMEM_START: Final = 0x10_0000  # extended memory starts at 1 MiB

# --- I/O ports ------------------------------------------------------------------------------
PORT_FW_CFG_SEL: Final = 0x510  # fw_cfg selector (16-bit write)
PORT_FW_CFG_DATA: Final = 0x511  # fw_cfg data (8-bit read)
PORT_FW_CFG_DMA_HI: Final = 0x514  # fw_cfg DMA address, high 32 bits (big-endian)
PORT_FW_CFG_DMA_LO: Final = 0x518  # fw_cfg DMA address, low 32 bits; writing starts it
PORT_BOOT_EVENT: Final = 0xF5  # qemu-boot-time firmware events
PORT_COM1: Final = 0x3F8  # 16550 transmit holding register
PORT_COM1_LSR: Final = 0x3FD  # 16550 line status register
LSR_THRE: Final = 0x20  # transmit holding register empty

BOOT_EVENT_FW_START: Final = 1
BOOT_EVENT_FW_DO_BOOT: Final = 5

# --- fw_cfg (QEMU docs/specs/fw_cfg.rst, include/standard-headers/linux/qemu_fw_cfg.h) ---
FW_CFG_SIGNATURE: Final = 0x00
FW_CFG_ID: Final = 0x01
FW_CFG_RAM_SIZE: Final = 0x03
FW_CFG_KERNEL_ADDR: Final = 0x07
FW_CFG_KERNEL_SIZE: Final = 0x08
FW_CFG_INITRD_ADDR: Final = 0x0A
FW_CFG_INITRD_SIZE: Final = 0x0B
FW_CFG_KERNEL_ENTRY: Final = 0x10
FW_CFG_KERNEL_DATA: Final = 0x11
FW_CFG_INITRD_DATA: Final = 0x12
FW_CFG_CMDLINE_SIZE: Final = 0x14
FW_CFG_CMDLINE_DATA: Final = 0x15
FW_CFG_SETUP_SIZE: Final = 0x17
FW_CFG_SETUP_DATA: Final = 0x18
FW_CFG_FILE_DIR: Final = 0x19
FW_CFG_ID_DMA: Final = 0x02  # FW_CFG_ID bit 1: DMA interface present
FW_CFG_DMA_CTL_ERROR: Final = 0x01
FW_CFG_DMA_CTL_READ: Final = 0x02
FW_CFG_DMA_CTL_SKIP: Final = 0x04
FW_CFG_DMA_CTL_SELECT: Final = 0x08
FW_CFG_DMA_CTL_WRITE: Final = 0x10
FW_CFG_FILE_ENTRY_SIZE: Final = 64  # size u32 BE, select u16 BE, reserved u16, name[56]
FW_CFG_FILE_NAME_MAX: Final = 56
E820_ENTRY_SIZE: Final = 20  # u64 addr, u64 size, u32 type, little-endian

# --- PCI configuration mechanism #1, and the chipsets' ACPI PM blocks (asm/chipset.s) -------
PCI_CONFIG_ADDR: Final = 0xCF8
PCI_CONFIG_DATA: Final = 0xCFC
PCI_PIIX4_PM: Final = 0x8000_0B00  # enable | bus 0, device 1, function 3 (-M pc)
PCI_ICH9_LPC: Final = 0x8000_F800  # enable | bus 0, device 31, function 0 (-M q35)
PIIX4_PM_ID: Final = 0x7113_8086  # device 0x7113, vendor Intel
ICH9_LPC_ID: Final = 0x2918_8086
PIIX4_PMBA: Final = 0x40  # power-management I/O base
PIIX4_PMREGMISC: Final = 0x80
PIIX4_PMIOSE: Final = 0x01  # PMREGMISC: the PM I/O space is enabled
ICH9_PMBASE: Final = 0x40
ICH9_ACPI_CNTL: Final = 0x44
ICH9_ACPI_EN: Final = 0x80
PM_IO_BASE: Final = 0xB000  # where SeaBIOS puts it too, so QEMU's tables look the same

# --- PVH (xen/include/public/arch-x86/hvm/start_info.h) -------------------------------------
HVM_START_MAGIC: Final = 0x336EC578
HVM_START_VERSION: Final = 1
HVM_START_INFO_SIZE: Final = 56
HVM_MODLIST_ENTRY_SIZE: Final = 32
HVM_MEMMAP_ENTRY_SIZE: Final = 24

# --- The Linux boot protocol (Documentation/arch/x86/boot.rst; struct boot_params in
# arch/x86/include/uapi/asm/bootparam.h), for bzImages: offsets in the zero page ----------------
BP_ACPI_RSDP_ADDR: Final = 0x070  # u64
BP_E820_ENTRIES: Final = 0x1E8  # u8
BP_HDR: Final = 0x1F1  # struct setup_header starts here (setup_sects)
BP_SETUP_SECTS: Final = 0x1F1  # u8: setup is (setup_sects or 4, + 1) * 512 bytes
BP_BOOT_FLAG: Final = 0x1FE  # u16 0xAA55
BP_JUMP: Final = 0x200  # the jump over the header: the header ends at 0x202 + byte 0x201
BP_HEADER: Final = 0x202  # u32 "HdrS"
BP_VERSION: Final = 0x206  # u16 boot protocol version
BP_TYPE_OF_LOADER: Final = 0x210  # u8
BP_LOADFLAGS: Final = 0x211  # u8
BP_CODE32_START: Final = 0x214  # u32: the 32-bit entry
BP_RAMDISK_IMAGE: Final = 0x218  # u32
BP_RAMDISK_SIZE: Final = 0x21C  # u32
BP_CMD_LINE_PTR: Final = 0x228  # u32
BP_INITRD_ADDR_MAX: Final = 0x22C  # u32
BP_KERNEL_ALIGNMENT: Final = 0x230  # u32
BP_RELOCATABLE: Final = 0x234  # u8
BP_XLOADFLAGS: Final = 0x236  # u16
BP_CMDLINE_SIZE: Final = 0x238  # u32
BP_PAYLOAD_OFFSET: Final = 0x248  # u32
BP_PAYLOAD_LENGTH: Final = 0x24C  # u32
BP_SETUP_DATA: Final = 0x250  # u64
BP_PREF_ADDRESS: Final = 0x258  # u64
BP_INIT_SIZE: Final = 0x260  # u32
BP_HDR_MAX_END: Final = 0x290  # struct boot_params.edd_mbr_sig_buffer: no header beyond
BP_E820_TABLE: Final = 0x2D0  # struct boot_e820_entry[E820_MAX_ENTRIES_ZEROPAGE]
BP_E820_MAX: Final = 128  # E820_MAX_ENTRIES_ZEROPAGE
BOOT_E820_ENTRY_SIZE: Final = 20  # u64 addr, u64 size, u32 type (packed)
HDRS_MAGIC: Final = 0x53726448  # "HdrS"
BOOT_FLAG_MAGIC: Final = 0xAA55
LOADED_HIGH: Final = 0x01  # loadflags: the protected-mode code is loaded at 1 MiB
LINUX32_MIN_VERSION: Final = 0x020A  # 2.10: init_size and pref_address (Linux 2.6.31)
BZIMAGE_LOAD_ADDR: Final = 0x10_0000  # where QEMU (and every loader) puts a bzImage's code

# The patch table's boot_path (asm/patch.s): which entry protocol the image was built for.
BOOT_PATH_PVH: Final = 1
BOOT_PATH_LINUX32: Final = 2

E820_RAM: Final = 1
E820_RESERVED: Final = 2
E820_ACPI: Final = 3

# --- ACPI table-loader (QEMU hw/acpi/bios-linker-loader.c: BiosLinkerLoaderEntry) ----------
LOADER_CMD_SIZE: Final = 128
LOADER_NAME_MAX: Final = 56  # file names: NUL-terminated within 56 bytes
LOADER_NAME_DWORDS: Final = LOADER_NAME_MAX // 4
LOADER_ALLOCATE: Final = 1  # {file[56], align u32 @60, zone u8 @64}
LOADER_ADD_POINTER: Final = 2  # {dest[56], src[56] @60, offset u32 @116, size u8 @120}
LOADER_ADD_CHECKSUM: Final = 3  # {file[56], offset u32 @60, start u32 @64, length u32 @68}
LOADER_WRITE_POINTER: Final = 4  # {dest[56], src[56], dst_off u32 @116, src_off @120, size @124}
LOADER_ZONE_HIGH: Final = 1
LOADER_ZONE_FSEG: Final = 2


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
    """Every integer constant of this module, for injection into the assembly as .equ."""
    return {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
    }


def _check_layout() -> None:
    ram = [
        ("DMA_CTL", DMA_CTL, 16),
        ("SCRATCH", SCRATCH, 16),
        ("VARS", VAR_DMA, VARS_END - VAR_DMA),
        ("START_INFO", START_INFO, HVM_START_INFO_SIZE),
        ("MODLIST", MODLIST, HVM_MODLIST_ENTRY_SIZE),
        ("MEMMAP", MEMMAP, MEMMAP_MAX * HVM_MEMMAP_ENTRY_SIZE),
        ("E820_BUF", E820_BUF, E820_MAX * E820_ENTRY_SIZE),
        ("FILE_DIR", FILE_DIR, 4 + FILE_DIR_MAX * FW_CFG_FILE_ENTRY_SIZE),
        ("ALLOC_TABLE", ALLOC_TABLE, ALLOC_MAX * ALLOC_ENTRY_SIZE),
        ("CMDLINE", CMDLINE, CMDLINE_MAX),
        ("LOADER_BUF", LOADER_BUF, LOADER_MAX),
        ("ZERO_PAGE", ZERO_PAGE, ZERO_PAGE_SIZE),
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
    if BP_E820_TABLE + MEMMAP_MAX * BOOT_E820_ENTRY_SIZE > ZERO_PAGE_SIZE:
        raise AssertionError("layout: the memory map does not fit the zero page's e820_table")
    if MEMMAP_MAX > BP_E820_MAX:
        raise AssertionError("layout: the memory map has more entries than e820_table")


_check_layout()
