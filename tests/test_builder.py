"""Unit layer: reading kernels, notes against binutils, patching, image layout, determinism,
the command line. No QEMU."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, Cs

from pvhfw.builder.build import build, build_any_kernel
from pvhfw.builder.cli import main
from pvhfw.builder.errors import BuildError
from pvhfw.builder.kernel import parse_notes, read_kernel, section_header, segment_header
from pvhfw.firmware import layout
from pvhfw.firmware.assemble import AssemblyError, Firmware, assemble_firmware
from pvhfw.firmware.layout import PATCH_FIELDS, PATCH_MAGIC
from pvhfw.firmware.patchtable import patch_image, read_patches
from tests.elfgen import PF_R, PF_W, PT_LOAD, PT_NOTE, Elf, Seg, note, pvh_note, simple_kernel
from tests.kernels.build import KernelToolchainMissing, build_kernel
from tests.support import need

# --- notes and kernels -----------------------------------------------------------------------


def readelf_pvh_entries(path: Path) -> list[int]:
    """The Xen type-18 notes as binutils' readelf -n shows them."""
    out = subprocess.run(
        ["readelf", "-n", "-W", str(path)], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for m in re.finditer(
        r"^\s+Xen\s+0x[0-9a-f]+\s+(?:Unknown note type: \(0x00000012\)|[^\n]*PHYS32[^\n]*?)"
        r"\s+description data: ([0-9a-f ]+?)\s*$",
        out,
        re.MULTILINE,
    ):
        found.append(int.from_bytes(bytes.fromhex(m.group(1).replace(" ", "")), "little"))
    return found


@pytest.fixture(scope="module")
def built_kernels(kernels_dir: Path) -> dict[str, Path]:
    need(shutil.which("readelf") is not None, "binutils' readelf not installed")
    try:
        return {
            "elf32": build_kernel("pvhcheck", kernels_dir, 0x1000000),
            "elf64-extra-note": build_kernel("exitfirst", kernels_dir, 0x200000, extra_note=True),
            "elf64-8byte": build_kernel(
                "exitfirst",
                kernels_dir,
                0x1000000,
                note_desc_size=8,
                vaddr_offset=0xFFFFFFFF80000000,
            ),
        }
    except KernelToolchainMissing as e:
        need(False, str(e))
        raise


@pytest.mark.parametrize("which", ["elf32", "elf64-extra-note", "elf64-8byte"])
def test_pvh_entry_agrees_with_readelf(built_kernels: dict[str, Path], which: str) -> None:
    path = built_kernels[which]
    entries = readelf_pvh_entries(path)
    assert len(entries) == 1, f"readelf found {entries}"
    kernel = read_kernel(path.read_bytes(), str(path))
    assert kernel.entry == entries[0]


@pytest.mark.parametrize(("series", "entry"), [("6.1", 0x1000850), ("6.12", 0x1000B20)])
def test_real_kernel_entry_agrees_with_readelf_and_lief(series: str, entry: int) -> None:
    from tools.debian_kernel import ToolError, ensure_debian_kernel, series_package

    try:
        vmlinux = ensure_debian_kernel(package=series_package(series)).vmlinux
    except ToolError as e:
        need(False, f"Debian kernel unavailable: {e}")
        raise
    kernel = read_kernel(vmlinux.read_bytes(), str(vmlinux))
    assert [kernel.entry] == readelf_pvh_entries(vmlinux) == [entry]
    assert kernel.entry_source.startswith("PT_NOTE segment")
    # LIEF, an independent reader, sees the same loaded segments and so the same load range
    import lief

    elf = lief.ELF.parse(str(vmlinux))
    assert elf is not None, f"LIEF cannot parse {vmlinux}"
    loads = [s for s in elf.segments if s.type == lief.ELF.Segment.TYPE.LOAD and s.virtual_size]
    assert [(s.physical_address, s.virtual_size) for s in loads] == [
        (s.paddr, s.memsz) for s in kernel.segments
    ]


def test_note_found_behind_another_note_segment() -> None:
    elf = Elf(
        segments=[
            Seg(PT_LOAD, 0x1000000, b"\x90" * 32),
            Seg(PT_NOTE, 0, note(b"GNU", 3, b"\x11" * 20), flags=PF_R),
            Seg(PT_NOTE, 0, note(b"Linux", 1, b"x") + pvh_note(0x1000004), flags=PF_R),
        ]
    )
    kernel = read_kernel(elf.build(), "k")
    assert kernel.entry == 0x1000004 and kernel.entry_source == "PT_NOTE segment 2"


def test_note_in_sht_note_section_only() -> None:
    elf = Elf(segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 32)], note_sections=[pvh_note(0x1000008)])
    kernel = read_kernel(elf.build(), "k")
    assert kernel.entry == 0x1000008 and kernel.entry_source == "SHT_NOTE section 1"


@pytest.mark.parametrize("elf_class", [32, 64])
def test_pyelftools_private_header_readers_agree_with_its_public_api(elf_class: int) -> None:
    """segment_header and section_header use pyelftools' private header readers (pyproject
    bounds its version): on this pyelftools they give what the public API gives."""
    import io

    from elftools.elf.elffile import ELFFile

    elf = Elf(
        elf_class=elf_class,
        segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 32), Seg(PT_NOTE, 0, pvh_note(0x1000000))],
        note_sections=[pvh_note(0x1000000)],
    )
    f = ELFFile(io.BytesIO(elf.build()))
    assert f.num_segments() == 2 and f.num_sections() >= 2
    for i in range(f.num_segments()):
        assert dict(segment_header(f, i)) == dict(f.get_segment(i).header)
    for i in range(f.num_sections()):
        assert dict(section_header(f, i)) == dict(f.get_section(i).header)


@pytest.mark.parametrize("size", [4, 8])
def test_descriptor_of_4_or_8_bytes(size: int) -> None:
    assert read_kernel(simple_kernel(0x1000020, note_size=size).build(), "k").entry == 0x1000020


def test_32bit_elf_with_pvh_note_is_a_kernel() -> None:
    kernel = read_kernel(simple_kernel(elf_class=32).build(), "k")
    assert (kernel.elf_class, kernel.machine, kernel.entry) == (32, "x86", 0x1000010)


def test_load_range_is_qemus() -> None:
    """FW_CFG_KERNEL_ADDR/SIZE: lowest p_paddr, highest p_paddr + p_memsz; empty ones skipped."""
    elf = Elf(
        segments=[
            Seg(PT_LOAD, 0x1200000, b"\x01" * 16, memsz=0x3000, flags=PF_R | PF_W),
            Seg(PT_LOAD, 0x1000000, b"\x90" * 32),
            Seg(PT_LOAD, 0x900000, b"", memsz=0),
            Seg(PT_NOTE, 0, pvh_note(0x1000000), flags=PF_R),
        ]
    )
    kernel = read_kernel(elf.build(), "k")
    assert (kernel.load_addr, kernel.load_size) == (0x1000000, 0x203000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "k: empty file"),
        (
            b"MZ\x90\x00" + bytes(100),
            "k: neither an ELF file (no ELF magic) nor a bzImage (no HdrS)",
        ),
        (b"\x7fELF\x02\x01", "k: truncated ELF header (6 bytes)"),
        (
            Elf(big_endian=True, segments=[Seg(PT_LOAD, 0x1000000, b"\x90")]).build(),
            "k: not a little-endian ELF (x86 kernels are little-endian)",
        ),
        (
            Elf(machine=183, segments=[Seg(PT_LOAD, 0x1000000, b"\x90")]).build(),
            "k: ELF for EM_AARCH64, not x86",
        ),
        (
            Elf(segments=[Seg(PT_LOAD, 0x1000000, b"\x90" * 8)]).build(),
            "k: no PVH entry note (Xen note type 18); build the kernel with CONFIG_PVH=y",
        ),
        (
            Elf(
                segments=[
                    Seg(PT_LOAD, 0x1000000, b"\x90" * 8),
                    Seg(PT_NOTE, 0, pvh_note(1) + pvh_note(2), flags=PF_R),
                ]
            ).build(),
            "k: PT_NOTE segment 1: conflicting PVH entry notes (0x1, 0x2)",
        ),
        (
            Elf(
                segments=[
                    Seg(PT_LOAD, 0x1000000, b"\x90" * 8),
                    Seg(PT_NOTE, 0, note(b"Xen", 18, b"\1\2"), flags=PF_R),
                ]
            ).build(),
            "k: PT_NOTE segment 1: PVH entry note has a 2-byte descriptor (expected 4 or 8)",
        ),
        (
            Elf(
                segments=[
                    Seg(PT_LOAD, 0x1000000, b"\x90" * 64, memsz=8),
                    Seg(PT_NOTE, 0, pvh_note(0x1000000), flags=PF_R),
                ]
            ).build(),
            "k: segment 0 has p_memsz 0x8 < p_filesz 0x40",
        ),
        (
            Elf(
                segments=[
                    Seg(PT_LOAD, 0xFFFFF000, b"\x90" * 8, memsz=0x2000),
                    Seg(PT_NOTE, 0, pvh_note(0xFFFFF000), flags=PF_R),
                ]
            ).build(),
            "k: segment 0 at 0xfffff000+0x2000 ends above 4 GiB",
        ),
    ],
    ids=[
        "empty",
        "not-elf",
        "truncated",
        "big-endian",
        "arm64",
        "no-note",
        "conflict",
        "bad-desc",
        "memsz<filesz",
        "above-4g",
    ],
)
def test_bad_kernels_are_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(BuildError) as e:
        read_kernel(data, "k")
    assert str(e.value) == message


def test_note_running_past_its_segment() -> None:
    blob = struct_note = note(b"Xen", 18, b"\0\0\0\1")
    with pytest.raises(BuildError, match=r"note at offset 0x10 runs past the end"):
        parse_notes(struct_note[:-2], 0x10, 4, "k: PT_NOTE segment 1")
    assert parse_notes(blob + b"\0" * 4, 0, 4, "w")[0].desc == b"\0\0\0\1"


@pytest.mark.parametrize(
    ("entry", "load", "message"),
    [
        (
            0x2000000,
            0x1000000,
            "k: PVH entry 0x2000000 is not inside any loaded segment's file data",
        ),
        (
            0x2010,
            0x2000,
            "k: segment 0 at 0x2000-0x2040 overlaps the firmware RAM (start_info, memory map, "
            "command line, stack, zero page) at 0x1000-0xa000",
        ),
        (
            0xF0010,
            0xF0000,
            "k: segment 0 at 0xf0000-0xf0040 overlaps the firmware ROM shadow below 1 MiB at "
            "0xf0000-0x100000",
        ),
        (
            0xC0010,
            0xC0000,
            "k: segment 0 at 0xc0000-0xc0040 overlaps the legacy hole (VGA memory, option ROMs: "
            "not RAM) at 0xa0000-0xf0000",
        ),
    ],
    ids=["entry-outside", "over-fw-ram", "over-rom-shadow", "over-legacy-hole"],
)
def test_validation(entry: int, load: int, message: str) -> None:
    with pytest.raises(BuildError) as e:
        build(simple_kernel(entry, load).build(), "k")
    assert str(e.value) == message


def test_entry_in_non_executable_segment() -> None:
    elf = Elf(
        segments=[
            Seg(PT_LOAD, 0x1000000, b"\0" * 64, flags=PF_R | PF_W),
            Seg(PT_NOTE, 0, pvh_note(0x1000000), flags=PF_R),
        ]
    )
    with pytest.raises(BuildError, match="non-executable segment"):
        build(elf.build(), "k")


# --- patching and the image --------------------------------------------------------------------


def test_patch_table(pvh_firmware: Firmware) -> None:
    values = {
        "entry": 0x1000850,
        "kernel_addr": 0x1000000,
        "kernel_size": 0x2E00000,
        "boot_path": layout.BOOT_PATH_PVH,
    }
    image = patch_image(pvh_firmware, values)
    assert read_patches(pvh_firmware, image) == values
    assert read_patches(pvh_firmware, pvh_firmware.image) == dict.fromkeys(values, 0)
    changed = [i for i, (a, b) in enumerate(zip(image, pvh_firmware.image, strict=True)) if a != b]
    table = pvh_firmware.symbol("patch_table").offset
    assert image[table : table + 8] == PATCH_MAGIC
    assert all(table + 8 <= i < table + 8 + 4 * len(PATCH_FIELDS) for i in changed)
    with pytest.raises(AssemblyError, match="not given"):
        patch_image(pvh_firmware, {"entry": 1})
    with pytest.raises(AssemblyError, match="does not fit"):
        patch_image(pvh_firmware, {**values, "entry": 1 << 32})
    with pytest.raises(AssemblyError, match="unknown patch fields"):
        patch_image(pvh_firmware, {**values, "bogus": 1})


@pytest.mark.parametrize("variant", ["pvh", "floor"])
def test_image_layout_and_reset_vector(variant: str) -> None:
    fw = assemble_firmware(variant)
    image = fw.image
    assert len(image) == layout.IMAGE_SIZE and len(image) % (64 * 1024) == 0
    vector = image[layout.RESET_VECTOR_OFFSET :]
    (jmp,) = list(Cs(CS_ARCH_X86, CS_MODE_16).disasm(vector[:3], layout.RESET_VECTOR_OFFSET))
    assert jmp.mnemonic == "jmp"
    target = (layout.RESET_VECTOR_OFFSET + 3 + int.from_bytes(vector[1:3], "little")) & 0xFFFF
    assert target == fw.symbol("start16").offset
    assert vector[3:] == bytes(13)
    # the GDT descriptor's base is the GDT's linear address in the high ROM copy
    desc = image[layout.GDT_DESC_OFFSET : layout.GDT_DESC_OFFSET + 6]
    assert int.from_bytes(desc[2:], "little") == fw.symbol("gdt").address
    assert int.from_bytes(desc[:2], "little") == 4 * 8 - 1


@pytest.mark.parametrize("variant", ["pvh", "floor"])
def test_every_instruction_round_trips_through_a_disassembler(variant: str) -> None:
    """Keystone output checked by capstone: each source instruction decodes to exactly one
    instruction of the same length and mnemonic."""
    fw = assemble_firmware(variant)
    for block in fw.blocks:
        cs = Cs(CS_ARCH_X86, CS_MODE_16 if block.mode == 16 else CS_MODE_32)
        for line in block.listing:
            if line.text.startswith("."):
                continue
            decoded = list(cs.disasm(line.data, line.address))
            where = f"{line.file}:{line.line}: {line.text} -> {line.data.hex()}"
            assert len(decoded) == 1 and decoded[0].size == len(line.data), where
            mnemonic = line.text.split()[0]
            mnemonic = {"jz": "je", "jnz": "jne", "jc": "jb", "jnc": "jae"}.get(mnemonic, mnemonic)
            assert decoded[0].mnemonic.split()[0] == mnemonic, where


def test_statement_that_assembles_to_nothing_is_an_error(tmp_path: Path) -> None:
    shutil.copy(Path("asm") / "reset16.s", tmp_path / "reset16.s")
    # toolchain.md: Keystone turns this far jump into nothing, without an error
    (tmp_path / "floor.s").write_text("start32:\n    nop\n    jmp dword 0x08:0xffff0100 ; far\n")
    with pytest.raises(AssemblyError) as e:
        assemble_firmware("floor", asm_dir=tmp_path)
    assert str(e.value) == (
        "asm/floor.s:3: keystone assembled this to no bytes: jmp dword 0x08:0xffff0100"
    )


def test_assembly_error_names_file_and_line(tmp_path: Path) -> None:
    shutil.copy(Path("asm") / "reset16.s", tmp_path / "reset16.s")
    (tmp_path / "floor.s").write_text("start32:\n    nop\n    foo bar\n    nop\n")
    with pytest.raises(AssemblyError, match=r"^asm/floor.s:3: Invalid mnemonic .*: foo bar$"):
        assemble_firmware("floor", asm_dir=tmp_path)


def test_undefined_symbol_is_named(tmp_path: Path) -> None:
    """A label no source defines fails the whole block in Keystone; the error names it, even
    behind a statement with a constant expression that Keystone mis-parses once a symbol
    resolver is set (``X << 24``)."""
    shutil.copy(Path("asm") / "reset16.s", tmp_path / "reset16.s")
    (tmp_path / "floor.s").write_text(
        "start32:\n    test eax, FW_CFG_DMA_CTL_ERROR << 24\n    jmp nowhere\n"
    )
    with pytest.raises(AssemblyError) as e:
        assemble_firmware("floor", asm_dir=tmp_path)
    assert str(e.value) == "asm/floor.s:3: undefined symbol nowhere: jmp nowhere"


def test_build_is_deterministic_and_kernel_specific() -> None:
    k1, k2 = simple_kernel(0x1000010).build(), simple_kernel(0x1000020).build()
    a, b, c = build(k1, "k"), build(k1, "k"), build(k2, "k")
    assert a.image == b.image and a.map_text == b.map_text and a.manifest == b.manifest
    assert a.image != c.image
    assert a.manifest["image"]["unpatched_sha256"] == c.manifest["image"]["unpatched_sha256"]


# --- the command line ----------------------------------------------------------------------


def test_cli_writes_image_map_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(simple_kernel(0x1000010).build())
    out = tmp_path / "out" / "bios.bin"
    assert main(["--kernel", str(kernel), "-o", str(out)]) == 0
    image = out.read_bytes()
    assert len(image) == layout.IMAGE_SIZE
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["kernel"]["pvh_entry"] == "0x1000010"
    assert manifest["boot_path"] == "pvh"
    assert manifest["image"]["size"] == layout.IMAGE_SIZE
    assert set(manifest["tools"]) >= {"python", "keystone-engine", "pyelftools", "lief"}
    import hashlib

    assert manifest["image"]["sha256"] == hashlib.sha256(image).hexdigest()
    map_text = out.with_suffix(".map").read_text()
    for sym in ("start16", "start32", "pvh_handoff", "patch_entry", "memmap_build"):
        assert re.search(rf"0x[0-9a-f]{{8}}\s+0x[0-9a-f]{{4}}\s+\S+\s+{sym}$", map_text, re.M), sym
    assert re.search(r"entry\s+0x01000010", map_text)
    assert "build-fw" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", r"^build-fw: .*/nope: no such file$"),
        ("directory", r"^build-fw: .*: is a directory, not a kernel file$"),
        (
            "text",
            r"^build-fw: .*/vmlinux: neither an ELF file \(no ELF magic\) nor a bzImage "
            r"\(no HdrS\)$",
        ),
        ("unwritable", r"^build-fw: .*/bios.bin: cannot write: .*$"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    kernel = tmp_path / "vmlinux"
    out = tmp_path / "bios.bin"
    if setup == "missing":
        kernel = tmp_path / "nope"
    elif setup == "directory":
        kernel = tmp_path
    elif setup == "text":
        kernel.write_text("hello\n")
    else:
        kernel.write_bytes(simple_kernel().build())
        out = Path("/proc/pvhfw-cannot-write/bios.bin")
    assert main(["--kernel", str(kernel), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(expected, err.strip()), err


def test_cli_help_and_usage_errors() -> None:
    result = subprocess.run(["build-fw", "--help"], capture_output=True, text=True)
    if result.returncode == 127:
        need(False, "build-fw console script not installed (pip install -e .)")
    assert result.returncode == 0
    for word in (
        "--kernel",
        "--any-kernel",
        "--output",
        "--map",
        "--manifest",
        "--variant",
        "fw_cfg",
        "0xf5",
        "byte-identical",
        "exit status",
    ):
        assert word in result.stdout, word
    bad = subprocess.run(["build-fw"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("build-fw: "), bad.stderr


# --- build-fw --any-kernel -----------------------------------------------------------------


def test_any_kernel_image_is_the_firmware_with_the_any_patch_table(
    pvh_firmware: Firmware,
) -> None:
    """No kernel's facts: the patch table says BOOT_PATH_ANY and nothing else, the rest of
    the image is the pre-patched images' firmware byte for byte, and the manifest says which
    kind of image it is and has no "kernel"."""
    result = build_any_kernel()
    assert result.kernel is None and result.kind == "any-kernel" and result.boot_path == "any"
    assert read_patches(pvh_firmware, result.image) == {
        "entry": 0,
        "kernel_addr": 0,
        "kernel_size": 0,
        "boot_path": layout.BOOT_PATH_ANY,
    }
    pre = build(simple_kernel(0x1000010).build(), "k")
    assert pre.kind == "pre-patched" and pre.manifest["kind"] == "pre-patched"
    table = pvh_firmware.symbol("patch_table").offset
    fields = slice(table + len(layout.PATCH_MAGIC), table + len(layout.PATCH_MAGIC) + 16)
    differ = [i for i in range(layout.IMAGE_SIZE) if result.image[i] != pre.image[i]]
    assert differ and all(fields.start <= i < fields.stop for i in differ)
    m = result.manifest
    assert m["kind"] == "any-kernel" and m["boot_path"] == "any" and "kernel" not in m
    assert m["image"]["unpatched_sha256"] == pre.manifest["image"]["unpatched_sha256"]
    assert m["patch_table"]["fields"]["boot_path"] == "0x3"
    assert build_any_kernel().image == result.image  # deterministic
    assert re.search(r"^  boot_path\s+0x00000003 ", result.map_text, re.M)


def test_any_kernel_floor_is_refused() -> None:
    with pytest.raises(BuildError, match="floor variant has no fw_cfg code"):
        build_any_kernel("floor")


def test_cli_any_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "any.bin"
    assert main(["--any-kernel", "-o", str(out)]) == 0
    assert out.read_bytes() == build_any_kernel().image
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["kind"] == "any-kernel" and "kernel" not in manifest
    assert manifest["outputs"]["map"] == str(out.with_suffix(".map"))
    assert "patch table" in out.with_suffix(".map").read_text()
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "for any kernel" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--any-kernel", "--kernel", "vmlinux"], "argument --kernel/-k: not allowed with"),
        ([], "one of the arguments --kernel/-k --any-kernel is required"),
        (["--any-kernel", "--variant", "floor"], "--any-kernel with --variant floor: the floor"),
    ],
    ids=["both", "neither", "floor"],
)
def test_cli_any_kernel_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "bios.bin"
    with pytest.raises(SystemExit) as e:
        main([*args, "-o", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("build-fw: ") and expected in err, err
    assert not out.exists()


def test_cli_any_kernel_refuses_a_directory_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bios.json").mkdir()
    assert main(["--any-kernel", "-o", str(tmp_path / "bios.bin")]) == 1
    err = capsys.readouterr().err
    assert err == f"build-fw: {tmp_path / 'bios.json'}: is a directory, not an output file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bios.json"]
