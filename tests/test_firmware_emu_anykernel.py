"""The any-kernel image (build-fw --any-kernel) in the emulator: it boots a PVH ELF and a
bzImage from QEMU's fw_cfg (the simulated one) exactly as the image built for that kernel
does, the same memory, CPU state and fw_cfg accesses at the entry, for a few instructions
more; and each check it makes at run time in place of the builder's gives its one line."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from pvhfw.builder.build import build, build_any_kernel
from pvhfw.builder.errors import BuildError
from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from tests import spec
from tests.acpi_loader import RECORDED_QEMUS
from tests.bzgen import bzimage
from tests.emu.fwcfg import SimFwCfg
from tests.emu.machine import RunResult, run_firmware
from tests.test_firmware_emu import CMDLINE, ENTRY, KADDR, KSIZE, acpi_files, boot, fatal_line
from tests.test_firmware_emu_linux32 import (
    PM,
    boot_bz,
    entry_state_is_the_protocols,
    linux32_image,
)
from tests.test_firmware_fuzz import fuzz

MiB = 1 << 20
RAM = 256 * MiB
# What the run-time checks may cost over the pre-patched path: bench/firmware.py measures it
# exactly (README, "Performance"); this bounds it.
MAX_EXTRA_INSTRUCTIONS = 40
# The firmware's stack: below ESP at the entry it holds return addresses of calls made from
# other places in the two images; dead at the entry.
STACK = (layout.STACK_TOP - 0x400, layout.STACK_TOP)


@functools.cache
def any_kernel_image() -> bytes:
    return build_any_kernel().image


@pytest.fixture(scope="module")
def any_image() -> bytes:
    return any_kernel_image()


def assert_same_state(pre: RunResult, any_: RunResult, ram: int = RAM) -> None:
    """Both at the entry, with the same registers, the same fw_cfg conversation and the same
    RAM (all of it, the dead stack aside)."""
    assert pre.stopped_at_entry and any_.stopped_at_entry, (any_.error, any_.serial)
    assert pre.serial == any_.serial == ""
    assert any_.regs == pre.regs
    assert any_.fwcfg.accesses == pre.fwcfg.accesses
    assert [a.port for a in any_.port_accesses] == [a.port for a in pre.port_accesses]
    for lo, hi in ((0, STACK[0]), (STACK[1], layout.LOWMEM_END), (MiB, ram)):
        assert any_.mem(lo, hi - lo) == pre.mem(lo, hi - lo), (lo, hi)
    extra = any_.instructions - pre.instructions
    assert 0 < extra <= MAX_EXTRA_INSTRUCTIONS, extra


@pytest.mark.parametrize("dma", [True, False], ids=["dma", "ioport"])
def test_pvh_boot_is_the_pre_patched_images(
    pvh_firmware: Firmware, any_image: bytes, dma: bool
) -> None:
    rd = random.Random(3).randbytes(50_001)
    pre, _ = boot(pvh_firmware, initrd=rd, dma=dma)
    any_, _ = boot(pvh_firmware, initrd=rd, dma=dma, image=any_image)
    assert_same_state(pre, any_)


@pytest.mark.parametrize("qemu", RECORDED_QEMUS)
@pytest.mark.parametrize("machine", ["pc", "q35", "microvm"])
def test_acpi_boots_are_the_pre_patched_images(
    pvh_firmware: Firmware, any_image: bytes, machine: str, qemu: str
) -> None:
    """With QEMU's recorded ACPI files, both boot paths: the tables in the same places, above
    the kernel's memory (for the bzImage its decompression space) and the initrd."""
    files = acpi_files(machine, qemu)
    rd = random.Random(4).randbytes(40_000)
    pre, _ = boot(pvh_firmware, initrd=rd, extra_files=files)
    any_, _ = boot(pvh_firmware, initrd=rd, extra_files=files, image=any_image)
    assert_same_state(pre, any_)
    pre, _ = boot_bz(pvh_firmware, cmdline=CMDLINE, initrd=rd, extra_files=files)
    any_, _ = boot_bz(pvh_firmware, cmdline=CMDLINE, initrd=rd, extra_files=files, image=any_image)
    entry_state_is_the_protocols(any_)
    assert_same_state(pre, any_)


@pytest.mark.parametrize("dma", [True, False], ids=["dma", "ioport"])
def test_bzimage_boot_is_the_pre_patched_images(
    pvh_firmware: Firmware, any_image: bytes, dma: bool
) -> None:
    rd = random.Random(5).randbytes(30_000)
    pre, _ = boot_bz(pvh_firmware, cmdline=CMDLINE, initrd=rd, dma=dma)
    any_, _ = boot_bz(pvh_firmware, cmdline=CMDLINE, initrd=rd, dma=dma, image=any_image)
    entry_state_is_the_protocols(any_)
    assert_same_state(pre, any_)
    assert any_.mem(0x100000, len(PM)) == PM


def test_any_kernel_at_the_edges_boots(pvh_firmware: Firmware, any_image: bytes) -> None:
    """The limits the checks allow: a PVH kernel from 1 MiB to the ROM, entered at its first
    byte; one entered at its last; a bzImage whose payload fills its code, entered at its
    last byte."""
    for size, entry in ((layout.ROM_BASE - MiB, MiB), (16 * MiB, 17 * MiB - 1)):
        sim = SimFwCfg.for_pvh_boot(
            ram_below_4g=RAM, kernel_entry=entry, kernel_addr=MiB, kernel_size=size, cmdline=None
        )
        r = run_firmware(any_image, sim, ram_size=RAM, stop_at=entry)
        assert r.stopped_at_entry, (r.error, r.serial)
    bz = bzimage(PM, payload=(0x100, len(PM) - 0x100), code32_start=MiB + len(PM) - 1)
    r, _ = boot_bz(pvh_firmware, bz, image=any_image)
    entry_state_is_the_protocols(r)


# --- the run-time checks, each with its line ------------------------------------------------


def test_no_kernel(any_image: bytes) -> None:
    sim = SimFwCfg(files={"etc/e820": spec.e820_pack([(0, RAM, 1)])})  # no kernel items
    r = run_firmware(any_image, sim, ram_size=RAM)
    assert fatal_line(r) == (
        "pvhfw: no kernel: start QEMU with -kernel (a vmlinux with a PVH note, or a bzImage)"
    )


PVH_FAILURES = [
    (
        {"kernel_entry": KADDR + KSIZE},
        f"kernel entry {KADDR + KSIZE:#010x} from QEMU is outside the kernel it loaded at "
        f"{KADDR:#010x}+{KSIZE:#010x}",
    ),
    (
        {"kernel_entry": ENTRY, "kernel_addr": ENTRY + 1},
        f"kernel entry {ENTRY:#010x} from QEMU is outside the kernel it loaded at "
        f"{ENTRY + 1:#010x}+{KSIZE:#010x}",
    ),
    (
        {"kernel_addr": 0xFF000, "kernel_entry": 0xFF000},
        f"kernel loaded at 0x000ff000+{KSIZE:#010x} by QEMU is below 1 MiB or runs into the "
        "firmware's ROM below 4 GiB",
    ),
    (
        {"kernel_addr": 0xF0000000, "kernel_size": 0x0FFF1000, "kernel_entry": 0xF0000000},
        "kernel loaded at 0xf0000000+0x0fff1000 by QEMU is below 1 MiB or runs into the "
        "firmware's ROM below 4 GiB",
    ),
    (
        {"kernel_addr": 0xF0000000, "kernel_size": 0x20000000, "kernel_entry": 0xF0000000},
        "kernel loaded at 0xf0000000+0x20000000 by QEMU is below 1 MiB or runs into the "
        "firmware's ROM below 4 GiB",
    ),
]


@pytest.mark.parametrize(
    ("items", "line"),
    PVH_FAILURES,
    ids=["entry-past-end", "entry-before-start", "below-1MiB", "into-ROM", "past-4GiB"],
)
def test_pvh_run_time_checks(
    pvh_firmware: Firmware, any_image: bytes, items: dict[str, int], line: str
) -> None:
    r, _ = boot(pvh_firmware, image=any_image, **items)  # type: ignore[arg-type]
    assert fatal_line(r) == f"pvhfw: {line}"


BZ_FAILURES = [
    ({"boot_flag": 0x55AA}, "QEMU's bzImage is corrupt: boot_flag is 0x000055aa, not 0xaa55"),
    (
        {"protocol": 0x0209},
        "QEMU's bzImage has Linux boot protocol 0x00000209, older than 2.10 (Linux 2.6.31), "
        "the oldest whose 32-bit entry this firmware uses",
    ),
    (
        {"loadflags": 0x80},
        "QEMU's -kernel is a zImage (loadflags 0x00000080 without LOADED_HIGH: its code loads "
        "below 1 MiB), not a bzImage",
    ),
    (
        {"syssize": len(PM) // 16 + 1},
        f"QEMU's bzImage is truncated: its syssize says {len(PM) // 16 + 1:#010x} 16-byte units "
        f"of protected-mode code, QEMU loaded {len(PM):#010x} bytes",
    ),
    (
        {"payload": (0x100, len(PM) - 0xFF)},
        f"QEMU's bzImage is corrupt: the payload at 0x00000100+{len(PM) - 0xFF:#010x} runs past "
        f"its protected-mode code ({len(PM):#010x} bytes)",
    ),
    (
        {"payload": (0xFFFFFF00, 0x200)},
        f"QEMU's bzImage is corrupt: the payload at 0xffffff00+0x00000200 runs past its "
        f"protected-mode code ({len(PM):#010x} bytes)",
    ),
    (
        {"pref_address": 1 << 32},
        "QEMU's bzImage has pref_address above 4 GiB (high dword 0x00000001), out of the "
        "32-bit entry's reach",
    ),
    (
        {"pref_address": 0x80000, "init_size": 0x800000},
        "QEMU's bzImage has pref_address 0x00080000 + init_size 0x00800000, not between 1 MiB "
        "and the firmware's ROM below 4 GiB",
    ),
    (
        {"init_size": 0},
        "QEMU's bzImage has pref_address 0x00100000 + init_size 0x00000000, not between 1 MiB "
        "and the firmware's ROM below 4 GiB",
    ),
    (
        {"pref_address": 0xFF000000, "init_size": 0xFF0001},
        "QEMU's bzImage has pref_address 0xff000000 + init_size 0x00ff0001, not between 1 MiB "
        "and the firmware's ROM below 4 GiB",
    ),
    (
        {"pref_address": 0xFF000000, "init_size": 0x2000000},
        "QEMU's bzImage has pref_address 0xff000000 + init_size 0x02000000, not between 1 MiB "
        "and the firmware's ROM below 4 GiB",
    ),
    (
        {"code32_start": 0x100000 + len(PM)},
        f"kernel entry {0x100000 + len(PM):#010x} from QEMU is outside the kernel it loaded at "
        f"0x00100000+{len(PM):#010x}",
    ),
    (
        {"code32_start": 0xFFFFF},
        f"kernel entry 0x000fffff from QEMU is outside the kernel it loaded at "
        f"0x00100000+{len(PM):#010x}",
    ),
]


@pytest.mark.parametrize(
    ("header", "line"),
    BZ_FAILURES,
    ids=[
        "boot-flag",
        "protocol-2.09",
        "zimage",
        "syssize",
        "payload-past-code",
        "payload-wraps",
        "pref-above-4GiB",
        "pref-below-1MiB",
        "init-size-0",
        "into-ROM",
        "past-4GiB",
        "entry-past-code",
        "entry-below-code",
    ],
)
def test_bzimage_run_time_checks(
    pvh_firmware: Firmware, any_image: bytes, header: dict[str, int], line: str
) -> None:
    """Each of builder/bzimage.py's checks of the setup header, made by the firmware on the
    header QEMU passes: a bzImage build-fw refuses, booted with the any-kernel image."""
    bz = bzimage(PM, **header)  # type: ignore[arg-type]
    with pytest.raises(BuildError):
        build(bz, "bzImage")
    sim_entry = spec.bp_read(bz, "code32_start")
    assert sim_entry == header.get("code32_start", 0x100000)
    r, _ = boot_bz(pvh_firmware, bz, image=any_image)
    assert fatal_line(r) == f"pvhfw: {line}"


def test_the_pre_patched_images_trust_their_build(pvh_firmware: Firmware) -> None:
    """The header checks are the any-kernel image's alone: an image built for a kernel had
    them made by build-fw, and compares QEMU's kernel with that one only (entry and load
    range), which costs nothing more than before."""
    bz = bzimage(PM, boot_flag=0x55AA)  # build-fw refuses this; QEMU loads it
    r, _ = boot_bz(pvh_firmware, bz, image=linux32_image(pvh_firmware, bz))
    entry_state_is_the_protocols(r)


# --- the run-time checks against build-fw's, on headers hypothesis makes --------------------


# A good header (it boots), and for each field the edges of the checks made on it.
GOOD = {
    "boot_flag": 0xAA55,
    "protocol": 0x020F,
    "loadflags": 0x01,
    "syssize": (len(PM) + 15) // 16,
    "payload_offset": 0x100,
    "payload_length": 0x200,
    "pref_address": 0x1000000,
    "init_size": 0x800000,
    "code32_start": MiB,
}
ROOM = layout.ROM_BASE - GOOD["pref_address"]  # init_size that ends at the ROM
EDGES: dict[str, tuple[int, ...]] = {
    "boot_flag": (0x55AA, 0, 0xAA54, 0xAA55),
    "protocol": (0x0200, 0x0209, 0x020A, 0x0300),
    "loadflags": (0x00, 0x80, 0x81),
    "syssize": (0, len(PM) // 16, len(PM) // 16 + 1, 0xFFFFFFFF),
    "payload_offset": (0, len(PM) - 0x200, len(PM), 0xFFFFFF00),
    "payload_length": (0, len(PM) - 0x100, len(PM), 0xFFFFFFFF),
    "pref_address": (0x80000, MiB, layout.ROM_BASE - GOOD["init_size"], 1 << 32 | MiB),
    "init_size": (0, 1, ROOM, 0xFFFFFFFF - GOOD["pref_address"]),
    "code32_start": (0xFFFFF, MiB, MiB + len(PM), 0xFFFFFFFF),
}


# The header field each one is (bzgen's names but the version's), for its size.
FIELD = {name: "version" if name == "protocol" else name for name in GOOD}


def _around(name: str) -> list[int]:
    """Each edge of field `name` and its neighbours that fit the field."""
    out = {v + d for v in EDGES[name] for d in (-2, -1, 0, 1, 2)}
    return sorted(v for v in out if 0 <= v < 1 << (8 * spec.bp_size(FIELD[name])))


def _header(fields: dict[str, int]) -> bytes:
    """The bzImage of `fields` (GOOD for the rest); its payload, if inside the code, starts
    with gzip's magic: the compression, which only build-fw reads, is right."""
    f = {**GOOD, **fields}
    start, length = f.pop("payload_offset"), f.pop("payload_length")
    pm = bytearray(PM)
    if length and start + 2 <= len(pm):
        pm[start : start + 2] = b"\x1f\x8b"
    return bzimage(bytes(pm), payload=(start, length), **f)


def _agrees(fw: Firmware, bz: bytes) -> bool:
    """The any-kernel image reaches code32_start exactly when build-fw accepts the bzImage,
    and otherwise gives one line. True: it booted."""
    try:
        build(bz, "bzImage")
        accepted = True
    except BuildError:
        accepted = False
    r, _ = boot_bz(fw, bz, image=any_kernel_image())
    if accepted:
        entry_state_is_the_protocols(r)
    else:
        fatal_line(r)
    return accepted


def test_each_edge_of_each_check(pvh_firmware: Firmware) -> None:
    """Every field of a good header at and around each edge of the checks on it, one field
    at a time: the firmware and build-fw agree on every one."""
    booted = refused = 0
    for name in EDGES:
        for value in _around(name):
            if _agrees(pvh_firmware, _header({name: value})):
                booted += 1
            else:
                refused += 1
    assert booted > 20 and refused > 60, (booted, refused)


@fuzz(200)
@given(data=st.data())
def test_the_firmware_refuses_what_build_fw_refuses(
    pvh_firmware: Firmware, data: st.DataObject
) -> None:
    """A good setup header with two to four fields changed (to an edge, next to one, or
    anything), booted by the any-kernel image: the firmware and build-fw agree."""
    names = data.draw(st.lists(st.sampled_from(sorted(EDGES)), min_size=2, max_size=4, unique=True))
    fields = {
        name: data.draw(
            st.one_of(
                st.sampled_from(_around(name)),
                st.integers(0, (1 << (8 * spec.bp_size(FIELD[name]))) - 1),
            ),
            label=name,
        )
        for name in names
    }
    event("booted" if _agrees(pvh_firmware, _header(fields)) else "refused")
