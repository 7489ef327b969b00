"""libvirt as a client of pvhfw: the domain XML, and a libvirtd of the project's own to boot it.

:func:`domain_xml` writes the one domain definition the README shows and the tests boot: a
TCG domain (type 'qemu') whose ``<os>`` holds the pvhfw image as ``<loader type='rom'>``
(libvirt passes it as ``-bios``) and the kernel, initrd and command line (``-kernel``,
``-initrd``, ``-append``), with QEMU's ACPI tables (``<features><acpi/>``: without it libvirt
passes ``-no-acpi``, which QEMU 10 no longer takes, and a kernel without MP-table parsing sees
one CPU), ``-cpu max`` (``<cpu mode='maximum'/>``, tools.qemu's TCG model), no USB controller
and no balloon (on microvm libvirt refuses both: "No PCI buses available") and, where a Linux
guest needs a machine option libvirt has no element for (microvm's PIT under TCG,
tools.qemu's ``linux_machine``), that option through ``<qemu:commandline>``.

:class:`Libvirtd` runs Debian's libvirtd and virtlogd as root with a configuration and state of
their own, nothing of the system's read or changed: in a private mount namespace, a directory
of ours is bound over each of /etc/libvirt (our libvirtd.conf and qemu.conf only), /run,
/var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt. So no system libvirtd, network,
nwfilter or domain is seen, the system's qemu.conf stays as it is, and ours says ``user =
"root"`` (with Debian's, every call re-probes QEMU where /dev/kvm is root-only, and ``virsh
define`` can hang) and ``cgroup_controllers = [ ]`` (nothing created in the host's cgroup
tree). virsh reaches it through the socket path in :attr:`Libvirtd.uri`.

CLI: ``python3 -m tools.libvirt --firmware IMAGE --kernel KERNEL [--initrd INITRD]
[--cmdline TEXT] [--machine pc|q35|microvm] [--name NAME] [--memory MIB] [--vcpus N]
[--serial-log PATH] [--emulator QEMU]`` prints the domain XML (for ``virsh define``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.debian_apt import ToolError, last_line
from tools.guest import tcg_kernel_args
from tools.qemu import MACHINES, linux_machine

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace("qemu", QEMU_NS)

DEFAULT_NAME = "pvhfw"
DEFAULT_MEMORY_MIB = 512
DEFAULT_VCPUS = 2
DEFAULT_CMDLINE = "console=ttyS0"

# The programs a private daemon needs: libvirt-daemon-system, libvirt-clients, util-linux.
PROGRAMS = ("libvirtd", "virtlogd", "virsh", "unshare", "nsenter")
# What is bound over what, in the daemon's mount namespace: (our subdirectory, the system's).
BINDS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
)
QEMU_CONF = """\
# pvhfw's private libvirtd (tools/libvirt.py): QEMU as root, so that capabilities probed as
# root stay valid (Debian's libvirt-qemu user cannot open a root-only /dev/kvm, and every
# call would probe QEMU again); no cgroups, so nothing is made in the host's cgroup tree.
user = "root"
group = "root"
cgroup_controllers = [ ]
"""
LIBVIRTD_CONF = """\
# pvhfw's private libvirtd (tools/libvirt.py): its sockets are root's alone (mode 0700), and
# no polkit (no D-Bus in its namespace) stands between root's virsh and the daemon.
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_ro_perms = "0700"
"""
START_TIMEOUT = 60.0  # seconds for a daemon's socket to appear
VIRSH_TIMEOUT = 120.0  # the first call waits for QEMU's capabilities to be probed
STOP_TIMEOUT = 30.0
POLL = 0.2


# ---- the domain ----------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def domain_xml(
    *,
    firmware: str | os.PathLike[str],
    kernel: str | os.PathLike[str],
    initrd: str | os.PathLike[str] | None = None,
    cmdline: str = DEFAULT_CMDLINE,
    machine: str = "q35",
    name: str = DEFAULT_NAME,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    vcpus: int = DEFAULT_VCPUS,
    serial_log: str | os.PathLike[str] | None = None,
    emulator: str | os.PathLike[str] | None = None,
    oneshot: bool = False,
    panic: bool = False,
    reboot_timeout_ms: int | None = None,
) -> str:
    """The domain XML: a TCG domain booting ``kernel`` through the pvhfw image ``firmware``.

    ``machine``: pc, q35 or microvm (libvirt takes the newest versioned pc/q35 type).
    ``serial_log``: the first serial port (the console with ``console=ttyS0``) goes to that
    file; None: to a pty (``virsh console``). ``emulator``: the QEMU binary; None: libvirt's
    default for the architecture. ``oneshot``: the guest's reboot, poweroff or crash ends
    the domain (shut off) instead of restarting it. ``panic``: an ISA pvpanic device
    (`<panic model='isa'/>`), which the firmware tells of a failed boot;
    ``reboot_timeout_ms``: `<bios rebootTimeout=...>`, the wait before it resets the machine
    after a failed boot (QEMU's `-boot reboot-timeout`).
    """
    base, *options = linux_machine(machine, "tcg").split(",")
    if base not in MACHINES:
        raise ValueError(f"machine {machine!r}: choose from {', '.join(MACHINES)}")
    domain = ET.Element("domain", {"type": "qemu"})
    _sub(domain, "name", name)
    _sub(domain, "memory", str(memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(vcpus))
    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=base)
    _sub(os_el, "loader", os.fspath(firmware), type="rom")
    _sub(os_el, "kernel", os.fspath(kernel))
    if initrd is not None:
        _sub(os_el, "initrd", os.fspath(initrd))
    _sub(os_el, "cmdline", cmdline)
    if reboot_timeout_ms is not None:
        _sub(os_el, "bios", rebootTimeout=str(reboot_timeout_ms))
    _sub(_sub(domain, "features"), "acpi")
    _sub(domain, "cpu", mode="maximum")
    if oneshot:
        for event in ("on_poweroff", "on_reboot", "on_crash"):
            _sub(domain, event, "destroy")
    devices = _sub(domain, "devices")
    if emulator is not None:
        _sub(devices, "emulator", os.fspath(emulator))
    if serial_log is None:
        _sub(devices, "serial", type="pty")
    else:
        _sub(_sub(devices, "serial", type="file"), "source", path=os.fspath(serial_log))
    _sub(devices, "controller", type="usb", model="none")
    _sub(devices, "memballoon", model="none")
    if panic:
        _sub(devices, "panic", model="isa")
    if options:
        commandline = _sub(domain, f"{{{QEMU_NS}}}commandline")
        for value in ("-machine", ",".join(options)):
            _sub(commandline, f"{{{QEMU_NS}}}arg", value=value)
    ET.indent(domain, space="  ")
    return ET.tostring(domain, encoding="unicode") + "\n"


# ---- a libvirtd of our own -----------------------------------------------------------------


def missing_prerequisite() -> str | None:
    """Why a private :class:`Libvirtd` cannot run here, or None."""
    if os.geteuid() != 0:
        return "libvirtd and its mount namespace need root"
    for program in PROGRAMS:
        if shutil.which(program) is None:
            return (
                f"{program} not found (apt-get install libvirt-daemon-system libvirt-clients "
                "util-linux)"
            )
    for _, target in BINDS:
        if not Path(target).is_dir():
            return f"{target} missing (apt-get install libvirt-daemon-system)"
    return None


@dataclass(frozen=True)
class DomainRun:
    """A oneshot domain from start to shut off, as :meth:`Libvirtd.run_oneshot` saw it."""

    name: str
    state: str  # `virsh domstate --reason` at the end: "shut off (shutdown)", ...
    seconds: float  # from `virsh start` to the shut-off state
    timed_out: bool  # destroyed by us after the timeout
    qemu_log: str  # libvirt's log of the domain: QEMU's command line and stderr

    def describe(self) -> str:
        how = "destroyed at the timeout" if self.timed_out else self.state
        return (
            f"domain {self.name}: {how} after {self.seconds:.1f}s\n"
            f"--- libvirt's QEMU log (tail) ---\n{self.qemu_log[-3000:]}"
        )


class Libvirtd:
    """libvirtd and virtlogd with their own configuration and state under ``work`` (module
    docstring), started by :meth:`start`, ended by :meth:`stop` (every domain destroyed
    first: libvirtd leaves QEMU running when it exits). A context manager."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.virtlogd: subprocess.Popen[bytes] | None = None
        self.libvirtd: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.work / "run" / "libvirt" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    def qemu_log(self, name: str) -> Path:
        """libvirt's log of domain ``name`` (/var/log/libvirt/qemu/NAME.log in its namespace)."""
        return self.work / "log" / "qemu" / f"{name}.log"

    def __enter__(self) -> Libvirtd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.work / log, "wb") as out:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def _wait_socket(self, proc: subprocess.Popen[bytes], what: str, path: Path) -> None:
        """Until ``what`` (its log is WORK/WHAT.log) has made its socket ``path``."""
        deadline = time.monotonic() + START_TIMEOUT
        while not path.exists():
            if proc.poll() is not None:
                log = (self.work / f"{what}.log").read_text(errors="replace")
                raise ToolError(f"{what} exited with status {proc.returncode}: {last_line(log)}")
            if time.monotonic() > deadline:
                raise ToolError(f"{what}: no socket {path} after {START_TIMEOUT:.0f}s")
            time.sleep(POLL / 4)

    def start(self) -> None:
        """Write the configuration, start virtlogd in a new mount namespace with our
        directories bound in, then libvirtd in the same namespace; wait until virsh gets an
        answer. Raises ToolError (the daemons stopped again)."""
        why = missing_prerequisite()
        if why is not None:
            raise ToolError(f"libvirt: {why}")
        for sub, _ in BINDS:
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        (self.work / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.work / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        binds = "".join(
            f"mount --bind {shlex.quote(str(self.work / sub))} {target}\n" for sub, target in BINDS
        )
        script = f"set -e\n{binds}mkdir -p /run/libvirt\nexec virtlogd\n"
        try:
            self.virtlogd = self._spawn(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                "virtlogd.log",
            )
            self._wait_socket(
                self.virtlogd, "virtlogd", self.work / "run" / "libvirt" / "virtlogd-sock"
            )
            namespace = f"--mount=/proc/{self.virtlogd.pid}/ns/mnt"
            self.libvirtd = self._spawn(["nsenter", namespace, "libvirtd"], "libvirtd.log")
            self._wait_socket(self.libvirtd, "libvirtd", self.socket)
            self.virsh("version")
        except BaseException:
            self.stop()
            raise

    def virsh(self, *args: str, timeout: float = VIRSH_TIMEOUT) -> str:
        """``virsh -c URI ARGS``: its standard output; ToolError with virsh's error line."""
        argv = ["virsh", "-q", "-c", self.uri, *args]
        try:
            out = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout, check=False, env=dict(os.environ, LC_ALL="C"),
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise ToolError(f"virsh {shlex.join(args)}: no answer after {timeout:.0f}s") from e
        if out.returncode != 0:
            raise ToolError(f"virsh {shlex.join(args)}: {last_line(out.stderr) or out.returncode}")
        return out.stdout

    def run_oneshot(self, name: str, xml: str, timeout: float) -> DomainRun:
        """Define the domain (``xml``, a :func:`domain_xml` with ``oneshot``), start it, wait
        until it is shut off (or destroy it after ``timeout`` seconds), undefine it."""
        path = self.work / f"{name}.xml"
        path.write_text(xml)
        self.virsh("define", str(path))
        try:
            self.virsh("start", name)
            start = time.monotonic()
            timed_out = False
            while not (state := self.virsh("domstate", "--reason", name).strip()).startswith(
                ("shut off", "crashed")
            ):
                if time.monotonic() - start > timeout:
                    self.virsh("destroy", name)
                    timed_out = True
                    state = self.virsh("domstate", "--reason", name).strip()
                    break
                time.sleep(POLL)
            seconds = time.monotonic() - start
        finally:
            with contextlib.suppress(ToolError):
                self.virsh("destroy", name)  # fails when it is shut off already
            self.virsh("undefine", name)
        log = self.qemu_log(name)
        text = log.read_text(errors="replace") if log.exists() else f"(no {log})"
        return DomainRun(name, state, seconds, timed_out, text)

    def _qemu_pids(self) -> list[int]:
        pids = []
        for pidfile in (self.work / "run" / "libvirt" / "qemu").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pidfile.read_text().strip()))
        return pids

    def stop(self) -> None:
        """Destroy every running domain, end libvirtd, then virtlogd, then any QEMU left of
        a domain (a libvirtd that died leaves its pid file): only processes we started."""
        if self.libvirtd is not None and self.libvirtd.poll() is None:
            with contextlib.suppress(ToolError):
                for name in self.virsh("list", "--name", timeout=STOP_TIMEOUT).split():
                    with contextlib.suppress(ToolError):
                        self.virsh("destroy", name, timeout=STOP_TIMEOUT)
        leftover = self._qemu_pids()
        for proc in (self.libvirtd, self.virtlogd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.libvirtd = self.virtlogd = None
        for pid in leftover:
            with contextlib.suppress(OSError):
                if b"qemu" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


# ---- the CLI -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m tools.libvirt",
        description="Print the libvirt domain XML that boots KERNEL through the pvhfw image "
        "IMAGE (build-fw's -o) under TCG, for `virsh define`.",
    )
    p.add_argument("--firmware", required=True, metavar="IMAGE", help="the pvhfw image")
    p.add_argument("--kernel", required=True, help="the kernel the image was built for")
    p.add_argument("--initrd", help="the initrd")
    p.add_argument(
        "--cmdline",
        help=f"the kernel's command line (default: {DEFAULT_CMDLINE}, and on microvm what Linux "
        "needs there under TCG, tools/guest.py)",
    )
    p.add_argument("--machine", choices=MACHINES, default="q35")
    p.add_argument("--name", default=DEFAULT_NAME, help="the domain's name")
    p.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MIB, metavar="MIB")
    p.add_argument("--vcpus", type=int, default=DEFAULT_VCPUS, metavar="N")
    p.add_argument("--serial-log", metavar="PATH", help="the console to this file, not a pty")
    p.add_argument("--emulator", metavar="QEMU", help="the QEMU binary (default: libvirt's)")
    args = p.parse_args(argv)
    if args.cmdline is None:
        args.cmdline = " ".join([DEFAULT_CMDLINE, *tcg_kernel_args(args.machine, "tcg")])
    sys.stdout.write(
        domain_xml(
            firmware=args.firmware, kernel=args.kernel, initrd=args.initrd,
            cmdline=args.cmdline, machine=args.machine, name=args.name,
            memory_mib=args.memory, vcpus=args.vcpus, serial_log=args.serial_log,
            emulator=args.emulator,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
