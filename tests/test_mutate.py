"""The mutation tool (tests/mutate.py) itself: the mutants it makes of asm/, how a mutant
reaches the assembler, and its table of equivalent mutants in docs/design.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvhfw.firmware.assemble import ASM_DIR_ENV, assemble_firmware, sources_dir
from tests import mutate


def by_text(file: str, kind: str, text: str) -> list[mutate.Mutant]:
    return [m for m in mutate.all_mutants([file]) if (m.kind, m.text) == (kind, text)]


def test_a_store_is_dropped_and_moved_one_byte() -> None:
    text = "mov dword ptr [edi + HVM_MOD_RESERVED + 4], eax"
    (drop,) = by_text("asm/pvh.s", "drop", text)
    (disp,) = by_text("asm/pvh.s", "disp+1", text)
    assert drop.new == ""
    assert disp.new == "mov dword ptr [edi + HVM_MOD_RESERVED + 4 + 1], eax"
    assert disp.line == drop.line and Path("asm/pvh.s").read_text().splitlines()[
        drop.line - 1
    ].strip().startswith(text)


def test_string_stores_are_dropped_not_moved() -> None:
    kinds = {m.kind for m in mutate.all_mutants(["asm/linux32.s"]) if m.text == "rep stosd"}
    assert kinds == {"drop"}


def test_branches_are_inverted_and_bounds_moved_by_one() -> None:
    mutants = mutate.all_mutants(["asm/linux32.s"])
    inverted = {(m.text, m.new) for m in mutants if m.kind == "invert"}
    assert ("jae zero_page_pad", "jb zero_page_pad") in inverted
    bounds = {(m.kind, m.new) for m in mutants if m.text == "mov ecx, BP_HDR / 4"}
    hdr = 0x1F1  # boot_params.hdr: BP_HDR / 4 = 0x7c
    assert bounds == {("bound+1", f"mov ecx, {hdr // 4 + 1:#x}"), ("bound-1", "mov ecx, 0x7b")}
    assert not [m for m in mutants if m.text.startswith(("cmp", "test")) and m.kind == "drop"]


def test_a_mutant_reaches_the_assembler_through_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mutant,) = by_text("asm/pvh.s", "drop", "mov dword ptr [edi + HVM_MOD_RESERVED + 4], eax")
    mutate.write_mutant(mutant, tmp_path)
    original = (mutate.ASM / "pvh.s").read_text().splitlines()
    changed = (tmp_path / "pvh.s").read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(original, changed, strict=True)) if a != b] == [
        mutant.line - 1
    ]
    monkeypatch.setenv(ASM_DIR_ENV, str(tmp_path))
    assert sources_dir() == tmp_path
    original_image = mutate.images(mutate.ASM)[0]
    assert assemble_firmware("pvh").image != original_image
    monkeypatch.delenv(ASM_DIR_ENV)
    assert assemble_firmware("pvh").image == original_image


def test_every_listed_equivalent_is_a_mutant_the_sources_make() -> None:
    known = mutate.equivalents()
    assert mutate.stale_equivalents(known) == []
    assert all(reason.strip() for reason in known.values())


def test_every_emulator_test_file_is_in_the_kill_set() -> None:
    """A new emulator test file left out of the kill set would kill its mutants only after
    the whole fast layers' minutes."""
    files = {f"tests/{p.name}" for p in (mutate.ROOT / "tests").glob("test_firmware_emu*.py")}
    assert files <= set(mutate.KILL_SET)


def test_a_bound_past_a_dword_wraps_as_the_compare_sees_it() -> None:
    """cmp eax, 0xffffffff one more is cmp eax, 0 (Keystone refuses 0x100000000): the mutant
    assembles and runs instead of counting as invalid."""
    (plus,) = by_text("asm/failure.s", "bound+1", "cmp eax, BOOT_FAIL_WAIT_NEVER")
    assert plus.new == "cmp eax, 0x0"
    assert mutate._bound("0xffffffff", 1) == "0x0" and mutate._bound("0", -1) == "-1"


def test_each_sources_first_files_are_in_the_kill_set() -> None:
    for source, first in mutate.FIRST.items():
        assert (mutate.ROOT / source).is_file(), source
        assert set(first) <= set(mutate.KILL_SET), source
        order = mutate.kill_set(source)
        assert order[: len(first)] == first and sorted(order) == sorted(mutate.KILL_SET)
