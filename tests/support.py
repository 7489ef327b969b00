"""Helpers shared by the test layers: loud skips, firmware builds."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pvhfw.builder.build import BuildResult, build, build_any_kernel
from tools.qemu import QEMU_ENV, qemu_binary, qemu_path

KernelGetter = Callable[..., Path]  # the `kernel` fixture: (name, load_addr, **options) -> ELF


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def need(condition: bool, reason: str) -> None:
    """Skip loudly when a prerequisite (QEMU, KVM, a kernel) is missing; in CI, where every
    prerequisite is installed by .ci/run, a missing one is a failure instead."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(f"prerequisite missing: {reason}")


def need_qemu() -> str:
    """The path of the QEMU binary the tests run (tools.qemu: $PVHFW_QEMU, else
    qemu-system-x86_64)."""
    path = qemu_path()
    need(
        path is not None,
        f"{qemu_binary()} not found (apt-get install qemu-system-x86, or set {QEMU_ENV})",
    )
    assert path is not None
    return path


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def need_kvm() -> None:
    need(kvm_usable(), "/dev/kvm is missing or not accessible")


def build_firmware(kernel: Path, out_dir: Path, variant: str = "pvh") -> tuple[Path, BuildResult]:
    """build-fw's work, in-process: the image for `kernel`, written to out_dir."""
    result = build(kernel.read_bytes(), str(kernel), variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / f"{kernel.stem}-{variant}.bin"
    image.write_bytes(result.image)
    return image, result


def build_any_firmware(out_dir: Path) -> Path:
    """build-fw --any-kernel's image, in-process, written to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / "any-kernel.bin"
    image.write_bytes(build_any_kernel().image)
    return image


# The two kinds of image the QEMU and Debian layers boot a kernel with: the one build-fw
# made for it, and the any-kernel one.
IMAGE_KINDS = ("pre-patched", "any-kernel")


def write_executable(path: Path, text: str) -> Path:
    """A script (a fake apt-get, QEMU...) at `path`, its directories made, executable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
