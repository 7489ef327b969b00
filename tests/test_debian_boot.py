"""The Debian layer: Debian's cloud kernel (ELF vmlinux, PVH entry) booted by our firmware.

- Under TCG (`-cpu max`) on pc, q35 and microvm the kernel reaches the initramfs's /init,
  which echoes the command line and ends QEMU through isa-debug-exit (status 15): the vmlinux
  and the bzImage of each kernel series (tools.debian_kernel.SERIES: Debian 12's 6.1,
  Debian 13's 6.12). The other tests boot the 6.1 kernel only.
- Under this machine's KVM (PVM: kernel-mode code runs in KVM's instruction emulator, and no
  stock Linux gets to userspace, see machines.md in the shared reference) only early boot is
  checked: banner, command line, memory map and initrd reservation; QEMU is stopped as soon
  as those lines are out.

The memory map Linux prints must be what the firmware builds from fw_cfg's "etc/e820"
(tests.model), and fw_cfg's e820 depends on the machine, -m, the accelerator and the CPU
vendor (QEMU adds a reserved AMD HyperTransport hole below 1 TiB for AMD CPU models), so it
is read by booting the pvhcheck test kernel with our firmware under the very same -M, -m,
-accel and -cpu.

Without the Debian kernel (apt), busybox-static, QEMU, the test-kernel toolchain or /dev/kvm
the tests skip with the reason; under CI (CI=true) that is a failure.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pvhfw.firmware import layout
from tests import model
from tests.kernels.build import (
    KernelBuildError,
    KernelToolchainMissing,
    Report,
    build_kernel,
    parse_report,
)
from tests.kernels.qemu import QemuRun, run_command_until, run_kernel
from tests.support import build_firmware, need, need_kvm, need_qemu
from tools.debian_kernel import (
    DEFAULT_SERIES,
    SERIES,
    ToolError,
    ensure_debian_kernel,
    series_package,
)
from tools.guest import tcg_kernel_args
from tools.initramfs import DEFAULT_MARKER, QEMU_EXIT_STATUS, ensure_initramfs
from tools.qemu import KVM_CPU, TCG_CPU, qemu_command

pytestmark = [pytest.mark.debian, pytest.mark.qemu, pytest.mark.slow]

MEMORY = "512"
PVHCHECK_LOAD_ADDR = 0x1000000
PVHCHECK_EXIT_CODES = (33, 35)  # all checks ok / some failed: both mean it ran to the end
BOOT_TIMEOUT = 60.0
PAGE = 4096

E820_TYPES = {"usable": 1, "reserved": 2, "ACPI data": 3, "ACPI NVS": 4, "unusable": 5}
E820_MAP_HEADER = "BIOS-provided physical RAM map:"
E820_LINE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] ([^\r\n]*)")
BANNER = re.compile(r"Linux version \d+\.\d+\S* ")
# "Command line:" with a capital C: setup_arch's echo, not start_kernel's "Kernel command line:".
KERNEL_CMDLINE = re.compile(r"\bCommand line: ([^\r\n]*)\r?\n")
INIT_CMDLINE = re.compile(r"PVHFW-CMDLINE: ([^\r\n]*)\r?\n")
RAMDISK = re.compile(r"RAMDISK: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]\r?\n")
FATAL = re.compile(r"Kernel panic|KVM internal error|^pvhfw: ", re.MULTILINE)


# ---- QEMU with an incremental serial reader ----------------------------------------------


@dataclass
class Boot:
    run: QemuRun
    stopped: bool  # we ended QEMU because `until` was satisfied (or a fatal line appeared)

    def describe(self) -> str:
        how = "stopped by the test once its lines were seen\n" if self.stopped else ""
        return how + self.run.describe()


def run_until(
    cmd: list[str], until: Callable[[str], bool] | None, timeout: float = BOOT_TIMEOUT
) -> Boot:
    """Run QEMU until ``until(serial + stderr)`` holds or a fatal line appears (kernel panic,
    KVM internal error, a pvhfw error); otherwise until it exits or *timeout*."""

    def stop(out: str, err: str) -> bool:
        text = out + err
        return bool(FATAL.search(text)) or (until is not None and until(text))

    run = run_command_until(cmd, stop, timeout=timeout)
    return Boot(run, run.stopped)


def qemu_cmd(
    *,
    machine: str,
    accel: str,
    cpu: str,
    firmware: Path,
    kernel: Path,
    initrd: Path,
    append: str,
    memory: str = MEMORY,
    smp: int | None = None,
) -> list[str]:
    """A Debian boot's command line (tools.qemu's builder), the CPU model given: the same one
    the pvhcheck run of fwcfg_view gets for that configuration."""
    return qemu_command(
        machine=machine, accel=accel, cpu=cpu, memory=memory, smp=smp, bios=firmware,
        kernel=kernel, initrd=initrd, append=append, linux=True,
    )  # fmt: skip


# ---- what Linux printed --------------------------------------------------------------------


def kernel_e820(serial: str) -> list[model.Range]:
    """The map under the first "BIOS-provided physical RAM map:" as (addr, size, type).

    Lines are searched, not anchored (other output may precede them on a line); a replayed
    log (a second header) is not read twice.
    """
    head = serial.find(E820_MAP_HEADER)
    assert head >= 0, f"no {E820_MAP_HEADER!r} line"
    block = serial[head + len(E820_MAP_HEADER) :]
    nxt = block.find(E820_MAP_HEADER)
    if nxt >= 0:
        block = block[:nxt]
    out: list[model.Range] = []
    for m in E820_LINE.finditer(block):
        start, last, kind = int(m[1], 16), int(m[2], 16), m[3].strip()
        typ = E820_TYPES.get(kind)
        if typ is None:
            t = re.fullmatch(r"(?:persistent \()?type (\d+)\)?", kind)
            assert t, f"unknown e820 type in {m[0]!r}"
            typ = int(t[1])
        out.append((start, last + 1 - start, typ))
    return out


def fmt_map(ranges: list[model.Range]) -> str:
    return "\n".join(f"  {a:#014x}-{a + s - 1:#014x} type {t}" for a, s, t in ranges) or "  (none)"


def ramdisk_range(serial: str) -> tuple[int, int] | None:
    m = RAMDISK.search(serial)
    return (int(m[1], 16), int(m[2], 16)) if m else None


def expected_ramdisk(addr: int, size: int) -> tuple[int, int]:
    """Linux's reserve_initrd: "RAMDISK: [mem start-(PAGE_ALIGN(start + size) - 1)]"."""
    return addr, -(-(addr + size) // PAGE) * PAGE - 1


# ---- fixtures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Debian:
    vmlinux: Path
    initramfs: Path
    firmware: Path
    version: str
    bzimage: Path  # the vmlinuz the vmlinux was extracted from
    firmware_bz: Path  # our firmware built for the bzImage (the Linux boot protocol path)


@pytest.fixture(scope="module")
def initramfs() -> Path:
    """The reporting initramfs, the same for every kernel (it holds no modules)."""
    need_qemu()
    try:
        return ensure_initramfs()
    except ToolError as e:
        need(False, f"initramfs: {e}")
        raise


DebianGetter = Callable[[str], Debian]


@pytest.fixture(scope="module")
def debian_series(tmp_path_factory: pytest.TempPathFactory, initramfs: Path) -> DebianGetter:
    """debian_series(series): that series' Debian vmlinux and vmlinuz, the reporting
    initramfs and our firmware built for each; each series fetched and built once."""
    cache: dict[str, Debian] = {}

    def get(series: str) -> Debian:
        if series in cache:
            return cache[series]
        try:
            kernel = ensure_debian_kernel(package=series_package(series))
        except ToolError as e:
            need(False, f"Debian kernel {series}: {e}")
            raise
        assert kernel.version.startswith(f"{series}."), kernel
        out = tmp_path_factory.mktemp(f"debian-fw-{series}")
        firmware, _ = build_firmware(kernel.vmlinux, out)
        firmware_bz, built = build_firmware(kernel.bzimage, out)
        assert built.boot_path == "linux32"
        cache[series] = Debian(
            kernel.vmlinux, initramfs, firmware, kernel.version, kernel.bzimage, firmware_bz
        )
        return cache[series]

    return get


@pytest.fixture(scope="module")
def debian(debian_series: DebianGetter) -> Debian:
    """The default series' kernel (6.1), which the tests that boot one series use."""
    return debian_series(DEFAULT_SERIES)


@dataclass(frozen=True)
class FwCfgView:
    """What pvhcheck, booted by our firmware, read from fw_cfg under one QEMU configuration."""

    report: Report
    run: QemuRun
    e820: list[model.Range]
    initrd_addr: int
    initrd_size: int


PvhcheckFactory = Callable[[str, str, str], FwCfgView]


@pytest.fixture(scope="module")
def fwcfg_view(kernels_dir: Path, initramfs: Path) -> PvhcheckFactory:
    """fwcfg_view(machine, accel, cpu): pvhcheck's report for that -M/-accel/-cpu, -m 512 and
    the same initramfs as -initrd (so fw_cfg's INITRD_ADDR is the one the Debian boot gets).
    Each configuration is booted once."""
    cache: dict[tuple[str, str, str], FwCfgView] = {}

    def get(machine: str, accel: str, cpu: str) -> FwCfgView:
        key = (machine, accel, cpu)
        if key in cache:
            return cache[key]
        # lar/lsl stop this machine's KVM ("KVM internal error"): read the GDT instead.
        options: dict[str, object] = {"lar": False} if accel == "kvm" else {}
        try:
            elf = build_kernel("pvhcheck", kernels_dir, PVHCHECK_LOAD_ADDR, **options)
        except KernelToolchainMissing as e:
            need(False, f"pvhcheck: {e}")
            raise
        except KernelBuildError as e:
            pytest.fail(f"pvhcheck does not build: {e}")
        firmware, _ = build_firmware(elf, kernels_dir / f"fw-{elf.stem}")
        run = run_kernel(
            elf, initrd=initramfs, append="pvhcheck", machine=machine, accel=accel,
            memory=MEMORY, bios=firmware, cpu=cpu, timeout=BOOT_TIMEOUT,
        )  # fmt: skip
        report = parse_report(run.stdout)
        assert run.returncode in PVHCHECK_EXIT_CODES and report.complete, (
            f"pvhcheck did not run to its end under our firmware:\n{run.describe()}"
        )
        e820 = report.fwcfg.get("e820")
        assert isinstance(e820, list) and e820, f"pvhcheck read no fw_cfg e820:\n{run.describe()}"
        ok, detail = report.checks.get("module0_is_fwcfg_initrd", (False, "check missing"))
        assert ok, f"module 0 is not fw_cfg's initrd: {detail}\n{run.describe()}"
        initrd_addr, initrd_size = report.fwcfg["initrd_addr"], report.fwcfg["initrd_size"]
        assert isinstance(initrd_addr, int) and isinstance(initrd_size, int)
        assert initrd_size == initramfs.stat().st_size, run.describe()
        view = FwCfgView(report, run, list(e820), initrd_addr, initrd_size)
        cache[key] = view
        return view

    return get


def check_early_boot(boot: Boot, cmdline: str, view: FwCfgView, pvh: bool = True) -> None:
    """Banner, the kernel's command-line echo, its e820 map and its initrd reservation (the
    map as the PVH path hands it to pvhcheck; `pvh` False: the kernel came in through the Linux
    boot protocol, with the same map in its zero page)."""
    serial = boot.run.stdout
    assert BANNER.search(serial), f"no 'Linux version' banner:\n{boot.describe()}"

    echo = KERNEL_CMDLINE.search(serial)
    assert echo, f"no 'Command line:' line:\n{boot.describe()}"
    assert echo[1] == cmdline, (
        f"kernel's 'Command line:' is {echo[1]!r}, expected {cmdline!r}\n{boot.describe()}"
    )

    # pvhcheck saw the map our firmware builds for this configuration: fw_cfg's e820 as the
    # model says, with the ACPI table-loader's zones carved out (the size of the ACPI zone is
    # the one thing the model cannot know: it is QEMU's tables, aligned)
    machine = view.run.cmd[view.run.cmd.index("-M") + 1].split(",")[0]
    acpi = view.report.start_info.get("rsdp") == layout.EBDA_BASE
    handed = model.machine_memmap(
        view.e820, machine, model.acpi_size(view.report.memmap) if acpi else None
    )
    assert view.report.memmap == handed, (view.report.memmap, handed)
    want = model.linux_view(handed, pvh)
    seen = kernel_e820(serial)
    assert seen == want, (
        "the kernel's BIOS-e820 map differs from the one fw_cfg's e820 implies\n"
        f"fw_cfg etc/e820 (pvhcheck):\n{fmt_map(view.e820)}\n"
        f"firmware memmap (pvhcheck):\n{fmt_map(view.report.memmap)}\n"
        f"expected (model.linux_view):\n{fmt_map(want)}\n"
        f"kernel printed:\n{fmt_map(seen)}\n{boot.describe()}"
    )

    ramdisk = ramdisk_range(serial)
    assert ramdisk, f"no 'RAMDISK:' line:\n{boot.describe()}"
    expected = expected_ramdisk(view.initrd_addr, view.initrd_size)
    assert ramdisk == expected, (
        f"RAMDISK [mem {ramdisk[0]:#x}-{ramdisk[1]:#x}], expected fw_cfg's initrd "
        f"[mem {expected[0]:#x}-{expected[1]:#x}]\n{boot.describe()}"
    )


def record(request: pytest.FixtureRequest, boot: Boot, view: FwCfgView) -> None:
    """Timings and maps as user properties (shown with `-rA`/junit) for the record."""
    request.node.user_properties += [
        ("boot_seconds", round(boot.run.seconds, 2)),
        ("pvhcheck_seconds", round(view.run.seconds, 2)),
        ("fwcfg_e820", fmt_map(view.e820)),
    ]
    if E820_MAP_HEADER in boot.run.stdout:
        request.node.user_properties.append(("kernel_e820", fmt_map(kernel_e820(boot.run.stdout))))


# ---- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["pre-patched", "any-kernel"])  # tests.support.IMAGE_KINDS
@pytest.mark.parametrize("kind", ["vmlinux", "bzImage"])
@pytest.mark.parametrize("machine", ["pc", "q35", "microvm,pit=on"])
@pytest.mark.parametrize("series", list(SERIES))
def test_debian_userspace_tcg(
    debian_series: DebianGetter,
    fwcfg_view: PvhcheckFactory,
    series: str,
    machine: str,
    kind: str,
    image: str,
    any_image: Path,
    request: pytest.FixtureRequest,
) -> None:
    """TCG: the Debian kernel of each series boots from our firmware to the initramfs's
    /init, which sees our command line and exits QEMU with 15; the kernel's command line,
    e820 map and initrd reservation match fw_cfg for the same machine. The vmlinux enters
    through PVH; the bzImage (Debian's vmlinuz; its payload LZ4 in 6.1, zstd in 6.12)
    through the Linux boot protocol's 32-bit entry, where its own decompressor runs first,
    and ends with the same map: the firmware builds one for both."""
    debian = debian_series(series)
    view = fwcfg_view(machine, "tcg", TCG_CPU)
    # No `quiet`: the kernel's early lines (BIOS-e820, RAMDISK) must reach the console.
    cmdline = " ".join(
        ["console=ttyS0", *tcg_kernel_args(machine, "tcg"), f"pvhfw.test={secrets.token_hex(8)}"]
    )
    bz = kind == "bzImage"
    firmware = debian.firmware_bz if bz else debian.firmware  # the image built for the kernel
    if image == "any-kernel":
        firmware = any_image  # or the one image for both, which checks them at run time
    cmd = qemu_cmd(
        machine=machine, accel="tcg", cpu=TCG_CPU, firmware=firmware,
        kernel=debian.bzimage if bz else debian.vmlinux, initrd=debian.initramfs, append=cmdline,
    )  # fmt: skip
    boot = run_until(cmd, until=None)
    record(request, boot, view)
    serial = boot.run.stdout

    assert not boot.run.timed_out, f"no exit within {BOOT_TIMEOUT:.0f}s:\n{boot.describe()}"
    assert DEFAULT_MARKER in serial, f"/init never printed {DEFAULT_MARKER}:\n{boot.describe()}"
    echo = INIT_CMDLINE.search(serial)
    assert echo, f"/init printed no PVHFW-CMDLINE line:\n{boot.describe()}"
    assert echo[1] == cmdline, (
        f"/proc/cmdline is {echo[1]!r}, expected {cmdline!r}\n{boot.describe()}"
    )
    assert boot.run.returncode == QEMU_EXIT_STATUS, boot.describe()
    assert "did not enter ACPI mode" not in serial, boot.describe()  # a 3 s wait in Linux
    check_early_boot(boot, cmdline, view, pvh=not bz)


@pytest.mark.kvm
@pytest.mark.parametrize("machine", ["pc"])
def test_debian_early_boot_kvm(
    debian: Debian, fwcfg_view: PvhcheckFactory, machine: str, request: pytest.FixtureRequest
) -> None:
    """KVM (PVM, emulated): early boot only. Banner, command line, e820 map and the RAMDISK
    reservation at fw_cfg's INITRD_ADDR; QEMU is stopped as soon as the RAMDISK line is out.
    (q35 is left out: each early boot costs ~20 s of emulated kernel code here.)"""
    need_kvm()
    view = fwcfg_view(machine, "kvm", KVM_CPU)
    cmdline = f"console=ttyS0 earlyprintk=ttyS0 noxsave pvhfw.test={secrets.token_hex(8)}"
    cmd = qemu_cmd(
        machine=machine, accel="kvm", cpu=KVM_CPU, firmware=debian.firmware,
        kernel=debian.vmlinux, initrd=debian.initramfs, append=cmdline,
    )  # fmt: skip

    def seen_all(text: str) -> bool:
        # RAMDISK comes after the banner, the command line and the e820 map.
        return bool(BANNER.search(text) and KERNEL_CMDLINE.search(text) and RAMDISK.search(text))

    boot = run_until(cmd, until=seen_all)
    record(request, boot, view)
    assert not boot.run.timed_out, (
        f"the early-boot lines (banner, Command line, BIOS-e820, RAMDISK) did not all appear "
        f"within {BOOT_TIMEOUT:.0f}s under KVM:\n{boot.describe()}"
    )
    assert "KVM internal error" not in boot.run.stderr, boot.describe()
    check_early_boot(boot, cmdline, view)


ACPI_TABLE = re.compile(r"ACPI: (RSDP|XSDT|RSDT|FACP|DSDT|APIC) 0x([0-9A-F]{16})")
INIT_CPUS = re.compile(r"PVHFW-CPUS: (\d+)")


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["pc", "q35", "microvm,pit=on"])
def test_debian_smp_acpi_high_memory_tcg(debian: Debian, machine: str) -> None:
    """TCG, `-smp 4 -m 5G`: with QEMU's ACPI tables (table-loader) the kernel finds the RSDP
    in the EBDA, parses the RSDT/XSDT, FADT, DSDT and MADT, brings up all 4 CPUs (the
    firmware leaves the APs waiting for INIT/SIPI), and sees the RAM above 4 GiB that fw_cfg's
    e820 reports; /init counts 4 CPUs and exits QEMU with 15."""
    cmdline = " ".join(["console=ttyS0", *tcg_kernel_args(machine, "tcg")])
    cmd = qemu_cmd(
        machine=machine, accel="tcg", cpu=TCG_CPU, firmware=debian.firmware,
        kernel=debian.vmlinux, initrd=debian.initramfs, append=cmdline, memory="5G", smp=4,
    )  # fmt: skip
    boot = run_until(cmd, until=None, timeout=BOOT_TIMEOUT * 2)
    serial = boot.run.stdout
    assert not boot.run.timed_out, boot.describe()
    assert boot.run.returncode == QEMU_EXIT_STATUS, boot.describe()
    tables = {m[1]: int(m[2], 16) for m in ACPI_TABLE.finditer(serial)}
    assert tables.get("RSDP") == layout.EBDA_BASE, boot.describe()
    assert {"FACP", "DSDT", "APIC"} <= set(tables), boot.describe()
    assert "RSDT" in tables or "XSDT" in tables, boot.describe()
    cpus = INIT_CPUS.search(serial)
    assert cpus and cpus[1] == "4", boot.describe()
    # the chipset's PM block is where the FADT says (asm/chipset.s): ACPI mode, a PM timer
    assert "did not enter ACPI mode" not in serial, boot.describe()
    if not machine.startswith("microvm"):  # hardware-reduced ACPI: no PM block
        pm = layout.PM_IO_BASE + 8  # PM_TMR in the PIIX4 and ICH9 PM blocks
        assert f"ACPI: PM-Timer IO Port: {pm:#x}" in serial, boot.describe()
    e820 = kernel_e820(serial)
    high = [(a, s) for a, s, t in e820 if t == 1 and a >= 1 << 32]
    assert high, f"no RAM above 4 GiB in the kernel's map: {e820}"
    below = sum(s for a, s, t in e820 if t == 1 and a < 1 << 32)
    assert below + sum(s for _, s in high) > 4 << 30  # 5 GiB minus holes and reservations
    acpi = [(a, s) for a, s, t in e820 if t == 3]
    assert any(a <= tables["DSDT"] < a + s for a, s in acpi), (tables, e820)
