"""The firmware under stock QEMU 7.2: `-bios <image built for the kernel> -kernel <pvhcheck>`.

pvhcheck (tests/kernels) reports what it found at its PVH entry over COM1 and reads fw_cfg
itself, so every assertion compares the firmware's work against QEMU's own facts.

Notes on the runs:

* ACPI: most boots run with `-M <machine>,acpi=off` so that the memory map is exactly the
  model's; test_acpi_tables_from_the_table_loader boots with QEMU's ACPI on each machine.
* KVM here is PVM-backed (see machines.md in the shared reference): tools.qemu's KVM CPU
  model (added by run_kernel) and pvhcheck built with lar=False. Its times are emulator times.
* microvm under TCG boots pvhcheck without `pit=on`: pvhcheck needs no timer.
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pvhfw.builder.kernel import read_kernel
from pvhfw.firmware import layout
from pvhfw.firmware.assemble import Firmware
from tests import spec
from tests.elfgen import simple_kernel
from tests.kernels.build import (
    EXIT_SUCCESS,
    Report,
    elf_pvh_entry,
    parse_report,
)
from tests.kernels.qemu import QemuRun, run_kernel, run_until_output
from tests.model import machine_memmap
from tests.support import IMAGE_KINDS, KernelGetter, need_kvm
from tools.qemu import MACHINES

pytestmark = pytest.mark.qemu

LINUX_LOAD = 0x1000000  # where Linux's vmlinux loads (CONFIG_PHYSICAL_START)
LOW_LOAD = 0x200000
# Spaces, quotes, commas (QEMU does not split -append), shell and kernel punctuation.
APPEND = "console=ttyS0 root=/dev/ram0 rdinit=/init a.b=c,d;e!f \"quoted words\" x='y z' #~$%^&*()"
TCG_TIMEOUT = 30.0
KVM_TIMEOUT = 90.0  # PVM: the emulator runs firmware and pvhcheck, ~2-5 s a boot
ERROR_TIMEOUT = 20.0
ERROR_LINE = re.compile(r"pvhfw: [^\r\n]*\r?\n")
LINGER = 0.3  # seconds to keep reading after the error line: there must be nothing more

EFLAGS_TF = 1 << 8
EFLAGS_IF = 1 << 9
EFLAGS_VM = 1 << 17


# ---- fixtures ------------------------------------------------------------------------------


def pvhcheck(kernel: KernelGetter, accel: str, load_addr: int = LINUX_LOAD) -> Path:
    # `lar` is fatal under this machine's PVM-backed KVM.
    return kernel("pvhcheck", load_addr, **({"lar": False} if accel == "kvm" else {}))


# ---- assertions ----------------------------------------------------------------------------


def booted(run: QemuRun) -> Report:
    """The report of a run that must have passed every pvhcheck check and exited 33."""
    report = parse_report(run.stdout)
    assert report.complete, f"pvhcheck did not finish\n{run.describe()}"
    failed = "\n".join(f"  {name}: {detail}" for name, detail in report.failed_checks.items())
    assert report.done_failures == 0, f"failed checks:\n{failed}\n{run.describe()}"
    assert report.failed_checks == {}, run.describe()
    assert run.returncode == EXIT_SUCCESS, run.describe()
    return report


def machine_of(run: QemuRun) -> str:
    """The machine type of a run's -M argument (options after the comma dropped)."""
    return run.cmd[run.cmd.index("-M") + 1].split(",")[0]


def assert_handoff(report: Report, run: QemuRun) -> None:
    """CPU state, start_info placement and the memory map, for every successful boot."""
    info = report.start_info
    assert info["addr"] == layout.START_INFO
    assert report.regs["ebx"] == layout.START_INFO
    assert info["magic"] == spec.XEN_HVM_START_MAGIC_VALUE
    assert info["version"] == 1
    assert info["flags"] == 0
    assert info["memmap"] == layout.MEMMAP
    assert report.cr["cr0"] == 0x11, f"CR0 {report.cr['cr0']:#x}"
    assert report.cr["cr4"] == 0
    eflags = report.regs["eflags"]
    assert eflags & (EFLAGS_IF | EFLAGS_TF | EFLAGS_VM) == 0, f"EFLAGS {eflags:#x}"
    assert report.segs["cs"]["sel"] == layout.SEL_CODE32
    for seg in ("ds", "es", "ss"):
        assert report.segs[seg]["sel"] == layout.SEL_DATA32, seg

    e820 = fwcfg_e820(report)
    assert len(e820) == report.fwcfg["e820_count"], run.describe()
    assert report.memmap == machine_memmap(e820, machine_of(run)), (
        f"fw_cfg e820 {_hex(e820)}\nmemmap {_hex(report.memmap)}"
    )
    assert info["memmap_entries"] == len(report.memmap)


def assert_cmdline_and_initrd(report: Report, append: str, initrd: Path) -> None:
    info = report.start_info
    assert info["cmdline"] == layout.CMDLINE
    assert report.cmdline == append.encode()
    assert report.fwcfg["cmdline_size"] == len(append.encode()) + 1

    data = initrd.read_bytes()
    assert info["nr_modules"] == 1
    assert info["modlist"] == layout.MODLIST
    (module,) = report.modules
    assert module["crc32"] == zlib.crc32(data), "initrd bytes differ from the -initrd file"
    assert module["paddr"] == report.fwcfg["initrd_addr"]
    assert module["size"] == report.fwcfg["initrd_size"] == len(data)
    assert module["cmdline"] == 0


def fwcfg_e820(report: Report) -> list[tuple[int, int, int]]:
    """fw_cfg's etc/e820 as pvhcheck read it."""
    e820 = report.fwcfg["e820"]
    assert isinstance(e820, list)
    return e820


def _hex(ranges: list[tuple[int, int, int]]) -> str:
    return ", ".join(f"({a:#x}, {s:#x}, {t})" for a, s, t in ranges)


def run_boot(
    kernel: Path,
    image: Path,
    *,
    machine: str,
    accel: str = "tcg",
    initrd: Path | None = None,
    append: str | None = None,
    memory: str = "256",
    extra: tuple[str, ...] = (),
) -> QemuRun:
    return run_kernel(
        kernel,
        bios=image,
        initrd=initrd,
        append=append,
        machine=f"{machine},acpi=off",
        accel=accel,
        memory=memory,
        extra=extra,
        timeout=KVM_TIMEOUT if accel == "kvm" else TCG_TIMEOUT,
    )


# ---- boots that must succeed ---------------------------------------------------------------


ACCELS = [
    pytest.param("tcg", id="tcg"),
    pytest.param("kvm", id="kvm", marks=[pytest.mark.kvm, pytest.mark.slow]),
]


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", MACHINES)
def test_boot(
    qemu: str,
    kernel: KernelGetter,
    image: Callable[[Path], Path],
    any_image: Path,
    initrd: Path,
    machine: str,
    accel: str,
    kind: str,
) -> None:
    """pvhcheck at Linux's load address, with an initrd and a punctuated command line; by the
    image built for it and by the any-kernel image."""
    if accel == "kvm":
        need_kvm()
    elf = pvhcheck(kernel, accel)
    bios = image(elf) if kind == "pre-patched" else any_image
    run = run_boot(elf, bios, machine=machine, accel=accel, initrd=initrd, append=APPEND)
    report = booted(run)
    assert_handoff(report, run)
    assert_cmdline_and_initrd(report, APPEND, initrd)
    assert report.fwcfg["kernel_entry"] == elf_pvh_entry(elf)


def test_boot_low_load_address(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], initrd: Path
) -> None:
    """pvhcheck linked at 2 MiB (the other usual place) boots the same way."""
    elf = pvhcheck(kernel, "tcg", LOW_LOAD)
    run = run_boot(elf, image(elf), machine="pc", initrd=initrd, append=APPEND)
    report = booted(run)
    assert_handoff(report, run)
    assert_cmdline_and_initrd(report, APPEND, initrd)
    assert report.extra["kernel"]["entry"] == LOW_LOAD


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_boot_without_initrd_and_append(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], machine: str
) -> None:
    """No -initrd, no -append: no module, and the command line is the empty string QEMU
    gives (CMDLINE_SIZE 1, a lone NUL), passed at CMDLINE rather than as cmdline_paddr 0."""
    elf = pvhcheck(kernel, "tcg")
    run = run_boot(elf, image(elf), machine=machine)
    report = booted(run)
    assert_handoff(report, run)
    assert report.fwcfg["initrd_size"] == 0
    assert report.start_info["nr_modules"] == 0
    assert report.start_info["modlist"] == 0
    assert report.modules == []
    assert report.fwcfg["cmdline_size"] == 1
    assert report.start_info["cmdline"] == layout.CMDLINE
    assert report.cmdline == b""


@pytest.mark.parametrize(
    ("machine", "memory", "high_ram"),
    [("pc", "5G", 0x8000_0000), ("q35", "3G", 0x4000_0000)],
    ids=["pc-5G", "q35-3G"],
)
def test_boot_ram_above_4g(
    qemu: str,
    kernel: KernelGetter,
    image: Callable[[Path], Path],
    initrd: Path,
    machine: str,
    memory: str,
    high_ram: int,
) -> None:
    """RAM beyond the PCI hole: fw_cfg's entry at 4 GiB is in the memory map as it is."""
    elf = pvhcheck(kernel, "tcg")
    run = run_boot(elf, image(elf), machine=machine, memory=memory, initrd=initrd, append=APPEND)
    report = booted(run)
    assert_handoff(report, run)
    assert_cmdline_and_initrd(report, APPEND, initrd)
    above = (0x1_0000_0000, high_ram, spec.E820_RAM)
    assert above in fwcfg_e820(report), _hex(fwcfg_e820(report))
    assert above in report.memmap, _hex(report.memmap)
    module = report.modules[0]
    assert int(module["paddr"]) + int(module["size"]) <= 0x1_0000_0000


@pytest.mark.parametrize("machine", ["pc", "microvm"])
def test_boot_fwcfg_io_ports(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], tmp_path: Path, machine: str
) -> None:
    """fw_cfg without DMA (`-global fw_cfg_io.dma_enabled=off`; microvm's fw_cfg is also
    fw_cfg_io): the firmware reads everything byte by byte through port 0x511."""
    small = tmp_path / "small-initrd.bin"
    small.write_bytes(random.Random(7).randbytes(16 * 1024 + 5))
    elf = pvhcheck(kernel, "tcg")
    run = run_boot(
        elf,
        image(elf),
        machine=machine,
        initrd=small,
        append=APPEND,
        extra=("-global", "fw_cfg_io.dma_enabled=off"),
    )
    report = booted(run)
    fw_id = report.fwcfg["id"]
    assert isinstance(fw_id, int) and fw_id & spec.FW_CFG_VERSION_DMA == 0, f"FW_CFG_ID {fw_id}"
    assert_handoff(report, run)
    assert_cmdline_and_initrd(report, APPEND, small)


@pytest.mark.parametrize("machine", ["pc", "q35", "microvm"])
def test_acpi_tables_from_the_table_loader(
    qemu: str,
    kernel: KernelGetter,
    image: Callable[[Path], Path],
    initrd: Path,
    machine: str,
) -> None:
    """QEMU's default ACPI (fw_cfg's etc/table-loader): every check passes, `rsdp` included
    (pvhcheck verifies the RSDP's signature and both checksums at rsdp_paddr); the RSDP is in
    the EBDA, which the map reserves; the tables sit at the top of the highest RAM below
    4 GiB, marked ACPI, above the initrd."""
    elf = pvhcheck(kernel, "tcg")
    run = run_kernel(
        elf,
        bios=image(elf),
        initrd=initrd,
        append=APPEND,
        machine=machine,
        memory="256",
        smp=2,
        timeout=TCG_TIMEOUT,
    )
    report = parse_report(run.stdout)
    assert report.complete, run.describe()
    assert report.fwcfg["acpi_rsdp_file"] == 1
    assert report.failed_checks == {}, run.describe()
    assert run.returncode == EXIT_SUCCESS, run.describe()
    assert report.start_info["rsdp"] == layout.EBDA_BASE
    e820 = report.fwcfg["e820"]
    assert isinstance(e820, list)
    acpi = [(a, s) for a, s, t in report.memmap if t == 3]
    assert len(acpi) == 1, report.memmap
    top = max(a + s for a, s, t in e820 if t == 1 and a + s <= 1 << 32)
    assert acpi[0][0] + acpi[0][1] == top
    assert 0 < acpi[0][1] <= 0x40000  # QEMU keeps 160-256 KiB free there for them
    ebda = (layout.EBDA_BASE, layout.LOWMEM_END - layout.EBDA_BASE, 2)
    assert ebda in report.memmap
    module = report.modules[0]
    initrd_end = int(module["paddr"]) + int(module["size"])
    assert initrd_end <= acpi[0][0]


# ---- runtime errors: one `pvhfw: ...` line on COM1, then a halt --------------------------


def run_error(kernel: Path | None, image: Path, machine: str = "pc") -> QemuRun:
    return run_until_output(
        kernel,
        ERROR_LINE,
        bios=image,
        machine=machine,
        memory="256",
        timeout=ERROR_TIMEOUT,
        linger=LINGER,
    )


def assert_error(run: QemuRun, expected: str) -> None:
    """Exactly the one expected line, and QEMU still running (halted) until we killed it."""
    assert run.stopped, f"no pvhfw line within {ERROR_TIMEOUT}s\n{run.describe()}"
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines == [expected], run.describe()
    assert run.stdout.endswith("\r\n")


@pytest.mark.parametrize("machine", MACHINES)
def test_error_no_kernel(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], machine: str
) -> None:
    run = run_error(None, image(pvhcheck(kernel, "tcg")), machine)
    assert_error(
        run,
        "pvhfw: no kernel: start QEMU with -kernel (the vmlinux this image was built for)",
    )


def test_error_wrong_entry(qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]) -> None:
    """Image for pvhcheck at 2 MiB, QEMU given pvhcheck at 16 MiB."""
    built_for = pvhcheck(kernel, "tcg", LOW_LOAD)
    booted_elf = pvhcheck(kernel, "tcg", LINUX_LOAD)
    run = run_error(booted_elf, image(built_for))
    assert_error(
        run,
        f"pvhfw: kernel entry {elf_pvh_entry(booted_elf):#010x} from QEMU is not "
        f"{elf_pvh_entry(built_for):#010x} of the kernel this image was built for",
    )


def test_error_wrong_load_range(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]
) -> None:
    """Image for pvhcheck at 16 MiB, QEMU given exitfirst at 16 MiB: both enter at their first
    byte, 0x1000000, so only the load range (KERNEL_ADDR/KERNEL_SIZE) tells them apart."""
    built_for = pvhcheck(kernel, "tcg", LINUX_LOAD)
    other = kernel("exitfirst", LINUX_LOAD)
    a = read_kernel(built_for.read_bytes(), str(built_for))
    b = read_kernel(other.read_bytes(), str(other))
    assert a.entry == b.entry and (a.load_addr, a.load_size) != (b.load_addr, b.load_size)
    run = run_error(other, image(built_for))
    assert_error(
        run,
        f"pvhfw: kernel loaded at {b.load_addr:#010x}+{b.load_size:#010x} by QEMU, "
        f"not {a.load_addr:#010x}+{a.load_size:#010x} as the kernel this image was built for",
    )


def test_elf_without_pvh_note_refused_by_qemu(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], tmp_path: Path
) -> None:
    """An ELF whose Xen note is not PHYS32_ENTRY: QEMU 7.2 itself refuses it (exit 1) before
    any firmware runs, so the firmware's "no PVH entry" path never sees such a file."""
    data = bytearray(kernel("exitfirst", LINUX_LOAD).read_bytes())
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0"  # namesz, descsz, type PHYS32_ENTRY
    at = data.find(note)
    assert at > 0 and data.find(note, at + 1) < 0
    struct.pack_into("<I", data, at + 8, 1)  # XEN_ELFNOTE_INFO: not an entry
    elf = tmp_path / "no-pvh-note.elf"
    elf.write_bytes(data)
    run = run_kernel(elf, bios=image(pvhcheck(kernel, "tcg")), timeout=ERROR_TIMEOUT)
    assert run.returncode == 1, run.describe()
    assert "Error loading uncompressed kernel without PVH ELF Note" in run.stderr
    assert "pvhfw" not in run.stdout


def test_error_unpatched_image(
    qemu: str, kernel: KernelGetter, pvh_firmware: Firmware, tmp_path: Path
) -> None:
    """The assembled image before build-fw patches it refuses to boot anything."""
    raw = tmp_path / "unpatched.bin"
    raw.write_bytes(pvh_firmware.image)
    run = run_error(pvhcheck(kernel, "tcg"), raw)
    assert_error(
        run,
        "pvhfw: this image has no kernel entry: build it with build-fw --kernel KERNEL or "
        "--any-kernel",
    )


def test_cmdline_at_the_limit_boots(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]
) -> None:
    """A command line of CMDLINE_MAX - 1 bytes (QEMU's FW_CFG_CMDLINE_SIZE counts the NUL: the
    largest the firmware takes) arrives whole."""
    elf = pvhcheck(kernel, "tcg")
    append = ("pvhfw.long=" + "x" * layout.CMDLINE_MAX)[: layout.CMDLINE_MAX - 1]
    report = booted(run_boot(elf, image(elf), machine="pc", append=append))
    assert report.fwcfg["cmdline_size"] == layout.CMDLINE_MAX
    assert report.cmdline == append.encode()


def test_error_cmdline_too_long(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path]
) -> None:
    """One byte more: the firmware says so and stops, rather than cut the command line."""
    elf = pvhcheck(kernel, "tcg")
    append = "y" * layout.CMDLINE_MAX
    run = run_until_output(
        elf,
        ERROR_LINE,
        bios=image(elf),
        append=append,
        memory="256",
        timeout=ERROR_TIMEOUT,
        linger=LINGER,
    )
    assert_error(
        run,
        f"pvhfw: command line is {layout.CMDLINE_MAX + 1:#010x} bytes, more than "
        f"{layout.CMDLINE_MAX:#010x}",
    )


# ---- the any-kernel image (build-fw --any-kernel) --------------------------------------------
# It boots pvhcheck in test_boot (and pvhcheck's bzImage in test_qemu_linux32.py) as the
# image built for it does; here the benchmark's kernel and the lines of its run-time checks.


@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", MACHINES)
def test_any_kernel_image_enters_exitfirst(
    qemu: str, kernel: KernelGetter, any_image: Path, machine: str, accel: str
) -> None:
    """The benchmark's kernel, whose first instruction exits QEMU with 33, entered by the
    any-kernel image with QEMU's ACPI on."""
    if accel == "kvm":
        need_kvm()
    run = run_kernel(
        kernel("exitfirst", LINUX_LOAD),
        bios=any_image,
        machine=machine,
        accel=accel,
        timeout=KVM_TIMEOUT if accel == "kvm" else TCG_TIMEOUT,
    )
    assert run.returncode == EXIT_SUCCESS, run.describe()
    assert "pvhfw:" not in run.stdout


def test_any_kernel_image_error_no_kernel(qemu: str, any_image: Path) -> None:
    run = run_error(None, any_image)
    assert_error(
        run, "pvhfw: no kernel: start QEMU with -kernel (a vmlinux with a PVH note, or a bzImage)"
    )


def test_any_kernel_image_error_kernel_below_1mib(
    qemu: str, any_image: Path, tmp_path: Path
) -> None:
    """An ELF QEMU loads at 0x80000: below 1 MiB, where the firmware's areas are (the
    firmware sees only the span QEMU loaded, not the segments build-fw would check)."""
    elf = tmp_path / "low.elf"
    elf.write_bytes(simple_kernel(0x80010, 0x80000).build())
    run = run_error(elf, any_image)
    assert_error(
        run,
        "pvhfw: kernel loaded at 0x00080000+0x00000040 by QEMU is below 1 MiB or runs into the "
        "firmware's ROM below 4 GiB",
    )
