"""The guest view: Debian's kernel sees the same machine through pvhfw as through QEMU's own
firmware (SeaBIOS + pvh.bin on pc and q35, qboot on microvm), under TCG.

Each configuration (Debian 12's 6.1 cloud kernel on pc, q35 and microvm; Debian 13's 6.12
on q35) is booted twice with one QEMU command (tools/guest_view.py's
view_command: -m 512 -smp 2, SMBIOS type 1 and type 11 strings, a virtio-blk disk, a
virtio-net NIC on restricted user networking), once without -bios and once with the image
build-fw makes for the vmlinux; the initramfs's /init prints the guest view
(``pvhfw.view``). The default firmware's view is checked on its own first (it parses, DMI
values and the OEM string are there, the MMCONFIG line on q35, the PAT line, 2 CPUs, the disk
and the NIC): it is the reference. pvhfw's must equal it on every key but those
tools.guest_view.ALLOWED_DIFFERENCES lists with its reason; on microvm (no SMBIOS) only the
device keys are compared.

Without ACPI (``-machine acpi=off``) CPUs beyond the first are known to Linux only from an MP
table, which the cloud kernel does not parse (CONFIG_X86_MPPARSE=n): Debian's generic flavour
does. Booted with ``-smp 2`` it brings up 2 CPUs from qboot's MP table on microvm; SeaBIOS
lists only the first logical CPU of each package in its MP table, so on pc the reference
boot asks QEMU for two sockets (``-smp 2,sockets=2``); QEMU 7.2's plain ``-smp 2`` is one
socket with two cores, and SeaBIOS's table then has one CPU. pvhfw gets plain ``-smp 2`` on
both machines: every CPU QEMU has must reach Linux.

Without QEMU, busybox-static or a Debian kernel the tests skip with the reason; under CI
(CI=true) that is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernels.qemu import QemuRun, run_command_until
from tests.support import build_firmware, need, need_qemu
from tools import guest_view as gv
from tools.debian_kernel import (
    GENERIC_PACKAGE,
    DebianKernel,
    ToolError,
    ensure_debian_kernel,
    series_package,
)
from tools.guest import tcg_kernel_args
from tools.initramfs import (
    QEMU_EXIT_STATUS,
    ensure_initramfs,
    ensure_view_initramfs,
    view_modules,
)
from tools.qemu import qemu_command

pytestmark = [pytest.mark.debian, pytest.mark.qemu, pytest.mark.slow]

BOOT_TIMEOUT = 90.0
DEFAULT_FIRMWARE = {
    "pc": "SeaBIOS + pvh.bin",
    "q35": "SeaBIOS + pvh.bin",
    "microvm": "qboot (bios-microvm.bin)",
}
PRODUCT = {"pc": "Standard PC (i440FX + PIIX, 1996)", "q35": "Standard PC (Q35 + ICH9, 2009)"}
VIRTIO_BLK_PCI = "1af4:1001"  # transitional virtio-blk on the root bus
VIRTIO_NET_PCI = {"pc": "1af4:1000", "q35": "1af4:1041"}  # q35: modern-only behind a PCIe port
PCIE_ROOT_PORT = "1b36:000c"
# q35's MMCONFIG window, as each series logs it: the view key and the line.
Q35_MMCONFIG = {
    "6.1": (
        "mmconfig",
        "PCI: MMCONFIG for domain 0000 [bus 00-ff] at [mem 0xb0000000-0xbfffffff] (base "
        "0xb0000000)",
    ),
    "6.12": (
        "ecam",
        "PCI: ECAM [mem 0xb0000000-0xbfffffff] (base 0xb0000000) for domain 0000 [bus 00-ff]",
    ),
}


def need_kernel(package: str | None = None) -> DebianKernel:
    try:
        return ensure_debian_kernel(package=package)
    except ToolError as e:
        need(False, f"Debian kernel: {e}")
        raise


@dataclass(frozen=True)
class ViewSetup:
    kernel: DebianKernel
    initramfs: Path
    firmware: Path
    disk: Path
    modules: tuple[str, ...]  # what the view loads, in order


SetupGetter = Callable[[str], ViewSetup]


@pytest.fixture(scope="module")
def setups(tmp_path_factory: pytest.TempPathFactory) -> SetupGetter:
    """setups(series): that series' cloud kernel, its view initramfs, pvhfw for its vmlinux
    and a disk; each series once."""
    cache: dict[str, ViewSetup] = {}

    def get(series: str) -> ViewSetup:
        if series in cache:
            return cache[series]
        need_qemu()
        kernel = need_kernel(series_package(series))
        try:
            initramfs = ensure_view_initramfs(kernel)
            modules = tuple(name for name, _ in view_modules(kernel))
        except ToolError as e:
            need(False, f"guest-view initramfs: {e}")
            raise
        out = tmp_path_factory.mktemp(f"guest-view-{series}")
        firmware, _ = build_firmware(kernel.vmlinux, out)
        disk = gv.write_disk(out / "disk.raw")
        cache[series] = ViewSetup(kernel, initramfs, firmware, disk, modules)
        return cache[series]

    return get


@dataclass(frozen=True)
class ViewBoot:
    firmware: str
    run: QemuRun
    view: gv.GuestView | None
    error: str | None  # why there is no view

    def describe(self) -> str:
        return f"firmware: {self.firmware}\n{self.run.describe()}"

    def require(self) -> gv.GuestView:
        assert self.view is not None, f"no guest view ({self.error}):\n{self.describe()}"
        return self.view


ViewBooter = Callable[[str, str, bool], ViewBoot]


@pytest.fixture(scope="module")
def view_boot(setups: SetupGetter) -> ViewBooter:
    """view_boot(series, machine, pvhfw): the view boot of that series' kernel on that machine
    with QEMU's default firmware (pvhfw False) or ours; each booted once."""
    cache: dict[tuple[str, str, bool], ViewBoot] = {}

    def get(series: str, machine: str, pvhfw: bool) -> ViewBoot:
        key = (series, machine, pvhfw)
        if key not in cache:
            setup = setups(series)
            cmd = gv.view_command(
                machine, kernel=setup.kernel.vmlinux, initrd=setup.initramfs, disk=setup.disk,
                bios=setup.firmware if pvhfw else None,
            )  # fmt: skip
            run = run_command_until(cmd, None, timeout=BOOT_TIMEOUT)
            name = "pvhfw" if pvhfw else DEFAULT_FIRMWARE[machine]
            try:
                cache[key] = ViewBoot(name, run, gv.parse_view(run.stdout), None)
            except gv.ViewError as e:
                cache[key] = ViewBoot(name, run, None, str(e))
        return cache[key]

    return get


def record(request: pytest.FixtureRequest, *boots: ViewBoot) -> None:
    for boot in boots:
        request.node.user_properties.append(
            (f"{boot.firmware} seconds", round(boot.run.seconds, 2))
        )


def lines(view: gv.GuestView, what: str) -> list[str]:
    """The dmesg.<what>.<n> values, in order."""
    n = 1
    out = []
    while f"dmesg.{what}.{n}" in view:
        out.append(view[f"dmesg.{what}.{n}"])
        n += 1
    return out


def pci_by_id(view: gv.GuestView) -> dict[str, list[str]]:
    """vendor:device -> the addresses of the functions that have it."""
    out: dict[str, list[str]] = {}
    for key, value in view.items():
        if key.startswith("pci.") and key.endswith(".id"):
            out.setdefault(value, []).append(key.removeprefix("pci.").removesuffix(".id"))
    return out


# ---- QEMU's own firmware: the reference ----------------------------------------------------


# (series, machine): 6.1 everywhere (what issue 10 compares); 6.12 on q35 alone, the machine
# with the most to see (MMCONFIG, PCI Express), to keep CI's time.
VIEWS = [("6.1", "pc"), ("6.1", "q35"), ("6.1", "microvm"), ("6.12", "q35")]


@pytest.mark.parametrize(("series", "machine"), VIEWS)
def test_default_firmware_view(
    setups: SetupGetter,
    view_boot: ViewBooter,
    series: str,
    machine: str,
    request: pytest.FixtureRequest,
) -> None:
    """The reference view: QEMU's own firmware boots the cloud kernel with the view's
    devices; the view is complete and holds what the command line put there."""
    setup = setups(series)
    boot = view_boot(series, machine, False)
    record(request, boot)
    assert boot.run.returncode == QEMU_EXIT_STATUS, boot.describe()
    view = boot.require()
    ctx = f"\nview:\n{view}\n{boot.describe()}"

    assert {k.removeprefix("module."): v for k, v in gv.select(view, ["module.*"]).items()} == {
        name: "loaded" for name in setup.modules
    }, ctx
    assert view["cpus.online"] == "0-1", ctx
    assert lines(view, "brought_up") == ["smp: Brought up 1 node, 2 CPUs"], ctx
    assert lines(view, "smpboot_total") == ["smpboot: Total of 2 processors activated"], ctx
    assert view.get("block.vda.sectors") == str(gv.DISK_BYTES // 512), ctx
    assert view.get("net.eth0.address") == gv.NIC_MAC, ctx
    assert int(view["dmesg.acpi.count"]) > 0, ctx
    assert lines(view, "mptable") == [], ctx  # ACPI on: the CPUs come from the MADT

    if machine == "microvm":
        # no SMBIOS, no PCI: the disk and the NIC are virtio-mmio devices from the DSDT
        assert not gv.select(view, ["dmi.*", "smbios11.*", "pci.*"]), ctx
        assert lines(view, "pat"), ctx
        return

    assert view["dmi.sys_vendor"] == gv.TEST_VENDOR, ctx
    assert view["dmi.product_serial"] == gv.TEST_SERIAL, ctx
    assert view["dmi.product_name"] == PRODUCT[machine], ctx
    assert view["dmi.bios_vendor"] == "SeaBIOS", ctx
    assert gv.UNREADABLE not in view.values(), ctx
    oem = gv.select(view, ["smbios11.*"])
    assert [gv.smbios_strings(raw) for raw in oem.values()] == [[gv.OEM_STRING]], ctx
    assert [ln for ln in lines(view, "smbios") if re.fullmatch(r"SMBIOS [\d.]+ present\.", ln)]
    bios = f"{view['dmi.bios_version']} {view['dmi.bios_date']}"
    # 6.12 adds "DMI: Memory slots populated: 1/1" (SMBIOS type 17) after it
    assert lines(view, "dmi")[0] == f"DMI: {gv.TEST_VENDOR} {PRODUCT[machine]}, BIOS {bios}", ctx
    assert any(ln.startswith("x86/PAT: Configuration [0-7]: WB  WC ") for ln in lines(view, "pat"))

    ids = pci_by_id(view)
    assert len(ids.get(VIRTIO_BLK_PCI, [])) == 1, ctx
    (nic,) = ids.get(VIRTIO_NET_PCI[machine], [""])
    assert nic, ctx
    if machine == "pc":
        assert set(gv.select(view, ["pci.*.config"]).values()) == {"256"}, ctx
        return
    # q35: MMCONFIG from the MCFG, and extended config space where there is PCI Express
    key, line = Q35_MMCONFIG[series]
    assert line in lines(view, key), ctx
    (port,) = ids.get(PCIE_ROOT_PORT, [""])
    assert port and view[f"pci.{port}.config"] == "4096", ctx
    assert view[f"pci.{port}.ext_cap"] not in ("00000000", "ffffffff"), ctx  # AER, decoded
    assert view[f"pci.{nic}.config"] == "4096", ctx


# ---- pvhfw against it ----------------------------------------------------------------------


@pytest.mark.parametrize(("series", "machine"), VIEWS)
def test_pvhfw_view_matches_default_firmware(
    view_boot: ViewBooter, series: str, machine: str, request: pytest.FixtureRequest
) -> None:
    """pvhfw's view equals QEMU's own firmware's on every key but the allowed ones
    (tools.guest_view.ALLOWED_DIFFERENCES); on microvm the device keys."""
    ref, ours = view_boot(series, machine, False), view_boot(series, machine, True)
    record(request, ref, ours)
    if ref.view is None:
        pytest.fail(f"the reference boot has no view ({ref.error}):\n{ref.describe()}")
    assert ours.run.returncode == QEMU_EXIT_STATUS, ours.describe()
    view = ours.require()
    a, b = ref.view, view
    if machine == "microvm":
        a, b = gv.select(a, gv.DEVICE_KEYS), gv.select(b, gv.DEVICE_KEYS)
    diffs = gv.compare_views(a, b)
    request.node.user_properties.append(("differences", gv.format_differences(diffs)))
    real = gv.real_differences(diffs)
    assert not real, (
        f"{machine}: pvhfw's guest view differs from {ref.firmware}'s on "
        f"{len(real)} key(s) (reference -> pvhfw):\n{gv.format_differences(real)}\n"
        f"allowed differences:\n{gv.format_differences([d for d in diffs if d.allowed])}"
    )


# ---- CPUs from an MP table: the generic flavour with acpi=off --------------------------------

MP_MACHINES = {"pc": "pc,acpi=off", "microvm": "microvm,acpi=off"}
# SeaBIOS's MP table has one entry per package: two CPUs need two sockets (see the docstring).
MP_DEFAULT_SMP = {"pc": "2,sockets=2", "microvm": "2"}
MP_SMP = "2"
MP_TABLE_FOUND = re.compile(r"found SMP MP-table at \[mem 0x[0-9a-f]+-0x[0-9a-f]+\]")
TOTAL = re.compile(r"smpboot: Total of (\d+) processors activated")
BROUGHT_UP = re.compile(r"smp: Brought up 1 node, (\d+) CPUs?\r?$", re.MULTILINE)
INIT_CPUS = re.compile(r"PVHFW-CPUS: (\d+)")


@dataclass(frozen=True)
class Generic:
    kernel: DebianKernel
    initramfs: Path
    firmware: Path


@pytest.fixture(scope="module")
def generic(tmp_path_factory: pytest.TempPathFactory) -> Generic:
    need_qemu()
    kernel = need_kernel(GENERIC_PACKAGE)
    try:
        initramfs = ensure_initramfs()
    except ToolError as e:
        need(False, f"initramfs: {e}")
        raise
    firmware, _ = build_firmware(kernel.vmlinux, tmp_path_factory.mktemp("generic-fw"))
    return Generic(kernel, initramfs, firmware)


def mp_boot(generic: Generic, machine: str, smp: str, bios: Path | None) -> QemuRun:
    cmd = qemu_command(
        machine=MP_MACHINES[machine], accel="tcg", linux=True, memory=gv.MEMORY, smp=smp,
        bios=bios, kernel=generic.kernel.vmlinux, initrd=generic.initramfs,
        append=" ".join(["console=ttyS0", *tcg_kernel_args(machine, "tcg")]),
    )  # fmt: skip
    return run_command_until(cmd, None, timeout=BOOT_TIMEOUT)


def check_two_cpus(run: QemuRun, firmware: str) -> None:
    serial = run.stdout
    assert run.returncode == QEMU_EXIT_STATUS, run.describe()
    assert "ACPI: RSDP" not in serial, f"acpi=off, yet ACPI tables:\n{run.describe()}"
    total, up, init = TOTAL.search(serial), BROUGHT_UP.search(serial), INIT_CPUS.search(serial)
    counts = [m[1] if m else None for m in (total, up, init)]
    mp = "an MP table" if MP_TABLE_FOUND.search(serial) else "no MP table"
    assert counts == ["2", "2", "2"], (
        f"{firmware}, acpi=off: Linux found {mp}; CPUs (smpboot total, brought up, /init): "
        f"{counts}, expected 2 each\n{run.describe()}"
    )
    assert MP_TABLE_FOUND.search(serial), run.describe()


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_mptable_default_firmware(
    generic: Generic, machine: str, request: pytest.FixtureRequest
) -> None:
    """QEMU's own firmware writes an MP table that gives the generic kernel both CPUs."""
    run = mp_boot(generic, machine, MP_DEFAULT_SMP[machine], None)
    request.node.user_properties.append(("seconds", round(run.seconds, 2)))
    check_two_cpus(run, DEFAULT_FIRMWARE[machine])


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_mptable_pvhfw(generic: Generic, machine: str, request: pytest.FixtureRequest) -> None:
    """pvhfw, -smp 2 and no ACPI: the generic kernel brings up both CPUs."""
    run = mp_boot(generic, machine, MP_SMP, generic.firmware)
    request.node.user_properties.append(("seconds", round(run.seconds, 2)))
    check_two_cpus(run, "pvhfw")
