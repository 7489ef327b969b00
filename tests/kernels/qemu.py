"""Run a test kernel under stock QEMU and collect its serial output and exit status."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-x86_64"
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=0x01"
KVM_CPU = "qemu64,-cx16"  # see /work/shared/reference/machines.md


@dataclass
class QemuRun:
    cmd: list[str]
    returncode: int | None  # None when QEMU was killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def describe(self) -> str:
        """For assertion messages: the command, the status and the tail of the output."""
        status = "timed out" if self.timed_out else f"exit status {self.returncode}"
        return (
            f"{' '.join(self.cmd)}\n{status} after {self.seconds:.2f}s\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-2000:]}"
        )


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


def run_kernel(
    kernel: Path,
    *,
    initrd: Path | None = None,
    append: str | None = None,
    machine: str = "pc",
    accel: str = "tcg",
    memory: str = "128",
    extra: Sequence[str] = (),
    timeout: float = 60.0,
) -> QemuRun:
    """Boot ``kernel`` with ``-kernel`` (QEMU's own PVH path: SeaBIOS + pvh.bin on ``pc``).

    Serial (COM1) goes to stdout through ``-nographic``.  ``accel="kvm"`` adds
    ``-cpu qemu64,-cx16`` unless ``extra`` names a CPU.
    """
    cmd = [
        QEMU,
        "-M",
        machine,
        "-accel",
        accel,
        "-m",
        memory,
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(kernel),
    ]
    if initrd is not None:
        cmd += ["-initrd", str(initrd)]
    if append is not None:
        cmd += ["-append", append]
    cmd += ["-device", DEBUG_EXIT]
    if accel == "kvm" and "-cpu" not in extra:
        cmd += ["-cpu", KVM_CPU]
    cmd += list(extra)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return QemuRun(cmd, None, _text(exc.stdout), _text(exc.stderr), time.monotonic() - start)
    return QemuRun(
        cmd, proc.returncode, _text(proc.stdout), _text(proc.stderr), time.monotonic() - start
    )


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "replace")
