"""The interfaces the firmware speaks, transcribed once from their specifications.

Every structure the firmware reads or writes is a :class:`Struct` of named fields, and every
number an interface defines is a constant here. The assembler injects them all (with the
addresses of firmware/layout.py) as ``.equ``, so the assembly says ``[edi + HVM_SI_RSDP_PADDR]``,
never ``[edi + 32]``; the builder reads bzImages with the same names.

Naming: for a struct with prefix ``P``, ``P_FIELD`` is the byte offset of ``field`` and
``SIZEOF_P`` the size of the whole struct (``SIZEOF_P_FIELD``: the size of one field). Offsets
are written out as the specification's tables give them; ``Struct`` checks that they lie
inside the struct and that a struct declared ``packed`` has neither gaps nor overlaps.

The tests hold their own, independent transcription (tests/spec.py, built from struct format
strings) against this one, and against pvhcheck's C headers through a compiled probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int  # bytes: 1, 2, 4 or 8 for a number, more for an array or a nested struct
    endian: Literal["little", "big"] = "little"


@dataclass(frozen=True)
class Struct:
    """A C structure of an interface: its C name, the prefix of its assembler constants,
    its size, its fields (only those the project uses, for a ``sparse`` one)."""

    c_name: str
    prefix: str
    size: int
    fields: tuple[Field, ...]
    spec: str  # where the layout is defined
    packed: bool = True  # fields tile the struct exactly, in order (else: a sparse subset)

    def __post_init__(self) -> None:
        at = 0
        for f in self.fields:
            if f.offset < 0 or f.offset + f.size > self.size:
                raise AssertionError(f"abi: {self.c_name}.{f.name} lies outside the struct")
            if self.packed and f.offset != at:
                raise AssertionError(f"abi: {self.c_name}.{f.name} at {f.offset}, expected {at}")
            at = f.offset + f.size
        if self.packed and at != self.size:
            raise AssertionError(f"abi: {self.c_name} fields end at {at}, not {self.size}")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.c_name} has no field {name!r}")

    def offset(self, name: str) -> int:
        return self.field(name).offset

    def end(self, name: str) -> int:
        """The offset just past field `name`."""
        f = self.field(name)
        return f.offset + f.size

    def read(self, data: bytes, name: str, base: int = 0) -> int:
        """The number in field `name` of the struct at data[base:]."""
        f = self.field(name)
        return int.from_bytes(data[base + f.offset : base + f.offset + f.size], f.endian)

    def constants(self) -> dict[str, int]:
        out = {f"SIZEOF_{self.prefix}": self.size}
        for f in self.fields:
            name = f"{self.prefix}_{f.name.upper()}"
            out[name] = f.offset
            out[f"SIZEOF_{name}"] = f.size
        return out


_FieldSpec = tuple[str, int, int] | tuple[str, int, int, Literal["big"]]


def _fields(*fields: _FieldSpec) -> tuple[Field, ...]:
    return tuple(Field(*f) for f in fields)


# --- fw_cfg: QEMU docs/specs/fw_cfg.rst, include/standard-headers/linux/qemu_fw_cfg.h --------
PORT_FW_CFG_SEL: Final = 0x510  # selector (16-bit write)
PORT_FW_CFG_DATA: Final = 0x511  # data (8-bit read)
PORT_FW_CFG_DMA_HI: Final = 0x514  # DMA address, high 32 bits (big-endian)
PORT_FW_CFG_DMA_LO: Final = 0x518  # DMA address, low 32 bits; writing it starts the transfer

FW_CFG_SIGNATURE: Final = 0x00
FW_CFG_ID: Final = 0x01
FW_CFG_RAM_SIZE: Final = 0x03
FW_CFG_NB_CPUS: Final = 0x05
FW_CFG_KERNEL_ADDR: Final = 0x07
FW_CFG_KERNEL_SIZE: Final = 0x08
FW_CFG_KERNEL_CMDLINE: Final = 0x09
FW_CFG_INITRD_ADDR: Final = 0x0A
FW_CFG_INITRD_SIZE: Final = 0x0B
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

FW_CFG_SIGNATURE_QEMU: Final = 0x554D4551  # "QEMU", read as a little-endian u32
FW_CFG_ID_TRADITIONAL: Final = 0x01  # FW_CFG_ID bit 0: the I/O-port interface
FW_CFG_ID_DMA: Final = 0x02  # FW_CFG_ID bit 1: the DMA interface

FW_CFG_DMA_CTL_ERROR: Final = 0x01
FW_CFG_DMA_CTL_READ: Final = 0x02
FW_CFG_DMA_CTL_SKIP: Final = 0x04
FW_CFG_DMA_CTL_SELECT: Final = 0x08
FW_CFG_DMA_CTL_WRITE: Final = 0x10
FW_CFG_DMA_CTL_SELECT_SHIFT: Final = 16  # control: the item's key in the upper 16 bits

FW_CFG_DMA: Final = Struct(
    "struct FWCfgDmaAccess",
    "FW_CFG_DMA",
    16,
    _fields(("control", 0, 4, "big"), ("length", 4, 4, "big"), ("address", 8, 8, "big")),
    "qemu_fw_cfg.h: struct fw_cfg_dma_access",
)
FW_CFG_FILE: Final = Struct(
    "struct FWCfgFile",
    "FW_CFG_FILE",
    64,
    _fields(("size", 0, 4, "big"), ("select", 4, 2, "big"), ("reserved", 6, 2), ("name", 8, 56)),
    "qemu_fw_cfg.h: struct fw_cfg_file (name NUL-terminated, FW_CFG_MAX_FILE_PATH 56)",
)
FW_CFG_FILES: Final = Struct(
    "struct FWCfgFiles",
    "FW_CFG_FILES",
    4,
    _fields(("count", 0, 4, "big")),
    "qemu_fw_cfg.h: the file directory, a big-endian count then struct fw_cfg_file f[count]",
)

# --- The e820 memory map: fw_cfg "etc/e820" (QEMU hw/i386/e820_memory_layout.h) and the zero
# page's e820_table (arch/x86/include/uapi/asm/setup_data.h, struct boot_e820_entry) -----------
E820_RAM: Final = 1
E820_RESERVED: Final = 2
E820_ACPI: Final = 3
E820_NVS: Final = 4
E820_UNUSABLE: Final = 5

E820_ENTRY: Final = Struct(
    "struct e820_entry",
    "E820",
    20,
    _fields(("addr", 0, 8), ("size", 8, 8), ("type", 16, 4)),
    "QEMU struct e820_entry, Linux struct boot_e820_entry: packed, little-endian",
)

# --- PVH: Xen xen/include/public/arch-x86/hvm/start_info.h -----------------------------------
XEN_ELFNOTE_PHYS32_ENTRY: Final = 18
HVM_START_MAGIC: Final = 0x336EC578  # XEN_HVM_START_MAGIC_VALUE
HVM_START_VERSION: Final = 1  # with memmap_paddr and memmap_entries

HVM_START_INFO: Final = Struct(
    "struct hvm_start_info",
    "HVM_SI",
    56,
    _fields(
        ("magic", 0, 4),
        ("version", 4, 4),
        ("flags", 8, 4),
        ("nr_modules", 12, 4),
        ("modlist_paddr", 16, 8),
        ("cmdline_paddr", 24, 8),
        ("rsdp_paddr", 32, 8),
        ("memmap_paddr", 40, 8),
        ("memmap_entries", 48, 4),
        ("reserved", 52, 4),
    ),
    "start_info.h: struct hvm_start_info (version 1)",
)
HVM_MODLIST_ENTRY: Final = Struct(
    "struct hvm_modlist_entry",
    "HVM_MOD",
    32,
    _fields(("paddr", 0, 8), ("size", 8, 8), ("cmdline_paddr", 16, 8), ("reserved", 24, 8)),
    "start_info.h: struct hvm_modlist_entry",
)
HVM_MEMMAP_TABLE_ENTRY: Final = Struct(
    "struct hvm_memmap_table_entry",
    "HVM_MEMMAP",
    24,
    _fields(("addr", 0, 8), ("size", 8, 8), ("type", 16, 4), ("reserved", 20, 4)),
    "start_info.h: struct hvm_memmap_table_entry (types as e820's)",
)

# --- The Linux boot protocol: Documentation/arch/x86/boot.rst, zero-page.rst; struct
# boot_params and struct setup_header in arch/x86/include/uapi/asm/bootparam.h. Offsets are
# the zero page's, which are also the bzImage file's for the setup header (at 0x1f1) ----------
HDRS_MAGIC: Final = 0x53726448  # setup_header.header: "HdrS"
BOOT_FLAG_MAGIC: Final = 0xAA55  # setup_header.boot_flag
LOADED_HIGH: Final = 0x01  # loadflags: the protected-mode code is loaded at 0x100000
CAN_USE_HEAP: Final = 0x80  # loadflags: heap_end_ptr is valid
E820_MAX_ENTRIES_ZEROPAGE: Final = 128
SETUP_SECTOR_SIZE: Final = 512
SETUP_SECTS_DEFAULT: Final = 4  # setup_sects 0 means 4

BOOT_PARAMS: Final = Struct(
    "struct boot_params",
    "BP",
    4096,
    _fields(
        ("acpi_rsdp_addr", 0x070, 8),
        ("e820_entries", 0x1E8, 1),
        ("hdr", 0x1F1, 0x7B),  # struct setup_header, to kernel_info_offset's end (0x26c)
        ("setup_sects", 0x1F1, 1),
        ("root_flags", 0x1F2, 2),
        ("syssize", 0x1F4, 4),
        ("ram_size", 0x1F8, 2),
        ("vid_mode", 0x1FA, 2),
        ("root_dev", 0x1FC, 2),
        ("boot_flag", 0x1FE, 2),
        ("jump", 0x200, 2),  # jmp short: the header ends at 0x202 + its rel8 (byte 0x201)
        ("header", 0x202, 4),
        ("version", 0x206, 2),
        ("realmode_swtch", 0x208, 4),
        ("start_sys_seg", 0x20C, 2),
        ("kernel_version", 0x20E, 2),
        ("type_of_loader", 0x210, 1),
        ("loadflags", 0x211, 1),
        ("setup_move_size", 0x212, 2),
        ("code32_start", 0x214, 4),
        ("ramdisk_image", 0x218, 4),
        ("ramdisk_size", 0x21C, 4),
        ("bootsect_kludge", 0x220, 4),
        ("heap_end_ptr", 0x224, 2),
        ("ext_loader_ver", 0x226, 1),
        ("ext_loader_type", 0x227, 1),
        ("cmd_line_ptr", 0x228, 4),
        ("initrd_addr_max", 0x22C, 4),
        ("kernel_alignment", 0x230, 4),
        ("relocatable_kernel", 0x234, 1),
        ("min_alignment", 0x235, 1),
        ("xloadflags", 0x236, 2),
        ("cmdline_size", 0x238, 4),
        ("hardware_subarch", 0x23C, 4),
        ("hardware_subarch_data", 0x240, 8),
        ("payload_offset", 0x248, 4),
        ("payload_length", 0x24C, 4),
        ("setup_data", 0x250, 8),
        ("pref_address", 0x258, 8),
        ("init_size", 0x260, 4),
        ("handover_offset", 0x264, 4),
        ("kernel_info_offset", 0x268, 4),
        ("edd_mbr_sig_buffer", 0x290, 64),  # the first field after the header's _pad7
        ("e820_table", 0x2D0, E820_MAX_ENTRIES_ZEROPAGE * 20),
    ),
    "bootparam.h: struct boot_params, struct setup_header; the fields this project uses",
    packed=False,
)

# --- The ACPI table-loader: QEMU hw/acpi/bios-linker-loader.c, BiosLinkerLoaderEntry ---------
LOADER_ALLOCATE: Final = 1  # BIOS_LINKER_LOADER_COMMAND_ALLOCATE
LOADER_ADD_POINTER: Final = 2
LOADER_ADD_CHECKSUM: Final = 3
LOADER_WRITE_POINTER: Final = 4
LOADER_ZONE_HIGH: Final = 1  # BIOS_LINKER_LOADER_ALLOC_ZONE_HIGH: anywhere in RAM below 4 GiB
LOADER_ZONE_FSEG: Final = 2  # ..._ZONE_FSEG: the 0xE0000-0xFFFFF BIOS area (a legacy scan)
LOADER_FILESZ: Final = 56  # BIOS_LINKER_LOADER_FILESZ: a file name, NUL-padded

LOADER_ENTRY: Final = Struct(
    "BiosLinkerLoaderEntry",
    "LOADER",
    128,
    _fields(
        ("command", 0, 4),
        ("alloc_file", 4, LOADER_FILESZ),
        ("alloc_align", 60, 4),
        ("alloc_zone", 64, 1),
        ("pointer_dest_file", 4, LOADER_FILESZ),
        ("pointer_src_file", 60, LOADER_FILESZ),
        ("pointer_offset", 116, 4),
        ("pointer_size", 120, 1),
        ("cksum_file", 4, LOADER_FILESZ),
        ("cksum_offset", 60, 4),
        ("cksum_start", 64, 4),
        ("cksum_length", 68, 4),
        ("wr_pointer_dest_file", 4, LOADER_FILESZ),
        ("wr_pointer_src_file", 60, LOADER_FILESZ),
        ("wr_pointer_dst_offset", 116, 4),
        ("wr_pointer_src_offset", 120, 4),
        ("wr_pointer_size", 124, 1),
    ),
    "bios-linker-loader.c: struct BiosLinkerLoaderEntry, a command and a union of its bodies",
    packed=False,
)

# --- qemu-boot-time's firmware events (the NEMU method; the founding document) ---------------
PORT_BOOT_EVENT: Final = 0xF5
BOOT_EVENT_FW_START: Final = 1
BOOT_EVENT_FW_DO_BOOT: Final = 5

# --- After a failed boot: QEMU's pvpanic (docs/specs/pvpanic.rst), the 8254 PIT -----------------
PORT_PVPANIC: Final = 0x505  # ISA pvpanic: reads the events it supports (0xff: no device)
PVPANIC_PANICKED: Final = 0x01  # the "guest panicked" event, written to the same port
BOOT_FAIL_WAIT_NEVER: Final = 0xFFFF_FFFF  # etc/boot-fail-wait: -1, no reboot (QEMU's default)
PORT_PIT_CH0: Final = 0x40  # counter 0
PORT_PIT_CMD: Final = 0x43  # mode/command register
PIT_CMD_CH0_RATE: Final = 0x34  # counter 0, low byte then high byte, mode 2 (rate), binary
PIT_CMD_LATCH_CH0: Final = 0x00  # counter 0: latch its count for reading
PIT_HZ: Final = 1_193_182  # the counters' input clock

# --- A 16550 UART at COM1 -------------------------------------------------------------------
PORT_COM1: Final = 0x3F8  # transmit holding register
PORT_COM1_LSR: Final = 0x3FD  # line status register
LSR_THRE: Final = 0x20  # transmit holding register empty

# --- PCI configuration mechanism #1, and the chipsets' ACPI PM blocks -------------------------
PCI_CONFIG_ADDR: Final = 0xCF8
PCI_CONFIG_DATA: Final = 0xCFC
PCI_CONFIG_ENABLE: Final = 0x8000_0000
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
PCI_IO_SPACE: Final = 0x01  # bit 0 of an I/O base register (hardwired to 1)
PCI_HOST_BRIDGE: Final = 0x8000_0000  # enable | bus 0, device 0, function 0
I440FX_ID: Final = 0x1237_8086  # -M pc: the i440FX PMC
Q35_MCH_ID: Final = 0x29C0_8086  # -M q35: the Q35 MCH
# PAM: each nibble maps a BIOS area to ROM/PCI (0) or RAM, readable (RE), writable (WE).
# PAM0's high nibble is the F segment, 0xF0000-0xFFFFF (the low nibble is reserved).
I440FX_PAM0: Final = 0x59
Q35_PAM0: Final = 0x90
PAM_RE: Final = 0x1
PAM_WE: Final = 0x2
# Q35 PCIEXBAR (u64 at 0x60): base in bits 35:28, length in bits 2:1 (0: 256 MiB), enable bit 0.
Q35_PCIEXBAR: Final = 0x60
PCIEXBAR_EN: Final = 0x1

# --- SMBIOS (DMTF DSP0134; QEMU hw/smbios/smbios.c, include/hw/firmware/smbios.h) ------------
SMBIOS21_ANCHOR: Final = 0x5F4D_535F  # "_SM_", little-endian
SMBIOS21_INTERMEDIATE: Final = 0x494D_445F  # "_DMI", then SMBIOS_ANCHOR_END ("_")
SMBIOS30_ANCHOR: Final = 0x334D_535F  # "_SM3", then SMBIOS_ANCHOR_END ("_")
SMBIOS_ANCHOR_END: Final = 0x5F
SMBIOS_TYPE_BIOS: Final = 0  # BIOS information
SMBIOS_TYPE_END: Final = 127  # end of table

SMBIOS21_EP: Final = Struct(
    "struct smbios_21_entry_point",
    "SMBIOS21",
    31,
    _fields(
        ("anchor_string", 0, 4),
        ("checksum", 4, 1),
        ("length", 5, 1),
        ("smbios_major_version", 6, 1),
        ("smbios_minor_version", 7, 1),
        ("max_structure_size", 8, 2),
        ("entry_point_revision", 10, 1),
        ("formatted_area", 11, 5),
        ("intermediate_anchor_string", 16, 5),
        ("intermediate_checksum", 21, 1),
        ("structure_table_length", 22, 2),
        ("structure_table_address", 24, 4),
        ("number_of_structures", 28, 2),
        ("smbios_bcd_revision", 30, 1),
    ),
    "smbios.h: struct smbios_21_entry_point (packed); QEMU leaves the checksums and the address 0",
)
SMBIOS30_EP: Final = Struct(
    "struct smbios_30_entry_point",
    "SMBIOS30",
    24,
    _fields(
        ("anchor_string", 0, 5),
        ("checksum", 5, 1),
        ("length", 6, 1),
        ("smbios_major_version", 7, 1),
        ("smbios_minor_version", 8, 1),
        ("smbios_doc_rev", 9, 1),
        ("entry_point_revision", 10, 1),
        ("reserved", 11, 1),
        ("structure_table_max_size", 12, 4),
        ("structure_table_address", 16, 8),
    ),
    "smbios.h: struct smbios_30_entry_point (packed)",
)
SMBIOS_HEADER: Final = Struct(
    "struct smbios_structure_header",
    "SMBIOS_HDR",
    4,
    _fields(("type", 0, 1), ("length", 1, 1), ("handle", 2, 2)),
    "smbios.h: every structure's header: its formatted length, then strings to a double NUL",
)
SMBIOS_TYPE_0: Final = Struct(
    "struct smbios_type_0",
    "SMBIOS0",
    24,
    _fields(
        ("header", 0, 4),
        ("vendor_str", 4, 1),
        ("bios_version_str", 5, 1),
        ("bios_starting_address_segment", 6, 2),
        ("bios_release_date_str", 8, 1),
        ("bios_rom_size", 9, 1),
        ("bios_characteristics", 10, 8),
        ("bios_characteristics_extension_bytes", 18, 2),
        ("system_bios_major_release", 20, 1),
        ("system_bios_minor_release", 21, 1),
        ("embedded_controller_major_release", 22, 1),
        ("embedded_controller_minor_release", 23, 1),
    ),
    "smbios.h: struct smbios_type_0 (SMBIOS 2.4+ layout)",
)

# --- The MP table: Intel MultiProcessor Specification 1.4, chapter 4 (Linux
# arch/x86/include/asm/mpspec_def.h) ---------------------------------------------------------
MP_FLOATING_SIGNATURE: Final = 0x5F50_4D5F  # "_MP_"
MP_CONFIG_SIGNATURE: Final = 0x504D_4350  # "PCMP"
MP_SPEC_1_4: Final = 4
MP_PROCESSOR: Final = 0  # entry types
MP_BUS: Final = 1
MP_IOAPIC: Final = 2
MP_INTSRC: Final = 3
MP_LINTSRC: Final = 4
MP_CPU_ENABLED: Final = 0x01  # processor flags
MP_CPU_BSP: Final = 0x02
MP_IOAPIC_USABLE: Final = 0x01
MP_INT: Final = 0  # interrupt types
MP_NMI: Final = 1
MP_EXTINT: Final = 3
LAPIC_DEFAULT_BASE: Final = 0xFEE0_0000
IOAPIC_DEFAULT_BASE: Final = 0xFEC0_0000
LAPIC_VERSION: Final = 0x14  # an integrated APIC, as QEMU's (and qboot's table)
IOAPIC_VERSION: Final = 0x11  # as SeaBIOS's table (QEMU's userspace IOAPIC reads 0x20)
ISA_IRQS: Final = 16
CPUID_1: Final = 1  # EAX: the signature, EDX: the feature flags

MP_FLOATING: Final = Struct(
    "struct mpf_intel",
    "MPF",
    16,
    _fields(
        ("signature", 0, 4),
        ("physptr", 4, 4),
        ("length", 8, 1),  # in 16-byte units: 1
        ("specification", 9, 1),
        ("checksum", 10, 1),
        ("feature1", 11, 1),  # 0: a configuration table follows
        ("feature2", 12, 1),
        ("feature3", 13, 3),
    ),
    "MPS 1.4 4.1: the floating pointer, 16-byte aligned where Linux scans",
)
MP_CONFIG: Final = Struct(
    "struct mpc_table",
    "MPC",
    44,
    _fields(
        ("signature", 0, 4),
        ("length", 4, 2),  # the base table: this header and every entry
        ("spec", 6, 1),
        ("checksum", 7, 1),
        ("oem", 8, 8),
        ("productid", 16, 12),
        ("oemptr", 28, 4),
        ("oemsize", 32, 2),
        ("oemcount", 34, 2),  # the entries
        ("lapic", 36, 4),
        ("ext_length", 40, 2),
        ("ext_checksum", 42, 1),
        ("reserved", 43, 1),
    ),
    "MPS 1.4 4.2: the configuration table's header",
)
MP_CPU: Final = Struct(
    "struct mpc_cpu",
    "MPC_CPU",
    20,
    _fields(
        ("type", 0, 1),
        ("apicid", 1, 1),
        ("apicver", 2, 1),
        ("cpuflag", 3, 1),
        ("cpufeature", 4, 4),  # CPUID.1:EAX, the signature
        ("featureflag", 8, 4),  # CPUID.1:EDX
        ("reserved", 12, 8),
    ),
    "MPS 1.4 4.3.1: a processor entry",
)
MP_BUS_ENTRY: Final = Struct(
    "struct mpc_bus",
    "MPC_BUS",
    8,
    _fields(("type", 0, 1), ("busid", 1, 1), ("bustype", 2, 6)),
    "MPS 1.4 4.3.2: a bus entry (bus type: 6 characters, space-padded)",
)
MP_IOAPIC_ENTRY: Final = Struct(
    "struct mpc_ioapic",
    "MPC_IOAPIC",
    8,
    _fields(
        ("type", 0, 1), ("apicid", 1, 1), ("apicver", 2, 1), ("flags", 3, 1), ("apicaddr", 4, 4)
    ),
    "MPS 1.4 4.3.3: an I/O APIC entry",
)
MP_INTSRC_ENTRY: Final = Struct(
    "struct mpc_intsrc",
    "MPC_INT",
    8,
    _fields(
        ("type", 0, 1),
        ("irqtype", 1, 1),
        ("irqflag", 2, 2),  # polarity and trigger: 0, as the bus defines them
        ("srcbus", 4, 1),
        ("srcbusirq", 5, 1),
        ("dstapic", 6, 1),  # an I/O APIC's id (type 3) or a local APIC's (type 4; 0xff: all)
        ("dstirq", 7, 1),  # its pin, or LINTIN#
    ),
    "MPS 1.4 4.3.4/4.3.5: an I/O or a local interrupt assignment entry (struct mpc_lintsrc alike)",
)

# --- MTRRs (Intel SDM vol. 3, 12.11): CPUID and the MSRs -------------------------------------
CPUID_1_EDX_MSR: Final = 1 << 5  # CPUID.1:EDX: rdmsr/wrmsr
CPUID_1_EDX_MTRR: Final = 1 << 12  # CPUID.1:EDX: MTRRs
CPUID_EXT_MAX: Final = 0x8000_0000  # EAX: the highest extended leaf
CPUID_ADDRESS_SIZES: Final = 0x8000_0008  # EAX[7:0]: the physical address width
MSR_MTRRCAP: Final = 0xFE  # [7:0] VCNT: variable ranges; bit 8: fixed ranges
MTRRCAP_FIX: Final = 0x100
MSR_MTRR_DEF_TYPE: Final = 0x2FF  # [7:0] default type, bit 10 FE (fixed ranges), bit 11 E
MTRR_DEF_TYPE_FE: Final = 0x400
MTRR_DEF_TYPE_E: Final = 0x800
MSR_MTRR_PHYSBASE0: Final = 0x200  # pair n: PhysBase 0x200 + 2n (base | type), PhysMask + 1
MTRR_PHYSMASK_VALID: Final = 0x800
MSR_MTRR_FIX_64K_00000: Final = 0x250  # one type byte for each 64 KiB of 0-0x7FFFF
MSR_MTRR_FIX_16K_80000: Final = 0x258  # ... each 16 KiB of 0x80000-0x9FFFF
MSR_MTRR_FIX_16K_A0000: Final = 0x259  # ... 0xA0000-0xBFFFF
MSR_MTRR_FIX_4K_C0000: Final = 0x268  # ... each 4 KiB, 0x268-0x26F for 0xC0000-0xFFFFF
MTRR_FIX_4K_MSRS: Final = 8
MTRR_TYPE_UC: Final = 0
MTRR_TYPE_WP: Final = 5
MTRR_TYPE_WB: Final = 6

STRUCTS: Final = (
    FW_CFG_DMA,
    FW_CFG_FILE,
    FW_CFG_FILES,
    E820_ENTRY,
    HVM_START_INFO,
    HVM_MODLIST_ENTRY,
    HVM_MEMMAP_TABLE_ENTRY,
    BOOT_PARAMS,
    LOADER_ENTRY,
    SMBIOS21_EP,
    SMBIOS30_EP,
    SMBIOS_HEADER,
    SMBIOS_TYPE_0,
    MP_FLOATING,
    MP_CONFIG,
    MP_CPU,
    MP_BUS_ENTRY,
    MP_IOAPIC_ENTRY,
    MP_INTSRC_ENTRY,
)


def constants() -> dict[str, int]:
    """Every number of this module and every struct's offsets and sizes, by assembler name."""
    out = {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
    }
    for s in STRUCTS:
        for name, value in s.constants().items():
            if name in out:
                raise AssertionError(f"abi: {name} is defined twice")
            out[name] = value
    return out
