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
        """The struct's bytes; absent fields are 0 (bytes fields: NUL-padded)."""
        formats = dict(self.fields)
        return struct.pack(
            self.format,
            *(values.get(n, b"" if formats[n].endswith("s") else 0) for n in self.names()),
        )


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


# ---- SMBIOS (DSP0134; QEMU include/hw/firmware/smbios.h) ----------------------------------------
SMBIOS21_EP: Final = _layout(
    "struct smbios_21_entry_point",
    "<",
    ("anchor_string", "4s"),
    ("checksum", "B"),
    ("length", "B"),
    ("smbios_major_version", "B"),
    ("smbios_minor_version", "B"),
    ("max_structure_size", "H"),
    ("entry_point_revision", "B"),
    ("formatted_area", "5s"),
    ("intermediate_anchor_string", "5s"),
    ("intermediate_checksum", "B"),
    ("structure_table_length", "H"),
    ("structure_table_address", "I"),
    ("number_of_structures", "H"),
    ("smbios_bcd_revision", "B"),
)
SMBIOS30_EP: Final = _layout(
    "struct smbios_30_entry_point",
    "<",
    ("anchor_string", "5s"),
    ("checksum", "B"),
    ("length", "B"),
    ("smbios_major_version", "B"),
    ("smbios_minor_version", "B"),
    ("smbios_doc_rev", "B"),
    ("entry_point_revision", "B"),
    ("reserved", "B"),
    ("structure_table_max_size", "I"),
    ("structure_table_address", "Q"),
)
SMBIOS_HEADER: Final = _layout(
    "struct smbios_structure_header", "<", ("type", "B"), ("length", "B"), ("handle", "H")
)
SMBIOS_TYPE_0: Final = _layout(
    "struct smbios_type_0",
    "<",
    ("header", "I"),
    ("vendor_str", "B"),
    ("bios_version_str", "B"),
    ("bios_starting_address_segment", "H"),
    ("bios_release_date_str", "B"),
    ("bios_rom_size", "B"),
    ("bios_characteristics", "Q"),
    ("bios_characteristics_extension_bytes", "H"),
    ("system_bios_major_release", "B"),
    ("system_bios_minor_release", "B"),
    ("embedded_controller_major_release", "B"),
    ("embedded_controller_minor_release", "B"),
)
SMBIOS21_ANCHOR: Final = b"_SM_"
SMBIOS21_INTERMEDIATE: Final = b"_DMI_"
SMBIOS30_ANCHOR: Final = b"_SM3_"


def smbios_structures(tables: bytes) -> list[tuple[int, bytes]]:
    """(type, the whole structure with its strings) of each structure, as Linux's dmi walk
    reads them: the formatted length from the header, then up to a double NUL."""
    out, at = [], 0
    while at + SMBIOS_HEADER.size <= len(tables):
        kind, length = tables[at], tables[at + 1]
        end = tables.index(b"\0\0", at + length) + 2
        out.append((kind, tables[at:end]))
        at = end
        if kind == 127:
            break
    return out


# ---- The MP table (MPS 1.4, chapter 4; Linux asm/mpspec_def.h) ------------------------------
MP_FLOATING: Final = _layout(
    "struct mpf_intel",
    "<",
    ("signature", "4s"),
    ("physptr", "I"),
    ("length", "B"),
    ("specification", "B"),
    ("checksum", "B"),
    ("feature1", "B"),
    ("feature2", "B"),
    ("feature3", "3s"),
)
MP_CONFIG: Final = _layout(
    "struct mpc_table",
    "<",
    ("signature", "4s"),
    ("length", "H"),
    ("spec", "B"),
    ("checksum", "B"),
    ("oem", "8s"),
    ("productid", "12s"),
    ("oemptr", "I"),
    ("oemsize", "H"),
    ("oemcount", "H"),
    ("lapic", "I"),
    ("ext_length", "H"),
    ("ext_checksum", "B"),
    ("reserved", "B"),
)
MP_CPU: Final = _layout(
    "struct mpc_cpu",
    "<",
    ("type", "B"),
    ("apicid", "B"),
    ("apicver", "B"),
    ("cpuflag", "B"),
    ("cpufeature", "I"),
    ("featureflag", "I"),
    ("reserved", "8s"),
)
MP_BUS: Final = _layout("struct mpc_bus", "<", ("type", "B"), ("busid", "B"), ("bustype", "6s"))
MP_IOAPIC: Final = _layout(
    "struct mpc_ioapic",
    "<",
    ("type", "B"),
    ("apicid", "B"),
    ("apicver", "B"),
    ("flags", "B"),
    ("apicaddr", "I"),
)
MP_INTSRC: Final = _layout(
    "struct mpc_intsrc",
    "<",
    ("type", "B"),
    ("irqtype", "B"),
    ("irqflag", "H"),
    ("srcbus", "B"),
    ("srcbusirq", "B"),
    ("dstapic", "B"),
    ("dstirq", "B"),
)
MP_ENTRY_SIZES: Final = {0: MP_CPU.size, 1: MP_BUS.size, 2: MP_IOAPIC.size, 3: 8, 4: 8}
MP_CPU_ENABLED: Final = 1
MP_CPU_BSP: Final = 2
MP_EXTINT: Final = 3
MP_NMI: Final = 1

# ---- MTRRs (Intel SDM vol. 3, 12.11) --------------------------------------------------------
MSR_MTRRCAP: Final = 0xFE
MSR_MTRR_DEF_TYPE: Final = 0x2FF
MSR_MTRR_FIX: Final = (0x250, 0x258, 0x259, *range(0x268, 0x270))
MSR_MTRR_PHYSBASE0: Final = 0x200

# ---- after a failed boot: pvpanic (QEMU docs/specs/pvpanic.rst), the 8254 PIT ---------------
PVPANIC_PORT: Final = 0x505
PVPANIC_EVENT_PANICKED: Final = 1 << 0
PVPANIC_EVENT_CRASH_LOADED: Final = 1 << 1
BOOT_FAIL_WAIT_FOREVER: Final = -1  # etc/boot-fail-wait, a little-endian int32
PIT_COUNTER0: Final = 0x40
PIT_CONTROL: Final = 0x43
PIT_INPUT_HZ: Final = 1_193_182

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


PCI_I440FX_HOST: Final = pci_address(0, 0, 0)  # the host bridge, i440FX's or Q35's
I440FX_PAM0: Final = 0x59  # PAM0: its high nibble maps 0xF0000-0xFFFFF
Q35_PAM0: Final = 0x90
PAM_RE: Final = 1  # the BIOS area reads RAM ...
PAM_WE: Final = 2  # ... writes go to RAM
Q35_PCIEXBAR: Final = 0x60  # u64: base bits 35:28, length bits 2:1 (0: 256 MiB), enable bit 0
PCIEXBAR_EN: Final = 1
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
