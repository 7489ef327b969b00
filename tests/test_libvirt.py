"""libvirt as pvhfw's client: Debian 12's libvirt boots a pvhfw domain on pc, q35 and microvm.

- The domain XML is tools/libvirt.py's :func:`~tools.libvirt.domain_xml`; the README's example
  is what the README's own command (`python3 -m tools.libvirt ...`) prints, checked here.
- A TCG domain (type 'qemu') with Debian's cloud vmlinux and the boot-test initramfs, defined
  and started through virsh on a libvirtd of the test's own (tools/libvirt.py's
  :class:`~tools.libvirt.Libvirtd`: its own configuration and state in a private mount
  namespace, nothing of the system's read or changed), reaches userspace: its serial log (a
  `<serial type='file'>`) has the init's marker, its echo of /proc/cmdline and its CPU count
  (2: QEMU's ACPI tables reached the kernel); the init's `reboot -f` ends the domain
  (`<on_reboot>destroy</on_reboot>`), which libvirt reports as "shut off (shutdown)"; libvirt
  ran QEMU with `-bios` the image.
- The domain's `<emulator>` is tools.qemu's binary ($PVHFW_QEMU, else qemu-system-x86_64), so
  the QEMU 10 pass of tools/test.sh boots it there too.
- Each image kind of tests.support.IMAGE_KINDS is booted.

Without libvirt (libvirt-daemon-system, libvirt-clients), QEMU, root or the Debian kernel the
tests skip with the reason; under CI (CI=true) that is a failure.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import IMAGE_KINDS, KernelGetter, build_image, need, need_qemu
from tools import libvirt
from tools.debian_kernel import ToolError, ensure_debian_kernel
from tools.guest import tcg_kernel_args
from tools.initramfs import DEFAULT_MARKER, ensure_initramfs
from tools.qemu import MACHINES

REPO = Path(__file__).resolve().parent.parent
BOOT_TIMEOUT = 90.0  # seconds from `virsh start` to the domain's end
INIT_CMDLINE = re.compile(r"PVHFW-CMDLINE: ([^\r\n]*)\r?\n")
INIT_CPUS = re.compile(r"PVHFW-CPUS: (\d+)")


# ---- the XML -------------------------------------------------------------------------------


def readme_example() -> tuple[list[str], str]:
    """The README's libvirt section: the arguments of its `python3 -m tools.libvirt` command
    and the XML block after it."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## libvirt\n") :]
    section = section[: section.index("\n## ", 1)]
    command = re.search(r"^python3 -m tools\.libvirt ((?:.*\\\n)*.*)$", section, re.MULTILINE)
    assert command, "README's libvirt section has no `python3 -m tools.libvirt` command"
    args = shlex.split(command[1].replace("\\\n", " "))
    if ">" in args:
        args = args[: args.index(">")]
    block = re.search(r"^```xml\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, "README's libvirt section has no ```xml block"
    return args, block[1]


def test_the_readme_example_is_what_its_command_prints() -> None:
    args, xml = readme_example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert libvirt.main(args) == 0
    assert out.getvalue() == xml


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


@pytest.mark.parametrize("machine", MACHINES)
def test_the_domain_boots_the_image_as_its_rom(machine: str) -> None:
    xml = libvirt.domain_xml(
        firmware="/f/bios.bin", kernel="/k/vmlinux", initrd="/k/initrd", cmdline="console=ttyS0",
        machine=machine, serial_log="/l/serial.log", emulator="/q/qemu", oneshot=True,
    )  # fmt: skip
    dom = parse(xml)
    assert dom.get("type") == "qemu"  # TCG
    os_el = dom.find("os")
    assert os_el is not None
    assert [(c.tag, c.text, c.attrib) for c in os_el] == [
        ("type", "hvm", {"arch": "x86_64", "machine": machine}),
        ("loader", "/f/bios.bin", {"type": "rom"}),
        ("kernel", "/k/vmlinux", {}),
        ("initrd", "/k/initrd", {}),
        ("cmdline", "console=ttyS0", {}),
    ]
    assert dom.find("features/acpi") is not None
    assert dom.find("cpu[@mode='maximum']") is not None
    assert {e: dom.findtext(e) for e in ("on_poweroff", "on_reboot", "on_crash")} == dict.fromkeys(
        ("on_poweroff", "on_reboot", "on_crash"), "destroy"
    )
    assert dom.findtext("devices/emulator") == "/q/qemu"
    assert dom.find("devices/serial[@type='file']/source[@path='/l/serial.log']") is not None
    # microvm has no PCI bus: libvirt refuses a domain with its default USB controller or balloon
    assert dom.find("devices/controller[@type='usb'][@model='none']") is not None
    assert dom.find("devices/memballoon[@model='none']") is not None
    args = [a.get("value") for a in dom.iterfind(f"{{{libvirt.QEMU_NS}}}commandline/*")]
    # microvm under TCG needs its PIT for Linux (tools.qemu.linux_machine); no element for it
    assert args == (["-machine", "pit=on"] if machine == "microvm" else [])


def test_the_domain_defaults_to_a_pty_console_and_libvirts_qemu() -> None:
    dom = parse(libvirt.domain_xml(firmware="/f", kernel="/k"))
    assert dom.find("devices/serial[@type='pty']") is not None
    assert dom.find("devices/emulator") is None
    assert dom.find("os/initrd") is None
    assert dom.find("on_reboot") is None  # libvirt's default: the domain restarts
    with pytest.raises(ValueError, match="machine 'isapc'"):
        libvirt.domain_xml(firmware="/f", kernel="/k", machine="isapc")


# ---- booting it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    vmlinux: Path
    initramfs: Path


@pytest.fixture(scope="module")
def guest() -> Guest:
    need_qemu()
    try:
        return Guest(ensure_debian_kernel().vmlinux, ensure_initramfs())
    except ToolError as e:
        need(False, f"Debian kernel or initramfs: {e}")
        raise


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[libvirt.Libvirtd]:
    """A libvirtd (and virtlogd) of the test's own, ended with every domain it ran."""
    why = libvirt.missing_prerequisite()
    need(why is None, f"libvirt: {why}")
    daemon = libvirt.Libvirtd(tmp_path_factory.mktemp("libvirt"))
    try:
        daemon.start()
    except ToolError as e:
        pytest.fail(f"{e}\n(logs in {daemon.work})")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def images(guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("libvirt-images")
    return {kind: build_image(kind, guest.vmlinux, out) for kind in IMAGE_KINDS}


@pytest.mark.qemu
@pytest.mark.debian
@pytest.mark.slow
@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_a_libvirt_domain_boots_debian_to_userspace(
    libvirtd: libvirt.Libvirtd,
    guest: Guest,
    images: dict[str, Path],
    kind: str,
    machine: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    name = f"pvhfw-{kind}-{machine}"
    emulator = need_qemu()
    serial_log = tmp_path / "serial.log"
    cmdline = " ".join(
        ["console=ttyS0", *tcg_kernel_args(machine, "tcg"), f"pvhfw.test={secrets.token_hex(8)}"]
    )
    xml = libvirt.domain_xml(
        firmware=images[kind], kernel=guest.vmlinux, initrd=guest.initramfs, cmdline=cmdline,
        machine=machine, name=name, serial_log=serial_log, emulator=emulator, oneshot=True,
    )  # fmt: skip
    try:
        run = libvirtd.run_oneshot(name, xml, BOOT_TIMEOUT)
    except ToolError as e:
        log = libvirtd.qemu_log(name)
        pytest.fail(f"{e}\n{log.read_text(errors='replace')[-3000:] if log.exists() else ''}")
    serial = serial_log.read_text(errors="replace") if serial_log.exists() else "(no serial log)"
    what = f"{run.describe()}\n--- serial log (tail) ---\n{serial[-3000:]}"
    request.node.user_properties.append(("boot_seconds", round(run.seconds, 2)))

    assert not run.timed_out, f"no shut-off within {BOOT_TIMEOUT:.0f}s\n{what}"
    assert f"\n{emulator} \\\n" in run.qemu_log, what  # <emulator>: tools.qemu's binary
    assert f"\n-bios {images[kind]} \\\n" in run.qemu_log, what  # <loader type='rom'>
    assert DEFAULT_MARKER in serial, f"/init never printed {DEFAULT_MARKER}\n{what}"
    echo = INIT_CMDLINE.search(serial)
    assert echo and echo[1] == cmdline, f"/proc/cmdline is not {cmdline!r}\n{what}"
    cpus = INIT_CPUS.search(serial)
    assert cpus and cpus[1] == "2", f"the kernel did not bring up both vCPUs\n{what}"
    assert run.state == "shut off (shutdown)", what  # the init's reboot, not a crash


@pytest.mark.qemu
@pytest.mark.debian
@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "state"),
    [("panic", "shut off (crashed)"), ("reboot-timeout", "shut off (shutdown)")],
)
def test_a_domain_whose_boot_fails_ends(
    libvirtd: libvirt.Libvirtd,
    images: dict[str, Path],
    kernel: KernelGetter,
    how: str,
    state: str,
    tmp_path: Path,
) -> None:
    """A domain started with the wrong kernel (a test kernel, not the vmlinux the image was
    built for) ends instead of running forever: with `<panic model='isa'/>` and
    `<on_crash>destroy</on_crash>` it crashes; with `<bios rebootTimeout='0'/>` and
    `<on_reboot>destroy</on_reboot>` (libvirt passes -no-reboot) it resets and QEMU shuts
    down. The line comes first."""
    name = f"pvhfw-fails-{how}"
    serial_log = tmp_path / "serial.log"
    xml = libvirt.domain_xml(
        firmware=images["pre-patched"], kernel=kernel("exitfirst", 0x200000), machine="pc",
        name=name, serial_log=serial_log, emulator=need_qemu(), oneshot=True,
        panic=how == "panic", reboot_timeout_ms=0 if how == "reboot-timeout" else None,
    )  # fmt: skip
    run = libvirtd.run_oneshot(name, xml, 60)
    serial = serial_log.read_text(errors="replace") if serial_log.exists() else ""
    what = f"{run.describe()}\n--- serial log ---\n{serial[-2000:]}"
    assert not run.timed_out and run.state == state, what
    assert [ln for ln in serial.splitlines() if ln.startswith("pvhfw: ")] == [
        next(ln for ln in serial.splitlines() if ln.startswith("pvhfw: kernel entry "))
    ], what
