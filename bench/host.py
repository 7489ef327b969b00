"""What the benchmarks record about the machine they ran on: its KVM, its QEMU, the host."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from tools.qemu import describe_qemu, qemu_version


def kvm_backend() -> str:
    """Which KVM /dev/kvm is: the loaded module (kvm_pvm, kvm_intel, kvm_amd), "none" when
    /dev/kvm is missing or not accessible, "unknown" otherwise."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "none"
    for module in ("kvm_pvm", "kvm_intel", "kvm_amd"):
        if Path("/sys/module", module).exists():
            return module
    return "unknown"


def kvm_label(backend: str) -> str:
    """The title KVM times go under: PVM runs guest firmware in KVM's instruction emulator,
    so its times are not hardware times."""
    if backend == "kvm_pvm":
        return "KVM (PVM-emulated here, not hardware)"
    if backend in ("kvm_intel", "kvm_amd"):
        return f"KVM (hardware, {backend})"
    return f"KVM ({backend})"


def qemu_facts(qemu: str | None) -> dict[str, Any]:
    """The QEMU a benchmark ran (its path; None: no QEMU was used) and its version line."""
    return {"qemu": qemu, "qemu_version": qemu_version(qemu) if qemu else "not used"}


def qemu_line(qemu: str) -> str:
    """The binary and its version, for the progress log."""
    return f"[qemu] {describe_qemu(qemu)}"


def host_facts() -> dict[str, Any]:
    """The host, for the JSON's meta: platform, CPU count, Python version."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def host_line(backend: str) -> str:
    """The host in one line, for a table's heading."""
    return f"{platform.machine()}, {platform.release()}, kvm: {backend}"
