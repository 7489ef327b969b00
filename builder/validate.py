"""What a kernel must satisfy for this firmware to boot it."""

from __future__ import annotations

from builder.errors import BuildError
from builder.kernel import PF_X, Kernel
from firmware import layout


def validate_kernel(kernel: Kernel, name: str) -> None:
    """The PVH entry lies in an executable, file-backed loaded segment, and no segment
    overlaps the firmware's own memory (layout.RESERVED_AREAS)."""
    for s in kernel.segments:
        for area in layout.RESERVED_AREAS:
            if area.overlaps(s.paddr, s.end):
                raise BuildError(
                    f"{name}: segment {s.index} at {s.paddr:#x}-{s.end:#x} overlaps the "
                    f"{area.name} at {area.start:#x}-{area.end:#x}"
                )
    holders = [s for s in kernel.segments if s.paddr <= kernel.entry < s.paddr + s.filesz]
    if not holders:
        raise BuildError(
            f"{name}: PVH entry {kernel.entry:#x} is not inside any loaded segment's file data"
        )
    if not any(s.flags & PF_X for s in holders):
        raise BuildError(f"{name}: PVH entry {kernel.entry:#x} is in a non-executable segment")
