"""build-fw with a bzImage: the setup header read, the Linux-protocol path chosen and said in
the manifest, and every corrupt or unsupported header one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvhfw.builder.build import build
from pvhfw.builder.bzimage import read_bzimage
from pvhfw.builder.cli import main
from pvhfw.builder.errors import BuildError
from pvhfw.firmware import layout
from pvhfw.firmware.patchtable import read_patches
from tests import spec
from tests.bzgen import bzimage
from tests.elfgen import simple_kernel
from tests.kernels.build import KernelToolchainMissing, build_bzimage
from tests.support import need


def test_bzimage_builds_for_the_linux32_path() -> None:
    data = bzimage(bytes(0x3000), code32_start=0x100200, relocatable=1, init_size=0x9000)
    result = build(data, "bz")
    assert result.boot_path == "linux32"
    assert read_patches(result.firmware, result.image) == {
        "entry": 0x100200,  # code32_start
        "kernel_addr": 0x100000,  # where QEMU puts a LOADED_HIGH kernel
        "kernel_size": 0x3000,  # the file after its (1 + 1) * 512 setup bytes
        "boot_path": layout.BOOT_PATH_LINUX32,
    }
    k = result.manifest["kernel"]
    assert result.manifest["boot_path"] == "linux32"
    assert (k["format"], k["boot_protocol"], k["code32_start"]) == ("bzImage", "2.15", "0x100200")
    assert (k["setup_size"], k["load_size"], k["relocatable"]) == (1024, "0x3000", True)
    assert (k["pref_address"], k["init_size"], k["memory"]) == (
        "0x100000",
        "0x9000",
        ["0x100000", "0x109000"],
    )
    assert k["payload"] == {"offset": "0x0", "length": "0x0", "compression": "none"}
    assert result.manifest["ram"]["zero_page"] == f"{layout.ZERO_PAGE:#x}"


def test_the_same_firmware_code_serves_both_paths() -> None:
    """One image: only the patch table differs between a bzImage's build and a vmlinux's."""
    bz = build(bzimage(), "bz")
    elf = build(simple_kernel().build(), "vmlinux")
    assert bz.firmware.image == elf.firmware.image
    table = bz.firmware.symbol("patch_table").offset
    differ = [i for i in range(layout.IMAGE_SIZE) if bz.image[i] != elf.image[i]]
    assert differ and all(table <= i < table + 8 + 16 for i in differ)
    assert elf.manifest["boot_path"] == "pvh" and elf.manifest["kernel"]["format"] == "elf"


@pytest.mark.parametrize(
    ("magic", "name"),
    [
        (b"\x1f\x8b\x08", "gzip"),
        (b"BZh9", "bzip2"),
        (b"\x5d\x00\x00\x80", "lzma"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x89LZO\x00", "lzo"),
        (b"\x02\x21\x4c\x18", "lz4"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
    ],
)
def test_payload_compression_named_by_magic(magic: bytes, name: str) -> None:
    pm = bytes(0x40) + magic + bytes(0x1000)
    kernel = read_bzimage(bzimage(pm, payload=(0x40, 0x100)), "bz")
    assert kernel.compression == name


def problem(data: bytes) -> str:
    with pytest.raises(BuildError) as e:
        build(data, "bz")
    message = str(e.value)
    assert message.startswith("bz: ") and "\n" not in message
    return message.removeprefix("bz: ")


CORRUPT = [
    ("truncated-header", bzimage()[:0x240], "truncated bzImage (576 bytes, shorter than"),
    ("setup-only", bzimage()[:1024], "truncated bzImage: 1024 bytes of setup code (1 setup_sects)"),
    ("boot-flag", bzimage(boot_flag=0x1234), "corrupt bzImage: boot_flag is 0x1234, not 0xaa55"),
    ("old-protocol", bzimage(protocol=0x0209), "Linux boot protocol 2.09 is older than 2.10"),
    ("zimage", bzimage(loadflags=0), "a zImage (its code loads below 1 MiB, loadflags 0x00"),
    (
        "syssize",
        bzimage(syssize=0x200),
        "truncated bzImage: the header's syssize says 0x2000 bytes of protected-mode code, "
        "the file has 0x1000",
    ),
    (
        "code32-low",
        bzimage(code32_start=0xFFFFF),
        "corrupt bzImage: code32_start 0xfffff is outside its protected-mode code, loaded at "
        "0x100000-0x101000",
    ),
    (
        "code32-high",
        bzimage(code32_start=0x101000),
        "corrupt bzImage: code32_start 0x101000 is outside",
    ),
    (
        "payload-past-end",
        bzimage(payload=(0x800, 0x801)),
        "corrupt bzImage: the payload at 0x800+0x801 runs past the protected-mode code "
        "(0x1000 bytes)",
    ),
    (
        "payload-overflow",
        bzimage(payload=(0xFFFFFFFF, 0xFFFFFFFF)),
        "corrupt bzImage: the payload at 0xffffffff+0xffffffff runs past",
    ),
    (
        "payload-magic",
        bzimage(payload=(0x10, 0x10)),
        "corrupt bzImage: the payload at 0x10 starts with 00 00 00 00, in no compression format",
    ),
    ("init-size-0", bzimage(init_size=0), "corrupt bzImage: init_size is 0"),
    (
        "pref-low",
        bzimage(pref_address=0x90000),
        "pref_address 0x90000 + init_size 0x1000 is not between 1 MiB and 4 GiB",
    ),
    (
        "past-4g",
        bzimage(pref_address=0xFFFFF000, init_size=0x2000),
        "pref_address 0xfffff000 + init_size 0x2000 is not between 1 MiB and 4 GiB",
    ),
    (
        "over-rom",
        bzimage(pref_address=0xFF000000, init_size=0xFF0001),
        "the kernel's memory (code and decompression space) at 0x100000-0xffff0001 overlaps "
        "the firmware ROM below 4 GiB at 0xffff0000-0x100000000",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT]
)
def test_corrupt_bzimage_is_one_line(data: bytes, expected: str) -> None:
    assert problem(data).startswith(expected)


def test_floor_variant_refuses_a_bzimage() -> None:
    with pytest.raises(BuildError, match=r"^bz: a bzImage needs the firmware to load it"):
        build(bzimage(), "bz", "floor")


def test_cli_builds_a_bzimage_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(bzimage())
    out = tmp_path / "out" / "bios.bin"
    assert main(["--kernel", str(kernel), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "(bzImage, boot protocol 2.15, 32-bit entry 0x100000, loaded at 0x100000+0x1000)" in said
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["boot_path"] == "linux32"
    assert out.read_bytes() == build(kernel.read_bytes(), str(kernel)).image


def test_exitfirst_bz_builds(kernels_dir: Path) -> None:
    try:
        path = build_bzimage(kernels_dir)
    except KernelToolchainMissing as e:
        need(False, str(e))
        raise
    data = path.read_bytes()
    result = build(data, "exitfirst-bz")
    assert result.boot_path == "linux32"
    code32_start = spec.bp_read(data, "code32_start")
    assert result.patches["entry"] == code32_start
    assert result.patches["kernel_size"] == len(data) - spec.setup_size(data)
