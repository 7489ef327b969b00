"""virtme-ng (``vng``) as pvhfw's client: a pinned vng in a venv of the cache, a kernel laid out
as vng wants it, and the command that boots it through pvhfw.

vng boots a kernel with the host's root filesystem read-only over virtio-9p (overlays for
the writable directories), runs a command in it and gives back its output and status;
``--disable-kvm`` makes it TCG (``-machine q35 -cpu max``) and ``--qemu-opts='-bios IMAGE'``
(the ``=`` form: the option takes one argument) puts pvhfw in front of the kernel. What it
needs: its venv's bin on PATH (it runs its own helpers), ``depmod`` (kmod) and udev on the
host, a kernel with 9p (Debian's generic flavour: the cloud flavour has none), laid out as
``ROOT/boot/vmlinux-VERSION`` beside ``ROOT/lib/modules/VERSION``: vng finds the modules from
the kernel's path, and runs depmod where there is no modules.dep (Debian's packages ship
none; :func:`kernel_root` runs it once, into its own tree).

Cached in ``$PVHFW_CACHE`` (default ``~/.cache/pvhfw``)::

    vng/venv-<VERSION>/        python3 -m venv, then pip install virtme-ng==<VERSION>
    vng/venv-<VERSION>.json    written last: its presence means "installed"
    vng/root-<kernel>/boot/vmlinux-<kernel>          a link to tools/debian_kernel's vmlinux
    vng/root-<kernel>/lib/modules/<kernel>/          links to the package's module tree, and
                                                     depmod's files (modules.dep, ...)

CLI: ``python3 -m tools.vng [--cache DIR]`` installs vng and lays out Debian's generic kernel
(fetched if need be), then prints ``vng=``, ``path=`` (the directory to put on PATH) and
``kernel=`` lines; on failure one ``vng: <message>`` line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.debian_apt import ToolError, cache_dir, last_line, locked, run_tool, write_atomic
from tools.debian_kernel import GENERIC_PACKAGE, DebianKernel, ensure_debian_kernel

PACKAGE = "virtme-ng"
VERSION = "1.42"  # the release this project's recipe and test were written against
STAMP_FORMAT = 1
INSTALL_TIMEOUT = 600.0


def work_dir(cache: Path | None = None) -> Path:
    return cache_dir(cache) / "vng"


def venv_dir(cache: Path | None = None) -> Path:
    return work_dir(cache) / f"venv-{VERSION}"


def _stamp(cache: Path | None) -> Path:
    return work_dir(cache) / f"venv-{VERSION}.json"


def installed(cache: Path | None = None) -> Path | None:
    """The pinned vng the cache holds (its executable), or None; never installs."""
    vng = venv_dir(cache) / "bin" / "vng"
    try:
        stamp = json.loads(_stamp(cache).read_text())
    except (OSError, ValueError):
        return None
    if stamp != {"format": STAMP_FORMAT, "package": PACKAGE, "version": VERSION}:
        return None
    return vng if os.access(vng, os.X_OK) else None


def _run(argv: Sequence[str], what: str) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
    try:
        proc = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
            timeout=INSTALL_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolError(f"{what}: {e}") from e
    if proc.returncode != 0:
        raise ToolError(f"{what}: {last_line(proc.stderr) or f'exit status {proc.returncode}'}")


def ensure_vng(cache: Path | None = None) -> Path:
    """Install virtme-ng==VERSION into its venv once; return its ``vng``. Raises ToolError."""
    found = installed(cache)
    if found is not None:
        return found
    work = work_dir(cache)
    try:
        work.mkdir(parents=True, exist_ok=True)
        with locked(work / ".lock"):
            found = installed(cache)  # another process may have finished
            if found is not None:
                return found
            venv = venv_dir(cache)
            _stamp(cache).unlink(missing_ok=True)
            if venv.exists():
                shutil.rmtree(venv)
            _run([sys.executable, "-m", "venv", str(venv)], f"python3 -m venv {venv}")
            spec = f"{PACKAGE}=={VERSION}"
            _run([str(venv / "bin" / "pip"), "install", "-q", spec], f"pip install {spec}")
            stamp = {"format": STAMP_FORMAT, "package": PACKAGE, "version": VERSION}
            write_atomic(_stamp(cache), (json.dumps(stamp) + "\n").encode())
    except OSError as e:
        raise ToolError(f"{PACKAGE}: {e.filename or work}: {e.strerror or e}") from e
    found = installed(cache)
    if found is None:
        raise ToolError(f"{PACKAGE} {VERSION}: no bin/vng in {venv_dir(cache)}")
    return found


def kernel_root(kernel: DebianKernel, cache: Path | None = None) -> Path:
    """``kernel`` laid out for vng: ROOT/boot/vmlinux-VERSION (a link to its vmlinux) and
    ROOT/lib/modules/VERSION (links to the package's module tree, plus what depmod writes),
    made once; the vmlinux path in ROOT. Raises ToolError."""
    version = kernel.version
    root = work_dir(cache) / f"root-{version}"
    image = root / "boot" / f"vmlinux-{version}"
    done = root / ".done"
    if done.is_file() and image.is_file():
        return image
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    if depmod is None:
        raise ToolError("depmod not found (apt-get install kmod): vng needs modules.dep")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        with locked(root.parent / ".lock"):
            if done.is_file() and image.is_file():
                return image
            if root.exists():
                shutil.rmtree(root)
            (root / "boot").mkdir(parents=True)
            image.symlink_to(kernel.vmlinux)
            modules = root / "lib" / "modules" / version
            modules.mkdir(parents=True)
            for entry in sorted(kernel.modules_dir.iterdir()):
                (modules / entry.name).symlink_to(entry)
            _run([depmod, "-a", "-b", str(root), version], f"depmod for {version}")
            if not (modules / "modules.dep").is_file():
                raise ToolError(f"depmod for {version}: no modules.dep in {modules}")
            done.write_text(f"{kernel.vmlinux}\n")
    except OSError as e:
        raise ToolError(f"{e.filename or root}: {e.strerror or e}") from e
    return image


def vng_command(
    vng: str | os.PathLike[str],
    kernel: str | os.PathLike[str],
    firmware: str | os.PathLike[str],
    command: str,
    qemu: str | os.PathLike[str] | None = None,
) -> list[str]:
    """``vng --run KERNEL --disable-kvm --qemu-opts='-bios FIRMWARE' --exec COMMAND`` (with
    ``--qemu QEMU`` when given: else vng takes qemu-system-x86_64 from PATH)."""
    cmd = [os.fspath(vng), "--run", os.fspath(kernel), "--disable-kvm"]
    cmd += [f"--qemu-opts=-bios {os.fspath(firmware)}", "--exec", command]
    if qemu is not None:
        cmd += ["--qemu", os.fspath(qemu)]
    return cmd


def vng_env(vng: Path) -> dict[str, str]:
    """The environment vng runs in: its venv's bin first on PATH."""
    path = os.environ.get("PATH", "")
    return dict(os.environ, PATH=f"{vng.parent}{os.pathsep}{path}" if path else str(vng.parent))


@dataclass(frozen=True)
class VngRun:
    cmd: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        status = "killed at the timeout" if self.returncode is None else self.returncode
        return (
            f"{shlex.join(self.cmd)}: {status} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


def run_vng(cmd: list[str], *, cwd: Path, timeout: float) -> VngRun:
    """Run a :func:`vng_command` (environment :func:`vng_env`) in its own process group:
    vng runs virtme-run through a shell, which execs QEMU, so at the timeout (or on an
    interrupt) the whole group is killed, QEMU with it."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=vng_env(Path(cmd[0])), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        returncode = None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    text = [b.decode(errors="replace") for b in (out, err)]
    return VngRun(cmd, returncode, text[0], text[1], time.monotonic() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.vng",
        description=f"Install {PACKAGE} {VERSION} into a venv of the cache and lay out "
        "Debian's generic kernel for it; print where they are.",
    )
    parser.add_argument("--cache", type=Path, help="cache directory (default $PVHFW_CACHE)")
    args = parser.parse_args(argv)

    def install() -> int:
        vng = ensure_vng(args.cache)
        image = kernel_root(ensure_debian_kernel(args.cache, package=GENERIC_PACKAGE), args.cache)
        print(f"vng={vng}")
        print(f"path={vng.parent}")
        print(f"kernel={image}")
        return 0

    return run_tool("vng", install)


if __name__ == "__main__":
    sys.exit(main())
