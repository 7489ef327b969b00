"""The firmware run instruction by instruction (unicorn) from the reset vector against a
simulated fw_cfg: what it leaves in memory, the CPU state at the PVH entry, what it costs,
and every error it can report."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from pvhfw.firmware.patchtable import patch_image
from tests import spec
from tests.acpi_loader import (
    BASE_QEMU,
    RECORDED_QEMUS,
    load_recording,
    parse_table_loader,
    replay,
)
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.model import StartInfo, expected_memmap, fallback_e820, parse_e820_file, unpack_memmap

MiB = 1 << 20
ENTRY = 0x1000850  # where Debian's vmlinux has it
KADDR, KSIZE = 0x1000000, 0x2E00000
CMDLINE = b"console=ttyS0 root=/dev/vda1 pvhfw.test='a;b' x=\"1 2\""
# Budgets from the issue: reset to entry with DMA.
MAX_INSTRUCTIONS = 2000
MAX_PORT_ACCESSES = 40


def image_for(fw: Firmware, entry: int = ENTRY, kaddr: int = KADDR, ksize: int = KSIZE) -> bytes:
    return patch_image(
        fw,
        {
            "entry": entry,
            "kernel_addr": kaddr,
            "kernel_size": ksize,
            "boot_path": layout.BOOT_PATH_PVH,
        },
    )


def boot(
    fw: Firmware,
    *,
    ram: int = 256 * MiB,
    cmdline: bytes | None = CMDLINE,
    initrd: bytes | None = None,
    dma: bool = True,
    image: bytes | None = None,
    **cfg: object,
) -> tuple[RunResult, SimFwCfg]:
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=ram,
        kernel_entry=int(cfg.pop("kernel_entry", ENTRY)),  # type: ignore[call-overload]
        kernel_addr=int(cfg.pop("kernel_addr", KADDR)),  # type: ignore[call-overload]
        kernel_size=int(cfg.pop("kernel_size", KSIZE)),  # type: ignore[call-overload]
        cmdline=cmdline,
        initrd=initrd,
        dma=dma,
        **cfg,  # type: ignore[arg-type]
    )
    result = run_firmware(image or image_for(fw), sim, ram_size=ram, stop_at=ENTRY)
    return result, sim


def initrd_bytes(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def start_info(r: RunResult) -> StartInfo:
    return StartInfo.unpack(r.mem(layout.START_INFO, spec.HVM_START_INFO.size))


def memmap(r: RunResult) -> list[tuple[int, int, int]]:
    si = start_info(r)
    entries = unpack_memmap(r.mem(si.memmap_paddr, 24 * si.memmap_entries), si.memmap_entries)
    assert all(e[3] == 0 for e in entries), "hvm_memmap_table_entry.reserved must be 0"
    return [(a, s, t) for a, s, t, _ in entries]


def fatal_line(r: RunResult) -> str:
    assert r.halted, f"expected a halt, got entry={r.stopped_at_entry} error={r.error}"
    assert not r.stopped_at_entry
    lines = r.serial.split("\r\n")
    assert lines[-1] == "" and len(lines) == 2, f"expected one line, got {r.serial!r}"
    assert lines[0].startswith("pvhfw: ")
    return lines[0]


# --- a good boot -------------------------------------------------------------------------


@pytest.mark.parametrize("dma", [True, False], ids=["dma", "ioport"])
def test_boot_leaves_exact_start_info_memmap_cmdline_module(
    pvh_firmware: Firmware, dma: bool
) -> None:
    rd = initrd_bytes(70_001)
    r, sim = boot(pvh_firmware, initrd=rd, dma=dma)
    assert r.stopped_at_entry, (r.error, r.serial)
    assert r.serial == ""  # the success path is silent

    si = start_info(r)
    assert si.magic == spec.XEN_HVM_START_MAGIC_VALUE
    assert si.version == 1 and si.flags == 0 and si.reserved == 0
    assert si.rsdp_paddr == 0
    assert si.cmdline_paddr == layout.CMDLINE
    assert r.mem(layout.CMDLINE, len(CMDLINE) + 1) == CMDLINE + b"\0"

    e820 = parse_e820_file(sim.items[sim.file_keys["etc/e820"]])
    assert memmap(r) == expected_memmap(e820)
    assert memmap(r) == [
        (0, 0xA0000, 1),
        (0xF0000, 0x10000, 2),
        (0x100000, 256 * MiB - 0x100000, 1),
    ]

    assert si.nr_modules == 1 and si.modlist_paddr == layout.MODLIST
    paddr, size, mcmd, reserved = struct.unpack("<QQQQ", r.mem(layout.MODLIST, 32))
    expected_addr = (256 * MiB - 0x28000 - 1 - len(rd)) & ~0xFFF  # QEMU's INITRD_ADDR
    assert (paddr, size, mcmd, reserved) == (expected_addr, len(rd), 0, 0)
    assert zlib.crc32(r.mem(paddr, size)) == zlib.crc32(rd)


def test_cpu_state_at_the_pvh_entry(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware)
    assert r.stopped_at_entry
    regs = r.regs
    assert regs["eip"] == ENTRY
    assert regs["ebx"] == layout.START_INFO
    assert regs["cr0"] == 0x11  # PE | ET, CD/NW cleared, paging off
    assert regs["cr4"] == 0
    for bit, name in ((9, "IF"), (8, "TF"), (17, "VM")):
        assert not regs["eflags"] >> bit & 1, f"EFLAGS.{name} set"
    assert regs["cs"] == layout.SEL_CODE32
    for seg in ("ds", "es", "ss"):
        assert regs[seg] == layout.SEL_DATA32
    code = r.descriptor(regs["cs"])
    assert (code.base, code.limit) == (0, 0xFFFFFFFF)
    assert code.access & 0x9A == 0x9A and code.flags & 0x4  # present code, readable; 32-bit
    data = r.descriptor(regs["ds"])
    assert (data.base, data.limit) == (0, 0xFFFFFFFF)
    assert data.access & 0x92 == 0x92 and not data.access & 0x08 and data.flags & 0x4
    assert r.rom_writes == []  # descriptors carry the accessed bit: no write to ROM


def test_boot_time_events_and_budgets(pvh_firmware: Firmware) -> None:
    r, sim = boot(pvh_firmware, initrd=initrd_bytes(4096))
    assert [(e.port, e.value) for e in r.events] == [(0xF5, 1), (0xF5, 5)]
    assert r.events[0].insn <= 3  # fw_start right after the reset jump
    assert r.events[1].insn >= r.instructions - 4  # fw_do_boot just before the jump
    assert r.instructions <= MAX_INSTRUCTIONS
    assert len(r.port_accesses) <= MAX_PORT_ACCESSES
    # one exit per DMA transfer: every DMA register write is the low half but one
    dma_writes = [a for a in sim.accesses if a.direction == "out" and a.port in (0x514, 0x518)]
    assert len(sim.dma_log) == len([a for a in dma_writes if a.port == 0x518])
    assert len([a for a in dma_writes if a.port == 0x514]) == 1
    assert sim.violations == []


def test_no_initrd_and_empty_cmdline(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware, cmdline=None, initrd=None)
    assert r.stopped_at_entry
    si = start_info(r)
    assert (si.nr_modules, si.modlist_paddr) == (0, 0)
    assert si.cmdline_paddr == layout.CMDLINE and r.mem(layout.CMDLINE, 1) == b"\0"


# RAM survives a guest reboot: the firmware runs again over what the previous boot left.
STALE_RAM = random.Random(13).randbytes(layout.FW_RAM_END - layout.FW_RAM_BASE)


def run_over_stale_ram(
    image: bytes, sim: SimFwCfg, ram_size: int, stop_at: int = ENTRY
) -> RunResult:
    """A boot over a previous boot's RAM, as a guest's reboot runs the firmware: its own RAM
    (FW_RAM_BASE to FW_RAM_END) full of old bytes, where the other runs start from zeros."""
    return run_firmware(
        image, sim, ram_size=ram_size, stop_at=stop_at, ram_init={layout.FW_RAM_BASE: STALE_RAM}
    )


@pytest.mark.parametrize(
    ("initrd", "cmdline", "dma"),
    [
        (None, CMDLINE, True),
        (70_001, CMDLINE, True),
        (70_001, None, True),
        (70_001, CMDLINE, False),
    ],
    ids=["no-initrd", "initrd", "no-cmdline", "ioport"],
)
def test_stale_ram_from_a_previous_boot_is_overwritten(
    pvh_firmware: Firmware, initrd: int | None, cmdline: bytes | None, dma: bool
) -> None:
    """Every field of hvm_start_info, the module list and the memory map is written, none
    assumed zero: byte for byte what the PVH ABI and the model say, over RAM of old bytes.
    No command line: FW_CFG_CMDLINE_SIZE 0 (QEMU's is never less than 1, its NUL), and
    cmdline_paddr 0."""
    rd = initrd_bytes(initrd) if initrd else None
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 * MiB,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        cmdline=cmdline,
        initrd=rd,
        dma=dma,
    )
    if cmdline is None:
        sim.items[spec.FW_CFG_CMDLINE_SIZE] = bytes(4)
    r = run_over_stale_ram(image_for(pvh_firmware), sim, ram_size=128 * MiB)
    assert r.stopped_at_entry, (r.error, r.serial)
    want_map = expected_memmap(parse_e820_file(sim.items[sim.file_keys["etc/e820"]]))
    entry = spec.HVM_MEMMAP_TABLE_ENTRY
    table = b"".join(entry.pack(addr=a, size=s, type=t) for a, s, t in want_map)
    assert r.mem(layout.MEMMAP, len(table)) == table
    assert r.mem(layout.START_INFO, spec.HVM_START_INFO.size) == spec.HVM_START_INFO.pack(
        magic=spec.XEN_HVM_START_MAGIC_VALUE,
        version=1,
        nr_modules=1 if rd else 0,
        modlist_paddr=layout.MODLIST if rd else 0,
        cmdline_paddr=layout.CMDLINE if cmdline else 0,
        memmap_paddr=layout.MEMMAP,
        memmap_entries=len(want_map),
    )
    if cmdline:
        assert r.mem(layout.CMDLINE, len(cmdline) + 1) == cmdline + b"\0"
    if rd:
        module = spec.HVM_MODLIST_ENTRY.pack(
            paddr=int.from_bytes(sim.items[spec.FW_CFG_INITRD_ADDR], "little"), size=len(rd)
        )
        assert r.mem(layout.MODLIST, spec.HVM_MODLIST_ENTRY.size) == module


def test_ram_above_4g_and_reserved_entries_pass_through(pvh_firmware: Firmware) -> None:
    e820 = [(0, 0xB0000000, 1), (0xFEFFC000, 0x4000, 2), (1 << 32, 0x40000000, 1)]
    r, _ = boot(pvh_firmware, ram=0xB0000000, e820=e820, ram_above_4g=0x40000000)
    assert r.stopped_at_entry
    assert memmap(r) == expected_memmap(e820)
    assert memmap(r)[-1] == (1 << 32, 0x40000000, 1)


def test_without_etc_e820_falls_back_to_ram_size(pvh_firmware: Firmware) -> None:
    """FW_CFG_RAM_SIZE, capped at FALLBACK_LOWMEM_MAX (on both sides of it), over RAM of old
    bytes."""
    cap = layout.FALLBACK_LOWMEM_MAX
    for ram in (64 * MiB, cap, cap + 1, 6 << 30):
        sim = SimFwCfg.for_pvh_boot(
            ram_below_4g=min(ram, 0xC0000000),
            ram_above_4g=max(0, ram - 0xC0000000),
            kernel_entry=ENTRY,
            kernel_addr=KADDR,
            kernel_size=KSIZE,
            cmdline=b"",
        )
        sim.remove_file("etc/e820")
        r = run_over_stale_ram(image_for(pvh_firmware), sim, ram_size=64 * MiB)
        assert r.stopped_at_entry, r.serial
        assert memmap(r) == expected_memmap(fallback_e820(ram))


def test_many_e820_entries_fill_the_table_exactly(pvh_firmware: Firmware) -> None:
    # RAM below 1 MiB splits into 3 entries; 123 more reserved ones fill MEMMAP_MAX exactly.
    extra = [(0xE0000000 + 0x1000 * i, 0x1000, 2) for i in range(layout.MEMMAP_MAX - 3)]
    e820 = [(0, 128 * MiB, 1), *extra]
    r, _ = boot(pvh_firmware, ram=128 * MiB, e820=e820)
    assert r.stopped_at_entry, r.serial
    assert memmap(r) == expected_memmap(e820)
    assert len(memmap(r)) == layout.MEMMAP_MAX


# --- every error: one line on COM1 and a halt ------------------------------------------------


def test_memory_map_too_large(pvh_firmware: Firmware) -> None:
    extra = [(0xE0000000 + 0x1000 * i, 0x1000, 2) for i in range(layout.MEMMAP_MAX - 2)]
    r, _ = boot(pvh_firmware, ram=128 * MiB, e820=[(0, 128 * MiB, 1), *extra])
    assert fatal_line(r) == "pvhfw: memory map needs more than 0x0000007e entries"


@pytest.mark.parametrize("extra", [0, 1, 20], ids=["fits", "a-byte-more", "an-entry-more"])
def test_e820_file_larger_than_the_buffer(pvh_firmware: Firmware, extra: int) -> None:
    """E820_MAX entries fit the buffer (and then overflow the memory map, a check of its
    own); a byte more is refused, with the file's size."""
    e820 = [(0xE0000000 + 0x1000 * i, 0x1000, 2) for i in range(layout.E820_MAX)]
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=256 * MiB,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        e820=e820,
    )
    sim.replace_file("etc/e820", sim.items[sim.file_keys["etc/e820"]] + bytes(extra))
    r = run_firmware(image_for(pvh_firmware), sim, ram_size=256 * MiB, stop_at=ENTRY)
    n = 20 * layout.E820_MAX + extra
    if not extra:  # read whole; it is the memory map (with the ROM shadow) that overflows
        assert len(expected_memmap(e820)) > layout.MEMMAP_MAX
        assert (
            fatal_line(r) == f"pvhfw: memory map needs more than {layout.MEMMAP_MAX:#010x} entries"
        )
        return
    assert fatal_line(r) == f"pvhfw: fw_cfg etc/e820 is {n:#010x} bytes, more than 0x00000a00"


@pytest.mark.parametrize("n", [layout.FILE_DIR_MAX, layout.FILE_DIR_MAX + 1])
@pytest.mark.parametrize("dma", [True, False])
def test_file_directory_larger_than_the_buffer(pvh_firmware: Firmware, dma: bool, n: int) -> None:
    """A count past FILE_DIR_MAX is refused before any entry is read or searched (QEMU's
    x-file-slots can make the directory that large); FILE_DIR_MAX entries fit."""
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 * MiB, kernel_entry=ENTRY, kernel_addr=KADDR, kernel_size=KSIZE, dma=dma
    )
    entries = b"".join(
        spec.FW_CFG_FILE.pack(size=4, select=spec.FW_CFG_FILE_FIRST + i, name=b"etc/x%03d" % i)
        for i in range(n)
    )
    sim.items[spec.FW_CFG_FILE_DIR] = spec.FW_CFG_FILES_COUNT.pack(count=n) + entries
    r = run_firmware(image_for(pvh_firmware), sim, ram_size=128 * MiB, stop_at=ENTRY)
    if n == layout.FILE_DIR_MAX:
        assert r.stopped_at_entry, (r.error, r.serial)
        return
    assert (
        fatal_line(r) == "pvhfw: fw_cfg file directory has 0x00000081 entries, more than 0x00000080"
    )


def test_first_file_keeps_its_whole_size(pvh_firmware: Firmware) -> None:
    """The directory's count, made host-order in place after the DMA transfer of the whole
    directory, leaves the entry after it alone: the first file (etc/e820 here, first as a
    legacy-order machine may list it) of 16 MiB or more keeps its size's top byte, which the
    error names."""
    sim = sim_with({})
    size = (1 << 24) + 20
    sim.replace_file("etc/e820", bytes(size))
    sim.reorder_files(["etc/e820", *(n for n in sim.file_keys if n != "etc/e820")])
    r = run_firmware(image_for(pvh_firmware), sim, ram_size=256 * MiB, stop_at=ENTRY)
    assert fatal_line(r) == f"pvhfw: fw_cfg etc/e820 is {size:#010x} bytes, more than 0x00000a00"


def test_no_fw_cfg(pvh_firmware: Firmware) -> None:
    r = run_firmware(image_for(pvh_firmware), SimFwCfg(present=False), stop_at=ENTRY)
    assert fatal_line(r) == "pvhfw: no fw_cfg device: its signature is not QEMU"


def test_no_kernel(pvh_firmware: Firmware) -> None:
    sim = SimFwCfg(files={"etc/e820": struct.pack("<QQI", 0, 128 * MiB, 1)})
    r = run_firmware(image_for(pvh_firmware), sim, stop_at=ENTRY)
    assert fatal_line(r) == (
        "pvhfw: no kernel: start QEMU with -kernel (the vmlinux this image was built for)"
    )


def test_image_built_for_another_kernel_entry(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware, kernel_entry=0x200000)
    assert fatal_line(r) == (
        "pvhfw: kernel entry 0x00200000 from QEMU is not 0x01000850 of the kernel this image "
        "was built for"
    )


def test_image_built_for_another_kernel_range(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware, kernel_size=KSIZE + 0x1000)
    assert fatal_line(r) == (
        "pvhfw: kernel loaded at 0x01000000+0x02e01000 by QEMU, not 0x01000000+0x02e00000 as "
        "the kernel this image was built for"
    )


def test_unpatched_image(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware, image=pvh_firmware.image)
    assert fatal_line(r) == (
        "pvhfw: this image has no kernel entry: build it with build-fw --kernel KERNEL or "
        "--any-kernel"
    )


def test_command_line_too_long_and_longest_accepted(pvh_firmware: Firmware) -> None:
    longest = b"a" * (layout.CMDLINE_MAX - 1)
    r, _ = boot(pvh_firmware, cmdline=longest)
    assert r.stopped_at_entry
    assert r.mem(layout.CMDLINE, layout.CMDLINE_MAX) == longest + b"\0"
    r, _ = boot(pvh_firmware, cmdline=longest + b"b")
    assert fatal_line(r) == "pvhfw: command line is 0x00002001 bytes, more than 0x00002000"


@pytest.mark.parametrize(
    ("addr", "size"),
    [
        (0x80000, 0x1000),
        (MiB - 1, 0x1000),
        (0xFFFFF000, 0x2000),
        (KADDR - 0x1000, 0x2000),
        (KADDR + 0x1000, 0x10),
    ],
    ids=["below-1MiB", "1MiB-less-1", "past-4GiB", "into-kernel", "inside-kernel"],
)
def test_initrd_placed_where_it_cannot_go(pvh_firmware: Firmware, addr: int, size: int) -> None:
    r, _ = boot(pvh_firmware, initrd=initrd_bytes(size), initrd_addr=addr)
    assert fatal_line(r) == (
        f"pvhfw: initrd at {addr:#010x}+{size:#010x} is below 1 MiB, past 4 GiB or over the "
        "kernel's memory"
    )


@pytest.mark.parametrize("addr", [KADDR + KSIZE, MiB], ids=["after-the-kernel", "at-1MiB"])
def test_initrd_at_the_edges_is_fine(pvh_firmware: Firmware, addr: int) -> None:
    """Right after the kernel, and at 1 MiB (ending before the kernel): the lowest places
    an initrd may have."""
    rd = initrd_bytes(0x3000)
    r, _ = boot(pvh_firmware, initrd=rd, initrd_addr=addr)
    assert r.stopped_at_entry, r.serial
    assert r.mem(addr, len(rd)) == rd


def test_command_line_without_its_nul(pvh_firmware: Firmware) -> None:
    """A command line whose last byte fw_cfg gives is not NUL (QEMU's always is): the
    firmware terminates it in that byte, over RAM of old bytes, so the kernel reads no
    further."""
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 * MiB,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        cmdline=CMDLINE,
    )
    sim.items[spec.FW_CFG_CMDLINE_DATA] = CMDLINE + b"x"
    r = run_over_stale_ram(image_for(pvh_firmware), sim, ram_size=128 * MiB)
    assert r.stopped_at_entry, (r.error, r.serial)
    assert r.mem(layout.CMDLINE, len(CMDLINE) + 1) == CMDLINE + b"\0"


def test_dma_error_is_reported(pvh_firmware: Firmware) -> None:
    # QEMU sets the error bit when the DMA target is not RAM: an initrd address past the
    # emulated RAM stands in for it.
    r, _ = boot(pvh_firmware, ram=64 * MiB, initrd=initrd_bytes(0x1000), initrd_addr=0x8000000)
    assert fatal_line(r) == "pvhfw: fw_cfg DMA transfer failed"


# --- the floor --------------------------------------------------------------------------------


def test_floor_only_switches_mode_and_jumps(floor_firmware: Firmware) -> None:
    r = run_firmware(image_for(floor_firmware), SimFwCfg(), stop_at=ENTRY)
    assert r.stopped_at_entry
    assert r.fwcfg_accesses == 0
    assert [(a.port, a.value) for a in r.port_accesses] == [(0xF5, 1)]
    assert r.regs["cr0"] == 0x11 and r.regs["cs"] == layout.SEL_CODE32
    assert r.instructions == 12  # jmp, mov, out, lgdt, mov, mov cr0, ljmp, mov, 3 x mov seg, jmp


# ---- ACPI: the table-loader, replayed from recordings of real QEMU -------------------------


def acpi_files(machine: str, qemu: str = BASE_QEMU) -> dict[str, bytes]:
    """The ACPI files QEMU `qemu` (a release series, tests/acpi_loader's RECORDED_QEMUS)
    gave on `machine`."""
    rec = load_recording(machine, qemu=qemu)
    return {n: rec.files[n] for n in ("etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables")}


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
@pytest.mark.parametrize("machine", ["pc", "q35", "microvm"])
def test_acpi_tables_exactly_as_the_loader_says(
    pvh_firmware: Firmware, machine: str, qemu: str
) -> None:
    """QEMU's recorded etc/table-loader and ACPI files (QEMU 7.2's and 10.0's): the firmware
    leaves exactly the bytes an independent replay of the loader gives (RSDP in the EBDA,
    tables at the top of the RAM below 4 GiB, pointers added, checksums set), points
    rsdp_paddr at the RSDP, records the EBDA in the BDA and carves both zones out of the
    map."""
    files = acpi_files(machine, qemu)
    initrd = initrd_bytes(64 * 1024)
    r, sim = boot(pvh_firmware, initrd=initrd, extra_files=files)
    assert r.stopped_at_entry, (r.error, r.serial)
    assert sim.violations == []
    ram = 256 * MiB
    blobs, addrs = replay(
        parse_table_loader(files["etc/table-loader"]), files, ram, layout.EBDA_BASE
    )
    for name, blob in blobs.items():
        assert r.mem(addrs[name], len(blob)) == bytes(blob), name
    assert start_info(r).rsdp_paddr == addrs["etc/acpi/rsdp"] == layout.EBDA_BASE
    assert r.mem(layout.BDA_EBDA_SEGMENT, 2) == struct.pack("<H", layout.EBDA_BASE >> 4)
    low = min(addrs[n] for n in blobs if addrs[n] >= MiB)
    e820 = [(0, ram, 1)]
    want = expected_memmap(e820)
    want[-1] = (MiB, low - MiB, 1)
    want += [(low, ram - low, 3)]
    want[0] = (0, layout.EBDA_BASE, 1)
    want += [(layout.EBDA_BASE, layout.LOWMEM_END - layout.EBDA_BASE, 2)]
    assert memmap(r) == want
    assert load_recording(machine, qemu=qemu).smp == 2  # what the MADT in these files lists


def test_acpi_without_table_loader_changes_nothing(pvh_firmware: Firmware) -> None:
    """No etc/table-loader (a machine with ACPI off): rsdp_paddr 0, the map as before."""
    r, _ = boot(pvh_firmware)
    assert r.stopped_at_entry
    assert start_info(r).rsdp_paddr == 0
    assert memmap(r) == expected_memmap([(0, 256 * MiB, 1)])


def _loader(*commands: bytes) -> bytes:
    return b"".join(commands)


def _allocate(name: str, align: int, zone: int) -> bytes:
    return spec.loader_command(spec.LOADER_COMMAND_ALLOCATE, file=name, align=align, zone=zone)


def _checksum(name: str, offset: int, start: int, length: int) -> bytes:
    return spec.loader_command(
        spec.LOADER_COMMAND_ADD_CHECKSUM, file=name, offset=offset, start=start, length=length
    )


def _pointer(dest: str, src: str, offset: int, size: int) -> bytes:
    return spec.loader_command(
        spec.LOADER_COMMAND_ADD_POINTER, dest_file=dest, src_file=src, offset=offset, size=size
    )


def _write_pointer(dest: str, src: str, dst_offset: int, src_offset: int, size: int) -> bytes:
    return spec.loader_command(
        spec.LOADER_COMMAND_WRITE_POINTER,
        dest_file=dest,
        src_file=src,
        dst_offset=dst_offset,
        src_offset=src_offset,
        size=size,
    )


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        (
            _loader(_allocate("etc/nothere", 16, 1)),
            "command at offset 0x00000000 names a file fw_cfg does not have",
        ),
        (
            _loader(_allocate("etc/blob", 16, 1), _allocate("etc/blob2", 16, 7)),
            "command at offset 0x00000080 is malformed",
        ),
        (
            _loader(_allocate("etc/blob", 3, 1)),
            "command at offset 0x00000000 is malformed",
        ),
        (
            _loader(_allocate("etc/blob", 16, 1), _pointer("etc/blob", "etc/blob2", 0, 4)),
            "command at offset 0x00000080 names a file not allocated before",
        ),
        (
            _loader(_allocate("etc/blob", 16, 1), _pointer("etc/blob", "etc/blob", 62, 4)),
            "command at offset 0x00000080 is malformed",
        ),
        (
            _loader(_allocate("etc/blob", 16, 1), _checksum("etc/blob", 0, 60, 5)),
            "command at offset 0x00000080 is malformed",
        ),
        (
            _loader(_allocate("etc/big", 16, 2)),
            "command at offset 0x00000000 allocates 0x00000800 bytes, with no room left",
        ),
        (
            _loader(_allocate("etc/blob", 16, 1), _write_pointer("etc/addr", "etc/blob", 0, 0, 9)),
            "command at offset 0x00000080 is malformed",
        ),
    ],
    ids=["no-file", "bad-zone", "bad-align", "not-allocated", "pointer-outside", "sum-outside",
         "fseg-full", "write-9-bytes"],
)  # fmt: skip
def test_acpi_loader_errors(pvh_firmware: Firmware, loader: bytes, message: str) -> None:
    files = {
        "etc/table-loader": loader,
        "etc/blob": bytes(64),
        "etc/blob2": bytes(64),
        "etc/big": bytes(2048),
        "etc/addr": bytes(24),  # writable or not: the command is refused before any write
    }
    r, _ = boot(pvh_firmware, extra_files=files)
    assert not r.stopped_at_entry
    assert fatal_line(r) == f"pvhfw: fw_cfg etc/table-loader: {message}"


@pytest.mark.parametrize("size", [layout.LOADER_MAX, layout.LOADER_MAX + 1])
def test_acpi_loader_size_limit(pvh_firmware: Firmware, size: int) -> None:
    """A table-loader of LOADER_MAX bytes (padding commands) fits the buffer; one byte more is
    refused before any is read, naming its size and the limit."""
    r, _ = boot(pvh_firmware, extra_files={"etc/table-loader": bytes(size)})
    if size == layout.LOADER_MAX:
        assert r.stopped_at_entry, (r.error, r.serial)
        return
    assert fatal_line(r) == (
        f"pvhfw: fw_cfg etc/table-loader is {size:#010x} bytes, more than {layout.LOADER_MAX:#010x}"
    )


def test_acpi_loader_runs_no_command_past_its_end(pvh_firmware: Firmware) -> None:
    """The loader runs the file's commands and stops at its end: a command that lies in the
    buffer after it (a previous boot's, with a name fw_cfg does not have) is not run."""
    loader = _loader(_allocate("etc/blob", 16, 1))
    sim = sim_with({"etc/table-loader": loader, "etc/blob": bytes(64)})
    r = run_firmware(
        image_for(pvh_firmware),
        sim,
        ram_size=256 * MiB,
        stop_at=ENTRY,
        ram_init={layout.LOADER_BUF + len(loader): _allocate("etc/nothere", 16, 1)},
    )
    assert r.stopped_at_entry, (r.error, r.serial)


@pytest.mark.parametrize("n", [layout.ALLOC_MAX, layout.ALLOC_MAX + 1])
def test_acpi_loader_allocation_limit(pvh_firmware: Firmware, n: int) -> None:
    """ALLOC_MAX files are allocated, each where the replay puts it, and the first and the
    last are found by the commands after (a checksum in each); one more is refused, naming
    its command."""
    names = [f"etc/f{i:02d}" for i in range(n)]
    files = {name: bytes([i + 1]) * 32 for i, name in enumerate(names)}
    commands = [_allocate(name, 16, 1) for name in names]
    loader = _loader(*commands, *(_checksum(name, 0, 0, 32) for name in (names[0], names[-1])))
    files["etc/table-loader"] = loader
    r, _ = boot(pvh_firmware, extra_files=files)
    if n > layout.ALLOC_MAX:
        offset = layout.ALLOC_MAX * spec.LOADER_ENTRY_SIZE
        assert fatal_line(r) == (
            f"pvhfw: fw_cfg etc/table-loader: command at offset {offset:#010x} is malformed"
        )
        return
    assert r.stopped_at_entry, (r.error, r.serial)
    blobs, addrs = replay(parse_table_loader(loader), files, 256 * MiB, layout.EBDA_BASE)
    for name in names:
        assert r.mem(addrs[name], 32) == bytes(blobs[name])


# The longest name fw_cfg has (FW_CFG_MAX_FILE_PATH, NUL included), and two that differ only
# in its last bytes.
LONGEST = "etc/" + "n" * (spec.FW_CFG_MAX_FILE_PATH - 6)
LONG_A, LONG_B = LONGEST + "a", LONGEST + "b"


def test_acpi_loader_names_of_every_length(pvh_firmware: Firmware) -> None:
    """Names of fw_cfg's longest, told apart by their last byte: each command finds its own
    file, in the directory and among the allocations."""
    assert len(LONG_A) + 1 == spec.FW_CFG_MAX_FILE_PATH
    loader = _loader(
        _allocate(LONG_A, 16, 1),
        _allocate(LONG_B, 16, 1),
        _pointer(LONG_B, LONG_A, 0, 4),
        _checksum(LONG_B, 8, 0, 16),
    )
    files = {"etc/table-loader": loader, LONG_A: bytes(range(16)), LONG_B: bytes(16)}
    r, _ = boot(pvh_firmware, extra_files=files)
    assert r.stopped_at_entry, (r.error, r.serial)
    blobs, addrs = replay(parse_table_loader(loader), files, 256 * MiB, layout.EBDA_BASE)
    for name in (LONG_A, LONG_B):
        assert r.mem(addrs[name], 16) == bytes(blobs[name])


def test_acpi_loader_name_without_its_nul(pvh_firmware: Firmware) -> None:
    """A name that fills its field with no NUL is malformed, whatever the bytes after it (an
    alignment of 0, here, whose first byte is a NUL)."""
    field = (LONG_A + "x").encode()
    assert len(field) == spec.FW_CFG_MAX_FILE_PATH
    command = bytearray(_allocate("etc/blob", 0, 1))
    command[4 : 4 + len(field)] = field
    r, _ = boot(pvh_firmware, extra_files={"etc/table-loader": bytes(command)})
    assert fatal_line(r) == (
        "pvhfw: fw_cfg etc/table-loader: command at offset 0x00000000 is malformed"
    )


def test_tables_with_no_ram_to_take_them_from(pvh_firmware: Firmware) -> None:
    """fw_cfg's map without RAM below 640 KiB: the RSDP's zone (the EBDA) is in no RAM entry,
    and the memory map says so, naming the range. Without RAM between 1 MiB and 4 GiB the
    high zone is empty: its allocation does not fit."""
    files = {"etc/table-loader": _loader(_allocate("etc/blob", 16, 2)), "etc/blob": bytes(64)}
    r, _ = boot(pvh_firmware, e820=[(0x100000, 255 * MiB, 1)], extra_files=files)
    assert fatal_line(r) == (
        "pvhfw: memory map: no RAM entry below 4 GiB holds 0x0009fc00+0x00000400, which the "
        "firmware's tables need"
    )
    files = {"etc/table-loader": _loader(_allocate("etc/blob", 16, 1)), "etc/blob": bytes(64)}
    r, _ = boot(pvh_firmware, e820=[(0, 0xA0000, 1), (1 << 32, 1 << 30, 1)], extra_files=files)
    assert fatal_line(r) == (
        "pvhfw: fw_cfg etc/table-loader: command at offset 0x00000000 allocates 0x00000040 "
        "bytes, with no room left"
    )


def test_acpi_loader_pointer_sizes_and_checksum(pvh_firmware: Firmware) -> None:
    """1-, 2-, 4- and 8-byte pointers get the source's address added (for 8, a low half that
    carries into the high one), and the checksum byte makes its range sum to 0."""
    blob = bytearray(range(64))
    blob[8:16] = struct.pack("<Q", 0x12345678_FFFFFF00)  # the low half carries into the high
    loader = _loader(
        _allocate("etc/blob2", 64, 1),
        _allocate("etc/blob", 16, 1),
        _pointer("etc/blob", "etc/blob2", 0, 1),
        _pointer("etc/blob", "etc/blob2", 2, 2),
        _pointer("etc/blob", "etc/blob2", 4, 4),
        _pointer("etc/blob", "etc/blob2", 8, 8),
        _checksum("etc/blob", 20, 0, 40),
    )
    files = {"etc/table-loader": loader, "etc/blob": bytes(blob), "etc/blob2": bytes(100)}
    r, _ = boot(pvh_firmware, extra_files=files)
    assert r.stopped_at_entry, r.serial
    blobs, addrs = replay(parse_table_loader(loader), files, 256 * MiB, layout.EBDA_BASE)
    assert r.mem(addrs["etc/blob"], 64) == bytes(blobs["etc/blob"])
    assert struct.unpack_from("<Q", blobs["etc/blob"], 8)[0] >> 32 == 0x12345679
    assert sum(blobs["etc/blob"][:40]) & 0xFF == 0
    assert start_info(r).rsdp_paddr == 0  # no etc/acpi/rsdp allocated


def sim_with(files: dict[str, bytes], dma: bool = True) -> SimFwCfg:
    """fw_cfg for the default kernel on 256 MiB, plus `files`."""
    return SimFwCfg.for_pvh_boot(
        ram_below_4g=256 * MiB,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        extra_files=files,
        dma=dma,
    )


@pytest.mark.parametrize("dma", [True, False])
def test_acpi_loader_write_pointer(pvh_firmware: Firmware, dma: bool) -> None:
    """WRITE_POINTER (vmgenid and the like): the allocated file's address plus src_offset goes
    into the writable fw_cfg file at dst_offset, by a DMA write; without DMA it is an error."""
    loader = _loader(
        _allocate("etc/blob", 16, 1),
        _write_pointer("etc/addr", "etc/blob", 8, 0x10, 8),
    )
    files = {"etc/table-loader": loader, "etc/blob": bytes(64), "etc/addr": bytes(24)}
    sim = sim_with(files, dma=dma)
    sim.make_writable("etc/addr")
    # over stale RAM: the value's high half must be written, not kept from before
    r = run_over_stale_ram(image_for(pvh_firmware), sim, ram_size=256 * MiB)
    if not dma:
        assert fatal_line(r) == (
            "pvhfw: fw_cfg etc/table-loader: command at offset 0x00000080 writes to fw_cfg, "
            "which needs DMA"
        )
        return
    assert r.stopped_at_entry, r.serial
    assert sim.violations == []
    blob = (256 * MiB - 64) & ~15
    written = sim.items[sim.file_keys["etc/addr"]]
    assert written == bytes(8) + struct.pack("<Q", blob + 0x10) + bytes(8)


# ---- the chipset: the F segment, q35's MMCONFIG, the ACPI PM block ------------------------

PIIX4_HOST = {spec.PCI_I440FX_HOST: spec.I440FX_ID, spec.PIIX4_PM: spec.PIIX4_PM_ID}
Q35_HOST = {spec.PCI_I440FX_HOST: spec.Q35_MCH_ID, spec.ICH9_LPC: spec.ICH9_LPC_ID}


@pytest.mark.parametrize(
    ("pci", "writes"),
    [
        (
            PIIX4_HOST,
            [
                (spec.PCI_I440FX_HOST + spec.I440FX_PAM0, 0x30, 1),  # F segment: RAM, RE | WE
                (spec.PIIX4_PM + spec.PIIX4_PMBA, layout.PM_IO_BASE | 1, 4),
                (spec.PIIX4_PM + spec.PIIX4_PMREGMISC, 0x01, 4),  # PMIOSE
            ],
        ),
        (
            Q35_HOST,
            [
                (spec.PCI_I440FX_HOST + spec.Q35_PAM0, 0x30, 1),
                (spec.PCI_I440FX_HOST + spec.Q35_PCIEXBAR, 0xB000_0000 | spec.PCIEXBAR_EN, 4),
                (spec.ICH9_LPC + spec.ICH9_PMBASE, layout.PM_IO_BASE | 1, 4),
                (spec.ICH9_LPC + spec.ICH9_ACPI_CNTL, spec.ICH9_ACPI_EN, 4),
            ],
        ),
        ({}, []),  # microvm: no PCI
    ],
    ids=["pc-piix4", "q35-ich9", "microvm"],
)
def test_chipset_set_up_before_acpi(
    pvh_firmware: Firmware, pci: dict[int, int], writes: list[tuple[int, int, int]]
) -> None:
    """The firmware maps the F segment to RAM (PAM0), enables q35's MMCONFIG at 0xB0000000
    (256 MiB) and reserves it in the memory map, places and enables the chipset's PM I/O block
    (where QEMU's FADT will point the kernel), all before it first reads an ACPI file: QEMU
    builds its tables then (MCFG from PCIEXBAR, the FADT from the PM block)."""
    files = acpi_files("pc")
    sim = sim_with(files)
    r = run_firmware(image_for(pvh_firmware), sim, ram_size=256 * MiB, stop_at=ENTRY, pci=pci)
    assert r.stopped_at_entry, r.serial
    assert r.pci_writes == writes
    mmconfig = (0xB000_0000, 0x1000_0000, spec.E820_RESERVED)
    assert (mmconfig in memmap(r)) == (pci == Q35_HOST)
    assert r.rom_writes == []
    pci_ports = [a.insn for a in r.port_accesses if a.port in (0xCF8, 0xCFC)]
    dma_starts = [a.insn for a in sim.accesses if a.direction == "out" and a.port == 0x518]
    loader_key = sim.file_keys["etc/table-loader"]
    first_acpi = next(
        i for d, i in zip(sim.dma_log, dma_starts, strict=True) if d.key == loader_key
    )
    assert first_acpi is not None
    assert not pci_ports or max(i for i in pci_ports if i is not None) < first_acpi
