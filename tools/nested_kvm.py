"""pvhfw under a KVM that executes the firmware: Debian's kernel booted inside a TCG guest.

This machine's /dev/kvm is PVM-based: it runs guest firmware in KVM's instruction emulator,
one instruction at a time, and no stock Linux gets past early boot under it. QEMU's TCG with
`-cpu max` emulates AMD SVM with nested paging, so Debian's cloud kernel booted under TCG
(L1) loads kvm-amd and gets a /dev/kvm of the hardware kind; a QEMU inside L1 then boots
the same kernel with `-accel kvm` (L2), the firmware running as guest code, not emulated by
KVM. Every instruction is still TCG's (L0), so the times are emulation times: compare them
with each other, as ratios.

    python3 -m tools.nested_kvm [--firmwares pvhfw,qboot,seabios] [--json OUT]

L0: tools.qemu's command for a Linux guest under TCG on pc (`-cpu max`), 2 GiB, pvhfw +
Debian's cloud vmlinux, and an uncompressed initramfs made here: busybox and the kernel's
KVM modules (tools/initramfs.py), the system QEMU binary with the libraries `ldd` lists and
its data directories, and for L2 the same vmlinux, the boot-test initramfs and pvhfw's image.
L1's /init loads the modules and boots L2 once per firmware (pvhfw; qboot.rom; SeaBIOS +
pvh.bin, QEMU's default) with tools.qemu's KVM command for a Linux guest (-m 512), each to
the boot-test init's exit, tracing vm_state_notify, the vCPU's port writes and reads and
kvm_run_exit with time stamps; an awk program in L1 keeps of the trace only what
bench.execlog.parse_trace needs (the VM starting, the first port access, pvhfw's boot events
at 0xf5, the last fw_cfg access, the exit write) and, on each kept line, the KVM exits so
far. The summary per firmware: L2's status, userspace reached, QEMU start -> fw_start,
fw_start -> fw_do_boot (the firmware; `~`: observed from outside, as in bench.boot),
fw_do_boot -> the init's exit, the KVM exits before fw_do_boot.

The L2 QEMU is the system's qemu-system-x86_64 (DEFAULT_QEMU) whatever L0's is
($PVHFW_QEMU), since a QEMU tree unpacked beside it (tools/alt_qemu.py) runs through a
wrapper script. Exit status 0 when every L2 boot reached userspace; errors one line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.execlog import parse_trace
from pvhfw.builder.cli import main as build_fw
from tools.debian_kernel import DebianKernel, ToolError, ensure_debian_kernel
from tools.initramfs import (
    DEFAULT_MARKER,
    QEMU_EXIT_STATUS,
    Entry,
    ensure_initramfs,
    initramfs_entries,
    kernel_modules,
    newc_archive,
    read_module,
)
from tools.qemu import DEFAULT_QEMU, QBOOT_ROM, data_dirs, data_file, qemu_command, qemu_path

KVM_MODULES = ("kvm_amd",)  # TCG's -cpu max offers SVM: kvm-amd and what it needs
L0_MEMORY = 2048  # MiB: L1's initramfs is ~110 MiB, unpacked into RAM, and L2 takes 512
L2_MEMORY = 512
L2_QEMU = "/usr/bin/qemu-system-x86_64"  # where L1 has it
L2_DIR = "l2"  # in L1: the vmlinux, the initramfs, pvhfw's image
TRACE = "/tmp/l2.trace"
L2_EVENTS = ("vm_state_notify", "memory_region_ops_read", "memory_region_ops_write", "kvm_run_exit")
FIRMWARES = ("pvhfw", "qboot", "seabios")
TIMEOUT = 600.0
PREFIX = "PVHFW-NESTED"

# In L1, over the L2 trace: the lines parse_trace needs, each with the KVM exits before it.
SUMMARY_AWK = r"""
BEGIN { exits = 0; lastexits = 0 }
/:kvm_run_exit / { exits++; next }
/:vm_state_notify running 1/ { print "T", exits, $0; next }
/:memory_region_ops_(read|write) cpu 0 / {
    match($0, / addr 0x[0-9a-f]+ /)
    addr = substr($0, RSTART + 6, RLENGTH - 7)
    if (length(addr) > 6) next                   # above 0xffff: not a port
    if (!first) { first = 1; print "T", exits, $0; next }
    if (addr == "0xf5" || addr == "0xf4") { print "T", exits, $0; next }
    if ($0 ~ /name 'fwcfg/) { last = $0; lastexits = exits }
}
END { if (last != "") print "T", lastexits, last; print "X", exits }
"""


@dataclass
class L2Boot:
    firmware: str
    status: int | None = None  # the L2 QEMU's exit status
    userspace: bool = False  # the boot-test init's marker seen
    seconds: float | None = None  # the L2 QEMU process, by L1's /proc/uptime
    phases_ms: dict[str, float] = field(default_factory=dict)  # from the VM's start
    proxies: list[str] = field(default_factory=list)  # phases observed from outside
    firmware_exits: int | None = None  # kvm_run_exit before fw_do_boot
    total_exits: int | None = None
    console: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Userspace reached, and L2's QEMU ended by the init: through isa-debug-exit, or by
        its `reboot -f` under -no-reboot (status 0) when the exit helper's port write fails
        (it does in the SeaBIOS boot under this nested KVM: docs/performance.md)."""
        return self.userspace and self.status in (QEMU_EXIT_STATUS, 0)


def _elf_deps(binary: Path) -> list[Path]:
    """The shared libraries (and the loader) `ldd` lists for ``binary``."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ToolError(f"{binary}: ldd failed: {out.stderr.strip() or out.stdout.strip()}")
    deps = []
    for line in out.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            deps.append(Path(m.group(1)))
    return deps


class _Tree:
    """Entries of L1's archive, parent directories made as files are added."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.paths = {e[0] for e in entries}

    def _dirs(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.paths:
                self.paths.add(d)
                self.entries.append((d, stat.S_IFDIR | 0o755, b""))

    def add(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.lstrip("/")
        if path in self.paths:
            return
        self._dirs(path)
        self.paths.add(path)
        self.entries.append((path, stat.S_IFREG | mode, data))

    def add_file(self, path: str, src: Path, mode: int = 0o644) -> None:
        try:
            data = src.resolve().read_bytes()
        except OSError as e:
            raise ToolError(f"{src}: {e.strerror or e}") from e
        self.add(path, data, mode)


def l2_command(firmware: str, bios: str | None) -> list[str]:
    """One L2 boot, as L1 runs it: tools.qemu's KVM command for a Linux guest."""
    return qemu_command(
        qemu=L2_QEMU,
        machine="pc",
        accel="kvm",
        linux=True,
        memory=L2_MEMORY,
        bios=bios,
        kernel=f"/{L2_DIR}/vmlinux",
        initrd=f"/{L2_DIR}/initrd",
        append="console=ttyS0",
        trace=L2_EVENTS,
        timestamp=True,
        log=TRACE,
        extra=("-nic", "none"),  # its ROM (ipxe) is not in L1, nor needed
    )


def l1_init(boots: Sequence[tuple[str, list[str]]]) -> str:
    """L1's /init: load KVM, run each L2 boot, report it, end L0's QEMU."""
    runs = []
    for name, cmd in boots:
        runs.append(
            f'echo "{PREFIX}-BEGIN {name} $(cut -d" " -f1 /proc/uptime)"\n'
            f"rm -f {TRACE}\n"
            f"{' '.join(cmd)}\n"
            f'echo "{PREFIX}-END {name} $? $(cut -d" " -f1 /proc/uptime)"\n'
            f'awk -f /summary.awk {TRACE} | sed "s/^/{PREFIX}-{name} /"\n'
        )
    return (
        "#!/bin/sh\n"
        "# pvhfw's nested-KVM run (tools/nested_kvm.py): L2 boots under this kernel's KVM.\n"
        "export PATH=/bin:/usr/bin\n"
        "mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev\n"
        "exec </dev/console >/dev/console 2>&1\n"
        "for m in $(cat /lib/modules/pvhfw.order); do\n"
        f'    insmod /lib/modules/$m.ko || echo "{PREFIX}-ERROR insmod $m failed"\n'
        "done\n"
        f'[ -c /dev/kvm ] || echo "{PREFIX}-ERROR no /dev/kvm"\n'
        + "".join(runs)
        + "pvhfw-exit\nreboot -f\n"
    )


def l1_archive(kernel: DebianKernel, images: dict[str, Path | None], work: Path) -> Path:
    """L1's initramfs (uncompressed newc): see the module's docstring. ``images``: each
    firmware's image on this machine, put in L1 as /l2/<name>.bin (None: QEMU's default)."""
    modules = kernel_modules(kernel.modules_dir, KVM_MODULES)
    read = [(name, read_module(path)) for name, path in modules]
    entries = [e for e in initramfs_entries(modules=read) if e[0] != "init"]
    entries.append(("bin/awk", stat.S_IFLNK | 0o777, "busybox"))
    entries.append(("bin/cut", stat.S_IFLNK | 0o777, "busybox"))
    entries.append(("bin/rm", stat.S_IFLNK | 0o777, "busybox"))
    tree = _Tree(entries)
    binary = qemu_path(DEFAULT_QEMU)
    if binary is None:
        raise ToolError(f"{DEFAULT_QEMU}: not found (apt-get install qemu-system-x86)")
    host_binary = Path(binary)
    tree.add_file(L2_QEMU, host_binary, 0o755)
    for lib in _elf_deps(host_binary):
        tree.add_file(str(lib), lib, 0o755)
    for d in data_dirs(binary):
        for root, _, files in os.walk(d):
            for name in sorted(files):
                src = Path(root) / name
                if src.exists():  # a dangling link: nothing to copy
                    tree.add_file(str(src), src)
    tree.add_file(f"{L2_DIR}/vmlinux", kernel.vmlinux)
    tree.add_file(f"{L2_DIR}/initrd", ensure_initramfs())
    boots = []
    for name, image in images.items():
        bios = None
        if image is not None:
            bios = f"/{L2_DIR}/{name}.bin"
            tree.add_file(bios, image)
        boots.append((name, l2_command(name, bios)))
    tree.add("summary.awk", SUMMARY_AWK.encode())
    tree.add("init", l1_init(boots).encode(), 0o755)
    out = work / "l1.cpio"
    out.write_bytes(newc_archive(tree.entries))
    return out


def parse_output(text: str, firmwares: Sequence[str]) -> list[L2Boot]:
    """The L2 boots' summaries from L0's console."""
    boots = {name: L2Boot(name) for name in firmwares}
    current: L2Boot | None = None
    begin: dict[str, float] = {}
    traces: dict[str, list[tuple[float, int, str]]] = {name: [] for name in firmwares}
    for line in text.splitlines():
        line = line.rstrip("\r")
        words = line.split()
        if line.startswith(f"{PREFIX}-BEGIN ") and len(words) == 3 and words[1] in boots:
            current = boots[words[1]]
            begin[words[1]] = float(words[2])
            continue
        if line.startswith(f"{PREFIX}-END ") and len(words) == 4 and words[1] in boots:
            boot = boots[words[1]]
            boot.status = int(words[2])
            boot.seconds = round(float(words[3]) - begin.get(words[1], float(words[3])), 2)
            current = None
            continue
        name = words[0][len(PREFIX) + 1 :] if words and words[0].startswith(PREFIX) else ""
        if name in boots and len(words) >= 3 and words[1] == "X":
            boots[name].total_exits = int(words[2])
            continue
        if name in boots and len(words) >= 4 and words[1] == "T":
            m = re.match(r"\d+@(\d+\.\d+):", words[3])
            if m:
                traces[name].append((float(m.group(1)), int(words[2]), " ".join(words[3:])))
            continue
        if current is not None:
            current.console.append(line)
            if DEFAULT_MARKER in line:
                current.userspace = True
    for name, lines in traces.items():
        lines.sort()
        summary = parse_trace("\n".join(t for _, _, t in lines))
        stamps = summary.stamps
        fwcfg = [stamp for stamp, _, t in lines if "name 'fwcfg" in t]
        if "fw_do_boot" not in stamps and fwcfg:  # no exit write seen: the last access anyway
            stamps["fw_do_boot"] = fwcfg[-1]
            summary.proxies.add("fw_do_boot")
        start = stamps.get("qemu_init_end")
        boot = boots[name]
        if start is not None:
            boot.phases_ms = {
                k: round((v - start) * 1000, 2)
                for k, v in stamps.items()
                if k in ("fw_start", "fw_do_boot", "entry")
            }
        boot.proxies = sorted(summary.proxies)
        do_boot = stamps.get("fw_do_boot")
        if do_boot is not None:
            boot.firmware_exits = max(
                (exits for stamp, exits, _ in lines if stamp <= do_boot), default=None
            )
    return list(boots.values())


def report(boots: Sequence[L2Boot], l0_seconds: float) -> list[str]:
    def ms(boot: L2Boot, a: str | None, b: str) -> str:
        p = boot.phases_ms
        if b not in p or (a is not None and a not in p):
            return "-"
        mark = "~" if b in boot.proxies or (a is not None and a in boot.proxies) else ""
        return f"{mark}{p[b] - (p[a] if a else 0):.1f}"

    lines = [
        "| firmware | L2 status | userspace | VM start -> fw_start | firmware (fw_start -> "
        "fw_do_boot) | fw_do_boot -> init's exit | KVM exits before fw_do_boot | KVM exits "
        "in all | L2 QEMU, s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in boots:
        lines.append(
            f"| {b.firmware} | {b.status} | {'yes' if b.userspace else 'no'} | "
            f"{ms(b, None, 'fw_start')} | {ms(b, 'fw_start', 'fw_do_boot')} | "
            f"{ms(b, 'fw_do_boot', 'entry')} | {b.firmware_exits} | {b.total_exits} | "
            f"{b.seconds} |"
        )
    lines.append("")
    lines.append(
        f"Milliseconds of L1's clock from the L2 VM's start; L0 (TCG) ran {l0_seconds:.1f} s "
        "in all. `~`: observed from outside (first port access, last fw_cfg access)."
    )
    return lines


def run(
    firmwares: Sequence[str], work: Path, timeout: float = TIMEOUT, console: Path | None = None
) -> tuple[list[L2Boot], float]:
    """Build everything, boot L0 (its console written to ``console``), return the L2 boots
    and L0's seconds."""
    kernel = ensure_debian_kernel()
    pvhfw = work / "pvhfw.bin"
    if build_fw(["--kernel", str(kernel.vmlinux), "-o", str(pvhfw), "--quiet"]) != 0:
        raise ToolError(f"build-fw failed for {kernel.vmlinux}")
    choices = {"pvhfw": pvhfw, "qboot": Path(data_file(QBOOT_ROM, DEFAULT_QEMU)), "seabios": None}
    images = {}
    for name in firmwares:
        if name not in choices:
            raise ToolError(f"firmware {name!r}: choose from {', '.join(choices)}")
        images[name] = choices[name]
    archive = l1_archive(kernel, images, work)
    cmd = qemu_command(
        machine="pc", accel="tcg", linux=True, memory=L0_MEMORY, bios=pvhfw,
        kernel=kernel.vmlinux, initrd=archive, append="console=ttyS0",
    )  # fmt: skip
    start = time.monotonic()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"L0 QEMU did not end within {timeout:.0f} s: {' '.join(cmd)}") from e
    seconds = time.monotonic() - start
    if console is not None:
        console.write_text(out.stdout + out.stderr)
    boots = parse_output(out.stdout, list(images))
    for line in out.stdout.splitlines():
        if line.startswith(f"{PREFIX}-ERROR"):
            raise ToolError(f"L1: {line[len(PREFIX) + 7 :].strip()}")
    return boots, seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m tools.nested_kvm",
        description="Boot Debian's kernel through pvhfw (and qboot, SeaBIOS) under a KVM of "
        "the hardware kind, nested in a TCG guest; report each firmware's time and exits.",
    )
    p.add_argument("--firmwares", default=",".join(FIRMWARES), help="comma-separated")
    p.add_argument("--json", type=Path, help="write the boots here")
    p.add_argument("--console", type=Path, help="write L0's whole console output here")
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    args = p.parse_args(argv)
    firmwares = [f for f in args.firmwares.split(",") if f]
    try:
        with tempfile.TemporaryDirectory(prefix="pvhfw-nested-") as tmp:
            boots, seconds = run(firmwares, Path(tmp), args.timeout, args.console)
    except ToolError as e:
        print(f"nested_kvm: {e}", file=sys.stderr)
        return 1
    print("\n".join(report(boots, seconds)))
    if args.json is not None:
        data = {"l0_seconds": round(seconds, 1), "boots": [asdict(b) for b in boots]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    bad = [b.firmware for b in boots if not b.ok]
    if bad:
        print(
            f"nested_kvm: no userspace under the nested KVM with {', '.join(bad)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
