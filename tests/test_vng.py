"""virtme-ng as pvhfw's client: vng boots Debian's generic vmlinux through pvhfw under TCG and
runs a command in it.

- The command is tools/vng.py's :func:`~tools.vng.vng_command`; the README's recipe runs the
  same arguments (checked here).
- :func:`~tools.vng.kernel_root` lays a kernel out as vng wants it (on a made-up package tree).
- The pinned vng (tools/setup.sh installs it into a venv of the cache) runs ``--exec`` in
  Debian's generic kernel (the cloud flavour has no 9p) with ``--qemu-opts='-bios IMAGE'``,
  under TCG (``--disable-kvm``), on tools.qemu's binary (``--qemu``: $PVHFW_QEMU, else
  qemu-system-x86_64, so the QEMU 10 pass of tools/test.sh runs it too): the command's output
  comes back with the kernel's release and the BIOS vendor the guest's DMI reads, pvhfw's own
  (its SMBIOS type 0), and vng exits 0. Each image kind of tests.support.IMAGE_KINDS is booted.

Without vng (python3 -m tools.vng), depmod, udev, QEMU or the generic kernel the tests skip
with the reason; under CI (CI=true) that is a failure.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.support import IMAGE_KINDS, build_image, need, need_qemu
from tools import vng
from tools.debian_kernel import GENERIC_PACKAGE, DebianKernel, ToolError, ensure_debian_kernel

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300.0  # seconds for a whole vng run under TCG (about 20 s here)
MARKER = "PVHFW-VNG"
# One line from the guest: the marker, the kernel's release, the DMI BIOS vendor.
GUEST_COMMAND = f"echo {MARKER} $(uname -r) $(cat /sys/class/dmi/id/bios_vendor)"


def test_the_readme_recipe_is_vng_command() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## virtme-ng\n") :]
    section = section[: section.index("\n## ", 1)]
    line = re.search(r"^vng --run .*$", section, re.MULTILINE)
    assert line, "README's virtme-ng section has no `vng --run` line"
    assert shlex.split(line[0]) == vng.vng_command("vng", "$kernel", "$image", "uname -r")


def test_vng_command() -> None:
    assert vng.vng_command("/v/vng", "/r/boot/vmlinux-6.1", "/o/a b.bin", "true", "/q/qemu") == [
        "/v/vng", "--run", "/r/boot/vmlinux-6.1", "--disable-kvm", "--qemu-opts=-bios /o/a b.bin",
        "--exec", "true", "--qemu", "/q/qemu",
    ]  # fmt: skip


def test_kernel_root_lays_the_kernel_out_for_vng(tmp_path: Path) -> None:
    """ROOT/boot/vmlinux-VERSION and ROOT/lib/modules/VERSION with depmod's modules.dep, the
    package's tree untouched; made once."""
    need(shutil.which("depmod", path="/usr/sbin:/sbin:/usr/bin") is not None, "depmod (kmod)")
    version = "6.1.0-test"
    package = tmp_path / "pkg"
    moddir = package / "root" / "lib" / "modules" / version
    (moddir / "kernel" / "fs").mkdir(parents=True)
    (moddir / "modules.order").write_text("")
    (moddir / "modules.builtin").write_text("")
    (package / "root" / "boot").mkdir()
    bzimage = package / "root" / "boot" / f"vmlinuz-{version}"
    bzimage.write_bytes(b"bz")
    vmlinux = package / "vmlinux"
    vmlinux.write_bytes(b"\x7fELF")
    kernel = DebianKernel("pkg", version, package / "x.deb", bzimage, vmlinux, package / "config")
    cache = tmp_path / "cache"
    image = vng.kernel_root(kernel, cache)
    root = cache / "vng" / f"root-{version}"
    assert image == root / "boot" / f"vmlinux-{version}"
    assert image.resolve() == vmlinux.resolve()
    assert (root / "lib" / "modules" / version / "modules.dep").is_file()
    assert (root / "lib" / "modules" / version / "kernel").resolve() == moddir / "kernel"
    untouched = ["kernel", "modules.builtin", "modules.order"]
    assert sorted(p.name for p in moddir.iterdir()) == untouched
    (moddir / "modules.order").unlink()  # made once: not looked at again
    assert vng.kernel_root(kernel, cache) == image


@pytest.fixture(scope="module")
def generic() -> tuple[DebianKernel, Path]:
    """Debian's generic kernel and its vmlinux laid out for vng."""
    try:
        kernel = ensure_debian_kernel(package=GENERIC_PACKAGE)
        return kernel, vng.kernel_root(kernel)
    except ToolError as e:
        need(False, f"Debian's generic kernel for vng: {e}")
        raise


@pytest.mark.qemu
@pytest.mark.debian
@pytest.mark.slow
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_vng_runs_a_command_in_debian_booted_by_pvhfw(
    generic: tuple[DebianKernel, Path], kind: str, tmp_path: Path
) -> None:
    qemu = need_qemu()
    exe = vng.installed()
    need(exe is not None, f"{vng.PACKAGE} {vng.VERSION} not installed (python3 -m tools.vng)")
    assert exe is not None
    need(shutil.which("udevadm") is not None, "udev not installed (vng's guest runs the host's)")
    kernel, image = generic
    firmware = build_image(kind, image, tmp_path / "fw")
    cmd = vng.vng_command(exe, image, firmware, GUEST_COMMAND, qemu)
    run = vng.run_vng(cmd, cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert run.returncode == 0, run.describe()
    assert f"{MARKER} {kernel.version} pvhfw\n" in run.stdout, run.describe()
