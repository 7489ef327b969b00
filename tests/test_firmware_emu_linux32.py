"""The firmware's Linux boot protocol path (a bzImage), run in the emulator against a
simulated fw_cfg that models QEMU's bzImage branch: the zero page byte for byte, the code at
1 MiB, the CPU state at code32_start, and the errors of a mismatched kernel."""

from __future__ import annotations

import random

import pytest

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from pvhfw.firmware.patchtable import patch_image
from tests import spec
from tests.acpi_loader import RECORDED_QEMUS, parse_table_loader, replay
from tests.bzgen import bzimage
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.model import expected_memmap, with_acpi
from tests.test_firmware_emu import (
    CMDLINE,
    ENTRY,
    KADDR,
    KSIZE,
    acpi_files,
    boot,
    fatal_line,
    image_for,
    run_over_stale_ram,
)

MiB = 1 << 20
RAM = 256 * MiB
PM = random.Random(5).randbytes(0x3000)  # the "protected-mode code": any bytes will do
BZ = bzimage(PM, relocatable=1, pref_address=0x1000000, init_size=0x800000)


def linux32_image(fw: Firmware, bz: bytes = BZ) -> bytes:
    return patch_image(
        fw,
        {
            "entry": spec.bp_read(bz, "code32_start"),
            "kernel_addr": 0x100000,
            "kernel_size": len(bz) - spec.setup_size(bz),
            "boot_path": layout.BOOT_PATH_LINUX32,
        },
    )


def boot_bz(
    fw: Firmware,
    bz: bytes = BZ,
    *,
    ram: int = RAM,
    image: bytes | None = None,
    track_writes: bool = False,
    **sim_args: object,
) -> tuple[RunResult, SimFwCfg]:
    sim = SimFwCfg.for_linux_boot(bz, ram_below_4g=ram, **sim_args)  # type: ignore[arg-type]
    entry = spec.bp_read(bz, "code32_start")
    r = run_firmware(
        image or linux32_image(fw, bz), sim, ram_size=ram, stop_at=entry, track_writes=track_writes
    )
    return r, sim


def fwcfg_ramdisk(sim: SimFwCfg) -> tuple[int, int]:
    """The initrd fw_cfg gives (FW_CFG_INITRD_ADDR, FW_CFG_INITRD_SIZE): (0, 0) for none."""
    addr, size = (
        int.from_bytes(sim.items.get(key, bytes(4)), "little")
        for key in (spec.FW_CFG_INITRD_ADDR, spec.FW_CFG_INITRD_SIZE)
    )
    return addr, size


def expected_zero_page(
    setup_data: bytes,
    memmap: list[tuple[int, int, int]],
    cmdline: bool,
    rsdp: int = 0,
    ramdisk: tuple[int, int] = (0, 0),
) -> bytes:
    """struct boot_params as the boot protocol wants it, from QEMU's setup sectors: the setup
    header [hdr, header + the jump's rel8) kept (never past _pad7's end, edd_mbr_sig_buffer),
    everything else zero but the loader's fields (ramdisk_image and ramdisk_size are the
    loader's to write, "obligatory", whatever the kernel file holds there)."""
    page = bytearray(spec.BOOT_PARAMS_SIZE)
    start = spec.bp_offset("hdr")
    end = spec.bp_offset("header") + (spec.bp_read(setup_data, "jump") >> 8)
    end = min(end, spec.bp_offset("edd_mbr_sig_buffer"))
    page[start:end] = setup_data[start:end]
    spec.bp_write(page, "cmd_line_ptr", layout.CMDLINE if cmdline else 0)
    spec.bp_write(page, "e820_entries", len(memmap))
    table = spec.bp_offset("e820_table")
    page[table : table + spec.E820_ENTRY.size * len(memmap)] = spec.e820_pack(memmap)
    spec.bp_write(page, "acpi_rsdp_addr", rsdp)
    spec.bp_write(page, "ramdisk_image", ramdisk[0])
    spec.bp_write(page, "ramdisk_size", ramdisk[1])
    return bytes(page)


def entry_state_is_the_protocols(r: RunResult) -> None:
    assert r.stopped_at_entry, (r.error, r.serial)
    assert r.regs["esi"] == layout.ZERO_PAGE
    assert r.regs["ebp"] == r.regs["edi"] == r.regs["ebx"] == 0
    assert r.regs["cr0"] & 0x80000001 == 1  # protected mode, paging off
    assert r.regs["eflags"] & 0x200 == 0  # interrupts off
    assert r.regs["cs"] == 0x10  # __BOOT_CS
    assert r.regs["ds"] == r.regs["es"] == r.regs["ss"] == 0x18  # __BOOT_DS
    for sel, access in ((0x10, 0x9B), (0x18, 0x93)):
        d = r.descriptor(sel)
        assert (d.base, d.limit, d.access & 0x9A) == (0, 0xFFFFFFFF, access & 0x9A)


@pytest.mark.parametrize("dma", [True, False], ids=["dma", "pio"])
def test_bzimage_boot_leaves_exact_zero_page(pvh_firmware: Firmware, dma: bool) -> None:
    initrd = random.Random(9).randbytes(40_000)
    r, sim = boot_bz(pvh_firmware, cmdline=CMDLINE, initrd=initrd, dma=dma, track_writes=True)
    entry_state_is_the_protocols(r)
    assert sim.violations == []
    ramdisk = spec.bp_read(sim.items[spec.FW_CFG_SETUP_DATA], "ramdisk_image")
    # the firmware's RAM, the zones of its tables (EBDA, F segment), the code, the initrd:
    # nothing else, not a byte past the zero page
    may_write = [
        (layout.FW_RAM_BASE, layout.FW_RAM_END),
        (layout.EBDA_BASE, layout.LOWMEM_END),
        (layout.ROM_SHADOW_BASE, MiB),
        (MiB, MiB + len(PM)),
        (ramdisk, ramdisk + len(initrd)),
    ]
    for addr, size in r.writes:
        assert any(lo <= addr and addr + size <= hi for lo, hi in may_write), hex(addr)
    assert r.mem(0x100000, len(PM)) == PM  # FW_CFG_KERNEL_DATA at FW_CFG_KERNEL_ADDR
    setup = sim.items[spec.FW_CFG_SETUP_DATA]
    ramdisk_image = spec.bp_read(setup, "ramdisk_image")
    ramdisk_size = spec.bp_read(setup, "ramdisk_size")
    assert ramdisk_size == len(initrd) and r.mem(ramdisk_image, len(initrd)) == initrd
    assert r.mem(layout.CMDLINE, len(CMDLINE) + 1) == CMDLINE + b"\0"
    want = expected_zero_page(
        setup, expected_memmap([(0, RAM, 1)]), cmdline=True, ramdisk=fwcfg_ramdisk(sim)
    )
    assert r.mem(layout.ZERO_PAGE, 4096) == want
    loader = spec.bp_offset("type_of_loader")
    assert setup[loader] == 0xB0 and r.mem(layout.ZERO_PAGE + loader, 1) == b"\xb0"


@pytest.mark.parametrize(
    ("initrd", "cmdline"),
    [(None, True), (40_000, True), (40_000, False)],
    ids=["no-initrd", "initrd", "no-cmdline"],
)
def test_stale_ram_gives_the_exact_zero_page(
    pvh_firmware: Firmware, initrd: int | None, cmdline: bool
) -> None:
    """A reboot runs the firmware over the previous boot's RAM: the zero page is still byte
    for byte the protocol's, every byte the setup header does not give written. No command
    line (FW_CFG_CMDLINE_SIZE 0): cmd_line_ptr 0."""
    rd = random.Random(9).randbytes(initrd) if initrd else None
    sim = SimFwCfg.for_linux_boot(BZ, ram_below_4g=RAM, cmdline=CMDLINE, initrd=rd)
    if not cmdline:
        sim.items[spec.FW_CFG_CMDLINE_SIZE] = bytes(4)
    entry = spec.bp_read(BZ, "code32_start")
    r = run_over_stale_ram(linux32_image(pvh_firmware), sim, ram_size=RAM, stop_at=entry)
    entry_state_is_the_protocols(r)
    setup = sim.items[spec.FW_CFG_SETUP_DATA]
    want = expected_zero_page(
        setup, expected_memmap([(0, RAM, 1)]), cmdline=cmdline, ramdisk=fwcfg_ramdisk(sim)
    )
    assert r.mem(layout.ZERO_PAGE, 4096) == want


def test_the_loaders_ramdisk_fields_whatever_the_file_holds(pvh_firmware: Firmware) -> None:
    """ramdisk_image and ramdisk_size are the loader's: a kernel file with values there (QEMU
    writes them only with an initrd, passing the file's on otherwise) boots without an
    initrd with both 0."""
    bz = bytearray(BZ)
    spec.bp_write(bz, "ramdisk_image", 0x3000000)
    spec.bp_write(bz, "ramdisk_size", 0x1234)
    r, sim = boot_bz(pvh_firmware, bytes(bz), cmdline=CMDLINE)
    entry_state_is_the_protocols(r)
    setup = sim.items[spec.FW_CFG_SETUP_DATA]
    assert spec.bp_read(setup, "ramdisk_image") == 0x3000000  # as the file has it
    want = expected_zero_page(setup, expected_memmap([(0, RAM, 1)]), cmdline=True)
    assert r.mem(layout.ZERO_PAGE, 4096) == want


def test_no_cmdline_no_initrd(pvh_firmware: Firmware) -> None:
    r, sim = boot_bz(pvh_firmware, cmdline=None)
    entry_state_is_the_protocols(r)
    want = expected_zero_page(
        sim.items[spec.FW_CFG_SETUP_DATA], expected_memmap([(0, RAM, 1)]), True
    )
    assert r.mem(layout.ZERO_PAGE, 4096) == want  # QEMU's command line is "" (1 byte)
    ramdisk = layout.ZERO_PAGE + spec.bp_offset("ramdisk_image")
    assert r.mem(ramdisk, 8) == bytes(8)  # ramdisk_image, ramdisk_size


@pytest.mark.parametrize("jump", [0x66, 0x7F, 0x8E, 0xFF], ids=["2.15", "long", "max", "past"])
def test_setup_header_length_from_its_jump(pvh_firmware: Firmware, jump: int) -> None:
    """The header ends at 0x202 + the jump's rel8; never past _pad7 (0x290): bytes of setup
    code beyond it stay out of the zero page."""
    bz = bzimage(PM, header_jump=jump)
    r, sim = boot_bz(pvh_firmware, bz)
    entry_state_is_the_protocols(r)
    want = expected_zero_page(
        sim.items[spec.FW_CFG_SETUP_DATA], expected_memmap([(0, RAM, 1)]), True
    )
    assert r.mem(layout.ZERO_PAGE, 4096) == want
    pad_end = spec.bp_offset("edd_mbr_sig_buffer")
    end = min(spec.bp_offset("header") + jump, pad_end)
    assert r.mem(layout.ZERO_PAGE + end, pad_end - end) == bytes(pad_end - end)


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
@pytest.mark.parametrize("machine", ["pc", "q35", "microvm"])
def test_acpi_for_a_bzimage(pvh_firmware: Firmware, machine: str, qemu: str) -> None:
    """QEMU's recorded ACPI files (7.2's and 10.0's): acpi_rsdp_addr points at the RSDP, the
    e820 table has the ACPI and EBDA entries, and the tables sit above the kernel's
    decompression space."""
    files = acpi_files(machine, qemu)
    r, sim = boot_bz(pvh_firmware, cmdline=CMDLINE, extra_files=files)
    entry_state_is_the_protocols(r)
    blobs, addrs = replay(parse_table_loader(files["etc/table-loader"]), files, RAM, 0x9FC00)
    for name, blob in blobs.items():
        assert r.mem(addrs[name], len(blob)) == bytes(blob), name
    low = min(addrs[n] for n in blobs if addrs[n] >= MiB)
    assert low >= 0x1000000 + 0x800000  # pref_address + init_size
    memmap = with_acpi(expected_memmap([(0, RAM, 1)]), RAM - low)
    want = expected_zero_page(
        sim.items[spec.FW_CFG_SETUP_DATA], memmap, True, rsdp=layout.EBDA_BASE
    )
    assert r.mem(layout.ZERO_PAGE, 4096) == want


def test_acpi_never_in_the_decompression_space(pvh_firmware: Firmware) -> None:
    """With RAM ending inside pref_address + init_size there is no room for the tables above
    the kernel's memory: the firmware says so rather than letting the kernel overwrite them."""
    bz = bzimage(PM, pref_address=0x1000000, init_size=64 * MiB)
    r, _ = boot_bz(pvh_firmware, bz, ram=64 * MiB, extra_files=acpi_files("q35"))
    assert fatal_line(r).startswith("pvhfw: fw_cfg etc/table-loader: command at offset 0x")
    assert "with no room left" in fatal_line(r)


def test_initrd_over_the_decompression_space(pvh_firmware: Firmware) -> None:
    """QEMU puts the initrd at the top of low RAM; a kernel decompressing up to there would
    overwrite it: one line, no boot."""
    bz = bzimage(PM, pref_address=0x1000000, init_size=48 * MiB)
    r, sim = boot_bz(pvh_firmware, bz, ram=64 * MiB, initrd=bytes(0x1000))
    addr = spec.bp_read(sim.items[spec.FW_CFG_SETUP_DATA], "ramdisk_image")
    assert addr < 64 * MiB
    assert fatal_line(r) == (
        f"pvhfw: initrd at {addr:#010x}+0x00001000 is below 1 MiB, past 4 GiB or over the "
        "kernel's memory"
    )


def test_image_built_for_a_vmlinux_refuses_a_bzimage(pvh_firmware: Firmware) -> None:
    r, _ = boot_bz(pvh_firmware, image=image_for(pvh_firmware))
    assert fatal_line(r) == (
        "pvhfw: QEMU loaded a bzImage, but this image was built for a PVH vmlinux: run "
        "build-fw --kernel with the bzImage"
    )


def test_image_built_for_a_bzimage_refuses_a_vmlinux(pvh_firmware: Firmware) -> None:
    r, _ = boot(pvh_firmware, image=linux32_image(pvh_firmware))
    assert fatal_line(r) == (
        "pvhfw: QEMU loaded a PVH ELF, but this image was built for a bzImage: run build-fw "
        "--kernel with the vmlinux"
    )


def test_neither_pvh_nor_bzimage(pvh_firmware: Firmware) -> None:
    """No PVH entry and setup sectors without "HdrS" (what QEMU does with an old zImage)."""
    r, _ = boot(pvh_firmware, kernel_entry=0, setup_data=bytes(1024))
    assert fatal_line(r) == "pvhfw: QEMU's -kernel is neither an ELF with a PVH note nor a bzImage"


def test_other_bzimage(pvh_firmware: Firmware) -> None:
    """A bzImage other than the one the image was built for: another entry, another size."""
    r, _ = boot_bz(
        pvh_firmware, image=linux32_image(pvh_firmware, bzimage(PM, code32_start=0x100040))
    )
    assert fatal_line(r) == (
        "pvhfw: kernel entry 0x00100000 from QEMU is not 0x00100040 of the kernel this image "
        "was built for"
    )
    r, _ = boot_bz(pvh_firmware, image=linux32_image(pvh_firmware, bzimage(PM + bytes(16))))
    assert fatal_line(r) == (
        "pvhfw: kernel loaded at 0x00100000+0x00003000 by QEMU, not 0x00100000+0x00003010 as "
        "the kernel this image was built for"
    )


def test_linux32_costs(pvh_firmware: Firmware) -> None:
    """What the Linux path adds to the PVH path's work, in the emulator (DMA, no ACPI): a
    zero page and one more transfer for the code; figures for the docs come from bench."""
    r, _ = boot_bz(pvh_firmware, cmdline=CMDLINE)
    pvh, _ = boot(pvh_firmware)
    assert r.stopped_at_entry and pvh.stopped_at_entry
    assert r.fwcfg_accesses - pvh.fwcfg_accesses == 2  # setup header, kernel data: 1 DMA each
    # zeroing 4 KiB with rep stosd/stosb: each of its ~1,030 iterations counts, as in TCG's
    # exec log; the rest of the zero page is a few dozen instructions
    assert r.instructions - pvh.instructions < 1030 + 100


def test_a_pvh_boot_after_a_bzimage_boot(pvh_firmware: Firmware) -> None:
    """A guest that rebooted from a bzImage into a PVH kernel: the zero page the first boot
    left (a kernel decompressing up to the end of RAM) is no concern of the PVH boot, whose
    initrd lies there."""
    bz = bzimage(PM, relocatable=1, pref_address=0x1000000, init_size=RAM - 0x1000000)
    first, _ = boot_bz(pvh_firmware, bz, cmdline=CMDLINE)
    entry_state_is_the_protocols(first)
    left = first.mem(layout.FW_RAM_BASE, layout.FW_RAM_END - layout.FW_RAM_BASE)
    rd = random.Random(3).randbytes(5000)
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=RAM,
        kernel_entry=ENTRY,
        kernel_addr=KADDR,
        kernel_size=KSIZE,
        cmdline=CMDLINE,
        initrd=rd,
    )
    r = run_firmware(
        image_for(pvh_firmware),
        sim,
        ram_size=RAM,
        stop_at=ENTRY,
        ram_init={layout.FW_RAM_BASE: left},
    )
    assert r.stopped_at_entry, (r.error, r.serial)
    addr = int.from_bytes(sim.items[spec.FW_CFG_INITRD_ADDR], "little")
    module = spec.HVM_MODLIST_ENTRY.pack(paddr=addr, size=len(rd))
    assert r.mem(layout.MODLIST, spec.HVM_MODLIST_ENTRY.size) == module
