"""The PVH test kernels: built from source here, checked as ELF files, run under stock QEMU.

Without gcc/binutils or qemu-system-x86_64 these tests skip with the reason, except
under CI (env CI=true), where a missing tool is a failure.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Protocol

import pytest
from elftools.elf.elffile import ELFFile

from tests.kernels import build
from tests.kernels.build import (
    EXIT_REAL_MODE_ENTRY,
    EXIT_SUCCESS,
    KERNEL_ENTRY_SYMBOL,
    LINUX32_ENTRY_SYMBOL,
    XEN_ELFNOTE_PHYS32_ENTRY,
    KernelBuildError,
    KernelToolchainMissing,
    build_kernel,
    elf_note_segments,
    elf_pvh_entry,
    elf_symbol,
    parse_report,
)
from tests.kernels.qemu import run_kernel
from tests.support import need, need_kvm, need_qemu
from tools.qemu import QBOOT_ROM, data_file

LOAD_ADDRS = (0x200000, 0x1000000)
LINUX_VADDR_OFFSET = 0xFFFFFFFF80000000


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kernels")


class KernelFactory(Protocol):
    def __call__(self, name: str, load_addr: int = ..., **options: object) -> Path: ...


@pytest.fixture(scope="module")
def kernel(kernel_dir: Path) -> KernelFactory:
    """kernel(name, load_addr=..., **options) -> Path, building each variant once."""
    cache: dict[tuple[object, ...], Path] = {}

    def get(name: str, load_addr: int = 0x200000, **options: object) -> Path:
        key = (name, load_addr, *sorted(options.items()))
        if key not in cache:
            try:
                cache[key] = build_kernel(name, kernel_dir, load_addr, **options)
            except KernelToolchainMissing as exc:
                need(False, str(exc))
        return cache[key]

    return get


def readelf(*args: str) -> str:
    tool = shutil.which("readelf")
    if tool is None:
        need(False, "readelf not found (binutils)")
        raise AssertionError  # unreachable
    return subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout


def readelf_xen_entries(path: Path) -> list[bytes]:
    """Descriptors of the Xen type-18 notes as `readelf -n` prints them."""
    text = readelf("-nW", str(path))
    found = []
    for m in re.finditer(
        r"^\s*Xen\s+0x([0-9a-f]+)\s+Unknown note type: \(0x00000012\)\s+"
        r"description data: ((?:[0-9a-f]{2} ?)+)",
        text,
        re.MULTILINE,
    ):
        desc = bytes.fromhex(m.group(2).replace(" ", ""))
        assert len(desc) == int(m.group(1), 16)
        found.append(desc)
    return found


# ---- building and the ELF files ----------------------------------------------------------


@pytest.mark.parametrize("load_addr", LOAD_ADDRS, ids=hex)
def test_pvhcheck_is_elf32_with_xen_note(kernel: KernelFactory, load_addr: int) -> None:
    path = kernel("pvhcheck", load_addr)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 32
        assert elf["e_machine"] == "EM_386"
        assert elf["e_type"] == "ET_EXEC"
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert min(s["p_paddr"] for s in loads) == load_addr
        assert all(s["p_paddr"] == s["p_vaddr"] for s in loads)
        assert not any(s["p_flags"] & 7 == 7 for s in loads), "no RWX segment"
    entry = elf_symbol(path, KERNEL_ENTRY_SYMBOL)
    assert elf_pvh_entry(path) == entry == load_addr
    notes = elf_note_segments(path)
    assert len(notes) == 1
    assert notes[0].notes == (("Xen", XEN_ELFNOTE_PHYS32_ENTRY, entry.to_bytes(4, "little")),)
    assert readelf_xen_entries(path) == [entry.to_bytes(4, "little")]


@pytest.mark.parametrize("load_addr", LOAD_ADDRS, ids=hex)
def test_exitfirst_is_elf64_and_exits_first(kernel: KernelFactory, load_addr: int) -> None:
    import capstone

    path = kernel("exitfirst", load_addr)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64
        assert elf["e_machine"] == "EM_X86_64"
        (load,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert load["p_paddr"] == load["p_vaddr"] == load_addr
        code = load.data()
    entry = elf_pvh_entry(path)
    assert entry == elf_symbol(path) == load_addr
    assert readelf_xen_entries(path) == [entry.to_bytes(4, "little")]
    # The PVH entry is 32-bit code: its first instructions end QEMU.
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    insns = [(i.mnemonic, i.op_str) for i in md.disasm(code[entry - load_addr :], entry)][:3]
    assert insns == [("mov", "al, 0x10"), ("out", "0xf4, al"), ("hlt", "")]


@pytest.mark.parametrize("name", build.KERNELS)
def test_extra_note_puts_xen_note_in_second_pt_note(kernel: KernelFactory, name: str) -> None:
    path = kernel(name, extra_note=True)
    segments = elf_note_segments(path)
    assert len(segments) == 2
    first, second = segments
    assert first.index < second.index
    assert all(owner != "Xen" for owner, _, _ in first.notes)
    assert [(o, t) for o, t, _ in first.notes] == [("GNU", 3)]
    assert [(o, t) for o, t, _ in second.notes] == [("Xen", XEN_ELFNOTE_PHYS32_ENTRY)]
    assert elf_pvh_entry(path) == elf_symbol(path)
    assert len(re.findall(r"^\s+NOTE\s", readelf("-lW", str(path)), re.MULTILINE)) == 2


def test_exitfirst_linux_like_layout(kernel: KernelFactory) -> None:
    """High virtual addresses, physical ones in p_paddr and an 8-byte note descriptor."""
    path = kernel("exitfirst", 0x1000000, vaddr_offset=LINUX_VADDR_OFFSET, note_desc_size=8)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        (load,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert load["p_paddr"] == 0x1000000
        assert load["p_vaddr"] == LINUX_VADDR_OFFSET + 0x1000000
    assert elf_symbol(path) == LINUX_VADDR_OFFSET + 0x1000000
    assert elf_pvh_entry(path) == 0x1000000
    assert readelf_xen_entries(path) == [(0x1000000).to_bytes(8, "little")]


def test_build_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kernel"):
        build_kernel("nosuch", tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        build_kernel("pvhcheck", tmp_path, vaddr_offset=0x1000)
    with pytest.raises(ValueError, match="aligned"):
        build_kernel("exitfirst", tmp_path, 0x200010)
    with pytest.raises(ValueError, match="note_desc_size"):
        build_kernel("exitfirst", tmp_path, note_desc_size=2)
    with pytest.raises(ValueError, match="bzimage=True needs load_addr=0x100000"):
        build_kernel("pvhcheck", tmp_path, 0x200000, bzimage=True)
    with pytest.raises(ValueError, match="unknown option"):
        build_kernel("exitfirst", tmp_path, 0x100000, bzimage=True)


def test_missing_toolchain_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(KernelToolchainMissing, match="gcc, as, ld"):
        build_kernel("exitfirst", tmp_path)


def test_tool_failure_names_tool_and_stderr(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        need(False, "gcc not found")
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    with pytest.raises(KernelBuildError) as info:
        build._run("gcc", ["gcc", "-c", str(bad), "-o", str(tmp_path / "bad.o")], [])
    assert info.value.tool == "gcc"
    assert "gcc failed" in str(info.value)
    assert "error" in info.value.stderr and info.value.stderr.strip() in str(info.value)


# ---- the report parser --------------------------------------------------------------------

SAMPLE = (
    "\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\n"
    "Booting from ROM..\r\n"
    "\x1b[0mPVHCHECK begin\r\n"
    "PVHCHECK regs eax=0x0 ebx=0x21e0 ecx=0x200000 edx=0x518 esi=0x11c0 edi=0x6ef4 "
    "ebp=0x0 esp=0x6edc eflags=0x6\r\n"
    "PVHCHECK cr cr0=0x11 cr3=0x0 cr4=0x0\r\n"
    "PVHCHECK dt gdtr_base=0xcb118 gdtr_limit=0x27 idtr_base=0x0 idtr_limit=0x3ff\r\n"
    "PVHCHECK seg cs sel=0x8 lar=0xc09a00 lsl=0xffffffff base=0x0 limit=0xffffffff "
    "desc=0xcf9a000000ffff probe=lar\r\n"
    "PVHCHECK seg fs sel=0x0 lar=none lsl=none base=none limit=none desc=none probe=lar\r\n"
    "PVHCHECK kernel start=0x200000 end=0x20f3a0 entry=0x200000 bss_zeroed=1\r\n"
    "PVHCHECK start_info addr=0x21e0 magic=0x336ec578 version=1 flags=0x0 nr_modules=1 "
    "modlist=0x21c0 cmdline=0x11c0 rsdp=0xf59d0 memmap=0x5a8 memmap_entries=2\r\n"
    "PVHCHECK memmap 0 addr=0x0 size=0x9fc00 type=1\r\n"
    "PVHCHECK memmap 1 addr=0xfd00000000 size=0x300000000 type=2\r\n"
    "PVHCHECK cmdline 68656c6c6f20707668\r\n"
    "PVHCHECK module 0 paddr=0x7fd7000 size=0xbb8 cmdline=0x0 crc32=0x8ca6b727\r\n"
    "PVHCHECK fwcfg present=1 id=0x3\r\n"
    "PVHCHECK fwcfg kernel_entry=0x200000 kernel_addr=0x200000 kernel_size=0xf3a0 "
    "initrd_addr=0x7fd7000 initrd_size=0xbb8 cmdline_size=10\r\n"
    "PVHCHECK fwcfg e820_file=1 e820_count=1 acpi_rsdp_file=1\r\n"
    "PVHCHECK fwcfg e820 0 addr=0x0 size=0x8000000 type=1\r\n"
    "PVHCHECK check cr0_pe_nopg ok\r\n"
    "PVHCHECK check memmap FAIL entry 6 has size 0; something else\r\n"
    "PVHCHECK done failures=1\r\n"
)


def test_parse_report_sample() -> None:
    r = parse_report(SAMPLE)
    assert r.regs["ebx"] == 0x21E0 and r.regs["eflags"] == 6 and len(r.regs) == 9
    assert r.cr == {"cr0": 0x11, "cr3": 0, "cr4": 0}
    assert r.segs["cs"]["lar"] == 0xC09A00 and r.segs["cs"]["limit"] == 0xFFFFFFFF
    assert r.segs["fs"]["lar"] == "none"
    assert r.extra["dt"]["gdtr_base"] == 0xCB118
    assert r.extra["kernel"] == {
        "start": 0x200000,
        "end": 0x20F3A0,
        "entry": 0x200000,
        "bss_zeroed": 1,
    }
    assert r.start_info["magic"] == 0x336EC578 and r.start_info["memmap_entries"] == 2
    assert r.memmap == [(0, 0x9FC00, 1), (0xFD00000000, 0x300000000, 2)]
    assert r.cmdline == b"hello pvh"
    assert r.modules == [
        {"index": 0, "paddr": 0x7FD7000, "size": 0xBB8, "cmdline": 0, "crc32": 0x8CA6B727}
    ]
    assert r.fwcfg["initrd_size"] == 0xBB8 and r.fwcfg["cmdline_size"] == 10
    assert r.fwcfg["e820"] == [(0, 0x8000000, 1)]
    assert r.checks == {
        "cr0_pe_nopg": (True, ""),
        "memmap": (False, "entry 6 has size 0; something else"),
    }
    assert r.failed_checks == {"memmap": "entry 6 has size 0; something else"}
    assert r.done_failures == 1 and r.complete


# What pvhcheck printed at linux32_entry (run once under a throwaway unicorn loader).
SAMPLE_LINUX32 = (
    "\r\nPVHCHECK begin\r\n"
    "PVHCHECK protocol linux32\r\n"
    "PVHCHECK regs eax=0x12345678 ebx=0x0 ecx=0x0 edx=0x0 esi=0x7000 edi=0x0 ebp=0x0 "
    "esp=0x5000 eflags=0x2\r\n"
    "PVHCHECK cr cr0=0x11 cr3=0x0 cr4=0x0\r\n"
    "PVHCHECK seg cs sel=0x10 lar=0xc09b00 lsl=0xffffffff base=0x0 limit=0xffffffff "
    "desc=0xcf9b000000ffff probe=lar\r\n"
    "PVHCHECK kernel start=0x100000 end=0x152300 entry=0x1001f5 bss_zeroed=0\r\n"
    "PVHCHECK boot_params addr=0x7000 boot_flag=0xaa55 header=0x53726448 version=0x20f "
    "type_of_loader=0xb0 loadflags=0x81 code32_start=0x1001f5 cmd_line_ptr=0x8000 "
    "ramdisk_image=0x7fde000 ramdisk_size=0x1388 e820_entries=2 acpi_rsdp_addr=0x7ff0000 "
    "setup_data=0x0\r\n"
    "PVHCHECK memmap 0 addr=0x0 size=0xa0000 type=1\r\n"
    "PVHCHECK memmap 1 addr=0x100000 size=0x7ef0000 type=1\r\n"
    "PVHCHECK cmdline 68656c6c6f206c696e75783332\r\n"
    "PVHCHECK module 0 paddr=0x7fde000 size=0x1388 cmdline=0x0 crc32=0xb297214d\r\n"
    "PVHCHECK fwcfg present=1 id=0x3\r\n"
    "PVHCHECK fwcfg kernel_entry=0x0 kernel_addr=0x100000 kernel_size=0x70f0 "
    "initrd_addr=0x7fde000 initrd_size=0x1388 cmdline_size=14\r\n"
    "PVHCHECK fwcfg setup_addr=0x10000 setup_size=0x400\r\n"
    "PVHCHECK check cs_flat32_code ok\r\n"
    "PVHCHECK check boot_params_header FAIL byte 0x210=0x42 fw_cfg 0xb0\r\n"
    "PVHCHECK check boot_params_zero_elsewhere ok\r\n"
    "PVHCHECK done failures=1\r\n"
)


def test_parse_report_linux32_sample() -> None:
    r = parse_report(SAMPLE_LINUX32)
    assert r.protocol == "linux32"
    assert r.start_info == {}
    assert r.boot_params == {
        "addr": 0x7000,
        "boot_flag": 0xAA55,
        "header": 0x53726448,
        "version": 0x20F,
        "type_of_loader": 0xB0,
        "loadflags": 0x81,
        "code32_start": 0x1001F5,
        "cmd_line_ptr": 0x8000,
        "ramdisk_image": 0x7FDE000,
        "ramdisk_size": 0x1388,
        "e820_entries": 2,
        "acpi_rsdp_addr": 0x7FF0000,
        "setup_data": 0,
    }
    assert r.regs["esi"] == r.boot_params["addr"]
    assert r.memmap == [(0, 0xA0000, 1), (0x100000, 0x7EF0000, 1)]
    assert r.cmdline == b"hello linux32"
    assert r.modules == [
        {"index": 0, "paddr": 0x7FDE000, "size": 0x1388, "cmdline": 0, "crc32": 0xB297214D}
    ]
    assert r.fwcfg["setup_addr"] == 0x10000 and r.fwcfg["setup_size"] == 0x400
    assert r.fwcfg["kernel_entry"] == 0
    assert r.failed_checks == {"boot_params_header": "byte 0x210=0x42 fw_cfg 0xb0"}
    assert r.done_failures == 1
    assert parse_report(SAMPLE).protocol == ""  # from before the protocol line existed
    assert parse_report("PVHCHECK protocol pvh\n").protocol == "pvh"
    assert parse_report("PVHCHECK boot_params none addr=0x0\n").boot_params == {"addr": 0}


def test_parse_report_edge_cases() -> None:
    r = parse_report("PVHCHECK cmdline \nPVHCHECK start_info none addr=0x0\n")
    assert r.cmdline == b"" and r.start_info == {"addr": 0}
    assert not r.complete
    assert parse_report("PVHCHECK cmdline -\n").cmdline is None
    assert parse_report("no marker here\n") == build.Report()


# What pvhcheck printed of SeaBIOS's tables (-M q35 -m 512 -smp 2,sockets=2), shortened (a
# shorter version string, fewer structures and entries) and with two lines made up (MSR
# 0xc0011234, the mptable_cpus failure, which -smp 2 gives).
SAMPLE_TABLES = (
    "PVHCHECK fwcfg nb_cpus=2 max_cpus=2 irq0_override=1\r\n"
    "PVHCHECK cpuid max_basic=0xd edx1=0x78bfbfd apic_id=0 max_ext=0x8000000a phys_bits=40 "
    "mtrr=1 msr=1\r\n"
    "PVHCHECK mtrr msr=0xfe value=0x508\r\n"
    "PVHCHECK mtrr msr=0x2ff value=0xc06\r\n"
    "PVHCHECK mtrr msr=0x201 value=0xffc0000800\r\n"
    "PVHCHECK mtrr msr=0xc0011234 value=none\r\n"
    "PVHCHECK pam host=0x29c08086 reg=0x90 pam0=0x10 pam1=0x11 pam2=0x11 pam3=0x11 pam4=0x11 "
    "pam5=0x11 pam6=0x33\r\n"
    "PVHCHECK pcie host=0x29c08086 pciexbar=0xb0000001 base=0xb0000000 size=0x10000000 "
    "ecam=ok devices=4 ext=0xffffffff\r\n"
    "PVHCHECK smbios ep=0xf59a0 anchor=_SM_ version=2.8 table=0xf59c0 length=441 count=10 "
    "max_size=75\r\n"
    "PVHCHECK smbios struct 0 type=0 handle=0x0 length=24 size=67 "
    "data=00180000010200e80300080000000000000000040000ffff "
    "strings=53656142494f53,312e31362e32,30342f30312f32303134\r\n"
    "PVHCHECK smbios struct 1 type=16 handle=0x1000 length=23 size=25 "
    "data=1017001001030600000200feff01000000000000000000 strings=\r\n"
    "PVHCHECK smbios struct 2 type=127 handle=0x7f00 length=4 size=6 data=7f04007f strings=\r\n"
    "PVHCHECK smbios types=0,16,127\r\n"
    "PVHCHECK smbios bios vendor=53656142494f53 version=312e31362e32 date=-\r\n"
    "PVHCHECK smbios fwcfg anchor_size=31 tables_size=374 tables_crc32=0x7df77ad8 "
    "table_crc32=0x22811613 layout=added\r\n"
    "PVHCHECK mptable fp=0xf5b80 table=0xf5b90 spec=4 feature1=0x0 feature2=0x0 length=228 "
    "entries=20 walked=20 lapic=0xfee00000 oem=424f434853435055 product=302e31202020202020202020 "
    "cpus=2 ioapic=0@0xfec00000 isa_irqs=0,1,3,4,6,7,8,12,13,14,15\r\n"
    "PVHCHECK mptable cpu 0 apic=0 version=0x14 flags=0x3 signature=0x60fb1 features=0x78bfbfd\r\n"
    "PVHCHECK mptable bus 2 id=0 type=504349202020\r\n"
    "PVHCHECK mptable ioapic 4 id=0 version=0x11 flags=0x1 addr=0xfec00000\r\n"
    "PVHCHECK mptable intsrc 7 irqtype=0 flags=0x0 bus=1 irq=0 dst=0 pin=2\r\n"
    "PVHCHECK mptable lintsrc 19 irqtype=1 flags=0x0 bus=1 irq=0 dst=255 pin=1\r\n"
    "PVHCHECK check smbios_is_fwcfg ok\r\n"
    "PVHCHECK check mptable_cpus FAIL enabled processors 1, fw_cfg NB_CPUS 2\r\n"
)


def test_parse_report_tables_sample() -> None:
    r = parse_report(SAMPLE_TABLES)
    assert r.fwcfg["nb_cpus"] == 2 and r.fwcfg["irq0_override"] == 1
    assert r.cpuid["phys_bits"] == 40 and r.cpuid["mtrr"] == 1 and r.cpuid["edx1"] == 0x78BFBFD
    assert r.mtrr == {0xFE: 0x508, 0x2FF: 0xC06, 0x201: 0xFFC0000800, 0xC0011234: None}
    assert r.pam == {
        "host": 0x29C08086,
        "reg": 0x90,
        "pam0": 0x10,
        **{f"pam{i}": 0x11 for i in range(1, 6)},
        "pam6": 0x33,
    }
    assert r.pcie["pciexbar"] == 0xB0000001 and r.pcie["ecam"] == "ok" and r.pcie["devices"] == 4
    assert r.smbios == {
        "ep": 0xF59A0,
        "anchor": "_SM_",
        "version": "2.8",
        "table": 0xF59C0,
        "length": 441,
        "count": 10,
        "max_size": 75,
        "anchor_size": 31,
        "tables_size": 374,
        "tables_crc32": 0x7DF77AD8,
        "table_crc32": 0x22811613,
        "layout": "added",
    }
    bios, t16, end = r.smbios_structures
    assert bios == build.SmbiosStructure(
        index=0,
        type=0,
        handle=0,
        length=24,
        size=67,
        data=bytes.fromhex("00180000010200e80300080000000000000000040000ffff"),
        strings=(b"SeaBIOS", b"1.16.2", b"04/01/2014"),
    )
    assert (bios.string(4), bios.string(5), bios.string(8)) == (
        b"SeaBIOS",
        b"1.16.2",
        b"04/01/2014",
    )
    assert bios.string(9) is None  # the byte there is 0: no string
    assert bios.string(99) is None  # past the formatted area
    assert t16.strings == () and t16.handle == 0x1000 and t16.size == 25
    assert end.type == 127 and end.data == b"\x7f\x04\x00\x7f"
    assert r.smbios_types == [0, 16, 127]
    assert r.smbios_bios == {"vendor": b"SeaBIOS", "version": b"1.16.2", "date": None}
    assert r.mptable["oem"] == "BOCHSCPU" and r.mptable["product"] == "0.1         "
    assert r.mptable["cpus"] == 2 and r.mptable["ioapic"] == "0@0xfec00000"
    assert r.mptable["entries"] == r.mptable["walked"] == 20
    assert r.mptable_isa_irqs == [0, 1, 3, 4, 6, 7, 8, 12, 13, 14, 15]
    assert r.mptable_entries == [
        {
            "kind": "cpu",
            "index": 0,
            "apic": 0,
            "version": 0x14,
            "flags": 3,
            "signature": 0x60FB1,
            "features": 0x78BFBFD,
        },
        {
            "kind": "bus",
            "index": 2,
            "id": 0,
            "type": "PCI   ",
        },  # hex, though all digits
        {
            "kind": "ioapic",
            "index": 4,
            "id": 0,
            "version": 0x11,
            "flags": 1,
            "addr": 0xFEC00000,
        },
        {
            "kind": "intsrc",
            "index": 7,
            "irqtype": 0,
            "flags": 0,
            "bus": 1,
            "irq": 0,
            "dst": 0,
            "pin": 2,
        },
        {
            "kind": "lintsrc",
            "index": 19,
            "irqtype": 1,
            "flags": 0,
            "bus": 1,
            "irq": 0,
            "dst": 255,
            "pin": 1,
        },
    ]
    assert r.failed_checks == {"mptable_cpus": "enabled processors 1, fw_cfg NB_CPUS 2"}
    assert not r.extra  # every line went to its own field


def test_parse_report_tables_absent() -> None:
    """Firmware without the tables (and reports from before these lines) parse to empty
    fields; single values are not mistaken for numbers."""
    for r in (parse_report(SAMPLE), parse_report(SAMPLE_LINUX32)):
        assert r.cpuid == {} and r.mtrr == {} and r.pam == {} and r.pcie == {}
        assert r.smbios == {} and r.smbios_structures == [] and r.smbios_types == []
        assert r.mptable == {} and r.mptable_entries == [] and r.mptable_isa_irqs == []
    pam = parse_report("PVHCHECK pam host=0xffffffff reg=none\n").pam
    assert pam == {"host": 0xFFFFFFFF, "reg": "none"}
    pcie = parse_report("PVHCHECK pcie host=0xffffffff pciexbar=none ecam=off\n").pcie
    assert pcie == {"host": 0xFFFFFFFF, "pciexbar": "none", "ecam": "off"}
    cpu = parse_report(
        "PVHCHECK cpuid max_basic=0x1 edx1=0x0 apic_id=0 max_ext=0x0 phys_bits=none mtrr=0 msr=0\n"
    )
    assert cpu.cpuid["phys_bits"] == "none" and cpu.mtrr == {}
    smbios = parse_report(
        "PVHCHECK smbios ep=none\n"
        "PVHCHECK smbios fwcfg anchor_size=none tables_size=none tables_crc32=none "
        "table_crc32=none layout=none\n"
    ).smbios
    assert smbios["ep"] == "none" and smbios["layout"] == "none"
    assert parse_report("PVHCHECK smbios types=127\n").smbios_types == [127]
    mp = parse_report("PVHCHECK mptable fp=none\n")
    assert mp.mptable == {"fp": "none"} and mp.mptable_isa_irqs == []
    assert parse_report("PVHCHECK mptable fp=0x9fc00 isa_irqs=0\n").mptable_isa_irqs == [0]
    assert parse_report("PVHCHECK smbios types=-\n").smbios_types == []


# ---- under stock QEMU (SeaBIOS + pvh.bin) -------------------------------------------------

# ABI checks every pvhcheck run must report (the kernel may print more).
REQUIRED_CHECKS = {
    "cr0_pe_nopg",
    "cr4_zero",
    "eflags_if_tf_vm_clear",
    "cs_flat32_code",
    "ds_flat32_data",
    "es_flat32_data",
    "ss_flat32_data",
    "start_info",
    "memmap",
    "memmap_ram_disjoint",
    "kernel_in_ram",
    "start_info_placed",
    "memmap_placed",
    "cmdline_placed",
    "modlist_placed",
    "module0_placed",
    "boot_data_disjoint",
    "cmdline_terminated",
    "module0_is_fwcfg_initrd",
    "fwcfg_kernel_entry",
}


@pytest.mark.qemu
@pytest.mark.parametrize("load_addr", LOAD_ADDRS, ids=hex)
def test_pvhcheck_boots_under_stock_qemu(
    kernel: KernelFactory, tmp_path: Path, load_addr: int
) -> None:
    need_qemu()
    path = kernel("pvhcheck", load_addr)
    initrd = tmp_path / "initrd.bin"
    initrd.write_bytes(bytes((i * 37 + 11) & 0xFF for i in range(3001)) + b"end of initrd")
    run = run_kernel(path, initrd=initrd, append="hello pvh", timeout=60)
    report = parse_report(run.stdout)

    assert report.complete, run.describe()
    assert report.failed_checks == {}, run.describe()
    assert report.done_failures == 0
    assert run.returncode == EXIT_SUCCESS, run.describe()
    missing = REQUIRED_CHECKS - report.checks.keys()
    assert not missing, run.describe()

    assert report.protocol == "pvh"
    assert report.boot_params == {}
    assert report.cmdline == b"hello pvh"
    data = initrd.read_bytes()
    assert report.start_info["nr_modules"] == 1
    (module,) = report.modules
    assert module["size"] == len(data)
    assert module["crc32"] == zlib.crc32(data)
    assert module["paddr"] == report.fwcfg["initrd_addr"]
    assert report.fwcfg["kernel_entry"] == elf_pvh_entry(path)
    assert report.regs["ebx"] == report.start_info["addr"]
    assert report.fwcfg["cmdline_size"] == len(b"hello pvh") + 1
    assert report.memmap and all(size > 0 for _, size, _ in report.memmap)


@pytest.mark.qemu
@pytest.mark.parametrize(
    "options",
    [{}, {"extra_note": True}, {"vaddr_offset": LINUX_VADDR_OFFSET, "note_desc_size": 8}],
    ids=["plain", "extra_note", "linux_like"],
)
def test_exitfirst_exits_under_stock_qemu(
    kernel: KernelFactory, options: dict[str, object]
) -> None:
    need_qemu()
    path = kernel("exitfirst", 0x1000000, **options)
    run = run_kernel(path, append="hello pvh", timeout=60)
    assert run.returncode == EXIT_SUCCESS, run.describe()


@pytest.mark.qemu
def test_pvhcheck_extra_note_under_stock_qemu(kernel: KernelFactory) -> None:
    need_qemu()
    run = run_kernel(kernel("pvhcheck", extra_note=True), append="x", timeout=60)
    report = parse_report(run.stdout)
    assert report.failed_checks == {}, run.describe()
    assert run.returncode == EXIT_SUCCESS, run.describe()


@pytest.mark.qemu
@pytest.mark.kvm
@pytest.mark.slow
@pytest.mark.parametrize("name", build.KERNELS)
def test_kernels_under_kvm(kernel: KernelFactory, tmp_path: Path, name: str) -> None:
    """Under KVM (tools.qemu's KVM_CPU, `-cpu qemu64,-cx16,-xsave`).  pvhcheck is built with
    lar=False: this machine's PVM-backed KVM emulates firmware/kernel code and stops with
    "KVM internal error" on lar/lsl."""
    need_qemu()
    need_kvm()
    options: dict[str, object] = {"lar": False} if name == "pvhcheck" else {}
    path = kernel(name, 0x200000, **options)
    initrd = tmp_path / "initrd.bin"
    initrd.write_bytes(b"kvm initrd " * 100)
    run = run_kernel(path, initrd=initrd, append="hello pvh", accel="kvm", timeout=90)
    assert run.returncode == EXIT_SUCCESS, run.describe()
    if name == "pvhcheck":
        report = parse_report(run.stdout)
        assert report.failed_checks == {}, run.describe()
        assert report.modules[0]["crc32"] == zlib.crc32(initrd.read_bytes())


# ---- exitfirst-bz: the bzImage counterpart --------------------------------------------


def test_exitfirst_bz_header(tmp_path: Path) -> None:
    """The setup header says what the boot protocol needs: the sizes add up to the file,
    the real-mode entry jumps over the header to the exit, code32_start's code exits too."""
    data = build.build_bzimage(tmp_path).read_bytes()
    setup_sects = data[0x1F1]
    syssize = struct.unpack_from("<I", data, 0x1F4)[0]
    assert struct.unpack_from("<H", data, 0x1FE)[0] == 0xAA55
    assert data[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", data, 0x206)[0] == 0x020F
    assert data[0x211] & 0x01  # LOADED_HIGH
    assert struct.unpack_from("<I", data, 0x214)[0] == 0x100000
    setup_size = (setup_sects + 1) * 512
    assert len(data) == setup_size + syssize * 16
    # the entry at 0x200 is a short jump to `mov al, 0x10; out 0xf4, al`
    assert data[0x200] == 0xEB
    target = 0x202 + data[0x201]
    assert data[target : target + 4] == b"\xb0\x10\xe6\xf4"
    assert data[setup_size : setup_size + 4] == b"\xb0\x10\xe6\xf4"


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("machine", "bios"),
    [("pc", None), ("q35", None), ("pc", QBOOT_ROM), ("microvm", None)],
    ids=["pc-seabios", "q35-seabios", "pc-qboot", "microvm-qboot"],
)
def test_exitfirst_bz_exits_under_stock_qemu(
    tmp_path: Path, machine: str, bios: str | None
) -> None:
    """QEMU's own firmwares (`bios`: a file of the binary's tree, else its default)."""
    need_qemu()
    image = build.build_bzimage(tmp_path)
    firmware = None if bios is None else Path(data_file(bios))
    run = run_kernel(image, machine=machine, bios=firmware, timeout=60)
    assert run.returncode == EXIT_SUCCESS, run.describe()


# ---- pvhcheck as a bzImage: the 32-bit Linux boot protocol entry ---------------------------


def test_pvhcheck_bzimage_header(kernel: KernelFactory) -> None:
    """The setup header has the documented fields; the protected-mode part is the ELF's
    loaded bytes at 1 MiB; code32_start is linux32_entry and init_size covers .bss."""
    import capstone

    image = kernel("pvhcheck", 0x100000, bzimage=True)
    assert image.name == "pvhcheck-100000-bz.bzImage"
    elf = image.with_suffix(".elf")
    assert elf.exists()
    data = image.read_bytes()

    setup_sects = data[0x1F1]
    setup_size = (setup_sects + 1) * 512
    syssize = struct.unpack_from("<I", data, 0x1F4)[0]
    assert setup_sects == build.BZIMAGE_SETUP_SECTS
    assert struct.unpack_from("<H", data, 0x1FE)[0] == 0xAA55
    assert data[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", data, 0x206)[0] == 0x020F
    assert data[0x211] == 0x01  # LOADED_HIGH only
    code32_start = struct.unpack_from("<I", data, 0x214)[0]
    assert code32_start == elf_symbol(elf, LINUX32_ENTRY_SYMBOL) != elf_symbol(elf)
    assert struct.unpack_from("<I", data, 0x22C)[0] == 0x7FFFFFFF  # initrd_addr_max
    assert struct.unpack_from("<I", data, 0x230)[0] == 0x200000  # kernel_alignment
    assert data[0x234] == 0  # relocatable_kernel
    cmdline_size = struct.unpack_from("<I", data, 0x238)[0]
    assert cmdline_size == build.PVHCHECK_CMDLINE_SIZE
    kernel_dir = Path(build.__file__).parent
    assert f"CMDLINE_MAX {cmdline_size + 1}" in (kernel_dir / "pvhcheck/boot.h").read_text()
    assert struct.unpack_from("<II", data, 0x248) == (0, 0)  # no payload
    assert struct.unpack_from("<Q", data, 0x250)[0] == 0  # setup_data
    assert struct.unpack_from("<Q", data, 0x258)[0] == 0x100000  # pref_address
    init_size = struct.unpack_from("<I", data, 0x260)[0]
    assert init_size >= elf_symbol(elf, "__kernel_end") - 0x100000
    assert init_size > len(data) - setup_size  # .bss is not in the file
    assert len(data) == setup_size + syssize * 16

    # The protected-mode part: every PT_LOAD's file bytes at its offset from 1 MiB.
    kernel_part = data[setup_size:]
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD":
                off = seg["p_paddr"] - 0x100000
                assert kernel_part[off : off + seg["p_filesz"]] == seg.data()
    assert elf_pvh_entry(elf) == elf_symbol(elf) == 0x100000  # still a PVH kernel too

    # Real-mode entry: a short jump over the header to `mov al, 0x12; out 0xf4, al`.
    assert data[0x200] == 0xEB
    target = 0x202 + data[0x201]
    assert target == 0x26C  # just past kernel_info_offset (0x268, 4 bytes)
    md16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
    insns = [(i.mnemonic, i.op_str) for i in md16.disasm(data[target : target + 8], target)]
    assert insns[:3] == [("mov", "al, 0x12"), ("out", "0xf4, al"), ("hlt", "")]

    # linux32_entry: EAX stored with an absolute move, the protocol picked, then the
    # entry code it shares with pvh_entry.
    md32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    off = code32_start - 0x100000
    insns = [(i.mnemonic, i.op_str) for i in md32.disasm(kernel_part[off : off + 16], 0)][:3]
    assert insns[0][0] == "mov" and insns[0][1].startswith("dword ptr [0x")
    assert insns[0][1].endswith("], eax")
    assert insns[1] == ("mov", "eax, 2")  # ENTRY_PROTOCOL_LINUX32
    assert insns[2][0] == "jmp"


def test_pvhcheck_bzimage_variant_names(kernel: KernelFactory) -> None:
    path = kernel("pvhcheck", 0x100000, bzimage=True, lar=False)
    assert path.name == "pvhcheck-100000-nolar-bz.bzImage"
    assert path.read_bytes()[0x202:0x206] == b"HdrS"


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("machine", "bios"),
    [("pc", None), ("pc", QBOOT_ROM)],
    ids=["pc-seabios", "pc-qboot"],
)
def test_pvhcheck_bzimage_real_mode_entry_exits_37(
    kernel: KernelFactory, tmp_path: Path, machine: str, bios: str | None
) -> None:
    """Stock firmware enters a bzImage through its real-mode setup: pvhcheck's says so
    with status 37 and prints nothing."""
    need_qemu()
    image = kernel("pvhcheck", 0x100000, bzimage=True)
    initrd = tmp_path / "initrd.bin"
    initrd.write_bytes(b"bz initrd " * 100)
    run = run_kernel(
        image,
        machine=machine,
        bios=None if bios is None else Path(data_file(bios)),
        initrd=initrd,
        append="hello bz",
        timeout=60,
    )
    assert run.returncode == EXIT_REAL_MODE_ENTRY == 37, run.describe()
    assert "PVHCHECK" not in run.stdout
