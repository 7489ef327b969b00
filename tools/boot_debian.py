"""The main job: build the firmware for Debian's cloud kernel and boot it in stock QEMU.

    python3 -m tools.boot_debian [--machine pc|q35|microvm] [--accel tcg|kvm] [--bzimage]
                                 [--series 6.1|6.12] [--append ...]

Gets the kernel (Debian 12's 6.1 cloud kernel; with --series 6.12 Debian 13's) and the
initramfs (cached; tools/debian_kernel.py, tools/initramfs.py), runs
`build-fw --kernel <vmlinux> -o out/bios.bin` (with --bzimage: Debian's vmlinuz, booted
through the Linux boot protocol), then boots QEMU with that firmware, streams the
serial console, and reports whether the initramfs's marker arrived: under TCG the kernel
reaches userspace and the init ends QEMU (exit status 15); under this machine's KVM (PVM, see
machines.md) only early boot is possible, so with --accel kvm it stops at the kernel's
"Command line:" echo. The QEMU is tools.qemu's: $PVHFW_QEMU, else qemu-system-x86_64; the job
prints which binary and version it ran.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pvhfw.builder.cli import main as build_fw
from tools.debian_kernel import DEFAULT_SERIES, SERIES, ToolError, ensure_debian_kernel
from tools.guest import tcg_kernel_args
from tools.initramfs import DEFAULT_MARKER, ensure_initramfs
from tools.qemu import ACCELS, MACHINES, describe_qemu, qemu_path
from tools.qemu import qemu_command as build_command

REPO = Path(__file__).resolve().parent.parent
DEBUG_EXIT_STATUS = 15  # the init writes 7 to isa-debug-exit: (7 << 1) | 1


def qemu_command(
    bios: Path, kernel: Path, initrd: Path, machine: str, accel: str, append: str, memory: str
) -> list[str]:
    """The boot's command line: tools.qemu's, for a Linux guest (its CPU model; microvm's PIT
    under TCG)."""
    return build_command(
        machine=machine,
        accel=accel,
        linux=True,
        memory=memory,
        bios=bios,
        kernel=kernel,
        initrd=initrd,
        append=append,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="boot_debian",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--machine", choices=MACHINES, default="pc")
    p.add_argument("--accel", choices=ACCELS, default="tcg")
    p.add_argument("--memory", default="512")
    p.add_argument(
        "--append",
        default=None,
        help="kernel command line (default: console=ttyS0,"
        " plus tools/guest.py's tsc_early_khz= on microvm under TCG)",
    )
    p.add_argument(
        "--bzimage",
        action="store_true",
        help="boot Debian's vmlinuz (bzImage) instead of the vmlinux",
    )
    p.add_argument(
        "--series",
        choices=SERIES,
        default=DEFAULT_SERIES,
        help="the kernel series: " + ", ".join(f"{name} {pkg}" for name, pkg in SERIES.items()),
    )
    p.add_argument("--out", type=Path, default=REPO / "out" / "bios.bin")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    append = args.append or " ".join(
        ["console=ttyS0", *tcg_kernel_args(args.machine, args.accel)]
        if args.accel == "tcg"
        else ["console=ttyS0", "earlyprintk=ttyS0", "noxsave"]
    )
    which = describe_qemu()
    if qemu_path() is None:
        print(f"boot_debian: {which}", file=sys.stderr)
        return 1
    print(f"boot_debian: qemu: {which}", flush=True)
    try:
        kernel = ensure_debian_kernel(package=SERIES[args.series])
        initrd = ensure_initramfs()
    except ToolError as e:
        print(f"boot_debian: {e}", file=sys.stderr)
        return 1
    image = kernel.bzimage if args.bzimage else kernel.vmlinux
    if build_fw(["--kernel", str(image), "-o", str(args.out)]) != 0:
        return 1
    cmd = qemu_command(args.out, image, initrd, args.machine, args.accel, append, args.memory)
    print("boot_debian: " + " ".join(cmd), flush=True)
    want = DEFAULT_MARKER if args.accel == "tcg" else "Command line:"
    start = time.monotonic()
    seen = False
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    ) as qemu:
        assert qemu.stdout is not None
        try:
            for raw in qemu.stdout:
                line = raw.decode("utf-8", "replace")
                sys.stdout.write(line)
                if want in line:
                    seen = True
                    if args.accel == "kvm":
                        break
                if time.monotonic() - start > args.timeout:
                    break
        finally:
            if args.accel == "kvm" or not seen:
                qemu.kill()
            status = qemu.wait(timeout=args.timeout)
    elapsed = time.monotonic() - start
    if args.accel == "tcg":
        ok = seen and status == DEBUG_EXIT_STATUS
        what = "reached userspace and powered off" if ok else "did not reach userspace"
    else:
        ok = seen
        what = "early boot reached (KVM here cannot run Linux further)" if ok else "no early boot"
    print(
        f"boot_debian: {args.machine}/{args.accel}: {what} in {elapsed:.1f} s "
        f"(QEMU exit status {status}; {which})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
