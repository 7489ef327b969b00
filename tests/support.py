"""Helpers shared by the test layers: loud skips, firmware builds."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pvhfw.builder import cli
from pvhfw.builder.build import BuildResult, build
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


# The kinds of image the QEMU, Debian and client (libvirt, virtme-ng) layers boot a kernel
# with, as build-fw's arguments besides `-o OUT` for that kernel; a kind is one entry.
IMAGE_KINDS: dict[str, Callable[[Path], list[str]]] = {
    "pre-patched": lambda kernel: ["--kernel", str(kernel)],  # tied to that kernel
    "any-kernel": lambda kernel: ["--any-kernel"],  # any kernel, checked at run time
}


def build_image(kind: str, kernel: Path, out_dir: Path) -> Path:
    """`build-fw ARGS -o OUT` for `kernel` and the image kind (IMAGE_KINDS), run in-process
    as a user runs it; OUT is out_dir/<kind>.bin. A failed build fails the test with
    build-fw's line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{kind}.bin"
    argv = [*IMAGE_KINDS[kind](kernel), "-o", str(out), "-q"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = cli.main(argv)
    if status != 0:
        pytest.fail(f"build-fw {' '.join(argv)}: exit status {status}: {err.getvalue().strip()}")
    return out


def write_executable(path: Path, text: str) -> Path:
    """A script (a fake apt-get, QEMU...) at `path`, its directories made, executable by all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
