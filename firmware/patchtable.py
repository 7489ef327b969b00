"""The patch table: the few values an image takes from the kernel it is built for.

asm/patch.s reserves the fields (little-endian u32 each) behind an 8-byte magic; the firmware
takes the boot path QEMU's fw_cfg shows (a PVH entry, or a bzImage's setup header), refuses it
unless it is ``boot_path``, checks the other three fields against what QEMU reports and
jumps to ``entry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pvhfw.firmware.assemble import AssemblyError, Firmware

PATCH_MAGIC: Final = b"PVHFWPT2"


@dataclass(frozen=True)
class PatchField:
    name: str
    symbol: str
    description: str
    size: int = 4


PATCH_FIELDS: Final = (
    PatchField(
        "entry",
        "patch_entry",
        "PVH entry (XEN_ELFNOTE_PHYS32_ENTRY) = FW_CFG_KERNEL_ENTRY, or a bzImage's code32_start",
    ),
    PatchField(
        "kernel_addr",
        "patch_kernel_addr",
        "lowest PT_LOAD p_paddr, or 1 MiB for a bzImage = FW_CFG_KERNEL_ADDR",
    ),
    PatchField(
        "kernel_size",
        "patch_kernel_size",
        "PT_LOAD span, or a bzImage's protected-mode size = FW_CFG_KERNEL_SIZE",
    ),
    PatchField(
        "boot_path", "patch_boot_path", "1: PVH entry of an ELF, 2: a bzImage's 32-bit entry"
    ),
)


def patch_image(firmware: Firmware, values: Mapping[str, int]) -> bytes:
    """The image with every patch field set; every field must be given, and fit."""
    image = bytearray(firmware.image)
    table = firmware.symbol("patch_table").offset
    if image[table : table + len(PATCH_MAGIC)] != PATCH_MAGIC:
        raise AssemblyError("firmware: patch table magic not found at patch_table")
    names = {f.name for f in PATCH_FIELDS}
    unknown = set(values) - names
    if unknown:
        raise AssemblyError(f"firmware: unknown patch fields {sorted(unknown)}")
    for field in PATCH_FIELDS:
        if field.name not in values:
            raise AssemblyError(f"firmware: patch field {field.name} not given")
        value = values[field.name]
        if not 0 <= value < 1 << (8 * field.size):
            raise AssemblyError(f"firmware: patch field {field.name} = {value:#x} does not fit")
        offset = firmware.symbol(field.symbol).offset
        image[offset : offset + field.size] = value.to_bytes(field.size, "little")
    return bytes(image)


def read_patches(firmware: Firmware, image: bytes) -> dict[str, int]:
    """The patch values in an image assembled from firmware (for maps and tests)."""
    out = {}
    for field in PATCH_FIELDS:
        offset = firmware.symbol(field.symbol).offset
        out[field.name] = int.from_bytes(image[offset : offset + field.size], "little")
    return out
