"""The memory map's operations (asm/memmap.s) and the allocator (asm/alloc.s), each called on
its own in unicorn (tests/emu/call.py) against the rules of tests/model.py: arbitrary maps,
ranges and zones, including the cases a boot seldom reaches (a range in an entry's middle or
at its start, no RAM to carve from)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware, assemble_firmware
from tests import model, spec
from tests.emu.call import Call, call

VAR = layout.VARIABLE_ADDRESSES
PAGE = 0x1000
FIRMWARE = assemble_firmware("pvh")  # module level: hypothesis tests take no fixtures


def memmap_ram(entries: list[model.Range]) -> dict[int, bytes]:
    """RAM holding `entries` as the firmware's table, and its count."""
    entry = spec.HVM_MEMMAP_TABLE_ENTRY
    table = b"".join(entry.pack(addr=a, size=s, type=t) for a, s, t in entries)
    return {layout.MEMMAP: table, VAR["VAR_MEMMAP_N"]: struct.pack("<I", len(entries))}


def table_of(r: Call) -> list[model.Range]:
    n = r.u32(VAR["VAR_MEMMAP_N"])
    return [(a, s, t) for a, s, t, _ in model.unpack_memmap(r.mem(layout.MEMMAP, 24 * n), n)]


# A map: up to 8 entries of RAM, reserved or ACPI, page-aligned, some above 4 GiB.
_entry = st.tuples(
    st.integers(0, (1 << 36) // PAGE).map(lambda p: p * PAGE),
    st.integers(1, (1 << 33) // PAGE).map(lambda p: p * PAGE),
    st.sampled_from([spec.E820_RAM, spec.E820_RAM, spec.E820_RESERVED, spec.E820_ACPI]),
)
_maps = st.lists(_entry, min_size=1, max_size=8)


@st.composite
def _carves(draw: st.DrawFn) -> tuple[list[model.Range], int, int, int]:
    """A map and a range below 4 GiB: half the time inside one of its RAM entries (at its
    start, its end, its middle or the whole of it), else anywhere."""
    entries = draw(_maps)
    held = [(a, s) for a, s, t in entries if t == spec.E820_RAM and a + s < 1 << 32]
    inside: bool = draw(st.booleans())
    if held and inside:
        a, s = draw(st.sampled_from(held))
        first = draw(st.integers(0, s // PAGE - 1))
        last = draw(st.integers(first + 1, s // PAGE))
        start, size = a + first * PAGE, (last - first) * PAGE
    else:
        start = draw(st.integers(0, (1 << 32) // PAGE - 2)) * PAGE
        size = draw(st.integers(1, ((1 << 32) - start) // PAGE - 1)) * PAGE
    typ = draw(st.sampled_from([spec.E820_RESERVED, spec.E820_ACPI]))
    return entries, start, size, typ


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_carves())
def test_carve_follows_the_model(case: tuple[list[model.Range], int, int, int]) -> None:
    entries, start, size, typ = case
    r = call(
        FIRMWARE,
        "memmap_carve",
        regs={"eax": start, "ebp": size, "ecx": typ},
        ram=memmap_ram(entries),
        stop_at=["fatal_memmap_carve"],
    )
    assert r.error is None, r.error
    want = model.carve(entries, start, size, typ)
    if want is None:
        assert r.stopped_at == "fatal_memmap_carve"
        assert (r.u32(layout.VARIABLE_ADDRESSES["ERR_ARGS"]), r.u32(VAR["ERR_ARGS"] + 4)) == (
            start,
            size,
        )
    else:
        assert r.returned
        assert table_of(r) == want


@pytest.mark.parametrize(
    ("where", "want"),
    [
        ("end", [(0x100000, 0x700000, 1), (0x800000, 0x800000, 3)]),
        ("start", [(0x200000, 0xE00000, 1), (0x100000, 0x100000, 3)]),
        ("middle", [(0x100000, 0x100000, 1), (0x300000, 0xD00000, 1), (0x200000, 0x100000, 3)]),
        ("whole", [(0x100000, 0, 1), (0x100000, 0xF00000, 3)]),
    ],
)
def test_carve_from_each_place_in_an_entry(where: str, want: list[model.Range]) -> None:
    start, size = {
        "end": (0x800000, 0x800000),
        "start": (0x100000, 0x100000),
        "middle": (0x200000, 0x100000),
        "whole": (0x100000, 0xF00000),
    }[where]
    ram = memmap_ram([(0x100000, 0xF00000, 1)])
    r = call(FIRMWARE, "memmap_carve", regs={"eax": start, "ebp": size, "ecx": 3}, ram=ram)
    assert r.returned and table_of(r) == want == model.carve(
        [(0x100000, 0xF00000, 1)], start, size, 3
    )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_maps)
# an entry a byte below 1 MiB, at it and a byte above; one that ends at 4 GiB and one past it
@example([(layout.HIGHMEM_START - 1, 1 << 24, spec.E820_RAM)])
@example([(layout.HIGHMEM_START, 1 << 24, spec.E820_RAM)])
@example([(layout.HIGHMEM_START + 1, 1 << 24, spec.E820_RAM)])
@example([(1 << 31, 1 << 31, spec.E820_RAM), (1 << 24, 1 << 24, spec.E820_RAM)])
@example([(1 << 31, (1 << 31) + 1, spec.E820_RAM), (1 << 24, 1 << 24, spec.E820_RAM)])
def test_top_ram_follows_the_model(entries: list[model.Range]) -> None:
    r = call(FIRMWARE, "memmap_top_ram", ram=memmap_ram(entries))
    assert r.returned, r.error
    assert (r.regs["eax"], r.regs["ebx"]) == model.top_ram(entries)
    assert table_of(r) == entries  # read only


# fw_cfg's e820 entries for memmap_build's rule, their ends at its edges (640 KiB, 1 MiB and
# 4 GiB, a byte either side) as often as anywhere, any type, sizes wider than 32 bits.
_EDGES = (
    0,
    layout.EBDA_BASE,
    *(edge + d for edge in (layout.LOWMEM_END, layout.HIGHMEM_START, 1 << 32) for d in (-1, 0, 1)),
)
_point = st.one_of(st.sampled_from(_EDGES), st.integers(0, 1 << 36))


@st.composite
def _e820_entry(draw: st.DrawFn) -> model.Range:
    a, b = sorted((draw(_point), draw(_point)))
    typ = draw(st.sampled_from([spec.E820_RAM, spec.E820_RAM, spec.E820_RESERVED, 5]))
    return a, max(b - a, 1), typ


def _lowmem_top(e820: list[model.Range]) -> int | None:
    """The end of the last RAM entry that starts below 1 MiB, 0 without one: mtrr.s's end of
    QEMU's RAM below 4 GiB (None: an end at or past 4 GiB, which QEMU's maps never have)."""
    ends = [a + s for a, s, t in e820 if t == spec.E820_RAM and a < layout.HIGHMEM_START]
    if ends and ends[-1] >= 1 << 32:
        return None
    return ends[-1] if ends else 0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_e820_entry(), max_size=6))
def test_e820_conversion_follows_the_model_at_every_edge(e820: list[model.Range]) -> None:
    """memmap_build's rule, entry by entry, against tests/model.py over stale variables (a
    previous boot's): the table, and the end of the RAM below 1 MiB's entry."""
    stale = struct.pack("<I", 0xA5A5A5A5)
    ram = {
        layout.E820_BUF: spec.e820_pack(e820),
        **{VAR[v]: stale for v in ("VAR_ROM_DONE", "VAR_LOWMEM_TOP", "VAR_MEMMAP_N")},
    }
    r = call(FIRMWARE, "memmap_convert", regs={"eax": len(e820)}, ram=ram)
    assert r.returned, r.error
    assert table_of(r) == model.expected_memmap(e820)
    top = _lowmem_top(e820)
    if top is not None:
        assert r.u32(VAR["VAR_LOWMEM_TOP"]) == top


def test_copy_e820_writes_the_table_without_reserved() -> None:
    entries = [(0, 0x9FC00, 1), (0xF0000, 0x10000, 2), (1 << 32, 1 << 30, 1)]
    r = call(FIRMWARE, "memmap_copy_e820", regs={"edi": 0x3000}, ram=memmap_ram(entries))
    assert r.returned and r.regs["ecx"] == 3
    assert r.mem(0x3000, 3 * spec.E820_ENTRY.size) == spec.e820_pack(entries)


def test_append_fails_when_the_table_is_full() -> None:
    full = [(0x1000 * i, 0x1000, 2) for i in range(layout.MEMMAP_MAX)]
    r = call(
        FIRMWARE,
        "memmap_append",
        regs={"eax": 0, "edx": 0, "ebp": 0x1000, "ebx": 0, "ecx": 2},
        ram=memmap_ram(full),
        stop_at=["fatal_memmap_full"],
    )
    assert r.stopped_at == "fatal_memmap_full" and table_of(r) == full


# ---- the allocator -------------------------------------------------------------------------


def _zones(
    fw: Firmware, entries: list[model.Range], kernel_end: int, initrd: tuple[int, int]
) -> Call:
    previous_boot = {  # zones as a previous boot left them: alloc_init sets each
        "VAR_HIGH_TOP": 0x0FFF0000,
        "VAR_HIGH_END": 0x10000000,
        "VAR_FSEG_NEXT": layout.ROM_SHADOW_BASE + 0x40,
        "VAR_EBDA_NEXT": layout.EBDA_BASE + 0x40,
    }
    ram = {
        **{VAR[v]: struct.pack("<I", value) for v, value in previous_boot.items()},
        **memmap_ram(entries),
        VAR["VAR_KERNEL_END"]: struct.pack("<I", kernel_end),
        VAR["VAR_INITRD_ADDR"]: struct.pack("<I", initrd[0]),
        VAR["VAR_INITRD_SIZE"]: struct.pack("<I", initrd[1]),
    }
    r = call(fw, "alloc_init", ram=ram)
    assert r.returned
    return r


def _continue(r: Call, routine: str, **regs: int) -> Call:
    """Call another routine on the RAM the previous call left."""
    ram = {0: r.mem(0, layout.FW_RAM_END)}
    return call(FIRMWARE, routine, regs=regs, ram=ram, stop_at=["fatal_memmap_carve"])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    entries=_maps,
    kernel_end=st.integers(0, 1 << 31),
    initrd=st.tuples(st.integers(0, 1 << 31), st.integers(0, 1 << 24)),
    sizes=st.lists(st.tuples(st.integers(0, 1 << 22), st.integers(0, 12)), max_size=4),
)
def test_high_zone_allocations_follow_the_rule(
    entries: list[model.Range],
    kernel_end: int,
    initrd: tuple[int, int],
    sizes: list[tuple[int, int]],
) -> None:
    """Each allocation ends where the last began (the zone's top first), aligned down, never
    below the floor (the RAM's start, the kernel's end, the initrd's end); one that does not
    fit sets CF and changes nothing."""
    r = _zones(FIRMWARE, entries, kernel_end, initrd)
    start, top = model.top_ram(entries)
    floor = max(start, kernel_end, initrd[0] + initrd[1] if initrd[1] else 0)
    for size, align_log in sizes:
        align = 1 << align_log
        r = _continue(r, "alloc_high", edx=size, ecx=align)
        assert r.returned, r.error
        want = (top - size) & ~(align - 1)
        if top - size < 0 or want < floor:
            assert r.cf
        else:
            assert not r.cf and r.regs["eax"] == want
            top = want


@pytest.mark.parametrize(
    ("sizes", "want"),
    [
        ([(20, 16), (36, 16)], [0x9FC00, 0x9FC20]),
        ([(1, 1), (8, 64)], [0x9FC00, 0x9FC40]),
        ([(0x400, 1)], [0x9FC00]),
        ([(0x3FF, 1), (2, 1)], [0x9FC00, None]),
        ([(0x401, 1)], [None]),
    ],
)
def test_ebda_zone_allocations(sizes: list[tuple[int, int]], want: list[int | None]) -> None:
    """Upwards through the EBDA's KiB, each aligned up; CF once it would pass 640 KiB."""
    r = _zones(FIRMWARE, [(0, 0xA0000, 1)], 0, (0, 0))
    for (size, align), addr in zip(sizes, want, strict=True):
        r = _continue(r, "alloc_ebda", edx=size, ecx=align)
        assert r.returned and r.cf == (addr is None)
        if addr is not None:
            assert r.regs["eax"] == addr


def test_finish_carves_each_used_zone_once_and_points_the_bda_at_the_ebda() -> None:
    low = (0, 0xA0000, 1)
    high = (0x100000, 0x0FF00000, 1)
    r = _zones(FIRMWARE, [low, high], 0x2000000, (0, 0))
    r = _continue(r, "alloc_high", edx=0x1000, ecx=64)
    r = _continue(r, "alloc_high", edx=0x20, ecx=16)
    r = _continue(r, "alloc_ebda", edx=20, ecx=16)
    r = _continue(r, "alloc_fseg_init")
    r = _continue(r, "alloc_fseg", edx=0x40, ecx=16)  # the F segment: reserved already
    r = _continue(r, "alloc_finish")
    assert r.returned, r.error
    top = 0x10000000 - 0x1000 - 0x20
    assert table_of(r) == model.with_acpi([low, high], 0x10000000 - top)
    assert r.mem(layout.BDA_EBDA_SEGMENT, 2) == struct.pack("<H", layout.EBDA_BASE >> 4)


def test_fseg_zone_is_closed_until_the_f_segment_is_ram() -> None:
    """Without alloc_fseg_init (no PAM: microvm) every F-segment allocation fails; after it,
    allocations go upwards from 0xF0000, aligned, up to 1 MiB."""
    r = _zones(FIRMWARE, [(0, 0xA0000, 1)], 0, (0, 0))
    r = _continue(r, "alloc_fseg", edx=16, ecx=16)
    assert r.returned and r.cf
    r = _continue(r, "alloc_fseg_init")
    got = []
    for size, align in [(31, 16), (0x147 + 0x40, 16), (1, 1), (0x10000, 16)]:
        r = _continue(r, "alloc_fseg", edx=size, ecx=align)
        assert r.returned
        got.append(None if r.cf else r.regs["eax"])
    assert got == [0xF0000, 0xF0020, 0xF01A7, None]


def test_finish_without_allocations_changes_nothing() -> None:
    entries = [(0, 0xA0000, 1), (0x100000, 0x0FF00000, 1)]
    r = _zones(FIRMWARE, entries, 0x2000000, (0, 0))
    r = _continue(r, "alloc_finish")
    assert r.returned and table_of(r) == entries
    assert r.mem(layout.BDA_EBDA_SEGMENT, 2) == bytes(2)


# ---- the byte sum every checksum uses (asm/sum.s) -------------------------------------------


@pytest.mark.parametrize("length", [*range(0, 70), 95, 96, 97, 1000, 7013])
def test_sum8_sums_every_length(length: int) -> None:
    """Whole 32-byte passes, and a partial one entered in the middle of the unrolled loop: the
    sum mod 256 of exactly the range, ESI past it, the bytes around it not read into it."""
    data = bytes((7 * i + length) & 0xFF for i in range(length))
    fence = b"\xff" * 64  # bytes before and after the range: read, they would change the sum
    r = call(
        FIRMWARE, "sum8", regs={"esi": 0x10040, "edx": length}, ram={0x10000: fence + data + fence}
    )
    assert r.returned, r.error
    assert (r.regs["ebx"] & 0xFF, r.regs["esi"]) == (sum(data) & 0xFF, 0x10040 + length)


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 33, 63])
def test_checksum8_makes_the_range_sum_to_zero(length: int) -> None:
    """The checksum byte (here in the range's middle) is the one byte changed: the range sums
    to 0 whatever its length, whole 32-byte passes or not; an empty range changes nothing."""
    data = bytes((5 * i + 3) & 0xFF for i in range(length))
    fence = b"\xff" * 64
    at = length // 2
    r = call(
        FIRMWARE,
        "checksum8",
        regs={"esi": 0x10040, "edx": length, "ebp": 0x10040 + at},
        ram={0x10000: fence + data + fence},
    )
    assert r.returned, r.error
    out = r.mem(0x10000, length + 128)
    want = bytearray(fence + data + fence)
    want[64 + at] = (want[64 + at] - sum(data)) & 0xFF
    assert out == bytes(want)
    assert sum(out[64 : 64 + length]) & 0xFF == 0
