"""The patch table: the few values an image takes from the kernel it is built for.

layout.PATCH_FIELDS defines the fields (little-endian, behind layout.PATCH_MAGIC); the
assembler generates the table from it (assemble.patch_table_source). The firmware takes the
boot path QEMU's fw_cfg shows (a PVH entry, or a bzImage's setup header), refuses it unless it
is ``boot_path``, checks the other three fields against what QEMU reports and jumps to
``entry``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pvhfw.firmware.assemble import AssemblyError, Firmware
from pvhfw.firmware.layout import PATCH_FIELDS, PATCH_MAGIC


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
