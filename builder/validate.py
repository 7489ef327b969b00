"""What a kernel must satisfy for this firmware to boot it."""

from __future__ import annotations

from pvhfw.builder.bzimage import BzImage
from pvhfw.builder.errors import BuildError
from pvhfw.builder.kernel import PF_X, Kernel
from pvhfw.firmware import layout


def _check_areas(start: int, end: int, what: str, name: str) -> None:
    """[start, end) overlaps none of the firmware's own memory (layout.RESERVED_AREAS)."""
    for area in layout.RESERVED_AREAS:
        if area.overlaps(start, end):
            raise BuildError(
                f"{name}: {what} at {start:#x}-{end:#x} overlaps the "
                f"{area.name} at {area.start:#x}-{area.end:#x}"
            )


def validate_bzimage(kernel: BzImage, name: str) -> None:
    """The protected-mode code and the decompression space stay clear of the firmware."""
    start, end = kernel.memory
    _check_areas(start, end, "the kernel's memory (code and decompression space)", name)


def validate_kernel(kernel: Kernel, name: str) -> None:
    """The PVH entry lies in an executable, file-backed loaded segment, and no segment
    overlaps the firmware's own memory (layout.RESERVED_AREAS)."""
    for s in kernel.segments:
        _check_areas(s.paddr, s.end, f"segment {s.index}", name)
    holders = [s for s in kernel.segments if s.paddr <= kernel.entry < s.paddr + s.filesz]
    if not holders:
        raise BuildError(
            f"{name}: PVH entry {kernel.entry:#x} is not inside any loaded segment's file data"
        )
    if not any(s.flags & PF_X for s in holders):
        raise BuildError(f"{name}: PVH entry {kernel.entry:#x} is in a non-executable segment")
