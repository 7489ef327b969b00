"""Run a test kernel under stock QEMU and collect its serial output and exit status."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.qemu import qemu_command as build_command
from tools.qemu import qemu_path


@dataclass
class QemuRun:
    cmd: list[str]
    returncode: int | None  # None when QEMU was killed at the timeout
    stdout: str
    stderr: str
    seconds: float
    stopped: bool = False  # run_until_output: killed once the awaited output had appeared

    @property
    def timed_out(self) -> bool:
        return self.returncode is None and not self.stopped

    def describe(self) -> str:
        """For assertion messages: the command, the status and the tail of the output."""
        if self.stopped:
            status = "killed after the awaited output"
        elif self.timed_out:
            status = "timed out"
        else:
            status = f"exit status {self.returncode}"
        return (
            f"{' '.join(self.cmd)}\n{status} after {self.seconds:.2f}s\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-2000:]}"
        )


def qemu_available() -> bool:
    """The QEMU binary (tools.qemu: $PVHFW_QEMU or qemu-system-x86_64) is there."""
    return qemu_path() is not None


def qemu_command(
    kernel: Path | None,
    *,
    bios: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    machine: str = "pc",
    accel: str = "tcg",
    memory: str = "128",
    cpu: str | None = None,
    smp: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The QEMU command line of :func:`run_kernel` (``kernel`` None: no ``-kernel``): the one
    builder's (tools.qemu) for a test kernel, with isa-debug-exit, ``-nographic`` and
    ``-no-reboot``; ``cpu`` None: tools.qemu's KVM model under KVM, QEMU's default under TCG."""
    return build_command(
        machine=machine,
        accel=accel,
        cpu=cpu,
        memory=memory,
        smp=smp,
        bios=bios,
        kernel=kernel,
        initrd=initrd,
        append=append,
        extra=extra,
    )


def run_kernel(
    kernel: Path,
    *,
    initrd: Path | None = None,
    append: str | None = None,
    machine: str = "pc",
    accel: str = "tcg",
    memory: str = "128",
    cpu: str | None = None,
    smp: int | None = None,
    extra: Sequence[str] = (),
    timeout: float = 60.0,
    bios: Path | None = None,
) -> QemuRun:
    """Boot ``kernel`` with ``-kernel`` (QEMU's own PVH path: SeaBIOS + pvh.bin on ``pc``,
    or the firmware image ``bios`` when given).

    Serial (COM1) goes to stdout through ``-nographic``.  ``accel="kvm"`` adds tools.qemu's
    KVM CPU model unless ``cpu`` names another.
    """
    cmd = qemu_command(
        kernel,
        bios=bios,
        initrd=initrd,
        append=append,
        machine=machine,
        accel=accel,
        memory=memory,
        cpu=cpu,
        smp=smp,
        extra=extra,
    )
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


def run_until_output(
    kernel: Path | None,
    until: str | re.Pattern[str],
    *,
    bios: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    machine: str = "pc",
    accel: str = "tcg",
    memory: str = "128",
    cpu: str | None = None,
    smp: int | None = None,
    extra: Sequence[str] = (),
    timeout: float = 20.0,
    linger: float = 0.0,
) -> QemuRun:
    """Run QEMU (as :func:`run_kernel`; ``kernel`` None: no ``-kernel``) for a guest that
    halts instead of exiting, until the regular expression ``until`` matches its serial
    output (see :func:`run_command_until`)."""
    cmd = qemu_command(
        kernel,
        bios=bios,
        initrd=initrd,
        append=append,
        machine=machine,
        accel=accel,
        memory=memory,
        cpu=cpu,
        smp=smp,
        extra=extra,
    )
    pattern = re.compile(until) if isinstance(until, str) else until
    return run_command_until(
        cmd, lambda out, _err: bool(pattern.search(out)), timeout=timeout, linger=linger
    )


def run_command_until(
    cmd: list[str],
    stop: Callable[[str, str], bool] | None,
    *,
    timeout: float,
    linger: float = 0.0,
) -> QemuRun:
    """Run a QEMU command, reading serial output (stdout) and stderr as they come. Once
    ``stop(stdout, stderr)`` holds, keep reading ``linger`` more seconds (to catch anything
    printed after it), then kill QEMU (``stopped`` is True, ``returncode`` None). A QEMU that
    exits first keeps its exit status; at ``timeout`` it is killed (``timed_out``)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
        chunks = {stdout_fd: bytearray(), stderr_fd: bytearray()}
        deadline = start + timeout
        matched = False
        with selectors.DefaultSelector() as sel:
            for fd in chunks:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    break
                for key, _ in sel.select(deadline - now):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    chunks[key.fd] += data
                if (
                    not matched
                    and stop is not None
                    and stop(_text(bytes(chunks[stdout_fd])), _text(bytes(chunks[stderr_fd])))
                ):
                    matched = True
                    deadline = min(deadline, time.monotonic() + linger)
            exited = not sel.get_map()  # both pipes at EOF: QEMU is exiting on its own
        if exited:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            returncode = None
        else:
            returncode = proc.returncode
    except BaseException:  # never leave QEMU running behind an error or an interrupt
        proc.kill()
        proc.wait()
        raise
    proc.stdout.close()
    proc.stderr.close()
    return QemuRun(
        cmd,
        returncode,
        _text(bytes(chunks[stdout_fd])),
        _text(bytes(chunks[stderr_fd])),
        time.monotonic() - start,
        stopped=matched and returncode is None,
    )


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "replace")
