"""tools/qemu.py: the one QEMU command builder, the binary it runs ($PVHFW_QEMU) and the
firmware files it finds in that binary's own data directories."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from bench.procs import EXEC_LOG_ITEMS, LogRequest
from tests.support import need_qemu
from tools import qemu
from tools.qemu import DEBUG_EXIT, KVM_CPU, TCG_CPU, qemu_command

FAKE_VERSION = "QEMU emulator version 10.0.2 (fake, for the tests)"


def fake_qemu(prefix: Path, l_help: list[Path] | None = None, *, singlestep: bool = False) -> Path:
    """An executable at <prefix>/bin/qemu-system-x86_64 that answers `--version`, given
    `l_help` `-L help` with those directories (else it fails there, as QEMU < 5 would), and
    refuses `-singlestep` unless told otherwise (QEMU >= 8.1 refuses it)."""
    exe = prefix / "bin" / "qemu-system-x86_64"
    exe.parent.mkdir(parents=True)
    dirs = "".join(f"echo '{d}'; " for d in l_help or [])
    l_case = f"-L) {dirs}exit 0 ;;" if l_help is not None else "-L) exit 1 ;;"
    step = "exit 0" if singlestep else 'echo "$0: -singlestep: invalid option" >&2; exit 1'
    exe.write_text(
        f'#!/bin/sh\ncase "$1" in\n--version) echo "{FAKE_VERSION}" ;;\n{l_case}\n'
        f"-singlestep) {step} ;;\nesac\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


# ---- the builder -----------------------------------------------------------------------------


def test_a_test_kernel_under_kvm_on_pc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(qemu.QEMU_ENV, raising=False)
    cmd = qemu_command(
        machine="pc", accel="kvm", memory=512, smp=2, bios="fw.bin", kernel=Path("k.elf")
    )
    assert cmd == [
        "qemu-system-x86_64", "-M", "pc", "-accel", "kvm", "-m", "512",
        "-nographic", "-no-reboot", "-bios", "fw.bin", "-kernel", "k.elf",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01", "-cpu", KVM_CPU, "-smp", "2",
    ]  # fmt: skip
    assert KVM_CPU == "qemu64,-cx16,-xsave"


def test_linux_under_tcg_on_microvm_gets_a_pit_and_the_max_cpu() -> None:
    cmd = qemu_command(
        qemu="q",
        machine="microvm",
        accel="tcg",
        linux=True,
        memory="512",
        kernel="vmlinux",
        initrd="initrd",
        append="console=ttyS0",
    )
    assert cmd == [
        "q", "-M", "microvm,pit=on", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
        "-kernel", "vmlinux", "-initrd", "initrd", "-append", "console=ttyS0",
        "-device", DEBUG_EXIT, "-cpu", TCG_CPU,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("machine", "accel", "linux", "want"),
    [
        ("microvm", "tcg", False, "microvm"),  # a test kernel needs no timer
        ("microvm", "kvm", True, "microvm"),  # kvm-clock
        ("microvm,pit=on", "tcg", True, "microvm,pit=on"),
        ("microvm,pit=off", "tcg", True, "microvm,pit=off"),  # as the caller asked
        ("microvm,acpi=off", "tcg", True, "microvm,acpi=off,pit=on"),
        ("pc", "tcg", True, "pc"),
        ("q35", "tcg", True, "q35"),
    ],
)
def test_the_microvm_pit_rule(machine: str, accel: str, linux: bool, want: str) -> None:
    cmd = qemu_command(qemu="q", machine=machine, accel=accel, linux=linux)
    assert cmd[cmd.index("-M") + 1] == want


def test_cpu_models_by_accelerator_and_guest() -> None:
    def cpu_of(cmd: list[str]) -> str | None:
        return cmd[cmd.index("-cpu") + 1] if "-cpu" in cmd else None

    assert cpu_of(qemu_command(qemu="q", accel="tcg")) is None  # QEMU's default, qemu64
    assert cpu_of(qemu_command(qemu="q", accel="tcg", linux=True)) == "max"
    assert cpu_of(qemu_command(qemu="q", accel="kvm")) == KVM_CPU
    assert cpu_of(qemu_command(qemu="q", accel="kvm", linux=True)) == KVM_CPU
    assert cpu_of(qemu_command(qemu="q", accel="kvm", cpu="qemu64")) == "qemu64"
    assert cpu_of(qemu_command(qemu="q", accel="tcg", cpu="Skylake-Client")) == "Skylake-Client"


def test_logs_traces_and_extra_come_last_in_order(tmp_path: Path) -> None:
    q = str(fake_qemu(tmp_path, singlestep=True))  # QEMU 7.2: -singlestep
    cmd = qemu_command(
        qemu=q,
        machine="q35",
        debug_exit=False,
        nographic=False,
        no_reboot=False,
        singlestep=True,
        debug=("exec", "nochain"),
        timestamp=True,
        log=Path("t.log"),
        trace=("a", "b"),
        extra=("-machine", "acpi=off"),
    )
    assert cmd == [
        q, "-M", "q35", "-accel", "tcg", "-singlestep", "-d", "exec,nochain",
        "-msg", "timestamp=on", "-D", "t.log", "-trace", "a", "-trace", "b",
        "-machine", "acpi=off",
    ]  # fmt: skip


def test_singlestep_spelt_as_a_newer_qemu_takes_it(tmp_path: Path) -> None:
    """QEMU >= 8.1 refuses -singlestep: the same request becomes the TCG accelerator's
    one-insn-per-tb property; a log filter follows the log items."""
    q = str(fake_qemu(tmp_path))
    cmd = qemu_command(
        qemu=q, machine="pc", debug_exit=False, singlestep=True, debug=("exec", "cpu"),
        dfilter="0x1000+2,0x2000+1", log=Path("t.log"),
    )  # fmt: skip
    assert cmd == [
        q, "-M", "pc", "-accel", "tcg,one-insn-per-tb=on", "-nographic", "-no-reboot",
        "-d", "exec,cpu", "-dfilter", "0x1000+2,0x2000+1", "-D", "t.log",
    ]  # fmt: skip
    assert "-singlestep" not in cmd
    with pytest.raises(ValueError, match="singlestep is a TCG option"):
        qemu_command(qemu=q, accel="kvm", singlestep=True)


def test_the_builder_refuses_a_second_cpu_and_an_unknown_accelerator() -> None:
    with pytest.raises(ValueError, match="cpu="):
        qemu_command(qemu="q", accel="kvm", extra=("-cpu", "host"))
    with pytest.raises(ValueError, match="unknown accelerator 'hvf'"):
        qemu_command(qemu="q", accel="hvf")


# ---- the binary ------------------------------------------------------------------------------


def test_pvhfw_qemu_names_the_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(qemu.QEMU_ENV, raising=False)
    assert qemu.qemu_binary() == "qemu-system-x86_64"
    exe = fake_qemu(tmp_path / "qemu10")
    monkeypatch.setenv(qemu.QEMU_ENV, str(exe))
    assert qemu.qemu_binary() == str(exe)
    assert qemu_command()[0] == str(exe)
    assert qemu.qemu_path() == str(exe)
    assert qemu.qemu_version() == FAKE_VERSION
    assert qemu.describe_qemu() == f"{exe} ({FAKE_VERSION})"


def test_release_series_from_the_version_line() -> None:
    assert qemu.qemu_series("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)") == "7.2"
    assert qemu.qemu_series(FAKE_VERSION) == "10.0"
    assert qemu.qemu_series("QEMU emulator version 11.0") == "11.0"
    assert qemu.qemu_series("QEMU emulator version 10.01x") is None
    assert qemu.qemu_series("not found") is None and qemu.qemu_series("unknown") is None


def test_a_missing_binary_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-qemu")
    monkeypatch.setenv(qemu.QEMU_ENV, missing)
    assert qemu.qemu_path() is None
    assert qemu.qemu_version() == "not found"
    assert qemu.describe_qemu() == (
        f"{missing}: not found (set PVHFW_QEMU or install qemu-system-x86)"
    )
    assert qemu.data_dirs() == ()
    assert qemu.data_file(qemu.QBOOT_ROM) == "/usr/share/qemu/qboot.rom"


# ---- its firmware files ----------------------------------------------------------------------


def test_data_files_come_from_the_binarys_own_tree(tmp_path: Path) -> None:
    """A QEMU unpacked beside the system's, whose `-L help` names other directories (its
    compiled-in ones): its own tree's files win; what it lacks comes from the system."""
    prefix = tmp_path / "root" / "usr"
    exe = fake_qemu(prefix, l_help=[tmp_path / "elsewhere"])
    (prefix / "share" / "qemu").mkdir(parents=True)
    (prefix / "share" / "qemu" / "qboot.rom").write_bytes(b"qboot 10")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "qboot.rom").write_bytes(b"compiled-in")
    own = (prefix / "share" / "qemu").resolve()
    assert qemu.data_dirs(str(exe)) == (own, (tmp_path / "elsewhere").resolve())
    assert qemu.data_file(qemu.QBOOT_ROM, str(exe)) == str(own / "qboot.rom")
    assert qemu.data_file(qemu.SEABIOS_128K, str(exe)) == "/usr/share/seabios/bios.bin"
    with pytest.raises(ValueError, match=r"no system path known for QEMU's data file 'x\.rom'"):
        qemu.data_file("x.rom", str(exe))


def test_data_files_from_l_help(tmp_path: Path) -> None:
    """A binary in a build tree: nothing beside its bin/, its `-L help` lists pc-bios/."""
    pc_bios = tmp_path / "build" / "pc-bios"
    pc_bios.mkdir(parents=True)
    (pc_bios / "bios.bin").write_bytes(b"seabios 128k")
    exe = fake_qemu(tmp_path / "build" / "x86_64-softmmu", l_help=[pc_bios])
    assert qemu.data_file(qemu.SEABIOS_128K, str(exe)) == str(pc_bios.resolve() / "bios.bin")


def test_data_files_without_l_help(tmp_path: Path) -> None:
    """A QEMU older than 5 has no `-L help`: its <prefix>/share directories still count."""
    prefix = tmp_path / "opt"
    exe = fake_qemu(prefix)
    (prefix / "share" / "seabios").mkdir(parents=True)
    (prefix / "share" / "seabios" / "bios.bin").write_bytes(b"old seabios")
    assert qemu.data_dirs(str(exe)) == ((prefix / "share" / "seabios").resolve(),)
    assert qemu.data_file(qemu.SEABIOS_128K, str(exe)).startswith(str(prefix.resolve()))


@pytest.mark.qemu
def test_the_installed_qemus_data_dirs() -> None:
    """The real binary: every directory its `-L help` lists that exists is searched, and the
    firmware files the benchmarks pass as -bios are found there."""
    exe = need_qemu()
    listed = subprocess.run([exe, "-L", "help"], capture_output=True, text=True, check=True)
    dirs = qemu.data_dirs(exe)
    for line in listed.stdout.split():
        if os.path.isdir(line):
            assert Path(line).resolve() in dirs
    for name in (qemu.QBOOT_ROM, qemu.SEABIOS_128K):
        path = Path(qemu.data_file(name, exe))
        assert path.is_file() and path.parent in dirs, path


def microvm_tree(tmp_path: Path, default: str) -> str:
    """A QEMU whose tree has qboot.rom and, as `default` says, a bios-microvm.bin: "link" to
    qboot.rom in share/qemu (QEMU 7.2 from Debian), "copy" of it there, "seabios" (another
    firmware in share/seabios: Debian's QEMU 10 with its seabios package), or "none"."""
    prefix = tmp_path / "usr"
    exe = fake_qemu(prefix, l_help=[])
    for sub in ("qemu", "seabios"):
        (prefix / "share" / sub).mkdir(parents=True)
    qemu_dir = prefix / "share" / "qemu"
    (qemu_dir / "qboot.rom").write_bytes(b"qboot")
    if default == "link":
        (qemu_dir / "bios-microvm.bin").symlink_to("qboot.rom")
    elif default == "copy":
        (qemu_dir / "bios-microvm.bin").write_bytes(b"qboot")
    elif default == "seabios":
        (prefix / "share" / "seabios" / "bios-microvm.bin").write_bytes(b"SeaBIOS for microvm")
    return str(exe)


@pytest.mark.parametrize(
    ("default", "passed"), [("link", False), ("copy", False), ("none", False), ("seabios", True)]
)
def test_microvm_boots_qboot_with_every_binary(tmp_path: Path, default: str, passed: bool) -> None:
    """No -bios on microvm means qboot: the binary's own qboot.rom is passed where its tree
    would give microvm another firmware, and only there."""
    exe = microvm_tree(tmp_path, default)
    qboot = str((tmp_path / "usr" / "share" / "qemu").resolve() / "qboot.rom")
    assert qemu.microvm_bios(exe) == (qboot if passed else None)
    for machine in ("microvm", "microvm,acpi=off"):
        cmd = qemu_command(qemu=exe, machine=machine)
        assert ("-bios" in cmd) == passed
        if passed:
            assert cmd[cmd.index("-bios") + 1] == qboot
    assert "-bios" not in qemu_command(qemu=exe, machine="pc")
    cmd = qemu_command(qemu=exe, machine="microvm", bios="fw.bin")  # the caller's firmware
    assert cmd[cmd.index("-bios") + 1] == "fw.bin" and cmd.count("-bios") == 1


def test_singlestep_is_probed(tmp_path: Path) -> None:
    old = fake_qemu(tmp_path / "qemu72", singlestep=True)
    new = fake_qemu(tmp_path / "qemu10")
    assert qemu.singlestep_supported(str(old))
    assert not qemu.singlestep_supported(str(new))
    assert not qemu.singlestep_supported(str(tmp_path / "no-such-qemu"))


@pytest.mark.qemu
def test_the_installed_qemus_singlestep() -> None:
    """The probe against the binary's own answer: QEMU says "invalid option" when it refuses
    -singlestep."""
    exe = need_qemu()
    out = subprocess.run([exe, "-singlestep", "-version"], capture_output=True, text=True)
    assert qemu.singlestep_supported(exe) == (out.returncode == 0)
    assert qemu.singlestep_supported(exe) == ("-singlestep: invalid option" not in out.stderr)


# ---- every caller runs the binary $PVHFW_QEMU names ------------------------------------------


@pytest.fixture
def other_qemu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """$PVHFW_QEMU set to a (fake) QEMU in a tree of its own."""
    exe = fake_qemu(tmp_path / "qemu10" / "usr")
    monkeypatch.setenv(qemu.QEMU_ENV, str(exe))
    return exe


def test_the_test_kernels_runner_runs_it(other_qemu: Path) -> None:
    from tests.kernels.qemu import qemu_available
    from tests.kernels.qemu import qemu_command as runner_command

    cmd = runner_command(Path("k.elf"), accel="kvm", smp=2)
    assert cmd[0] == str(other_qemu)
    assert cmd[cmd.index("-cpu") + 1] == KVM_CPU and cmd[cmd.index("-smp") + 1] == "2"
    assert qemu_available()
    assert need_qemu() == str(other_qemu)


def test_record_fwcfg_runs_it_and_records_only_its_name(other_qemu: Path) -> None:
    from tools import record_fwcfg

    cmd = record_fwcfg.qemu_command("q35", "<bios>", "<pvhcheck>")
    assert cmd[0] == str(other_qemu)
    # the committed recordings' command line, but for the binary
    assert cmd[1:] == [
        "-M", "q35", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
        "-bios", "<bios>", "-kernel", "<pvhcheck>", "-append", "pvhcheck.fwdump",
        "-device", DEBUG_EXIT, "-smp", "2",
    ]  # fmt: skip


def test_boot_debian_runs_it(other_qemu: Path) -> None:
    from tools import boot_debian

    cmd = boot_debian.qemu_command(
        Path("bios.bin"), Path("vmlinux"), Path("initrd"), "microvm", "tcg", "console=ttyS0", "512"
    )
    assert cmd[0] == str(other_qemu)
    assert cmd[cmd.index("-M") + 1] == "microvm,pit=on"
    assert cmd[cmd.index("-cpu") + 1] == TCG_CPU
    cmd = boot_debian.qemu_command(
        Path("bios.bin"), Path("vmlinux"), Path("initrd"), "pc", "kvm", "console=ttyS0", "512"
    )
    assert cmd[cmd.index("-cpu") + 1] == KVM_CPU


def test_a_missing_qemu_stops_the_tools_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import boot_debian, record_fwcfg

    missing = tmp_path / "no-such-qemu"
    monkeypatch.setenv(qemu.QEMU_ENV, str(missing))
    want = f"{missing}: not found (set PVHFW_QEMU or install qemu-system-x86)\n"
    assert boot_debian.main(["--out", str(tmp_path / "bios.bin")]) == 1
    assert capsys.readouterr().err == f"boot_debian: {want}"
    assert record_fwcfg.main(["--out-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"record_fwcfg: {want}"


def test_the_firmware_benchmark_runs_it(other_qemu: Path) -> None:
    from bench import firmware

    opts = firmware.parse_args([])
    assert opts.qemu == str(other_qemu)
    tcg = firmware.qemu_command(opts.qemu, "pc", None, Path("k"), "tcg", log=Path("exec.log"))
    kvm = firmware.qemu_command(opts.qemu, "pc", None, Path("k"), "kvm")
    assert tcg[0] == kvm[0] == str(other_qemu)
    assert firmware.parse_args(["--qemu", "/x/qemu"]).qemu == "/x/qemu"


def test_pvhfw_bench_runs_it(other_qemu: Path) -> None:
    from bench import boot

    a = boot.parse_args([])
    assert a.qemu == str(other_qemu)
    request = LogRequest(EXEC_LOG_ITEMS)
    cmd = boot.qemu_command(a.qemu, "tcg", "pc", None, Path("k"), log=Path("l"), exec_log=request)
    assert cmd[0] == str(other_qemu)
    assert cmd[cmd.index("-d") + 1] == "exec,nochain,in_asm" and cmd[cmd.index("-D") + 1] == "l"


def test_the_benchmarks_take_qemus_own_firmware_files(other_qemu: Path) -> None:
    """qboot.rom and SeaBIOS's bios.bin come from the tree of the QEMU the benchmarks run."""
    from bench import boot, firmware

    share = other_qemu.parent.parent / "share"
    (share / "qemu").mkdir(parents=True)
    (share / "qemu" / "qboot.rom").write_bytes(b"qboot")
    (share / "seabios").mkdir()
    (share / "seabios" / "bios.bin").write_bytes(b"seabios")
    qboot = str(share.resolve() / "qemu" / "qboot.rom")
    images = {"pvh": Path("pvh.bin"), "floor": Path("floor.bin"), "any": Path("any.bin")}
    by_key = {fw.key: fw for fw in firmware.firmwares(images, str(other_qemu))}
    assert by_key["qboot"].bios == qboot
    path = boot.PATH_BY_KEY["qboot-bzimage"]
    assert path.bios("q35", {}, str(other_qemu)) == qboot
    seabios = boot.PATH_BY_KEY["seabios-vmlinux"].bios("microvm", {}, str(other_qemu))
    assert seabios == str(share.resolve() / "seabios" / "bios.bin")


def test_a_missing_qemu_stops_the_benchmarks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import boot, firmware

    missing = str(tmp_path / "no-such-qemu")
    monkeypatch.setenv(qemu.QEMU_ENV, missing)
    assert firmware.main(["--skip-emu"]) == 2
    assert capsys.readouterr().err == (
        f"{missing} not found: install qemu-system-x86, set PVHFW_QEMU or --qemu, "
        "or pass --skip-tcg --skip-kvm\n"
    )
    assert boot.main([]) == 2
    assert capsys.readouterr().err == (
        f"pvhfw-bench: {missing} not found: install qemu-system-x86 (tools/setup.sh), "
        "or set PVHFW_QEMU or --qemu\n"
    )
