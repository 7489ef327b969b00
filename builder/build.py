"""One build: kernel bytes in, patched image, map and manifest out. Pure over bytes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from dataclasses import dataclass
from typing import Any

from pvhfw.builder.bzimage import BzImage, is_bzimage, read_bzimage
from pvhfw.builder.errors import BuildError
from pvhfw.builder.kernel import Kernel, read_kernel
from pvhfw.builder.validate import validate_bzimage, validate_kernel
from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware, assemble_firmware
from pvhfw.firmware.layout import PATCH_FIELDS
from pvhfw.firmware.patchtable import patch_image

MANIFEST_FORMAT = 1


# The manifest's boot_path, by the patch table's.
BOOT_PATH_NAMES = {
    layout.BOOT_PATH_PVH: "pvh",
    layout.BOOT_PATH_LINUX32: "linux32",
    layout.BOOT_PATH_ANY: "any",
}
# The manifest's kind: an image tied to the kernel it was built for (the fast path), or one
# that boots any kernel QEMU loads, checking it at run time (build-fw --any-kernel).
KIND_PRE_PATCHED = "pre-patched"
KIND_ANY_KERNEL = "any-kernel"
# The patch table of an any-kernel image: no kernel's facts, only the kind.
ANY_KERNEL_PATCHES = {
    "entry": 0,
    "kernel_addr": 0,
    "kernel_size": 0,
    "boot_path": layout.BOOT_PATH_ANY,
}


@dataclass(frozen=True)
class BuildResult:
    image: bytes
    firmware: Firmware
    kernel: Kernel | BzImage | None  # None: an any-kernel image
    patches: dict[str, int]
    manifest: dict[str, Any]
    map_text: str

    @property
    def boot_path(self) -> str:
        """ "pvh" (an ELF's PVH entry), "linux32" (a bzImage's 32-bit entry) or "any"."""
        return BOOT_PATH_NAMES[self.patches["boot_path"]]

    @property
    def kind(self) -> str:
        return KIND_ANY_KERNEL if self.kernel is None else KIND_PRE_PATCHED


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("pvhfw", "keystone-engine", "pyelftools", "lief"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def read_any_kernel(kernel_data: bytes, kernel_name: str) -> Kernel | BzImage:
    """A bzImage (the boot protocol's "HdrS" magic) or else an ELF with a PVH note, validated."""
    if is_bzimage(kernel_data):
        bz = read_bzimage(kernel_data, kernel_name)
        validate_bzimage(bz, kernel_name)
        return bz
    kernel = read_kernel(kernel_data, kernel_name)
    validate_kernel(kernel, kernel_name)
    return kernel


def build(kernel_data: bytes, kernel_name: str, variant: str = "pvh") -> BuildResult:
    kernel = read_any_kernel(kernel_data, kernel_name)
    linux32 = isinstance(kernel, BzImage)
    if linux32 and variant == "floor":
        raise BuildError(
            f"{kernel_name}: a bzImage needs the firmware to load it; the floor variant only "
            "jumps to a PVH entry"
        )
    firmware = assemble_firmware(variant)
    patches = {
        "entry": kernel.entry,
        "kernel_addr": kernel.load_addr,
        "kernel_size": kernel.load_size,
        "boot_path": layout.BOOT_PATH_LINUX32 if linux32 else layout.BOOT_PATH_PVH,
    }
    kernel_facts = {
        "file": kernel_name,
        "size": len(kernel_data),
        "sha256": _sha256(kernel_data),
        **_kernel_manifest(kernel),
    }
    return _result(firmware, patches, kernel, kernel_facts)


def build_any_kernel(variant: str = "pvh") -> BuildResult:
    """An image for no kernel in particular (build-fw --any-kernel): the firmware takes the
    entry from fw_cfg (FW_CFG_KERNEL_ENTRY, or the bzImage's setup header) and checks at run
    time what build() checks here (docs/design.md, "One image for any kernel")."""
    if variant == "floor":
        raise BuildError(
            "--any-kernel: the floor variant has no fw_cfg code to find the kernel's entry "
            "with; build it with --kernel"
        )
    return _result(assemble_firmware(variant), dict(ANY_KERNEL_PATCHES), None, None)


def _result(
    firmware: Firmware,
    patches: dict[str, int],
    kernel: Kernel | BzImage | None,
    kernel_facts: dict[str, Any] | None,
) -> BuildResult:
    image = patch_image(firmware, patches)
    manifest = _manifest(image, firmware, patches, kernel_facts)
    return BuildResult(image, firmware, kernel, patches, manifest, render_map(firmware, patches))


def _kernel_manifest(kernel: Kernel | BzImage) -> dict[str, Any]:
    if isinstance(kernel, BzImage):
        start, end = kernel.memory
        return {
            "format": "bzImage",
            "boot_protocol": kernel.version,
            "code32_start": f"{kernel.code32_start:#x}",
            "load_addr": f"{kernel.load_addr:#x}",
            "load_size": f"{kernel.load_size:#x}",
            "setup_size": kernel.setup_size,
            "relocatable": kernel.relocatable,
            "kernel_alignment": f"{kernel.kernel_alignment:#x}",
            "xloadflags": kernel.xloadflag_names,
            "pref_address": f"{kernel.pref_address:#x}",
            "init_size": f"{kernel.init_size:#x}",
            "memory": [f"{start:#x}", f"{end:#x}"],
            "payload": {
                "offset": f"{kernel.payload_offset:#x}",
                "length": f"{kernel.payload_length:#x}",
                "compression": kernel.compression,
            },
            "cmdline_size": kernel.cmdline_size,
            "initrd_addr_max": f"{kernel.initrd_addr_max:#x}",
        }
    return {
        "format": "elf",
        "elf_class": kernel.elf_class,
        "machine": kernel.machine,
        "pvh_entry": f"{kernel.entry:#x}",
        "pvh_entry_note": kernel.entry_source,
        "load_addr": f"{kernel.load_addr:#x}",
        "load_size": f"{kernel.load_size:#x}",
        "segments": [
            {
                "index": s.index,
                "paddr": f"{s.paddr:#x}",
                "filesz": f"{s.filesz:#x}",
                "memsz": f"{s.memsz:#x}",
                "flags": "".join(c for c, bit in (("r", 4), ("w", 2), ("x", 1)) if s.flags & bit),
            }
            for s in kernel.segments
        ],
    }


def _manifest(
    image: bytes,
    firmware: Firmware,
    patches: dict[str, int],
    kernel_facts: dict[str, Any] | None,
) -> dict[str, Any]:
    """The manifest; "kernel" only for a pre-patched image (an any-kernel one has none)."""
    return {
        "format": MANIFEST_FORMAT,
        "kind": KIND_PRE_PATCHED if kernel_facts else KIND_ANY_KERNEL,
        "variant": firmware.variant,
        "boot_path": BOOT_PATH_NAMES[patches["boot_path"]],
        **({"kernel": kernel_facts} if kernel_facts else {}),
        "image": {
            "size": len(image),
            "sha256": _sha256(image),
            "unpatched_sha256": _sha256(firmware.image),
            "code32_bytes": len(firmware.blocks[0].code),
            "code16_bytes": len(firmware.blocks[1].code),
        },
        "patch_table": {
            "offset": f"{firmware.symbol('patch_table').offset:#x}",
            "fields": {name: f"{value:#x}" for name, value in patches.items()},
        },
        "ram": {
            "start_info": f"{layout.START_INFO:#x}",
            "memmap": f"{layout.MEMMAP:#x}",
            "memmap_max_entries": layout.MEMMAP_MAX,
            "cmdline": f"{layout.CMDLINE:#x}",
            "cmdline_max_bytes": layout.CMDLINE_MAX,
            "zero_page": f"{layout.ZERO_PAGE:#x}",
            "firmware_ram": [f"{layout.FW_RAM_BASE:#x}", f"{layout.FW_RAM_END:#x}"],
        },
        "tools": tool_versions(),
    }


def render_map(firmware: Firmware, patches: dict[str, int]) -> str:
    """Every symbol's address, the patch table, the RAM layout and the full listing."""
    out = [f"pvhfw firmware map ({firmware.variant} variant)", ""]
    out.append("patch table")
    for field in PATCH_FIELDS:
        sym = firmware.symbol(field.symbol)
        out.append(
            f"  {field.name:12s} {patches[field.name]:#010x}  at {sym.address:#010x} "
            f"(image {sym.offset:#06x})  {field.description}"
        )
    out += ["", "ROM symbols (linear address, image offset, block)"]
    for sym in sorted(firmware.symbols.values(), key=lambda s: (s.address, s.name)):
        out.append(f"  {sym.address:#010x}  {sym.offset:#06x}  {sym.block:8s} {sym.name}")
    out += ["", "RAM variables (firmware/layout.py VARIABLES)"]
    for name, size, description in layout.VARIABLES:
        address = layout.VARIABLE_ADDRESSES[name]
        out.append(f"  {address:#010x}  {size:3d}  {name:24s} {description}")
    out += ["", "RAM and ROM layout (firmware/layout.py), ABI numbers (firmware/abi.py)"]
    for name, value in sorted(layout.asm_constants().items()):
        if name not in layout.VARIABLE_ADDRESSES:
            out.append(f"  {name:32s} {value:#x}")
    out += ["", "listing"]
    for block in firmware.blocks:
        out.append(f"  [{block.name}: {block.mode}-bit, assembled at {block.base:#x}]")
        for line in block.listing:
            data = line.data.hex()
            if len(data) > 24:
                data = data[:21] + "..."
            out.append(f"  {line.address:#010x}  {data:24s} {line.file}:{line.line}  {line.text}")
    return "\n".join(out) + "\n"
