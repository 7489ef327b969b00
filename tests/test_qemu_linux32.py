"""The firmware's Linux boot protocol path under stock QEMU 7.2: `-bios <image built for the
bzImage> -kernel <bzImage>`.

pvhcheck's bzImage build (tests/kernels: build_kernel(..., bzimage=True)) enters through
code32_start and checks the 32-bit boot protocol against fw_cfg's own facts: the zero page's
header against FW_CFG_SETUP_DATA, every other byte zero, e820_table, the command line, the
ramdisk, the code at 1 MiB against FW_CFG_KERNEL_DATA, the RSDP, the CPU state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pvhfw.firmware import layout
from tests.bzgen import bzimage
from tests.kernels.build import (
    EXIT_SUCCESS,
    KernelToolchainMissing,
    build_bzimage,
    build_kernel,
    parse_report,
)
from tests.kernels.qemu import run_kernel
from tests.model import acpi_size, machine_memmap
from tests.support import IMAGE_KINDS, KernelGetter, need, need_kvm
from tests.test_qemu_pvh import (
    ACCELS,
    APPEND,
    KVM_TIMEOUT,
    TCG_TIMEOUT,
    assert_error,
    booted,
    fwcfg_e820,
    machine_of,
    pvhcheck,
    run_error,
)
from tools.qemu import MACHINES

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def bzcheck(kernels_dir: Path) -> Callable[[str], Path]:
    """bzcheck(accel) -> pvhcheck's bzImage (without lar under this machine's KVM)."""
    cache: dict[str, Path] = {}

    def get(accel: str) -> Path:
        if accel not in cache:
            try:
                cache[accel] = build_kernel(
                    "pvhcheck",
                    kernels_dir,
                    layout.BZIMAGE_LOAD_ADDR,
                    bzimage=True,
                    **({"lar": False} if accel == "kvm" else {}),
                )
            except KernelToolchainMissing as e:
                need(False, str(e))
        return cache[accel]

    return get


@pytest.fixture(scope="module")
def exitfirst_bz(kernels_dir: Path) -> Path:
    try:
        return build_bzimage(kernels_dir)
    except KernelToolchainMissing as e:
        need(False, str(e))
        raise


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", MACHINES)
def test_bzimage_boot(
    qemu: str,
    bzcheck: Callable[[str], Path],
    image: Callable[[Path], Path],
    any_image: Path,
    initrd: Path,
    machine: str,
    accel: str,
    kind: str,
) -> None:
    """Every check of the 32-bit boot protocol passes, with an initrd, a punctuated command
    line and QEMU's ACPI; the zero page is the firmware's, its e820 table the PVH path's map;
    by the image built for the bzImage and by the any-kernel image."""
    if accel == "kvm":
        need_kvm()
    bz = bzcheck(accel)
    run = run_kernel(
        bz,
        bios=image(bz) if kind == "pre-patched" else any_image,
        initrd=initrd,
        append=APPEND,
        machine=machine,
        accel=accel,
        memory="256",
        timeout=KVM_TIMEOUT if accel == "kvm" else TCG_TIMEOUT,
    )
    report = booted(run)
    assert report.protocol == "linux32"
    bp = report.boot_params
    assert bp["addr"] == report.regs["esi"] == layout.ZERO_PAGE
    assert bp["type_of_loader"] == 0xB0  # QEMU's, kept from its header
    assert bp["cmd_line_ptr"] == layout.CMDLINE
    assert report.cmdline == APPEND.encode()
    data = initrd.read_bytes()
    (module,) = report.modules
    assert module["crc32"] == zlib.crc32(data)
    assert (bp["ramdisk_image"], bp["ramdisk_size"]) == (module["paddr"], len(data))
    assert bp["acpi_rsdp_addr"] == layout.EBDA_BASE
    assert bp["e820_entries"] == len(report.memmap)
    expected = machine_memmap(fwcfg_e820(report), machine_of(run), acpi_size(report.memmap))
    assert report.memmap == expected


@pytest.mark.parametrize("machine", MACHINES)
def test_bzimage_boot_without_acpi_has_the_exact_map(
    qemu: str, bzcheck: Callable[[str], Path], image: Callable[[Path], Path], machine: str
) -> None:
    """With acpi=off the zero page's e820 table is exactly the PVH path's memory map; no
    -append, no -initrd: QEMU's empty command line, no ramdisk."""
    bz = bzcheck("tcg")
    run = run_kernel(
        bz, bios=image(bz), machine=f"{machine},acpi=off", memory="256", timeout=TCG_TIMEOUT
    )
    report = booted(run)
    assert report.memmap == machine_memmap(fwcfg_e820(report), machine)
    bp = report.boot_params
    assert (bp["acpi_rsdp_addr"], bp["ramdisk_image"], bp["ramdisk_size"]) == (0, 0, 0)
    assert report.cmdline == b"" and report.modules == []


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("machine", MACHINES)
def test_exitfirst_bz_entered_at_code32_start(
    qemu: str,
    exitfirst_bz: Path,
    image: Callable[[Path], Path],
    any_image: Path,
    machine: str,
    accel: str,
    kind: str,
) -> None:
    """The benchmark's bzImage boots: exit 33 and no error line. Both of its entries exit
    with 33, so this shows only that the firmware reaches the kernel on each machine and
    accelerator; test_bzimage_boot shows that it enters at code32_start (pvhcheck's real-mode
    entry exits with 37)."""
    if accel == "kvm":
        need_kvm()
    run = run_kernel(
        exitfirst_bz,
        bios=image(exitfirst_bz) if kind == "pre-patched" else any_image,
        machine=machine,
        accel=accel,
        timeout=KVM_TIMEOUT if accel == "kvm" else TCG_TIMEOUT,
    )
    assert run.returncode == EXIT_SUCCESS, run.describe()
    assert "pvhfw:" not in run.stdout


def test_fwdump_in_linux32_mode(
    qemu: str, bzcheck: Callable[[str], Path], image: Callable[[Path], Path]
) -> None:
    """pvhcheck's dump mode reads its command line through cmd_line_ptr: the word arrives."""
    bz = bzcheck("tcg")
    run = run_kernel(bz, bios=image(bz), append="pvhcheck.fwdump", timeout=TCG_TIMEOUT)
    assert run.returncode == EXIT_SUCCESS, run.describe()
    assert "PVHCHECK begin" not in run.stdout and parse_report(run.stdout).protocol == ""


# ---- a kernel of the other kind ------------------------------------------------------------


def test_vmlinux_image_given_a_bzimage(
    qemu: str, kernel: KernelGetter, image: Callable[[Path], Path], tmp_path: Path
) -> None:
    """An image built for a vmlinux, QEMU given a (synthetic, minimal) bzImage."""
    bz = tmp_path / "bzImage"
    bz.write_bytes(bzimage())
    run = run_error(bz, image(pvhcheck(kernel, "tcg")))
    assert_error(
        run,
        "pvhfw: QEMU loaded a bzImage, but this image was built for a PVH vmlinux: run "
        "build-fw --kernel with the bzImage",
    )


def test_bzimage_image_given_a_vmlinux(
    qemu: str,
    kernel: KernelGetter,
    exitfirst_bz: Path,
    image: Callable[[Path], Path],
) -> None:
    run = run_error(pvhcheck(kernel, "tcg"), image(exitfirst_bz))
    assert_error(
        run,
        "pvhfw: QEMU loaded a PVH ELF, but this image was built for a bzImage: run build-fw "
        "--kernel with the vmlinux",
    )


def test_bzimage_image_given_another_bzimage(
    qemu: str, exitfirst_bz: Path, image: Callable[[Path], Path], tmp_path: Path
) -> None:
    other = tmp_path / "other.bzImage"
    other.write_bytes(bzimage(bytes(0x2000)))
    run = run_error(other, image(exitfirst_bz))
    assert_error(
        run,
        "pvhfw: kernel loaded at 0x00100000+0x00002000 by QEMU, not 0x00100000+0x00001000 as "
        "the kernel this image was built for",
    )


def test_any_kernel_image_given_an_old_bzimage(qemu: str, any_image: Path, tmp_path: Path) -> None:
    """A bzImage of boot protocol 2.09, which build-fw refuses: the any-kernel image says so
    at run time."""
    old = tmp_path / "old.bzImage"
    old.write_bytes(bzimage(protocol=0x0209))
    run = run_error(old, any_image)
    assert_error(
        run,
        "pvhfw: QEMU's bzImage has Linux boot protocol 0x00000209, older than 2.10 (Linux "
        "2.6.31), the oldest whose 32-bit entry this firmware uses",
    )
