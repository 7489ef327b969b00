"""The guest view: what a Linux guest sees of the machine its firmware handed it, as lines.

Booted with the word ``pvhfw.view`` on its command line, the boot-test initramfs's /init
(tools/initramfs.py) loads the kernel modules packed beside it (the virtio drivers, for the
disk and the NIC) and prints, before it ends QEMU, one ``PVHFW-VIEW key=value`` line per
fact, in this order:

    view.format=1                          the layout of these lines
    module.<name>=loaded|failed            each module /init loaded (busybox insmod)
    dmi.<file>=<value>                     every /sys/class/dmi/id file but modalias and
                                           uevent; <unreadable> when it cannot be read
    smbios11.<entry>=<hex>                 /sys/firmware/dmi/entries/11-*/raw (OEM strings)
    pci.<address>.id=<vendor>:<device>     each /sys/bus/pci/devices/* (hex, no 0x)
    pci.<address>.config=<bytes>           the size of its config file (256, or 4096 with
                                           extended configuration space: MMCONFIG)
    pci.<address>.ext_cap=<hex>            with 4096: bytes 0x100-0x103, the first extended
                                           capability header (zeros where MMCONFIG decodes
                                           nothing: QEMU reads unassigned memory as 0)
    dmesg.<what>.<n>=<line>                the n-th kernel log line matching DMESG_LINES
    dmesg.acpi.count=<n>                   how many kernel log lines hold "ACPI: "
    cpus.online=<list>                     /sys/devices/system/cpu/online
    block.<name>.sectors=<n>               each /sys/block/* and its size (512-byte sectors)
    net.<name>.address=<mac>               each /sys/class/net/* and its address
    view.end=ok                            the view is complete

Kernel log lines are taken from busybox dmesg with the timestamp, a BogoMIPS figure (TSC
calibration under TCG varies from boot to boot) and trailing blanks cut. The console log
level is set to 1 first, so no kernel message splits a view line. Only applets Debian's
busybox-static has are used.

:func:`parse_view` turns serial output into a dict; :func:`compare_views` reports the keys on
which two views differ, each marked allowed (with the reason) when :data:`ALLOWED_DIFFERENCES`
lists it: that table is the one list of what may legitimately differ between pvhfw and QEMU's
own firmwares (SeaBIOS, qboot), for the tests and the firmware's documentation.
:func:`view_command` is the QEMU command of a view boot, the same for every firmware but for
``-bios``.

CLI: ``python -m tools.guest_view parse LOG`` prints a view's lines; ``python -m
tools.guest_view compare REFERENCE_LOG LOG [--devices]`` prints the differences and exits 1
when one is not allowed (``--devices``: the device keys only, as on microvm).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.guest import tcg_kernel_args
from tools.qemu import qemu_command

VIEW_WORD = "pvhfw.view"  # the kernel command-line word that asks /init for the view
VIEW_PREFIX = "PVHFW-VIEW "
VIEW_FORMAT = "1"
VIEW_END = "ok"
UNREADABLE = "<unreadable>"
DMI_SKIPPED = ("modalias", "uevent")  # derived from the other values / not a value
ROOT_ENV = "PVHFW_VIEW_ROOT"  # a directory standing for / (the unit tests' fake sysfs)

# The modules the view loads, with their dependencies (tools/initramfs.py resolves them from
# the kernel package): virtio over PCI (pc, q35) and MMIO (microvm), its disk and NIC.
VIEW_MODULES = ("virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net")
MODULES_DIR = "lib/modules"  # in the initramfs: <name>.ko files and the order file
MODULES_ORDER = "lib/modules/pvhfw.order"  # module names, one a line, dependencies first

# (key, fixed string): the kernel log lines the view keeps, as dmesg.<key>.<n>.
DMESG_LINES: tuple[tuple[str, str], ...] = (
    ("mmconfig", "MMCONFIG"),
    ("ecam", "PCI: ECAM"),  # the same window: Linux 6.12 says ECAM where 6.1 says MMCONFIG
    ("pat", "x86/PAT"),
    ("smbios", "SMBIOS "),
    ("dmi", "DMI:"),
    ("brought_up", "Brought up"),
    ("smpboot_total", "smpboot: Total"),
    ("mptable", "MPTABLE"),
    ("pm_timer", "PM-Timer IO Port"),  # where the chipset's ACPI PM block is
)
DMESG_COUNTED = ("acpi", "ACPI: ")  # only the number of these lines: dmesg.acpi.count

_VIEW_LINE = re.compile(r"^PVHFW-VIEW ([^=\s]+)=(.*?)\r?$", re.MULTILINE)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def view_script() -> str:
    """The shell function ``pvhfw_view`` (busybox sh) that prints the view; /init calls it
    when :data:`VIEW_WORD` is on the command line. ``$PVHFW_VIEW_ROOT`` (unset in the guest)
    stands for /, so the tests can run it over a fake tree."""
    skipped = "|".join(DMI_SKIPPED)
    greps = "\n".join(f"    pvhfw_view_dmesg {key} {_sh_quote(text)}" for key, text in DMESG_LINES)
    counted_key, counted_text = DMESG_COUNTED
    return f"""\
# The guest view (tools/guest_view.py): PVHFW-VIEW key=value lines.
pvhfw_view_line() {{ printf '{VIEW_PREFIX}%s=%s\\n' "$1" "$2"; }}
pvhfw_view_dmesg() {{
    grep -F -e "$2" "$r/tmp/pvhfw-dmesg" | {{
        i=0
        while IFS= read -r line; do i=$((i + 1)); pvhfw_view_line "dmesg.$1.$i" "$line"; done
    }}
}}
pvhfw_view() {{
    r=${{{ROOT_ENV}-}}
    dmesg -n 1 2>/dev/null  # no kernel message in the middle of a view line
    pvhfw_view_line view.format {VIEW_FORMAT}
    if [ -f "$r/{MODULES_ORDER}" ]; then
        for m in $(cat "$r/{MODULES_ORDER}"); do
            if insmod "$r/{MODULES_DIR}/$m.ko" 2>/dev/null; then s=loaded; else s=failed; fi
            pvhfw_view_line "module.$m" "$s"
        done
    fi
    for f in "$r"/sys/class/dmi/id/*; do
        [ -f "$f" ] || continue
        n=${{f##*/}}
        case $n in {skipped}) continue ;; esac
        if v=$(cat "$f" 2>/dev/null); then :; else v='{UNREADABLE}'; fi
        pvhfw_view_line "dmi.$n" "$v"
    done
    for d in "$r"/sys/firmware/dmi/entries/11-*; do
        [ -f "$d/raw" ] || continue
        pvhfw_view_line "smbios11.${{d##*/}}" "$(od -An -v -tx1 "$d/raw" | tr -d ' \\n')"
    done
    for d in "$r"/sys/bus/pci/devices/*; do
        [ -d "$d" ] || continue
        a=${{d##*/}}
        v=$(cat "$d/vendor"); p=$(cat "$d/device")
        pvhfw_view_line "pci.$a.id" "${{v#0x}}:${{p#0x}}"
        s=$(stat -L -c %s "$d/config")
        pvhfw_view_line "pci.$a.config" "$s"
        if [ "$s" -gt 256 ]; then
            x=$(dd if="$d/config" bs=4 skip=64 count=1 2>/dev/null | od -An -v -tx1)
            pvhfw_view_line "pci.$a.ext_cap" "$(echo $x | tr -d ' ')"
        fi
    done
    dmesg | sed -e 's/^\\[[ 0-9.]*\\] //' -e 's/ ([0-9.]* BogoMIPS)//' -e 's/ *$//' \\
        >"$r/tmp/pvhfw-dmesg"
{greps}
    n=$(grep -c -F -e {_sh_quote(counted_text)} "$r/tmp/pvhfw-dmesg")
    pvhfw_view_line dmesg.{counted_key}.count "$n"
    pvhfw_view_line cpus.online "$(cat "$r/sys/devices/system/cpu/online")"
    for d in "$r"/sys/block/*; do
        [ -d "$d" ] || continue
        pvhfw_view_line "block.${{d##*/}}.sectors" "$(cat "$d/size")"
    done
    for d in "$r"/sys/class/net/*; do
        [ -d "$d" ] || continue
        pvhfw_view_line "net.${{d##*/}}.address" "$(cat "$d/address")"
    done
    pvhfw_view_line view.end {VIEW_END}
}}
"""


def view_call() -> str:
    """The /init lines that run the view when the command line holds :data:`VIEW_WORD`."""
    return f'case " $(cat /proc/cmdline 2>/dev/null) " in *" {VIEW_WORD} "*) pvhfw_view ;; esac\n'


# ---- reading a view ------------------------------------------------------------------------


class ViewError(Exception):
    """Serial output without a complete, well-formed view; the message says what is wrong."""


GuestView = dict[str, str]


def parse_view(serial: str) -> GuestView:
    """The view in *serial* (a guest's console output) as {key: value}.

    Lines are ``PVHFW-VIEW key=value`` at the start of a line (CR before LF dropped; any
    other output between them ignored). Raises ViewError without a ``view.format`` line of
    this format, without the closing ``view.end``, or with a key given twice."""
    view: GuestView = {}
    for m in _VIEW_LINE.finditer(serial):
        key, value = m[1], m[2]
        if key in view:
            raise ViewError(f"guest view: key {key} appears twice")
        view[key] = value
    if not view:
        raise ViewError(f"guest view: no {VIEW_PREFIX.strip()} lines (was {VIEW_WORD} passed?)")
    if view.get("view.format") != VIEW_FORMAT:
        raise ViewError(
            f"guest view: view.format is {view.get('view.format')!r}, expected {VIEW_FORMAT!r}"
        )
    if view.get("view.end") != VIEW_END:
        raise ViewError("guest view: incomplete (no view.end line: the guest stopped early)")
    return view


def smbios_strings(raw_hex: str) -> list[str]:
    """The strings of one SMBIOS structure given as hex (a ``smbios11.*`` value): the
    NUL-terminated strings after its formatted part (whose length is byte 1)."""
    try:
        raw = bytes.fromhex(raw_hex)
    except ValueError as e:
        raise ViewError(f"SMBIOS structure {raw_hex[:16]!r}...: not hex") from e
    if len(raw) < 4 or raw[1] < 4 or raw[1] > len(raw):
        raise ViewError(f"SMBIOS structure of {len(raw)} bytes: bad header")
    area = raw[raw[1] :]
    end = area.find(b"\0\0")
    if end < 0:
        raise ViewError("SMBIOS structure: string area without its double NUL")
    return [s.decode("latin-1") for s in area[:end].split(b"\0") if s]


# ---- comparing views -----------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """Why a key may differ. ``mask``: a regular expression; only what it matches may differ
    (both values are compared with its matches cut). ``one_sided``: a regular expression;
    the key may be on one side only, with a value it matches in full (and nothing else may
    differ). Neither: the values may differ entirely, and the key may be on one side only."""

    reason: str
    mask: str | None = None
    one_sided: str | None = None

    def permits(self, reference: str | None, other: str | None) -> bool:
        """These two values (None: the key is absent on that side) may differ."""
        if self.mask is None and self.one_sided is None:
            return True
        if reference is not None and other is not None:
            return self.mask is not None and (
                re.sub(self.mask, "", reference) == re.sub(self.mask, "", other)
            )
        present = reference if other is None else other
        return (
            self.one_sided is not None
            and present is not None
            and re.fullmatch(self.one_sided, present) is not None
        )


_TYPE0 = "SMBIOS type 0 (BIOS Information) is the firmware's own structure, not QEMU's: "
# The one list of what may legitimately differ between QEMU's firmware and pvhfw in a guest
# view (key patterns in fnmatch syntax). Anything else that differs is a firmware difference.
ALLOWED_DIFFERENCES: dict[str, Allowance] = {
    "dmi.bios_vendor": Allowance(_TYPE0 + "its vendor string (SeaBIOS: 'SeaBIOS')."),
    "dmi.bios_version": Allowance(_TYPE0 + "its version string."),
    "dmi.bios_date": Allowance(_TYPE0 + "its release date string."),
    "dmi.bios_release": Allowance(
        _TYPE0 + "its 'System BIOS Major/Minor Release' bytes (Linux shows them unless 0xff)."
    ),
    "dmi.ec_firmware_release": Allowance(
        _TYPE0 + "its 'Embedded Controller Firmware Major/Minor Release' bytes (shown unless 0xff)."
    ),
    "dmesg.dmi.*": Allowance(
        "Linux's 'DMI:' line ends with ', BIOS <bios_version> <bios_date>' (type 0); the "
        "system and board names before it must match.",
        mask=r", BIOS .*$",
    ),
    "dmesg.ecam.*": Allowance(
        "Linux 6.12 checks the ECAM (MMCONFIG) window against the E820 map early, and logs "
        "'reserved as E820 entry', only for a BIOS dated before 2016 (pci_mmcfg_reserved: "
        "dmi_get_bios_year() < 2016; 6.1 always does): SeaBIOS's type 0 says 2014, pvhfw's "
        "its release date (layout.SMBIOS_BIOS_DATE, 2026). pvhfw's map reserves the window "
        "all the same (with a 2014 type 0, -smbios type=0,date=..., the line appears).",
        one_sided=r"PCI: ECAM \[mem 0x[0-9a-f]+-0x[0-9a-f]+\] reserved as E820 entry",
    ),
    "dmesg.acpi.count": Allowance(
        "the PCI interrupt links: SeaBIOS programs the PIIX/ICH9 PIRQ routing (LNKA-LNKD, "
        "LNKA-LNKH on q35, to IRQs 10 and 11); pvhfw leaves them unrouted for Linux to choose, "
        "and Linux logs one more ACPI line a link ('configured for IRQ 0', 'disabled')."
    ),
}

# The keys of a devices-only comparison (microvm: no SMBIOS, so no DMI): PCI functions, CPUs,
# disks, NICs and the drivers loaded for them.
DEVICE_KEYS = (
    "pci.*",
    "cpus.*",
    "dmesg.brought_up.*",
    "dmesg.smpboot_total.*",
    "block.*",
    "net.*",
    "module.*",
)


@dataclass(frozen=True)
class Difference:
    key: str
    reference: str | None  # None: the key is not in the reference view
    other: str | None
    allowed: str | None = None  # the allowance's reason; None: a real difference

    def describe(self) -> str:
        def show(value: str | None) -> str:
            return "(absent)" if value is None else repr(value)

        note = f"  [allowed: {self.allowed}]" if self.allowed else ""
        return f"{self.key}: {show(self.reference)} -> {show(self.other)}{note}"


def allowance(key: str, allowed: Mapping[str, Allowance] = ALLOWED_DIFFERENCES) -> Allowance | None:
    """The allowance whose pattern matches *key*, if any."""
    for pattern, allow in allowed.items():
        if fnmatch.fnmatchcase(key, pattern):
            return allow
    return None


def select(view: Mapping[str, str], patterns: Iterable[str]) -> GuestView:
    """The part of *view* whose keys match one of *patterns* (fnmatch)."""
    pats = tuple(patterns)
    return {k: v for k, v in view.items() if any(fnmatch.fnmatchcase(k, p) for p in pats)}


def compare_views(
    reference: Mapping[str, str],
    other: Mapping[str, str],
    *,
    allowed: Mapping[str, Allowance] = ALLOWED_DIFFERENCES,
) -> list[Difference]:
    """Every key whose value differs between the two views, or that only one has, sorted by
    key; each marked with its allowance's reason when :data:`ALLOWED_DIFFERENCES` (or
    *allowed*) permits the difference."""
    out: list[Difference] = []
    for key in sorted(set(reference) | set(other)):
        ref, oth = reference.get(key), other.get(key)
        if ref == oth:
            continue
        allow = allowance(key, allowed)
        ok = allow is not None and allow.permits(ref, oth)
        out.append(Difference(key, ref, oth, allow.reason if ok and allow else None))
    return out


def real_differences(diffs: Iterable[Difference]) -> list[Difference]:
    return [d for d in diffs if d.allowed is None]


def format_differences(diffs: Sequence[Difference]) -> str:
    return "\n".join(d.describe() for d in diffs) or "(none)"


# ---- the QEMU command of a view boot -------------------------------------------------------

MEMORY = "512"
SMP = 2
TEST_VENDOR = "PVHFW-TEST-VENDOR"
TEST_SERIAL = "PVHFW-TEST-SERIAL"
OEM_STRING = "io.systemd.credential:pvhfw=1"
NIC_MAC = "52:54:00:70:76:68"  # QEMU's OUI; "pvh"
DISK_BYTES = 1 << 20


def has_smbios(machine: str) -> bool:
    """pc and q35 publish SMBIOS tables in fw_cfg; microvm has none (and ignores -smbios)."""
    return machine.split(",")[0] != "microvm"


def view_devices(machine: str, disk: str | os.PathLike[str]) -> list[str]:
    """The QEMU options of a view boot besides the kernel: the SMBIOS strings (pc, q35), a
    virtio-blk disk on *disk* (raw) and a virtio-net NIC on restricted user networking (no
    host access), over PCI on pc and q35 (on q35 the NIC behind a PCIe root port, so the view
    sees extended configuration space) and over MMIO on microvm."""
    base = machine.split(",")[0]
    args: list[str] = []
    if has_smbios(machine):
        args += [
            "-smbios", f"type=1,manufacturer={TEST_VENDOR},serial={TEST_SERIAL}",
            "-smbios", f"type=11,value={OEM_STRING}",
        ]  # fmt: skip
    args += ["-drive", f"file={os.fspath(disk)},format=raw,if=none,id=pvhfw-disk"]
    args += ["-netdev", "user,id=pvhfw-net,restrict=on"]
    if base == "microvm":
        args += ["-device", "virtio-blk-device,drive=pvhfw-disk"]
        args += ["-device", f"virtio-net-device,netdev=pvhfw-net,mac={NIC_MAC}"]
        return args
    args += ["-device", "virtio-blk-pci,drive=pvhfw-disk"]
    nic = f"virtio-net-pci,netdev=pvhfw-net,mac={NIC_MAC}"
    if base == "q35":
        args += ["-device", "pcie-root-port,id=pvhfw-port,chassis=1"]
        nic += ",bus=pvhfw-port"
    return [*args, "-device", nic]


def view_cmdline(machine: str, accel: str = "tcg") -> str:
    """The kernel command line of a view boot: serial console, what the machine needs
    (tools.guest) and :data:`VIEW_WORD`."""
    return " ".join(["console=ttyS0", *tcg_kernel_args(machine, accel), VIEW_WORD])


def view_command(
    machine: str,
    *,
    kernel: str | os.PathLike[str],
    initrd: str | os.PathLike[str],
    disk: str | os.PathLike[str],
    bios: str | os.PathLike[str] | None = None,
    accel: str = "tcg",
) -> list[str]:
    """A view boot's QEMU command (tools.qemu's builder, a Linux guest, -m 512 -smp 2):
    *bios* None is QEMU's default firmware (SeaBIOS + pvh.bin on pc and q35, qboot on
    microvm); otherwise the command differs from that one only by ``-bios``."""
    return qemu_command(
        machine=machine, accel=accel, linux=True, memory=MEMORY, smp=SMP, bios=bios,
        kernel=kernel, initrd=initrd, append=view_cmdline(machine, accel),
        extra=view_devices(machine, disk),
    )  # fmt: skip


def write_disk(path: Path) -> Path:
    """A raw disk image of :data:`DISK_BYTES` for the view's virtio-blk disk."""
    path.write_bytes(b"pvhfw-disk\n".ljust(512, b"\0") + bytes(DISK_BYTES - 512))
    return path


# ---- CLI -----------------------------------------------------------------------------------


def _read_view(path: Path) -> GuestView:
    try:
        return parse_view(path.read_text(errors="replace"))
    except OSError as e:
        raise ViewError(f"{path}: {e.strerror or e}") from e
    except ViewError as e:
        raise ViewError(f"{path}: {e}") from e


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.guest_view",
        description="Read and compare guest views (PVHFW-VIEW lines in serial logs).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_parse = sub.add_parser("parse", help="print the view in a serial log")
    p_parse.add_argument("log", type=Path)
    p_cmp = sub.add_parser("compare", help="differences between two logs' views")
    p_cmp.add_argument("reference", type=Path, help="the log of QEMU's own firmware")
    p_cmp.add_argument("log", type=Path, help="the log of the firmware under test")
    p_cmp.add_argument("--devices", action="store_true", help="device keys only (microvm)")
    args = parser.parse_args(argv)
    try:
        if args.command == "parse":
            for key, value in _read_view(args.log).items():
                print(f"{key}={value}")
            return 0
        ref, oth = _read_view(args.reference), _read_view(args.log)
    except ViewError as e:
        print(f"guest_view: {e}", file=sys.stderr)
        return 1
    if args.devices:
        ref, oth = select(ref, DEVICE_KEYS), select(oth, DEVICE_KEYS)
    diffs = compare_views(ref, oth)
    print(format_differences(diffs))
    return 1 if real_differences(diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
