"""tools/alt_qemu.py, QEMU 10.0 beside the system's: the wrapper, the cache and its stamp, the
version checks, the CLI, without the network (the download replaced by packages built here
with dpkg-deb); then the QEMU 10 that tools/setup.sh installs, when it is there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import need, write_executable
from tools import alt_qemu, debian_apt, qemu
from tools.debian_apt import AptSource, ToolError

FAKE_VERSION = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"
QEMU_DEB_VERSION = "1:10.0.2+ds-2+deb13u1~bpo12+1"
SEABIOS_DEB_VERSION = "1.16.3-2~bpo12+1"
SEABIOS_BANNER = re.compile(r"SeaBIOS \(version ([^)\s]+)\)")


# ---- the wrapper ------------------------------------------------------------------------------

FAKE_QEMU = f"""#!/bin/sh
# qemu-system-x86_64 as the tests need it: `-L DIR` collects a directory, `-L help` lists them,
# `--version` answers; `args` prints the arguments and QEMU_MODULE_DIR.
dirs=""
all="$*"
while [ $# -gt 0 ]; do
    case "$1" in
    -L) if [ "$2" = help ]; then printf '%s\\n' $dirs; exit 0; fi; dirs="$dirs $2"; shift 2 ;;
    --version) echo "{FAKE_VERSION}"; exit 0 ;;
    args) echo "$all"; echo "$QEMU_MODULE_DIR"; exit 0 ;;
    *) shift ;;
    esac
done
exit 1
"""


def test_the_wrapper_runs_the_unpacked_binary_with_its_own_files(tmp_path: Path) -> None:
    root = tmp_path / "cache dir" / "root"
    write_executable(root / "usr" / "bin" / "qemu-system-x86_64", FAKE_QEMU)
    script = alt_qemu.wrapper_script(root)
    share = root / "usr" / "share"
    assert script.splitlines()[-1] == (
        f"exec '{root}/usr/bin/qemu-system-x86_64' -L '{share}/qemu' -L '{share}/seabios' \"$@\""
    )
    wrapper = write_executable(tmp_path / "wrapper", script)
    out = subprocess.run([wrapper, "args", "x y"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        f"-L {share}/qemu -L {share}/seabios args x y",
        str(root / "usr" / "lib" / "x86_64-linux-gnu" / "qemu"),
    ]


# ---- the cache, with packages built here -------------------------------------------------------


def build_deb(out_dir: Path, package: str, version: str, files: dict[str, str | bytes]) -> Path:
    tree = out_dir / f"{package}.tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: pvhfw tests <tests@invalid>\nDescription: a test package\n"
    )
    for rel, content in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            write_executable(path, content)
    deb = out_dir / f"{package}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        capture_output=True,
        check=True,
    )
    shutil.rmtree(tree)
    return deb


def fake_backports(out_dir: Path, qemu_version: str = QEMU_DEB_VERSION) -> dict[str, Path]:
    """The packages, as far as the tools look into them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    contents: dict[str, tuple[str, dict[str, str | bytes]]] = {
        "qemu-system-x86": (qemu_version, {"usr/bin/qemu-system-x86_64": FAKE_QEMU}),
        "qemu-system-data": (qemu_version, {"usr/share/qemu/qboot.rom": b"qboot 10"}),
        "qemu-system-common": (
            qemu_version,
            {"usr/lib/x86_64-linux-gnu/qemu/audio-oss.so": b"module"},
        ),
        "qemu-system-modules-opengl": (
            qemu_version,
            {"usr/lib/x86_64-linux-gnu/qemu/ui-opengl.so": b"module"},
        ),
        "qemu-system-modules-spice": (
            qemu_version,
            {"usr/lib/x86_64-linux-gnu/qemu/ui-spice-core.so": b"module"},
        ),
        "seabios": (
            SEABIOS_DEB_VERSION,
            {
                "usr/share/seabios/bios.bin": b"seabios 128k",
                "usr/share/seabios/bios-microvm.bin": b"seabios for microvm",
            },
        ),
    }
    return {
        name: build_deb(out_dir, name, version, files)
        for name, (version, files) in contents.items()
    }


@dataclass
class FakeBackports:
    """What alt_qemu's apt_download is replaced with: copies of ``debs``."""

    debs: dict[str, Path]
    calls: list[list[str]] = field(default_factory=list)  # the package arguments of each

    def download(self, packages: list[str], dest: Path, **kwargs: object) -> list[Path]:
        source = kwargs["source"]
        assert isinstance(source, AptSource) and source.suite == "bookworm-backports"
        self.calls.append(list(packages))
        out = []
        for spec in packages:
            deb = self.debs[debian_apt.package_of(spec)]
            out.append(Path(shutil.copy(deb, dest / deb.name)))
        return out


@pytest.fixture
def backports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBackports:
    need(shutil.which("dpkg-deb") is not None, "dpkg-deb not installed (package dpkg)")
    fake = FakeBackports(fake_backports(tmp_path / "archive"))
    monkeypatch.setattr(alt_qemu, "apt_download", fake.download)
    return fake


def test_installed_once_then_found_in_the_cache(
    tmp_path: Path, backports: FakeBackports, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert alt_qemu.installed(cache) is None
    alt = alt_qemu.ensure_alt_qemu(cache)
    assert backports.calls == [[f"{p}/bookworm-backports" for p in alt_qemu.PACKAGES]]
    work = cache / "qemu-10.0"
    assert alt.wrapper == work / "bin" / "qemu-system-x86_64"
    assert alt.wrapper.read_text() == alt_qemu.wrapper_script(work / "root")
    assert os.access(alt.wrapper, os.X_OK)
    assert alt.version == FAKE_VERSION
    assert alt.packages == {
        "qemu-system-x86": QEMU_DEB_VERSION,
        "qemu-system-data": QEMU_DEB_VERSION,
        "qemu-system-common": QEMU_DEB_VERSION,
        "qemu-system-modules-opengl": QEMU_DEB_VERSION,
        "qemu-system-modules-spice": QEMU_DEB_VERSION,
        "seabios": SEABIOS_DEB_VERSION,
    }
    stamp = json.loads((work / "stamp.json").read_text())
    assert stamp["qemu"] == FAKE_VERSION and stamp["suite"] == "bookworm-backports"
    assert "downloading qemu-system-x86 qemu-system-data" in capsys.readouterr().err

    # A second call: the stamp, no download, the same answer.
    assert alt_qemu.ensure_alt_qemu(cache) == alt == alt_qemu.installed(cache)
    assert len(backports.calls) == 1
    # A lost stamp or wrapper: unpacked again from the packages already there.
    (work / "stamp.json").unlink()
    assert alt_qemu.installed(cache) is None
    assert alt_qemu.ensure_alt_qemu(cache) == alt
    alt.wrapper.write_text("#!/bin/sh\n")
    assert alt_qemu.ensure_alt_qemu(cache) == alt
    assert alt.wrapper.read_text() == alt_qemu.wrapper_script(alt.root)
    assert len(backports.calls) == 1
    # A lost package: downloaded again.
    next(work.glob("seabios_*.deb")).unlink()
    assert alt_qemu.ensure_alt_qemu(cache) == alt
    assert len(backports.calls) == 2


def test_tools_qemu_finds_the_trees_own_firmware_files(
    tmp_path: Path, backports: FakeBackports
) -> None:
    """Through the wrapper, tools/qemu.py takes qboot.rom and bios.bin from the tree; its
    bios-microvm.bin is SeaBIOS's, so microvm gets the tree's qboot.rom."""
    alt = alt_qemu.ensure_alt_qemu(tmp_path / "cache")
    wrapper = str(alt.wrapper)
    share = alt.root.resolve() / "usr" / "share"
    assert qemu.data_dirs(wrapper) == (share / "qemu", share / "seabios")
    assert qemu.data_file(qemu.QBOOT_ROM, wrapper) == str(share / "qemu" / "qboot.rom")
    assert qemu.data_file(qemu.SEABIOS_128K, wrapper) == str(share / "seabios" / "bios.bin")
    assert qemu.microvm_bios(wrapper) == str(share / "qemu" / "qboot.rom")


def test_a_backport_of_another_qemu_is_refused(tmp_path: Path, backports: FakeBackports) -> None:
    backports.debs = fake_backports(tmp_path / "archive-10.1", "1:10.1.0+ds-1~bpo12+1")
    with pytest.raises(ToolError, match=r"^bookworm-backports has qemu-system-x86 1:10\.1\.0"):
        alt_qemu.ensure_alt_qemu(tmp_path / "cache")
    assert alt_qemu.installed(tmp_path / "cache") is None
    mixed = {name: QEMU_DEB_VERSION for name in alt_qemu.QEMU_PACKAGES}
    mixed["qemu-system-data"] = "1:10.0.3"
    with pytest.raises(ToolError, match=r"of different versions: qemu-system-x86 1:10\.0\.2"):
        alt_qemu.check_versions(mixed)


def test_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "qemu-10.0"
    alt = alt_qemu.AltQemu(work, {}, FAKE_VERSION)
    monkeypatch.setattr(alt_qemu, "ensure_alt_qemu", lambda cache=None: alt)
    assert alt_qemu.main(["--print-path"]) == 0
    assert capsys.readouterr().out == f"{work}/bin/qemu-system-x86_64\n"
    assert alt_qemu.main([]) == 0
    assert capsys.readouterr().out == (
        f"qemu={work}/bin/qemu-system-x86_64\nversion={FAKE_VERSION}\nroot={work}/root\n"
    )

    def fail(cache: Path | None = None) -> alt_qemu.AltQemu:
        raise ToolError("qemu-system-x86/bookworm-backports: apt-get download failed: E: x")

    monkeypatch.setattr(alt_qemu, "ensure_alt_qemu", fail)
    assert alt_qemu.main(["--print-path"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "alt_qemu: qemu-system-x86/bookworm-backports: apt-get download failed: E: x\n"
    )


def test_the_cli_asked_only_for_an_installed_qemu_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def download(cache: Path | None = None) -> alt_qemu.AltQemu:
        raise AssertionError("--installed downloaded")

    monkeypatch.setattr(alt_qemu, "ensure_alt_qemu", download)
    assert alt_qemu.main(["--installed", "--cache", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"alt_qemu: QEMU 10.0 is not in {tmp_path / 'qemu-10.0'} "
        "(python3 -m tools.alt_qemu installs it)\n"
    )
    work = tmp_path / "qemu-10.0"
    alt = alt_qemu.AltQemu(work, {}, FAKE_VERSION)
    monkeypatch.setattr(alt_qemu, "installed", lambda cache=None: alt)
    assert alt_qemu.main(["--installed"]) == 0
    assert capsys.readouterr().out == f"{work}/bin/qemu-system-x86_64\n"


# ---- the real one ---------------------------------------------------------------------------


def need_alt_qemu() -> alt_qemu.AltQemu:
    alt = alt_qemu.installed()
    need(alt is not None, "QEMU 10.0 not installed (python3 -m tools.alt_qemu; tools/setup.sh)")
    assert alt is not None
    return alt


def boot_without_a_disk(wrapper: str, machine: str) -> str:
    """QEMU's default firmware on `machine` with nothing to boot: its serial output."""
    cmd = qemu.qemu_command(
        qemu=wrapper, machine=machine, memory=64, debug_exit=False,
        extra=("-boot", "reboot-timeout=0", "-nic", "none"),
    )  # fmt: skip
    if machine == "microvm":  # QEMU's own default, not the one tools.qemu gives
        del cmd[cmd.index("-bios") : cmd.index("-bios") + 2]
    out = subprocess.run(
        cmd, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )
    assert out.returncode == 0, out
    # its modules are its own: none looked for among the system QEMU's (refused, with a warning)
    assert b"Only modules from the same build" not in out.stderr, out.stderr
    return out.stdout.decode(errors="replace")


@pytest.mark.qemu
def test_the_installed_qemu_10_uses_its_own_firmware() -> None:
    """What tools/setup.sh installed: QEMU 10.0, whose SeaBIOS is the tree's (it says its
    version on pc, and on microvm without -bios, where QEMU finds no bios-microvm.bin in
    share/qemu and takes SeaBIOS's microvm build), so tools.qemu gives microvm the tree's
    qboot.rom; it refuses -singlestep."""
    alt = need_alt_qemu()
    wrapper = str(alt.wrapper)
    assert qemu.qemu_version(wrapper) == alt.version
    assert alt.version.startswith("QEMU emulator version 10.0.")
    share = alt.root.resolve() / "usr" / "share"
    assert qemu.data_dirs(wrapper)[:2] == (share / "qemu", share / "seabios")
    assert qemu.data_file(qemu.QBOOT_ROM, wrapper) == str(share / "qemu" / "qboot.rom")
    assert qemu.data_file(qemu.SEABIOS_128K, wrapper) == str(share / "seabios" / "bios.bin")
    seabios = f"debian-{alt.packages['seabios']}"
    for machine in ("pc", "microvm"):
        banner = SEABIOS_BANNER.search(boot_without_a_disk(wrapper, machine))
        assert banner and banner[1].endswith(seabios), (machine, banner)
    assert qemu.microvm_bios(wrapper) == str(share / "qemu" / "qboot.rom")
    cmd = qemu.qemu_command(qemu=wrapper, machine="microvm")
    assert cmd[cmd.index("-bios") + 1] == str(share / "qemu" / "qboot.rom")
    assert not qemu.singlestep_supported(wrapper)


@pytest.mark.qemu
def test_the_installed_qemu_10_loads_every_module_it_knows() -> None:
    """`qom-list-types` (libvirt's capability probe sends it) loads every module QEMU 10
    knows. A module missing from the tree is then looked for among the system QEMU 7.2's,
    which QEMU 10 refuses after running its constructors, and the next load aborts
    (`module_load_dso: Assertion ... failed`): the tree must hold them all."""
    alt = need_alt_qemu()
    qmp = '{"execute": "qmp_capabilities"}\n{"execute": "qom-list-types"}\n{"execute": "quit"}\n'
    cmd = [str(alt.wrapper), "-S", "-nodefaults", "-nographic", "-machine", "none"]
    out = subprocess.run(
        [*cmd, "-qmp", "stdio"], input=qmp, capture_output=True, text=True, timeout=60,
        check=False, env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    assert out.returncode == 0, out
    assert "Only modules from the same build" not in out.stdout + out.stderr, out
    assert '"name": "isa-debug-exit"' in out.stdout, out
