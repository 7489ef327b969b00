"""What a Linux guest needs on the kernel command line under this project's QEMU set-ups.

`-M microvm` under TCG has no kvm-clock, HPET or ACPI PM timer: the kernel calibrates the TSC
against the PIT (`-M microvm,pit=on`), and under TCG that calibration fails whenever the host
is busy ("tsc: Unable to calibrate against PIT", "No reference (HPET/PMTIMER) available"), after
which the kernel stops making progress in early boot: about one boot in three with two QEMUs on
two cores. TCG's guest TSC runs at the host's TSC rate, so telling the kernel that rate
(`tsc_early_khz=`, Linux >= 5.4) skips the calibration and makes those boots reliable.
"""

from __future__ import annotations

import re
from pathlib import Path

from tools.qemu import tcg_microvm

FALLBACK_TSC_KHZ = 2_000_000  # only the guest's sense of time depends on it, not the boot
_CPU_MHZ = re.compile(r"^cpu MHz\s*:\s*([0-9.]+)", re.MULTILINE)


def host_tsc_khz(cpuinfo: str | None = None) -> int:
    """The host's TSC rate in kHz as /proc/cpuinfo states it (its first `cpu MHz`: on a
    constant-TSC CPU and in a VM that is the TSC rate); FALLBACK_TSC_KHZ when absent."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return FALLBACK_TSC_KHZ
    m = _CPU_MHZ.search(cpuinfo)
    if m is None or float(m.group(1)) <= 0:
        return FALLBACK_TSC_KHZ
    return round(float(m.group(1)) * 1000)


def tcg_kernel_args(machine: str, accel: str) -> list[str]:
    """Kernel command-line words this machine type needs under this accelerator (the machine
    option a Linux guest needs there is tools.qemu's linux_machine)."""
    if tcg_microvm(machine, accel):
        return [f"tsc_early_khz={host_tsc_khz()}"]
    return []
