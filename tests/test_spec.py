"""The two transcriptions of each interface held against each other: the firmware's
(pvhfw.firmware.abi, field tables the assembler and the builder use) and the tests'
(tests/spec.py, struct formats), and both against pvhcheck's C headers through a compiled
probe (gcc, offsetof and the headers' macros in _Static_assert)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pvhfw.firmware import abi, layout
from tests import spec
from tests.support import need

PVHCHECK = Path(__file__).resolve().parent / "kernels" / "pvhcheck"

# abi struct -> the tests' layout and the tests' name of each field (same name if absent)
STRUCTS: list[tuple[abi.Struct, spec.Layout]] = [
    (abi.FW_CFG_DMA, spec.FW_CFG_DMA_ACCESS),
    (abi.FW_CFG_FILE, spec.FW_CFG_FILE),
    (abi.FW_CFG_FILES, spec.FW_CFG_FILES_COUNT),
    (abi.E820_ENTRY, spec.E820_ENTRY),
    (abi.HVM_START_INFO, spec.HVM_START_INFO),
    (abi.HVM_MODLIST_ENTRY, spec.HVM_MODLIST_ENTRY),
    (abi.HVM_MEMMAP_TABLE_ENTRY, spec.HVM_MEMMAP_TABLE_ENTRY),
    (abi.SMBIOS21_EP, spec.SMBIOS21_EP),
    (abi.SMBIOS30_EP, spec.SMBIOS30_EP),
    (abi.SMBIOS_HEADER, spec.SMBIOS_HEADER),
    (abi.SMBIOS_TYPE_0, spec.SMBIOS_TYPE_0),
    (abi.MP_FLOATING, spec.MP_FLOATING),
    (abi.MP_CONFIG, spec.MP_CONFIG),
    (abi.MP_CPU, spec.MP_CPU),
    (abi.MP_BUS_ENTRY, spec.MP_BUS),
    (abi.MP_IOAPIC_ENTRY, spec.MP_IOAPIC),
    (abi.MP_INTSRC_ENTRY, spec.MP_INTSRC),
]
LOADER_UNIONS = {
    "alloc": spec.LOADER_COMMAND_ALLOCATE,
    "pointer": spec.LOADER_COMMAND_ADD_POINTER,
    "cksum": spec.LOADER_COMMAND_ADD_CHECKSUM,
    "wr_pointer": spec.LOADER_COMMAND_WRITE_POINTER,
}

# Every number abi.py defines, by the tests' name for it.
NUMBERS = {
    "PORT_FW_CFG_SEL": spec.FW_CFG_PORT_SEL,
    "PORT_FW_CFG_DATA": spec.FW_CFG_PORT_DATA,
    "PORT_FW_CFG_DMA_HI": spec.FW_CFG_PORT_DMA,
    "PORT_FW_CFG_DMA_LO": spec.FW_CFG_PORT_DMA + 4,
    "FW_CFG_SIGNATURE": spec.FW_CFG_SIGNATURE,
    "FW_CFG_ID": spec.FW_CFG_ID,
    "FW_CFG_RAM_SIZE": spec.FW_CFG_RAM_SIZE,
    "FW_CFG_NB_CPUS": spec.FW_CFG_NB_CPUS,
    "FW_CFG_KERNEL_ADDR": spec.FW_CFG_KERNEL_ADDR,
    "FW_CFG_KERNEL_SIZE": spec.FW_CFG_KERNEL_SIZE,
    "FW_CFG_KERNEL_CMDLINE": spec.FW_CFG_KERNEL_CMDLINE,
    "FW_CFG_INITRD_ADDR": spec.FW_CFG_INITRD_ADDR,
    "FW_CFG_INITRD_SIZE": spec.FW_CFG_INITRD_SIZE,
    "FW_CFG_KERNEL_ENTRY": spec.FW_CFG_KERNEL_ENTRY,
    "FW_CFG_KERNEL_DATA": spec.FW_CFG_KERNEL_DATA,
    "FW_CFG_INITRD_DATA": spec.FW_CFG_INITRD_DATA,
    "FW_CFG_CMDLINE_ADDR": spec.FW_CFG_CMDLINE_ADDR,
    "FW_CFG_CMDLINE_SIZE": spec.FW_CFG_CMDLINE_SIZE,
    "FW_CFG_CMDLINE_DATA": spec.FW_CFG_CMDLINE_DATA,
    "FW_CFG_SETUP_ADDR": spec.FW_CFG_SETUP_ADDR,
    "FW_CFG_SETUP_SIZE": spec.FW_CFG_SETUP_SIZE,
    "FW_CFG_SETUP_DATA": spec.FW_CFG_SETUP_DATA,
    "FW_CFG_FILE_DIR": spec.FW_CFG_FILE_DIR,
    "FW_CFG_FILE_FIRST": spec.FW_CFG_FILE_FIRST,
    "FW_CFG_SIGNATURE_QEMU": int.from_bytes(spec.FW_CFG_SIGNATURE_BYTES, "little"),
    "FW_CFG_ID_TRADITIONAL": spec.FW_CFG_VERSION,
    "FW_CFG_ID_DMA": spec.FW_CFG_VERSION_DMA,
    "FW_CFG_DMA_CTL_ERROR": spec.FW_CFG_DMA_CTL_ERROR,
    "FW_CFG_DMA_CTL_READ": spec.FW_CFG_DMA_CTL_READ,
    "FW_CFG_DMA_CTL_SKIP": spec.FW_CFG_DMA_CTL_SKIP,
    "FW_CFG_DMA_CTL_SELECT": spec.FW_CFG_DMA_CTL_SELECT,
    "FW_CFG_DMA_CTL_WRITE": spec.FW_CFG_DMA_CTL_WRITE,
    "FW_CFG_DMA_CTL_SELECT_SHIFT": 16,  # fw_cfg.rst: "the upper 16 bits are the key"
    "E820_RAM": spec.E820_RAM,
    "E820_RESERVED": spec.E820_RESERVED,
    "E820_ACPI": spec.E820_ACPI,
    "E820_NVS": spec.E820_NVS,
    "E820_UNUSABLE": spec.E820_UNUSABLE,
    "XEN_ELFNOTE_PHYS32_ENTRY": spec.XEN_ELFNOTE_PHYS32_ENTRY,
    "HVM_START_MAGIC": spec.XEN_HVM_START_MAGIC_VALUE,
    "HVM_START_VERSION": 1,
    "HDRS_MAGIC": int.from_bytes(spec.HDRS, "little"),
    "BOOT_FLAG_MAGIC": spec.BOOT_FLAG,
    "LOADED_HIGH": spec.LOADED_HIGH,
    "CAN_USE_HEAP": spec.CAN_USE_HEAP,
    "E820_MAX_ENTRIES_ZEROPAGE": spec.E820_MAX_ENTRIES_ZEROPAGE,
    "SETUP_SECTOR_SIZE": spec.SETUP_SECTOR,
    "SETUP_SECTS_DEFAULT": spec.setup_size(bytes(0x1F2)) // spec.SETUP_SECTOR - 1,
    "LOADER_ALLOCATE": spec.LOADER_COMMAND_ALLOCATE,
    "LOADER_ADD_POINTER": spec.LOADER_COMMAND_ADD_POINTER,
    "LOADER_ADD_CHECKSUM": spec.LOADER_COMMAND_ADD_CHECKSUM,
    "LOADER_WRITE_POINTER": spec.LOADER_COMMAND_WRITE_POINTER,
    "LOADER_ZONE_HIGH": spec.LOADER_ALLOC_ZONE_HIGH,
    "LOADER_ZONE_FSEG": spec.LOADER_ALLOC_ZONE_FSEG,
    "LOADER_FILESZ": spec.BIOS_LINKER_LOADER_FILESZ,
    "PORT_BOOT_EVENT": spec.PORT_BOOT_EVENT,
    "BOOT_EVENT_FW_START": spec.BOOT_EVENT_FW_START,
    "BOOT_EVENT_FW_DO_BOOT": spec.BOOT_EVENT_FW_DO_BOOT,
    "PORT_COM1": spec.COM1,
    "PORT_COM1_LSR": spec.COM1 + 5,
    "LSR_THRE": 0x20,
    "PCI_CONFIG_ADDR": spec.PCI_CONFIG_ADDRESS,
    "PCI_CONFIG_DATA": spec.PCI_CONFIG_DATA,
    "PCI_CONFIG_ENABLE": spec.pci_address(0, 0, 0),
    "PCI_PIIX4_PM": spec.PIIX4_PM,
    "PCI_ICH9_LPC": spec.ICH9_LPC,
    "PIIX4_PM_ID": spec.PIIX4_PM_ID,
    "ICH9_LPC_ID": spec.ICH9_LPC_ID,
    "PIIX4_PMBA": spec.PIIX4_PMBA,
    "PIIX4_PMREGMISC": spec.PIIX4_PMREGMISC,
    "PIIX4_PMIOSE": 0x01,
    "ICH9_PMBASE": spec.ICH9_PMBASE,
    "ICH9_ACPI_CNTL": spec.ICH9_ACPI_CNTL,
    "ICH9_ACPI_EN": spec.ICH9_ACPI_EN,
    "PCI_IO_SPACE": 0x01,
    "PCI_HOST_BRIDGE": spec.PCI_I440FX_HOST,
    "I440FX_ID": spec.I440FX_ID,
    "Q35_MCH_ID": spec.Q35_MCH_ID,
    "I440FX_PAM0": spec.I440FX_PAM0,
    "Q35_PAM0": spec.Q35_PAM0,
    "PAM_RE": spec.PAM_RE,
    "PAM_WE": spec.PAM_WE,
    "Q35_PCIEXBAR": spec.Q35_PCIEXBAR,
    "PCIEXBAR_EN": spec.PCIEXBAR_EN,
    "SMBIOS21_ANCHOR": int.from_bytes(spec.SMBIOS21_ANCHOR, "little"),
    "SMBIOS21_INTERMEDIATE": int.from_bytes(spec.SMBIOS21_INTERMEDIATE[:4], "little"),
    "SMBIOS30_ANCHOR": int.from_bytes(spec.SMBIOS30_ANCHOR[:4], "little"),
    "SMBIOS_ANCHOR_END": spec.SMBIOS30_ANCHOR[4],
    "SMBIOS_TYPE_BIOS": 0,
    "SMBIOS_TYPE_END": 127,
    "MP_FLOATING_SIGNATURE": int.from_bytes(b"_MP_", "little"),
    "MP_CONFIG_SIGNATURE": int.from_bytes(b"PCMP", "little"),
    "MP_SPEC_1_4": 4,
    "MP_PROCESSOR": 0,
    "MP_BUS": 1,
    "MP_IOAPIC": 2,
    "MP_INTSRC": 3,
    "MP_LINTSRC": 4,
    "MP_CPU_ENABLED": spec.MP_CPU_ENABLED,
    "MP_CPU_BSP": spec.MP_CPU_BSP,
    "MP_IOAPIC_USABLE": 1,
    "MP_INT": 0,
    "MP_NMI": spec.MP_NMI,
    "MP_EXTINT": spec.MP_EXTINT,
    "LAPIC_DEFAULT_BASE": 0xFEE0_0000,
    "IOAPIC_DEFAULT_BASE": 0xFEC0_0000,
    "LAPIC_VERSION": 0x14,
    "IOAPIC_VERSION": 0x11,
    "ISA_IRQS": 16,
    "CPUID_1": 1,
    "CPUID_1_EDX_MSR": 1 << 5,
    "CPUID_1_EDX_MTRR": 1 << 12,
    "CPUID_EXT_MAX": 0x8000_0000,
    "CPUID_ADDRESS_SIZES": 0x8000_0008,
    "MSR_MTRRCAP": spec.MSR_MTRRCAP,
    "MTRRCAP_FIX": 0x100,
    "MSR_MTRR_DEF_TYPE": spec.MSR_MTRR_DEF_TYPE,
    "MTRR_DEF_TYPE_FE": 0x400,
    "MTRR_DEF_TYPE_E": 0x800,
    "MSR_MTRR_PHYSBASE0": spec.MSR_MTRR_PHYSBASE0,
    "MTRR_PHYSMASK_VALID": 0x800,
    "MSR_MTRR_FIX_64K_00000": spec.MSR_MTRR_FIX[0],
    "MSR_MTRR_FIX_16K_80000": spec.MSR_MTRR_FIX[1],
    "MSR_MTRR_FIX_16K_A0000": spec.MSR_MTRR_FIX[2],
    "MSR_MTRR_FIX_4K_C0000": spec.MSR_MTRR_FIX[3],
    "MTRR_FIX_4K_MSRS": len(spec.MSR_MTRR_FIX) - 3,
    "MTRR_TYPE_UC": 0,
    "MTRR_TYPE_WP": 5,
    "MTRR_TYPE_WB": 6,
    "PORT_PVPANIC": spec.PVPANIC_PORT,
    "PVPANIC_PANICKED": spec.PVPANIC_EVENT_PANICKED,
    "BOOT_FAIL_WAIT_NEVER": spec.BOOT_FAIL_WAIT_FOREVER & 0xFFFF_FFFF,
    "PORT_PIT_CH0": spec.PIT_COUNTER0,
    "PORT_PIT_CMD": spec.PIT_CONTROL,
    "PIT_CMD_CH0_RATE": 0b00_11_010_0,  # counter 0, lobyte/hibyte, mode 2, binary (8254)
    "PIT_CMD_LATCH_CH0": 0b00_00_000_0,  # counter 0, counter latch command
    "PIT_HZ": spec.PIT_INPUT_HZ,
}


def _abi_numbers() -> dict[str, int]:
    struct_names = {name for s in abi.STRUCTS for name in s.constants()}
    return {n: v for n, v in abi.constants().items() if n not in struct_names}


def test_every_abi_number_has_a_test_side_twin() -> None:
    numbers = _abi_numbers()
    assert sorted(numbers) == sorted(NUMBERS), "abi.py and this test list different numbers"
    wrong = {n: (hex(numbers[n]), hex(v)) for n, v in NUMBERS.items() if numbers[n] != v}
    assert wrong == {}


@pytest.mark.parametrize(("firmware", "tests"), STRUCTS, ids=[s.c_name for s, _ in STRUCTS])
def test_struct_fields_agree(firmware: abi.Struct, tests: spec.Layout) -> None:
    assert firmware.size == tests.size
    assert [f.name for f in firmware.fields] == [n for n, _ in tests.fields]
    for f in firmware.fields:
        assert (f.offset, f.size) == (tests.offset(f.name), tests.field_size(f.name)), f.name
        if f.name != "reserved" and not dict(tests.fields)[f.name].endswith("s"):  # numbers
            assert f.endian == ("big" if tests.order == ">" else "little"), f.name


def test_boot_params_fields_agree() -> None:
    assert abi.BOOT_PARAMS.size == spec.BOOT_PARAMS_SIZE >= spec.BOOT_PARAMS.size
    for f in abi.BOOT_PARAMS.fields:
        assert (f.offset, f.size) == (spec.bp_offset(f.name), spec.bp_size(f.name)), f.name
    assert abi.BOOT_PARAMS.field("hdr").size == spec.SETUP_HEADER.size


def test_table_loader_fields_agree() -> None:
    assert abi.LOADER_ENTRY.size == spec.LOADER_ENTRY_SIZE
    seen = {"command"}
    for union, command in LOADER_UNIONS.items():
        tests = spec.LOADER_COMMANDS[command]
        assert tests.size <= spec.LOADER_ENTRY_SIZE
        assert abi.LOADER_ENTRY.offset("command") == tests.offset("command") == 0
        for name, _ in tests.fields[1:]:
            f = abi.LOADER_ENTRY.field(f"{union}_{name}")
            assert (f.offset, f.size) == (tests.offset(name), tests.field_size(name)), f.name
            seen.add(f.name)
    assert seen == {f.name for f in abi.LOADER_ENTRY.fields}


def test_assembler_constants_are_the_structs_offsets() -> None:
    """The names the assembly uses carry the field offsets and the struct sizes."""
    c = layout.asm_constants()
    assert c["HVM_SI_RSDP_PADDR"] == spec.HVM_START_INFO.offset("rsdp_paddr") == 32
    assert c["SIZEOF_HVM_SI"] == spec.HVM_START_INFO.size
    assert c["SIZEOF_HVM_MEMMAP"] == spec.HVM_MEMMAP_TABLE_ENTRY.size
    assert c["FW_CFG_FILE_SELECT"] == spec.FW_CFG_FILE.offset("select")
    assert c["BP_E820_TABLE"] == spec.bp_offset("e820_table")
    assert c["LOADER_WR_POINTER_SIZE"] == 124
    for s in abi.STRUCTS:
        for name, value in s.constants().items():
            assert c[name] == value, name


# ---- pvhcheck's C headers ---------------------------------------------------------------------

# pvhcheck's bootparams.h macro -> the boot_params field whose offset it is
BOOTPARAMS_MACROS = {
    "BP_ACPI_RSDP_ADDR": "acpi_rsdp_addr",
    "BP_E820_ENTRIES": "e820_entries",
    "BP_HDR_START": "hdr",
    "BP_BOOT_FLAG": "boot_flag",
    "BP_JUMP": "jump",
    "BP_HEADER": "header",
    "BP_VERSION": "version",
    "BP_TYPE_OF_LOADER": "type_of_loader",
    "BP_LOADFLAGS": "loadflags",
    "BP_CODE32_START": "code32_start",
    "BP_RAMDISK_IMAGE": "ramdisk_image",
    "BP_RAMDISK_SIZE": "ramdisk_size",
    "BP_CMD_LINE_PTR": "cmd_line_ptr",
    "BP_SETUP_DATA": "setup_data",
    "BP_E820_TABLE": "e820_table",
}
FWCFG_MACROS = [
    "FW_CFG_SIGNATURE",
    "FW_CFG_ID",
    "FW_CFG_KERNEL_ADDR",
    "FW_CFG_KERNEL_SIZE",
    "FW_CFG_INITRD_ADDR",
    "FW_CFG_INITRD_SIZE",
    "FW_CFG_KERNEL_ENTRY",
    "FW_CFG_KERNEL_DATA",
    "FW_CFG_CMDLINE_SIZE",
    "FW_CFG_CMDLINE_DATA",
    "FW_CFG_SETUP_ADDR",
    "FW_CFG_SETUP_SIZE",
    "FW_CFG_SETUP_DATA",
    "FW_CFG_FILE_DIR",
]
PVH_STRUCTS = [abi.HVM_START_INFO, abi.HVM_MODLIST_ENTRY, abi.HVM_MEMMAP_TABLE_ENTRY]


def probe_source() -> str:
    """A C file that compiles only if pvhcheck's headers agree with abi.py."""
    lines = [
        "#include <stddef.h>",
        '#include "pvh.h"',
        '#include "bootparams.h"',
        '#include "fwcfg.h"',
    ]

    def check(expr: str, value: int, what: str) -> None:
        lines.append(f'_Static_assert(({expr}) == {value:#x}, "{what}");')

    for s in PVH_STRUCTS:
        check(f"sizeof({s.c_name})", s.size, f"sizeof {s.c_name}")
        for f in s.fields:
            check(f"offsetof({s.c_name}, {f.name})", f.offset, f"{s.c_name}.{f.name}")
    check("sizeof(struct boot_e820_entry)", abi.E820_ENTRY.size, "boot_e820_entry")
    for f in abi.E820_ENTRY.fields:
        check(f"offsetof(struct boot_e820_entry, {f.name})", f.offset, f"e820 {f.name}")
    for macro, name in BOOTPARAMS_MACROS.items():
        check(macro, abi.BOOT_PARAMS.offset(name), macro)
    check("BP_SIZE", abi.BOOT_PARAMS.size, "BP_SIZE")
    check("BP_E820_MAX", abi.E820_MAX_ENTRIES_ZEROPAGE, "BP_E820_MAX")
    check("BP_BOOT_FLAG_VALUE", abi.BOOT_FLAG_MAGIC, "BP_BOOT_FLAG_VALUE")
    check("BP_HEADER_VALUE", abi.HDRS_MAGIC, "BP_HEADER_VALUE")
    check("XEN_HVM_START_MAGIC_VALUE", abi.HVM_START_MAGIC, "XEN_HVM_START_MAGIC_VALUE")
    check("E820_RAM", abi.E820_RAM, "E820_RAM")
    for macro in FWCFG_MACROS:
        check(macro, getattr(abi, macro), macro)
    check("FWCFG_NAME_LEN", abi.FW_CFG_FILE.field("name").size, "FWCFG_NAME_LEN")
    return "\n".join(lines) + "\n"


def test_pvhcheck_headers_agree_with_abi(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    need(gcc is not None, "gcc not installed (apt-get install gcc)")
    assert gcc is not None
    source = tmp_path / "probe.c"
    source.write_text(probe_source())
    proc = subprocess.run(
        [gcc, "-std=c11", "-fsyntax-only", "-I", str(PVHCHECK), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_probe_fails_on_a_wrong_offset(tmp_path: Path) -> None:
    """The probe can fail: one wrong number makes gcc refuse it, naming the field."""
    gcc = shutil.which("gcc")
    need(gcc is not None, "gcc not installed (apt-get install gcc)")
    assert gcc is not None
    source = tmp_path / "probe.c"
    wrong = probe_source().replace(
        "offsetof(struct hvm_start_info, rsdp_paddr)) == 0x20",
        "offsetof(struct hvm_start_info, rsdp_paddr)) == 0x28",
    )
    assert wrong != probe_source()
    source.write_text(wrong)
    proc = subprocess.run(
        [gcc, "-std=c11", "-fsyntax-only", "-I", str(PVHCHECK), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "struct hvm_start_info.rsdp_paddr" in proc.stderr
