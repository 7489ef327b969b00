"""tools/guest_view.py and the initramfs's modules, without QEMU: the view's shell code run by
busybox over a fake /sys, the parser, the comparison and its allowlist, the boot command, the
module resolution (synthetic .ko files; the Debian kernel's own when it is cached)."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from tests.support import need
from tests.test_tools import read_newc
from tools import debian_kernel as dk
from tools import guest_view as gv
from tools import initramfs as ir
from tools.debian_kernel import DebianKernel, ToolError
from tools.qemu import microvm_bios

OEM_HEX = "0b05000e01696f2e73797374656d642e63726564656e7469616c3a70766866773d310000"
BUSYBOX_APPLETS = ("cat", "dd", "grep", "od", "sed", "sh", "stat", "tr")


# ---- the shell code, over a fake tree ----------------------------------------------------


def write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


DMESG = """\
[    0.000000] Linux version 6.1.0
[    0.000000] DMI: Vendor X Prod, BIOS 1.0 01/01/2020
[    0.002000] x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  
[    0.010000] ACPI: RSDP 0x00000000000F5990 000014 (v00 BOCHS )
[    0.020000] ACPI: Added _OSI(Module Device)
[    0.030000] MPTABLE: OEM ID: BOCHSCPU
[    0.030001] MPTABLE: APIC at: 0xFEE00000
[    0.500000] smp: Brought up 1 node, 2 CPUs
[    0.500001] smpboot: Total of 2 processors activated (10400.56 BogoMIPS)
[    0.600000] PCI: MMCONFIG for domain 0000 [bus 00-ff] at [mem 0xb0000000-0xbfffffff] (base 0xb0000000)
[    0.600001] PCI: ECAM [mem 0xb0000000-0xbfffffff] (base 0xb0000000) for domain 0000 [bus 00-ff]
[    0.700000] SMBIOS 2.8 present.
"""  # noqa: E501, W291 (a kernel log line, trailing blanks and all)


@pytest.fixture
def fake_guest(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A tree standing for the guest's / and a PATH of busybox applets; run_view stands in
    for dmesg (dmesg.txt) and insmod (virtio_blk fails to load)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    need(os.access(busybox, os.X_OK), "busybox not found (apt-get install busybox-static)")
    root = tmp_path / "root"
    dmi = root / "sys/class/dmi/id"
    write(dmi / "sys_vendor", "Vendor X\n")
    write(dmi / "product_name", "Prod\n")
    write(dmi / "chassis_asset_tag", "\n")
    write(dmi / "modalias", "dmi:bvnSeaBIOS:\n")
    write(dmi / "uevent", "MODALIAS=dmi:bvnSeaBIOS:\n")
    (dmi / "power").mkdir()
    # a regular file that cannot be read even by root (the read fails with EIO)
    (dmi / "product_serial").symlink_to("/proc/self/mem")
    write(root / "sys/firmware/dmi/entries/11-0/raw", bytes.fromhex(OEM_HEX))
    write(root / "sys/firmware/dmi/entries/1-0/raw", b"\x01\x04\x00\x01\0\0")
    bridge = root / "sys/bus/pci/devices/0000:00:00.0"
    write(bridge / "vendor", "0x8086\n")
    write(bridge / "device", "0x1237\n")
    write(bridge / "config", bytes(256))
    port = root / "sys/bus/pci/devices/0000:00:03.0"
    write(port / "vendor", "0x1b36\n")
    write(port / "device", "0x000c\n")
    write(port / "config", bytes(256) + bytes.fromhex("01008214") + bytes(4096 - 260))
    write(root / "sys/devices/system/cpu/online", "0-1\n")
    write(root / "sys/block/vda/size", "2048\n")
    write(root / "sys/class/net/eth0/address", "52:54:00:70:76:68\n")
    write(root / "sys/class/net/lo/address", "00:00:00:00:00:00\n")
    write(root / gv.MODULES_ORDER, "virtio\nvirtio_blk\n")
    write(root / gv.MODULES_DIR / "virtio.ko", b"")
    write(root / gv.MODULES_DIR / "virtio_blk.ko", b"")
    (root / "tmp").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in BUSYBOX_APPLETS:
        (bin_dir / applet).symlink_to(busybox)
    write(tmp_path / "dmesg.txt", DMESG)
    env = {"PATH": str(bin_dir), gv.ROOT_ENV: str(root)}
    return root, env


def run_view(env: dict[str, str]) -> str:
    # busybox sh runs its own applets before PATH: stand-ins for dmesg and insmod are functions
    dmesg = Path(env[gv.ROOT_ENV]).parent / "dmesg.txt"
    stand_ins = (
        f'dmesg() {{ [ "$1" = -n ] && return 0; cat {dmesg}; }}\n'
        "insmod() { case $1 in *virtio_blk.ko) return 1 ;; esac; }\n"
    )
    script = stand_ins + gv.view_script() + "pvhfw_view\n"
    proc = subprocess.run(
        [f"{env['PATH']}/sh", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_view_script_over_fake_tree(fake_guest: tuple[Path, dict[str, str]]) -> None:
    _, env = fake_guest
    out = run_view(env)
    lines = out.splitlines()
    assert lines[0] == "PVHFW-VIEW view.format=1" and lines[-1] == "PVHFW-VIEW view.end=ok"
    assert all(ln.startswith(gv.VIEW_PREFIX) for ln in lines), out
    assert gv.parse_view(out) == {
        "view.format": "1",
        "module.virtio": "loaded",
        "module.virtio_blk": "failed",
        "dmi.chassis_asset_tag": "",
        "dmi.product_name": "Prod",
        "dmi.product_serial": gv.UNREADABLE,
        "dmi.sys_vendor": "Vendor X",
        "smbios11.11-0": OEM_HEX,
        "pci.0000:00:00.0.id": "8086:1237",
        "pci.0000:00:00.0.config": "256",
        "pci.0000:00:03.0.id": "1b36:000c",
        "pci.0000:00:03.0.config": "4096",
        "pci.0000:00:03.0.ext_cap": "01008214",
        "dmesg.mmconfig.1": "PCI: MMCONFIG for domain 0000 [bus 00-ff] at "
        "[mem 0xb0000000-0xbfffffff] (base 0xb0000000)",
        "dmesg.ecam.1": "PCI: ECAM [mem 0xb0000000-0xbfffffff] (base 0xb0000000) for domain "
        "0000 [bus 00-ff]",
        "dmesg.pat.1": "x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT",
        "dmesg.smbios.1": "SMBIOS 2.8 present.",
        "dmesg.dmi.1": "DMI: Vendor X Prod, BIOS 1.0 01/01/2020",
        "dmesg.brought_up.1": "smp: Brought up 1 node, 2 CPUs",
        "dmesg.smpboot_total.1": "smpboot: Total of 2 processors activated",
        "dmesg.mptable.1": "MPTABLE: OEM ID: BOCHSCPU",
        "dmesg.mptable.2": "MPTABLE: APIC at: 0xFEE00000",
        "dmesg.acpi.count": "2",
        "cpus.online": "0-1",
        "block.vda.sectors": "2048",
        "net.eth0.address": "52:54:00:70:76:68",
        "net.lo.address": "00:00:00:00:00:00",
        "view.end": "ok",
    }


def test_view_script_without_modules_dmi_or_pci(fake_guest: tuple[Path, dict[str, str]]) -> None:
    """microvm: no SMBIOS, no PCI; an initramfs without modules: those keys are just absent."""
    root, env = fake_guest
    for d in ("sys/class/dmi", "sys/firmware/dmi", "sys/bus/pci", "lib"):
        shutil.rmtree(root / d)
    view = gv.parse_view(run_view(env))
    assert not gv.select(view, ["module.*", "dmi.*", "smbios11.*", "pci.*"])
    assert view["cpus.online"] == "0-1" and view["block.vda.sectors"] == "2048"


def test_init_runs_the_view_only_when_asked() -> None:
    script = ir.init_script()
    assert gv.view_script() in script
    call = gv.view_call()
    assert call in script and script.index(call) < script.index("pvhfw-exit\n")
    sh = shutil.which("sh")
    need(sh is not None, "no sh to run the view's guard with")
    assert sh is not None
    for cmdline, runs in (
        ("console=ttyS0 pvhfw.view", True),
        ("pvhfw.view console=ttyS0", True),
        ("console=ttyS0", False),
        ("console=ttyS0 pvhfw.viewer pvhfw.view=0", False),
    ):
        guard = call.replace("$(cat /proc/cmdline 2>/dev/null)", cmdline)
        out = subprocess.run(
            [sh, "-c", "pvhfw_view() { echo VIEW; }\n" + guard],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert (out == "VIEW\n") is runs, cmdline


# ---- the parser ----------------------------------------------------------------------------


def serial(*lines: str) -> str:
    return "".join(f"{ln}\r\n" for ln in lines)


def test_parse_view_reads_lines_among_other_output() -> None:
    text = serial(
        "[    1.0] virtio_net virtio1 eth0: renamed",
        "PVHFW-VIEW view.format=1",
        "PVHFW-VIEW dmi.product_family=",
        "PVHFW-VIEW dmesg.dmi.1=DMI: A B, BIOS x=y 1/1/2000",
        "not PVHFW-VIEW x=y: only at the start of a line",
        "PVHFW-VIEW view.end=ok",
    )
    assert gv.parse_view(text) == {
        "view.format": "1",
        "dmi.product_family": "",
        "dmesg.dmi.1": "DMI: A B, BIOS x=y 1/1/2000",
        "view.end": "ok",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PVHFW-USERSPACE-OK\n", "no PVHFW-VIEW lines"),
        (serial("PVHFW-VIEW view.format=9", "PVHFW-VIEW view.end=ok"), "view.format is '9'"),
        (serial("PVHFW-VIEW view.format=1", "PVHFW-VIEW cpus.online=0"), "incomplete"),
        (
            serial("PVHFW-VIEW view.format=1", "PVHFW-VIEW a=1", "PVHFW-VIEW a=2"),
            "key a appears twice",
        ),
    ],
)
def test_parse_view_refuses(text: str, message: str) -> None:
    with pytest.raises(gv.ViewError, match=message):
        gv.parse_view(text)


def test_smbios_strings() -> None:
    assert gv.smbios_strings(OEM_HEX) == ["io.systemd.credential:pvhfw=1"]
    two = "0b05010002" + "6100" + "6200" + "00"  # type 11, count 2: "a", "b", end
    assert gv.smbios_strings(two) == ["a", "b"]
    for bad, message in (("zz", "not hex"), ("0b02", "bad header"), ("0b0500010161", "NUL")):
        with pytest.raises(gv.ViewError, match=message):
            gv.smbios_strings(bad)


# ---- the comparison ------------------------------------------------------------------------


REF = {
    "view.format": "1",
    "dmi.bios_vendor": "SeaBIOS",
    "dmi.sys_vendor": "V",
    "dmesg.dmi.1": "DMI: V P, BIOS 1.16.2 04/01/2014",
    "pci.0000:00:03.0.config": "4096",
    "cpus.online": "0-1",
    "view.end": "ok",
}


def test_compare_equal_and_allowed() -> None:
    assert gv.compare_views(REF, dict(REF)) == []
    ours = dict(REF, **{"dmi.bios_vendor": "pvhfw", "dmesg.dmi.1": "DMI: V P, BIOS 0.1 12/01/2026"})
    diffs = gv.compare_views(REF, ours)
    assert [d.key for d in diffs] == ["dmesg.dmi.1", "dmi.bios_vendor"]
    assert all(d.allowed for d in diffs) and gv.real_differences(diffs) == []
    del ours["dmi.bios_vendor"]  # a key allowed outright may be missing too
    assert gv.real_differences(gv.compare_views(REF, ours)) == []


def test_compare_reports_real_differences() -> None:
    ours = dict(REF)
    ours["dmesg.dmi.1"] = "DMI: W P, BIOS 0.1 12/01/2026"  # the part before ", BIOS" differs
    ours["pci.0000:00:03.0.config"] = "256"
    del ours["dmi.sys_vendor"]
    ours["dmesg.mptable.1"] = "MPTABLE: OEM ID: PVHFW"
    diffs = gv.compare_views(REF, ours)
    assert gv.real_differences(diffs) == diffs
    assert [(d.key, d.reference, d.other) for d in diffs] == [
        ("dmesg.dmi.1", "DMI: V P, BIOS 1.16.2 04/01/2014", "DMI: W P, BIOS 0.1 12/01/2026"),
        ("dmesg.mptable.1", None, "MPTABLE: OEM ID: PVHFW"),
        ("dmi.sys_vendor", "V", None),
        ("pci.0000:00:03.0.config", "4096", "256"),
    ]
    text = gv.format_differences(diffs)
    assert "dmi.sys_vendor: 'V' -> (absent)" in text
    # a masked key missing on one side is a real difference
    no_dmi = {k: v for k, v in REF.items() if k != "dmesg.dmi.1"}
    assert [d.key for d in gv.real_differences(gv.compare_views(REF, no_dmi))] == ["dmesg.dmi.1"]


def test_a_one_sided_allowance_permits_only_its_line_on_one_side() -> None:
    """Linux 6.12's early ECAM check line, which only a BIOS dated before 2016 gets."""
    window = "PCI: ECAM [mem 0xb0000000-0xbfffffff] (base 0xb0000000) for domain 0000 [bus 00-ff]"
    check = "PCI: ECAM [mem 0xb0000000-0xbfffffff] reserved as E820 entry"
    ref = dict(REF, **{"dmesg.ecam.1": window, "dmesg.ecam.2": check})
    ours = dict(REF, **{"dmesg.ecam.1": window})
    (diff,) = gv.compare_views(ref, ours)
    assert (diff.key, diff.reference, diff.other) == ("dmesg.ecam.2", check, None)
    assert diff.allowed and "2016" in diff.allowed
    assert gv.real_differences(gv.compare_views(ours, ref)) == []  # either side
    # the window itself may not differ, nor be missing, nor the check line be another line
    other = window.replace("0xb0000000)", "0xe0000000)")
    for bad in (
        dict(ours, **{"dmesg.ecam.1": other}),
        {k: v for k, v in ref.items() if k != "dmesg.ecam.1"},
        dict(ours, **{"dmesg.ecam.2": check.replace("E820 entry", "nothing")}),
    ):
        assert gv.real_differences(gv.compare_views(ref, bad)), bad


def test_every_allowance_has_a_reason_and_matches_a_view_key() -> None:
    type0 = ("bios_vendor", "bios_version", "bios_date", "bios_release", "ec_firmware_release")
    keys = {f"dmi.{n}" for n in type0} | {"dmesg.dmi.1", "dmesg.acpi.count", "dmesg.ecam.2"}
    for pattern, allow in gv.ALLOWED_DIFFERENCES.items():
        assert len(allow.reason) > 20, pattern
        assert any(gv.allowance(k) is allow for k in keys), pattern
    assert gv.allowance("dmi.sys_vendor") is None and gv.allowance("pci.x.config") is None


def test_select_device_keys() -> None:
    view = dict(
        REF, **{"block.vda.sectors": "2048", "dmesg.brought_up.1": "x", "net.lo.address": ""}
    )
    assert set(gv.select(view, gv.DEVICE_KEYS)) == {
        "pci.0000:00:03.0.config", "cpus.online", "block.vda.sectors", "dmesg.brought_up.1",
        "net.lo.address",
    }  # fmt: skip


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def log(name: str, view: dict[str, str]) -> Path:
        path = tmp_path / name
        path.write_text(serial(*(f"{gv.VIEW_PREFIX}{k}={v}" for k, v in view.items())))
        return path

    ref = log("ref.log", REF)
    assert (
        gv.main(["compare", str(ref), str(log("same.log", dict(REF, **{"dmi.bios_date": "x"})))])
        == 0
    )
    assert "[allowed:" in capsys.readouterr().out
    other = log("other.log", dict(REF, **{"dmi.sys_vendor": "W", "cpus.online": "0"}))
    assert gv.main(["compare", str(ref), str(other)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "cpus.online: '0-1' -> '0'",
        "dmi.sys_vendor: 'V' -> 'W'",
    ]
    assert gv.main(["compare", "--devices", str(ref), str(other)]) == 1
    assert capsys.readouterr().out == "cpus.online: '0-1' -> '0'\n"
    assert gv.main(["parse", str(ref)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "dmi.bios_vendor=SeaBIOS"
    assert gv.main(["parse", str(tmp_path / "missing.log")]) == 1
    assert "missing.log: No such file" in capsys.readouterr().err


# ---- the QEMU command ----------------------------------------------------------------------


def test_view_command_differs_only_by_bios() -> None:
    for machine in ("pc", "q35", "microvm"):
        common = {"kernel": "vmlinux", "initrd": "initrd.gz", "disk": "disk.raw"}
        ref = gv.view_command(machine, **common)
        ours = gv.view_command(machine, bios="fw.bin", **common)
        i = ours.index("-bios")
        assert ours[i + 1] == "fw.bin" and ours.count("-bios") == 1
        # QEMU's default: no -bios, but qboot.rom on microvm where the QEMU's tree would give
        # it another firmware (tools.qemu.microvm_bios: Debian's QEMU 10)
        default = microvm_bios() if machine == "microvm" else None
        if default is None:
            assert ours[:i] + ours[i + 2 :] == ref and "-bios" not in ref
        else:
            assert ref == [*ours[: i + 1], default, *ours[i + 2 :]]
        assert ref[ref.index("-m") + 1] == "512" and ref[ref.index("-smp") + 1] == "2"
        assert ref[ref.index("-cpu") + 1] == "max"
        append = ref[ref.index("-append") + 1].split()
        assert append[0] == "console=ttyS0" and append[-1] == gv.VIEW_WORD
        devices = [ref[j + 1] for j, a in enumerate(ref) if a == "-device"]
        netdev = ref[ref.index("-netdev") + 1]
        assert "restrict=on" in netdev.split(",")
        smbios = [ref[j + 1] for j, a in enumerate(ref) if a == "-smbios"]
        if machine == "microvm":
            assert ref[ref.index("-M") + 1] == "microvm,pit=on"
            assert any(w.startswith("tsc_early_khz=") for w in append)
            assert smbios == []
            assert [d.split(",")[0] for d in devices[1:]] == [
                "virtio-blk-device", "virtio-net-device",
            ]  # fmt: skip
            continue
        assert smbios == [
            f"type=1,manufacturer={gv.TEST_VENDOR},serial={gv.TEST_SERIAL}",
            f"type=11,value={gv.OEM_STRING}",
        ]
        kinds = [d.split(",")[0] for d in devices[1:]]
        if machine == "q35":
            assert kinds == ["virtio-blk-pci", "pcie-root-port", "virtio-net-pci"]
            assert devices[-1].endswith(",bus=pvhfw-port")
        else:
            assert kinds == ["virtio-blk-pci", "virtio-net-pci"]
        assert f"mac={gv.NIC_MAC}" in devices[-1].split(",")


def test_write_disk(tmp_path: Path) -> None:
    disk = gv.write_disk(tmp_path / "d.raw")
    assert disk.stat().st_size == gv.DISK_BYTES and gv.DISK_BYTES % 512 == 0


# ---- kernel modules ------------------------------------------------------------------------


def fake_ko(modinfo: bytes) -> bytes:
    """A minimal relocatable ELF64 with a .modinfo section (and its name table)."""
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    body = modinfo + shstrtab
    shoff = 64 + len(body) + (-len(body) % 8)
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2
    )  # fmt: skip

    def shdr(name: int, typ: int, off: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, typ, 0, 0, off, size, 0, 0, 1, 0)

    sections = (
        shdr(0, 0, 0, 0)
        + shdr(1, 1, 64, len(modinfo))
        + shdr(10, 3, 64 + len(modinfo), len(shstrtab))
    )
    return ehdr + body + bytes(shoff - 64 - len(body)) + sections


def fake_modules(
    moddir: Path, deps: dict[str, str], builtin: tuple[str, ...] = (), suffix: str = ".ko"
) -> None:
    """Module files as a kernel package holds them; *suffix* ".ko.xz" compresses them as
    Debian 13's (xz with CRC32 checks, as kmod and the kernel's build write them)."""
    for name, depends in deps.items():
        info = b"license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode() + b"\0"
        ko = fake_ko(info)
        if suffix == ".ko.xz":
            ko = lzma.compress(ko, check=lzma.CHECK_CRC32)
        write(moddir / "kernel/drivers" / f"{name.replace('_', '-')}{suffix}", ko)
    write(moddir / "modules.builtin", "".join(f"kernel/{b}.ko\n" for b in builtin))


def test_kernel_modules_dependencies_first(tmp_path: Path) -> None:
    fake_modules(
        tmp_path,
        {"virtio_net": "virtio,net_failover,virtio_ring", "net_failover": "failover",
         "failover": "", "virtio": "virtio_ring", "virtio_ring": "", "virtio_blk": "virtio"},
        builtin=("net/core/failover_builtin",),
    )  # fmt: skip
    order = ir.kernel_modules(tmp_path, ["virtio-blk", "virtio_net", "failover_builtin"])
    assert [n for n, _ in order] == [
        "virtio_ring", "virtio", "virtio_blk", "failover", "net_failover", "virtio_net",
    ]  # fmt: skip
    assert order[2][1] == tmp_path / "kernel/drivers/virtio-blk.ko"
    with pytest.raises(ToolError, match="no module e1000"):
        ir.kernel_modules(tmp_path, ["e1000"])


def test_compressed_modules_are_found_and_go_in_decompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux 6.12's modules are .ko.xz: their .modinfo is read through the compression and
    the initramfs gets the plain ELF as <name>.ko, which /init's insmod loads as before."""
    assert [ir.module_name(n) for n in ("a-b.ko", "a-b.ko.xz", "c.ko.zst", "d.ko.gz")] == [
        "a_b", "a_b", "c", "d",
    ]  # fmt: skip
    assert ir.module_suffix("x.ko.xz") == ".ko.xz" and ir.module_suffix("x.ko.bz2") is None
    monkeypatch.setenv("PVHFW_CACHE", str(tmp_path / "cache"))
    fake_modules(tmp_path / "mods", {"virtio": "", "virtio_blk": "virtio"}, suffix=".ko.xz")
    write(tmp_path / "mods/kernel/drivers/notes.ko.txt", b"not a module")
    modules = ir.kernel_modules(tmp_path / "mods", ["virtio-blk"])
    assert [(n, p.name) for n, p in modules] == [
        ("virtio", "virtio.ko.xz"), ("virtio_blk", "virtio-blk.ko.xz"),
    ]  # fmt: skip
    busybox = tmp_path / "busybox"
    busybox.write_bytes(ir.debug_exit_elf())
    archive = ir.ensure_initramfs(busybox=busybox, modules=modules)
    records = {r.name: r for r in read_newc(gzip.decompress(archive.read_bytes()))}
    blk = records[f"{gv.MODULES_DIR}/virtio_blk.ko"].data
    assert blk.startswith(b"\x7fELF") and blk == lzma.decompress(modules[1][1].read_bytes())
    assert ir.module_depends(modules[1][1]) == ["virtio"]
    (tmp_path / "mods/kernel/drivers/virtio.ko.xz").write_bytes(b"\xfd7zXZ\0broken")
    with pytest.raises(ToolError, match=r"virtio\.ko\.xz: "):
        ir.kernel_modules(tmp_path / "mods", ["virtio_blk"])


def test_kernel_modules_refuses_a_cycle(tmp_path: Path) -> None:
    fake_modules(tmp_path, {"a": "b", "b": "a"})
    with pytest.raises(ToolError, match="depend on each other"):
        ir.kernel_modules(tmp_path, ["a"])


def test_initramfs_with_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVHFW_CACHE", str(tmp_path / "cache"))
    busybox = tmp_path / "busybox"
    busybox.write_bytes(ir.debug_exit_elf())
    fake_modules(tmp_path / "mods", {"virtio": "", "virtio_blk": "virtio"})
    modules = ir.kernel_modules(tmp_path / "mods", ["virtio_blk"])
    plain = ir.ensure_initramfs(busybox=busybox)
    with_mods = ir.ensure_initramfs(busybox=busybox, modules=modules)
    assert with_mods != plain and ir.ensure_initramfs(busybox=busybox, modules=modules) == with_mods
    records = {r.name: r for r in read_newc(gzip.decompress(with_mods.read_bytes()))}
    assert records[gv.MODULES_ORDER].data == b"virtio\nvirtio_blk\n"
    assert records[f"{gv.MODULES_DIR}/virtio_blk.ko"].data == modules[1][1].read_bytes()
    assert stat.S_ISDIR(records["lib/modules"].mode)
    plain_records = {r.name for r in read_newc(gzip.decompress(plain.read_bytes()))}
    assert not any(n.startswith("lib") for n in plain_records)
    for applet in ("insmod", "od", "sed", "stat", "tr"):  # what the view runs
        assert records[f"bin/{applet}"].data == b"busybox"
    # the cache name follows the modules' contents
    (tmp_path / "mods/kernel/drivers/virtio.ko").write_bytes(fake_ko(b"depends=\0"))
    assert ir.default_path(modules=modules) != with_mods


def test_view_modules_come_from_the_kernel_package(tmp_path: Path) -> None:
    root = tmp_path / "debian/pkg/root"
    kernel = DebianKernel(
        "pkg", "6.1.0-50-cloud-amd64", tmp_path / "x.deb",
        root / "boot/vmlinuz-6.1.0-50-cloud-amd64", tmp_path / "vmlinux",
        root / "boot/config-6.1.0-50-cloud-amd64",
    )  # fmt: skip
    assert kernel.modules_dir == root / "lib/modules/6.1.0-50-cloud-amd64"
    fake_modules(
        kernel.modules_dir,
        {"virtio_ring": "", "virtio": "virtio_ring", "virtio_pci": "virtio,virtio_ring",
         "virtio_blk": "virtio", "virtio_net": "virtio"},
        builtin=("drivers/virtio/virtio_mmio",),
    )  # fmt: skip
    assert [n for n, _ in ir.view_modules(kernel)] == [
        "virtio_ring", "virtio", "virtio_pci", "virtio_blk", "virtio_net",
    ]  # fmt: skip


def test_view_modules_of_a_merged_usr_package(tmp_path: Path) -> None:
    """Debian 13's kernel packages have their modules in usr/lib/modules/<version>."""
    root = tmp_path / "debian/pkg/root"
    version = "6.12.117+deb13-cloud-amd64"
    kernel = DebianKernel(
        "pkg", version, tmp_path / "x.deb", root / f"boot/vmlinuz-{version}",
        tmp_path / "vmlinux", root / f"boot/config-{version}",
    )  # fmt: skip
    fake_modules(
        root / "usr/lib/modules" / version,
        {"virtio_blk": "", "failover": "", "net_failover": "failover",
         "virtio_net": "net_failover"},
        builtin=("drivers/virtio/virtio_pci", "drivers/virtio/virtio_mmio"),
        suffix=".ko.xz",
    )  # fmt: skip
    assert kernel.modules_dir == root / "usr/lib/modules" / version
    assert [n for n, _ in ir.view_modules(kernel)] == [
        "virtio_blk", "failover", "net_failover", "virtio_net",
    ]  # fmt: skip


def test_initramfs_cli_package_needs_view_modules(capsys: pytest.CaptureFixture[str]) -> None:
    assert ir.main(["--package", "linux-image-x"]) == 1
    assert capsys.readouterr().err == "initramfs: --package goes with --view-modules\n"
    assert ir.main(["--series", "6.12"]) == 1
    assert capsys.readouterr().err == "initramfs: --series goes with --view-modules\n"


def test_initramfs_cli_series_picks_its_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[str | None] = []

    def kernel(*, package: str | None = None) -> DebianKernel:
        asked.append(package)
        raise ToolError("offline")

    monkeypatch.setattr(ir, "ensure_debian_kernel", kernel)
    assert ir.main(["--view-modules", "--series", "6.12"]) == 1
    assert ir.main(["--view-modules"]) == 1
    assert asked == [dk.TRIXIE_PACKAGE, None]
    assert capsys.readouterr().err == "initramfs: offline\n" * 2
