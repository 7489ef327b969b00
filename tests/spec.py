"""The tests' own transcription of the interfaces the firmware speaks, independent of
pvhfw.firmware.abi: every structure is written as a `struct` format with its field names, in
the specification's order, so offsets come from Python's struct module, not from a table.
Every test helper, the emulator's fw_cfg model, the memory-map model and the benchmarks read
their numbers here; tests/test_spec.py holds this transcription against the firmware's (and
against pvhcheck's C headers), so a wrong offset on either side is a failing test.

Sources: QEMU docs/specs/fw_cfg.rst and include/standard-headers/linux/qemu_fw_cfg.h;
hw/acpi/bios-linker-loader.c; Xen public/arch-x86/hvm/start_info.h; Linux
arch/x86/include/uapi/asm/bootparam.h and Documentation/arch/x86/boot.rst.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Layout:
    """A packed C struct as a `struct` format: (field, format) pairs in order."""

    c_name: str
    order: str  # "<" little-endian, ">" big-endian
    fields: tuple[tuple[str, str], ...]

    @property
    def format(self) -> str:
        return self.order + "".join(f for _, f in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    def offset(self, name: str) -> int:
        at = 0
        for field, fmt in self.fields:
            if field == name:
                return at
            at += struct.calcsize(self.order + fmt)
        raise KeyError(f"{self.c_name} has no field {name!r}")

    def field_size(self, name: str) -> int:
        return struct.calcsize(self.order + dict(self.fields)[name])

    def names(self) -> list[str]:
        return [n for n, f in self.fields if not f.endswith("x")]

    def unpack(self, data: bytes, at: int = 0) -> dict[str, int | bytes]:
        values = struct.unpack_from(self.format, data, at)
        return dict(zip(self.names(), values, strict=True))

    def pack(self, **values: int | bytes) -> bytes:
        return struct.pack(self.format, *(values.get(n, 0) for n in self.names()))


def _layout(c_name: str, order: str, *fields: tuple[str, str]) -> Layout:
    return Layout(c_name, order, fields)


# ---- fw_cfg ----------------------------------------------------------------------------------
FW_CFG_PORT_SEL: Final = 0x510
FW_CFG_PORT_DATA: Final = 0x511
FW_CFG_PORT_DMA: Final = 0x514  # 8 bytes, big-endian: writing the low half (0x518) starts it

FW_CFG_SIGNATURE: Final = 0x00
FW_CFG_ID: Final = 0x01
FW_CFG_UUID: Final = 0x02
FW_CFG_RAM_SIZE: Final = 0x03
FW_CFG_NOGRAPHIC: Final = 0x04
FW_CFG_NB_CPUS: Final = 0x05
FW_CFG_MACHINE_ID: Final = 0x06
FW_CFG_KERNEL_ADDR: Final = 0x07
FW_CFG_KERNEL_SIZE: Final = 0x08
FW_CFG_KERNEL_CMDLINE: Final = 0x09
FW_CFG_INITRD_ADDR: Final = 0x0A
FW_CFG_INITRD_SIZE: Final = 0x0B
FW_CFG_BOOT_DEVICE: Final = 0x0C
FW_CFG_NUMA: Final = 0x0D
FW_CFG_BOOT_MENU: Final = 0x0E
FW_CFG_MAX_CPUS: Final = 0x0F
FW_CFG_KERNEL_ENTRY: Final = 0x10
FW_CFG_KERNEL_DATA: Final = 0x11
FW_CFG_INITRD_DATA: Final = 0x12
FW_CFG_CMDLINE_ADDR: Final = 0x13
FW_CFG_CMDLINE_SIZE: Final = 0x14
FW_CFG_CMDLINE_DATA: Final = 0x15
FW_CFG_SETUP_ADDR: Final = 0x16
FW_CFG_SETUP_SIZE: Final = 0x17
FW_CFG_SETUP_DATA: Final = 0x18
FW_CFG_FILE_DIR: Final = 0x19
FW_CFG_FILE_FIRST: Final = 0x20
FW_CFG_FILE_SLOTS_DFLT: Final = 0x20  # QEMU's directory always has room for 32 files
FW_CFG_WRITE_CHANNEL: Final = 0x4000
FW_CFG_ARCH_LOCAL: Final = 0x8000
FW_CFG_ENTRY_MASK: Final = ~(FW_CFG_WRITE_CHANNEL | FW_CFG_ARCH_LOCAL) & 0xFFFF
FW_CFG_MAX_FILE_PATH: Final = 56

FW_CFG_SIGNATURE_BYTES: Final = b"QEMU"
FW_CFG_DMA_SIGNATURE: Final = b"QEMU CFG"  # what the DMA register reads
FW_CFG_VERSION: Final = 0x01  # FW_CFG_ID: the traditional interface
FW_CFG_VERSION_DMA: Final = 0x02  # FW_CFG_ID: the DMA interface

FW_CFG_DMA_CTL_ERROR: Final = 0x01
FW_CFG_DMA_CTL_READ: Final = 0x02
FW_CFG_DMA_CTL_SKIP: Final = 0x04
FW_CFG_DMA_CTL_SELECT: Final = 0x08
FW_CFG_DMA_CTL_WRITE: Final = 0x10

FW_CFG_DMA_ACCESS: Final = _layout(
    "struct FWCfgDmaAccess", ">", ("control", "I"), ("length", "I"), ("address", "Q")
)
FW_CFG_FILE: Final = _layout(
    "struct FWCfgFile",
    ">",
    ("size", "I"),
    ("select", "H"),
    ("reserved", "H"),
    ("name", f"{FW_CFG_MAX_FILE_PATH}s"),
)
FW_CFG_FILES_COUNT: Final = _layout("struct FWCfgFiles (count)", ">", ("count", "I"))

# ---- e820 ------------------------------------------------------------------------------------
E820_RAM: Final = 1
E820_RESERVED: Final = 2
E820_ACPI: Final = 3
E820_NVS: Final = 4
E820_UNUSABLE: Final = 5
E820_ENTRY: Final = _layout("struct e820_entry", "<", ("addr", "Q"), ("size", "Q"), ("type", "I"))

# ---- PVH -------------------------------------------------------------------------------------
XEN_ELFNOTE_PHYS32_ENTRY: Final = 18
XEN_HVM_START_MAGIC_VALUE: Final = 0x336EC578
HVM_START_INFO: Final = _layout(
    "struct hvm_start_info",
    "<",
    ("magic", "I"),
    ("version", "I"),
    ("flags", "I"),
    ("nr_modules", "I"),
    ("modlist_paddr", "Q"),
    ("cmdline_paddr", "Q"),
    ("rsdp_paddr", "Q"),
    ("memmap_paddr", "Q"),
    ("memmap_entries", "I"),
    ("reserved", "I"),
)
HVM_MODLIST_ENTRY: Final = _layout(
    "struct hvm_modlist_entry",
    "<",
    ("paddr", "Q"),
    ("size", "Q"),
    ("cmdline_paddr", "Q"),
    ("reserved", "Q"),
)
HVM_MEMMAP_TABLE_ENTRY: Final = _layout(
    "struct hvm_memmap_table_entry",
    "<",
    ("addr", "Q"),
    ("size", "Q"),
    ("type", "I"),
    ("reserved", "I"),
)

# ---- The Linux boot protocol ---------------------------------------------------------------
# struct setup_header, from setup_sects to kernel_info_offset (protocol 2.15), as bootparam.h
# declares it (packed); it lies in struct boot_params at SETUP_HEADER_OFFSET.
SETUP_HEADER_OFFSET: Final = 0x1F1
SETUP_HEADER: Final = _layout(
    "struct setup_header",
    "<",
    ("setup_sects", "B"),
    ("root_flags", "H"),
    ("syssize", "I"),
    ("ram_size", "H"),
    ("vid_mode", "H"),
    ("root_dev", "H"),
    ("boot_flag", "H"),
    ("jump", "H"),
    ("header", "I"),
    ("version", "H"),
    ("realmode_swtch", "I"),
    ("start_sys_seg", "H"),
    ("kernel_version", "H"),
    ("type_of_loader", "B"),
    ("loadflags", "B"),
    ("setup_move_size", "H"),
    ("code32_start", "I"),
    ("ramdisk_image", "I"),
    ("ramdisk_size", "I"),
    ("bootsect_kludge", "I"),
    ("heap_end_ptr", "H"),
    ("ext_loader_ver", "B"),
    ("ext_loader_type", "B"),
    ("cmd_line_ptr", "I"),
    ("initrd_addr_max", "I"),
    ("kernel_alignment", "I"),
    ("relocatable_kernel", "B"),
    ("min_alignment", "B"),
    ("xloadflags", "H"),
    ("cmdline_size", "I"),
    ("hardware_subarch", "I"),
    ("hardware_subarch_data", "Q"),
    ("payload_offset", "I"),
    ("payload_length", "I"),
    ("setup_data", "Q"),
    ("pref_address", "Q"),
    ("init_size", "I"),
    ("handover_offset", "I"),
    ("kernel_info_offset", "I"),
)
E820_MAX_ENTRIES_ZEROPAGE: Final = 128
# struct boot_params, packed, to the end of e820_table: the members before the header as
# padding of their sizes (bootparam.h), the header, then what follows it.
BOOT_PARAMS: Final = _layout(
    "struct boot_params",
    "<",
    ("screen_info", "64x"),
    ("apm_bios_info", "20x"),
    ("_pad2", "4x"),
    ("tboot_addr", "Q"),
    ("ist_info", "16x"),
    ("acpi_rsdp_addr", "Q"),
    ("_pad3", "8x"),
    ("hd0_info", "16x"),
    ("hd1_info", "16x"),
    ("sys_desc_table", "16x"),
    ("olpc_ofw_header", "16x"),
    ("ext_ramdisk_image", "I"),
    ("ext_ramdisk_size", "I"),
    ("ext_cmd_line_ptr", "I"),
    ("_pad4", "112x"),
    ("cc_blob_address", "I"),
    ("edid_info", "128x"),
    ("efi_info", "32x"),
    ("alt_mem_k", "I"),
    ("scratch", "I"),
    ("e820_entries", "B"),
    ("eddbuf_entries", "B"),
    ("edd_mbr_sig_buf_entries", "B"),
    ("kbd_status", "B"),
    ("secure_boot", "B"),
    ("_pad5", "2x"),
    ("sentinel", "B"),
    ("_pad6", "1x"),
    ("hdr", f"{SETUP_HEADER.size}s"),
    ("_pad7", f"{0x290 - SETUP_HEADER_OFFSET - SETUP_HEADER.size}x"),
    ("edd_mbr_sig_buffer", "64s"),
    ("e820_table", f"{E820_MAX_ENTRIES_ZEROPAGE * E820_ENTRY.size}s"),
)
BOOT_PARAMS_SIZE: Final = 4096


def bp_offset(name: str) -> int:
    """A field's offset in the zero page: boot_params' own, or the setup header's (which is
    also its offset in a bzImage file)."""
    if name in dict(SETUP_HEADER.fields):
        return SETUP_HEADER_OFFSET + SETUP_HEADER.offset(name)
    return BOOT_PARAMS.offset(name)


def bp_size(name: str) -> int:
    if name in dict(SETUP_HEADER.fields):
        return SETUP_HEADER.field_size(name)
    return BOOT_PARAMS.field_size(name)


def bp_read(data: bytes | bytearray, name: str) -> int:
    at, size = bp_offset(name), bp_size(name)
    return int.from_bytes(data[at : at + size], "little")


def bp_write(data: bytearray, name: str, value: int) -> None:
    at, size = bp_offset(name), bp_size(name)
    data[at : at + size] = value.to_bytes(size, "little")


HDRS: Final = b"HdrS"
BOOT_FLAG: Final = 0xAA55
LOADED_HIGH: Final = 0x01
CAN_USE_HEAP: Final = 0x80
SETUP_SECTOR: Final = 512


def setup_size(image: bytes | bytearray) -> int:
    """The real-mode setup's size in a bzImage: (setup_sects, 0 meaning 4, + 1) sectors."""
    return ((bp_read(image, "setup_sects") or 4) + 1) * SETUP_SECTOR


# ---- The ACPI table-loader (bios-linker-loader.c) --------------------------------------------
BIOS_LINKER_LOADER_FILESZ: Final = 56
LOADER_COMMAND_ALLOCATE: Final = 1
LOADER_COMMAND_ADD_POINTER: Final = 2
LOADER_COMMAND_ADD_CHECKSUM: Final = 3
LOADER_COMMAND_WRITE_POINTER: Final = 4
LOADER_ALLOC_ZONE_HIGH: Final = 1
LOADER_ALLOC_ZONE_FSEG: Final = 2
LOADER_ENTRY_SIZE: Final = 128
_NAME = f"{BIOS_LINKER_LOADER_FILESZ}s"
# Each command: the u32 command, then its union member; the rest of the 128 bytes is padding.
LOADER_COMMANDS: Final[Mapping[int, Layout]] = {
    LOADER_COMMAND_ALLOCATE: _layout(
        "BiosLinkerLoaderEntry.alloc",
        "<",
        ("command", "I"),
        ("file", _NAME),
        ("align", "I"),
        ("zone", "B"),
    ),
    LOADER_COMMAND_ADD_POINTER: _layout(
        "BiosLinkerLoaderEntry.pointer",
        "<",
        ("command", "I"),
        ("dest_file", _NAME),
        ("src_file", _NAME),
        ("offset", "I"),
        ("size", "B"),
    ),
    LOADER_COMMAND_ADD_CHECKSUM: _layout(
        "BiosLinkerLoaderEntry.cksum",
        "<",
        ("command", "I"),
        ("file", _NAME),
        ("offset", "I"),
        ("start", "I"),
        ("length", "I"),
    ),
    LOADER_COMMAND_WRITE_POINTER: _layout(
        "BiosLinkerLoaderEntry.wr_pointer",
        "<",
        ("command", "I"),
        ("dest_file", _NAME),
        ("src_file", _NAME),
        ("dst_offset", "I"),
        ("src_offset", "I"),
        ("size", "B"),
    ),
}


def loader_command(command: int, **fields: int | str) -> bytes:
    """One 128-byte table-loader command; names are str, NUL-padded to 56 bytes."""
    layout = LOADER_COMMANDS[command]
    values = {k: v.encode() if isinstance(v, str) else v for k, v in fields.items()}
    return layout.pack(command=command, **values).ljust(LOADER_ENTRY_SIZE, b"\0")


# ---- qemu-boot-time events, the 16550, PCI ---------------------------------------------------
PORT_BOOT_EVENT: Final = 0xF5
BOOT_EVENT_FW_START: Final = 1
BOOT_EVENT_FW_DO_BOOT: Final = 5
COM1: Final = 0x3F8
PCI_CONFIG_ADDRESS: Final = 0xCF8
PCI_CONFIG_DATA: Final = 0xCFC


def pci_address(bus: int, device: int, function: int, register: int = 0) -> int:
    """A configuration mechanism #1 address, enable bit set."""
    return 0x8000_0000 | bus << 16 | device << 11 | function << 8 | register


PCI_I440FX_HOST: Final = pci_address(0, 0, 0)
I440FX_ID: Final = 0x1237_8086  # device 0x1237, vendor Intel
Q35_MCH_ID: Final = 0x29C0_8086
PIIX4_PM: Final = pci_address(0, 1, 3)
PIIX4_PM_ID: Final = 0x7113_8086
PIIX4_PMBA: Final = 0x40
PIIX4_PMREGMISC: Final = 0x80
ICH9_LPC: Final = pci_address(0, 31, 0)
ICH9_LPC_ID: Final = 0x2918_8086
ICH9_PMBASE: Final = 0x40
ICH9_ACPI_CNTL: Final = 0x44
ICH9_ACPI_EN: Final = 0x80


def e820_pack(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """fw_cfg "etc/e820" (or a zero page's e820_table) from (addr, size, type) entries."""
    return b"".join(E820_ENTRY.pack(addr=a, size=s, type=t) for a, s, t in entries)


def e820_unpack(data: bytes, count: int | None = None) -> list[tuple[int, int, int]]:
    n = len(data) // E820_ENTRY.size if count is None else count
    return [struct.unpack_from(E820_ENTRY.format, data, E820_ENTRY.size * i) for i in range(n)]
