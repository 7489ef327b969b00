"""The distribution as a user gets it: a wheel built from the checkout, installed into a clean
virtual environment, whose build-fw builds an image that boots a test kernel in stock QEMU.

The wheel must hold one import namespace, pvhfw, with the assembly sources as package data,
and nothing of the checkout's development code (bench, tools, tests). The venv is new every
run and nothing from the checkout is on its path: the command runs from another directory.
`python -m build` fetches setuptools into its isolated build environment and pip fetches the
dependencies, as for any user (pip's cache makes later runs fast).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.kernels.build import EXIT_SUCCESS, parse_report
from tests.kernels.qemu import run_kernel
from tests.support import KernelGetter, need

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

REPO = Path(__file__).resolve().parent.parent
ASM_FILES = sorted(p.name for p in (REPO / "asm").glob("*.s"))


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    out, err = proc.stdout[-3000:], proc.stderr[-3000:]
    return f"{' '.join(proc.args)}: status {proc.returncode}\n{out}\n{err}"


def _copy_tree(dest: Path) -> Path:
    """The checkout's files as a fresh clone would have them (tracked, and new files git does
    not ignore; links stay links), so no stale build/ directory leaks into the wheel."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO)
    assert listed.returncode == 0, _describe(listed)
    for name in filter(None, listed.stdout.split("\0")):
        src, dst = REPO / name, dest / name
        if not src.is_symlink() and not src.exists():
            continue  # deleted in the working tree, not yet committed
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build --wheel` of a copy of the checkout."""
    try:
        import build  # noqa: F401
    except ImportError:
        need(False, "the build package is not installed (pip install -e '.[dev]')")
    need(shutil.which("git") is not None, "git is not installed")
    src = _copy_tree(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)], out)
    assert proc.returncode == 0, _describe(proc)
    (path,) = out.glob("pvhfw-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (and its dependencies) installed: its bin directory."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True, clear=True)
    bin_dir = root / "bin"
    proc = _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], root)
    assert proc.returncode == 0, _describe(proc)
    return bin_dir


def test_wheel_holds_one_namespace_and_the_assembly(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"pvhfw"}, sorted(tops)
    assert sorted(n.removeprefix("pvhfw/asm/") for n in names if n.startswith("pvhfw/asm/")) == (
        ASM_FILES
    )
    for package in ("pvhfw/builder/cli.py", "pvhfw/firmware/assemble.py", "pvhfw/__init__.py"):
        assert package in names
    assert not [n for n in names if "/tests/" in n or "/bench/" in n or "/tools/" in n]


def test_installed_build_fw_builds_an_image_that_boots(
    installed: Path, kernel: KernelGetter, qemu: str, tmp_path: Path
) -> None:
    """The venv's build-fw, run away from the checkout, builds for pvhcheck; QEMU boots it and
    pvhcheck passes every check (exit status 33). Its image equals the checkout's build."""
    from pvhfw.builder.build import build

    elf = kernel("pvhcheck", 0x1000000)
    out = tmp_path / "out" / "bios.bin"
    proc = _run([str(installed / "build-fw"), "--kernel", str(elf), "-o", str(out)], tmp_path)
    assert proc.returncode == 0, _describe(proc)
    assert proc.stdout.startswith(f"build-fw: {out}: 65536 bytes"), proc.stdout
    assert out.read_bytes() == build(elf.read_bytes(), str(elf)).image
    run = run_kernel(elf, bios=out, machine="pc", memory="256")
    report = parse_report(run.stdout)
    assert report.complete and report.failed_checks == {}, run.describe()
    assert run.returncode == EXIT_SUCCESS, run.describe()


def test_installed_distribution_has_no_generic_top_level_modules(installed: Path) -> None:
    """pvhfw imports from the venv; the checkout's top-level names do not exist there."""
    code = (
        "import importlib.util, pvhfw.builder.cli, pvhfw.firmware.assemble as a;"
        "print(a.ASM_DIR);"
        "print([m for m in ('builder', 'firmware', 'asm', 'bench', 'tools', 'tests')"
        " if importlib.util.find_spec(m)])"
    )
    proc = _run([str(installed / "python"), "-c", code], installed)
    assert proc.returncode == 0, _describe(proc)
    asm_dir, found = proc.stdout.splitlines()
    assert asm_dir.startswith(str(installed.parent)), asm_dir
    assert found == "[]"
