"""build-fw never replaces its input and never leaves half an update: every spelling of "write
over the kernel" is refused before anything is written, and a failed build leaves the previous
outputs byte for byte as they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pvhfw.builder.cli import main
from tests.elfgen import simple_kernel

FLAGS = ("-o", "--map", "--manifest")


def _kernel(tmp_path: Path, entry: int = 0x1000010) -> tuple[Path, bytes]:
    kernel = tmp_path / "k" / "vmlinux"
    kernel.parent.mkdir(exist_ok=True)
    data = simple_kernel(entry).build()
    kernel.write_bytes(data)
    return kernel, data


def _spelling(tmp_path: Path, kernel: Path, how: str) -> Path:
    """A path that names the kernel file."""
    if how == "same path":
        return kernel
    if how == "another spelling":
        return tmp_path / "k" / ".." / "k" / "." / "vmlinux"
    if how == "relative":
        return Path(os.path.relpath(kernel))
    link = tmp_path / f"{how.replace(' ', '-')}.bin"
    if how == "symlink":
        link.symlink_to(kernel)
    else:
        os.link(kernel, link)
    return link


SPELLINGS = ("same path", "another spelling", "relative", "symlink", "hard link")


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("how", SPELLINGS)
def test_an_output_that_is_the_kernel_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, how: str
) -> None:
    kernel, data = _kernel(tmp_path)
    target = _spelling(tmp_path, kernel, how)
    out = tmp_path / "out" / "bios.bin"
    args = ["--kernel", str(kernel)]
    args += ["-o", str(target)] if flag == "-o" else ["-o", str(out), flag, str(target)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == f"build-fw: {target}: is the kernel file {kernel}; refusing to write over it\n"
    assert kernel.read_bytes() == data
    assert not (tmp_path / "out").exists()  # nothing written, not even the other outputs
    assert sorted(p.name for p in kernel.parent.iterdir()) == ["vmlinux"]  # no temporary file


def test_kernel_named_like_a_default_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o bios.bin would write bios.map and bios.json beside it: one of them is the kernel."""
    kernel = tmp_path / "bios.json"
    data = simple_kernel().build()
    kernel.write_bytes(data)
    assert main(["--kernel", str(kernel), "-o", str(tmp_path / "bios.bin")]) == 1
    assert "is the kernel file" in capsys.readouterr().err
    assert kernel.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bios.json"]


def test_an_output_that_is_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel, _ = _kernel(tmp_path)
    (tmp_path / "out" / "bios.map").mkdir(parents=True)
    assert main(["--kernel", str(kernel), "-o", str(tmp_path / "out" / "bios.bin")]) == 1
    err = capsys.readouterr().err
    assert err == f"build-fw: {tmp_path / 'out' / 'bios.map'}: is a directory, not an output file\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bios.map"]


@pytest.mark.parametrize("failing", ["kernel", "last output"])
def test_a_failed_build_leaves_previous_outputs_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], failing: str
) -> None:
    """A second build that fails, on its kernel or while writing its last output (the manifest,
    under a path that cannot be a directory), leaves the first build's image and map byte for
    byte, although the second build had written its own to temporary files, and no temporary
    file behind."""
    kernel, _ = _kernel(tmp_path)
    out = tmp_path / "out" / "bios.bin"
    assert main(["--kernel", str(kernel), "-o", str(out), "-q"]) == 0
    (out.parent / "blocker").write_text("a file, not a directory\n")
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["bios.bin", "bios.json", "bios.map", "blocker"]

    args = ["--kernel", str(kernel), "-o", str(out)]
    if failing == "kernel":
        kernel.write_bytes(b"not a kernel\n")
    else:
        kernel, _ = _kernel(tmp_path, entry=0x1000020)  # another image and map
        args += ["--manifest", str(out.parent / "blocker" / "bios.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("build-fw: "), err
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
