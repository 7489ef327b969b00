"""What QEMU 7.2 puts in fw_cfg for `-M <machine> -m 512 -smp 2 -kernel <PVH ELF>`, for the
unicorn bench (and, through :func:`profile`, another QEMU series tests/data has recordings
of): the file directory (names and sizes, read from `-trace fw_cfg_add_file` of Debian's
7.2.22 with `-nographic -no-reboot -device isa-debug-exit` and a custom `-bios`), the e820
table (as pvhcheck reads it from "etc/e820") and the ACPI reserve that places the initrd.

The firmware's instruction count depends on these: `fwcfg_find` walks the sorted directory up
to "etc/e820" and `memmap_build` converts every e820 entry; the ACPI files (etc/table-loader,
etc/acpi/rsdp, etc/acpi/tables) are the ones recorded from QEMU for the same configuration
(tests/data, `python3 -m tools.record_fwcfg`), since running the table-loader is most of the
firmware's work. Other file contents do not matter to the firmware and are zeros here.
`bench.firmware` compares each directory with the one QEMU traces during the TCG run.
QEMU 10.0 differs only in the recorded files (its ACPI tables' bytes; etc/smbios/smbios-tables
3 bytes larger): :func:`profile` takes their sizes and contents from its recordings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from elftools.elf.elffile import ELFFile

from pvhfw.builder.kernel import Kernel
from tests import spec
from tests.acpi_loader import BASE_QEMU, load_recording
from tests.emu.fwcfg import SimFwCfg

MiB = 1 << 20
RAM_SIZE = 512 * MiB  # as the recordings of the ACPI files: -m 512 -smp 2
SMP = 2
ACPI_FILES = ("etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables")
SMBIOS_FILES = ("etc/smbios/smbios-anchor", "etc/smbios/smbios-tables")  # pc and q35
RECORDED_FILES = (*ACPI_FILES, *SMBIOS_FILES)  # the files whose contents come from tests/data
E820_RAM, E820_RESERVED = spec.E820_RAM, spec.E820_RESERVED
# QEMU 7.2 pc/q35: the AMD HyperTransport hole [1012 GiB, 1024 GiB), always reserved.
HT_HOLE = (0xFD_0000_0000, 0x3_0000_0000, E820_RESERVED)


@dataclass(frozen=True)
class MachineProfile:
    name: str
    e820: tuple[tuple[int, int, int], ...]
    files: tuple[tuple[str, int], ...]  # every fw_cfg file but etc/e820, with its size
    acpi_data_size: int  # x86_load_linux: initrd_max = below_4g - acpi_data_size - 1
    acpi_only: tuple[str, ...] = ()  # the files QEMU leaves out with -machine acpi=off
    pci: tuple[tuple[int, int], ...] = ()  # PCI functions the firmware looks at: (address, ID)
    qemu: str = BASE_QEMU  # the QEMU release series whose recordings fill the recorded files

    def without_acpi(self) -> MachineProfile:
        """The same machine with `-machine acpi=off`."""
        files = tuple(f for f in self.files if f[0] not in self.acpi_only)
        # pc: QEMU creates PIIX4's PM function only with ACPI; q35's LPC bridge is always there
        pci = tuple(d for d in self.pci if d[0] != spec.PIIX4_PM)
        return replace(self, name=f"{self.name}-noacpi", files=files, acpi_only=(), pci=pci)

    @property
    def machine(self) -> str:
        return self.name.removesuffix("-noacpi")

    def directory(self) -> dict[str, int]:
        """name -> size, as QEMU's fw_cfg_add_file trace lists them (etc/e820 included)."""
        files = dict(self.files)
        files["etc/e820"] = len(self.e820) * 20
        return files


_PC_FILES = (
    ("bios-geometry", 0),
    ("bootorder", 21),
    ("etc/acpi/rsdp", 20),
    ("etc/acpi/tables", 131072),
    ("etc/boot-fail-wait", 4),
    ("etc/smbios/smbios-anchor", 31),
    ("etc/smbios/smbios-tables", 321),
    ("etc/system-states", 6),
    ("etc/table-loader", 4096),
    ("etc/tpm/log", 0),
    ("genroms/kvmvapic.bin", 9216),
    ("genroms/pvh.bin", 1536),
)
_Q35_FILES = (
    ("bios-geometry", 0),
    ("bootorder", 21),
    ("etc/acpi/rsdp", 20),
    ("etc/acpi/tables", 131072),
    ("etc/boot-fail-wait", 4),
    ("etc/smbios/smbios-anchor", 31),
    ("etc/smbios/smbios-tables", 309),
    ("etc/smi/features-ok", 1),
    ("etc/smi/requested-features", 8),
    ("etc/smi/supported-features", 8),
    ("etc/system-states", 6),
    ("etc/table-loader", 4096),
    ("etc/tpm/log", 0),
    ("genroms/kvmvapic.bin", 9216),
    ("genroms/pvh.bin", 1536),
)
_MICROVM_FILES = (
    ("bios-geometry", 0),
    ("bootorder", 21),
    ("etc/acpi/rsdp", 36),
    ("etc/acpi/tables", 746),
    ("etc/boot-fail-wait", 4),
    ("etc/fdt", 1048576),
    ("etc/table-loader", 1664),
    ("genroms/pvh.bin", 1536),
)

_ACPI_ONLY = (*ACPI_FILES, "etc/tpm/log")
PROFILES: dict[str, MachineProfile] = {
    "pc": MachineProfile(
        "pc",
        (HT_HOLE, (0, RAM_SIZE, E820_RAM)),
        _PC_FILES,
        0x28000,
        (*_ACPI_ONLY, "etc/system-states"),
        ((spec.PCI_I440FX_HOST, spec.I440FX_ID), (spec.PIIX4_PM, spec.PIIX4_PM_ID)),
    ),
    "q35": MachineProfile(
        "q35",
        (HT_HOLE, (0, RAM_SIZE, E820_RAM)),
        _Q35_FILES,
        0x28000,
        _ACPI_ONLY,
        ((spec.PCI_I440FX_HOST, spec.Q35_MCH_ID), (spec.ICH9_LPC, spec.ICH9_LPC_ID)),
    ),
    "microvm": MachineProfile("microvm", ((0, RAM_SIZE, E820_RAM),), _MICROVM_FILES, 0, ACPI_FILES),
}


def profile(machine: str, qemu: str = BASE_QEMU) -> MachineProfile:
    """PROFILES[machine] as QEMU release series ``qemu`` (tests.acpi_loader.RECORDED_QEMUS)
    sets it: the recorded files' sizes are that series' recording's."""
    base = PROFILES[machine]
    if qemu == BASE_QEMU:
        return base
    recorded = load_recording(machine, qemu=qemu).files
    files = tuple(
        (name, len(recorded[name]) if name in recorded and name in RECORDED_FILES else size)
        for name, size in base.files
    )
    return replace(base, files=files, qemu=qemu)


def load_segments(kernel_path: str) -> dict[int, bytes]:
    """paddr -> bytes of every PT_LOAD segment of the ELF, zero-filled to p_memsz."""
    ram: dict[int, bytes] = {}
    with open(kernel_path, "rb") as f:
        elf = ELFFile(f)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]:
                ram[seg["p_paddr"]] = seg.data().ljust(seg["p_memsz"], b"\0")
    return ram


def sim_fwcfg(
    profile: MachineProfile,
    kernel: Kernel,
    kernel_data: bytes,
    *,
    cmdline: bytes | None = None,
    initrd: bytes | None = None,
    dma: bool = True,
) -> SimFwCfg:
    """SimFwCfg as QEMU (the profile's series) sets it for this machine, `-m 512 -smp 2`,
    `-kernel` (PVH) and the optional `-append` / `-initrd`; the ACPI and SMBIOS files, where
    the profile has them, are the ones recorded from that QEMU (profile.without_acpi(): no
    ACPI files, as with `-machine acpi=off`)."""
    extra = {name: bytes(size) for name, size in profile.files if name != "etc/boot-fail-wait"}
    recorded = [n for n in RECORDED_FILES if n in extra]
    if recorded:
        recording = load_recording(profile.machine, qemu=profile.qemu)
        for name in recorded:
            if len(recording.files[name]) != len(extra[name]):
                raise ValueError(f"{profile.machine}: {name} recorded with another size")
            extra[name] = recording.files[name]
    return SimFwCfg.for_pvh_boot(
        ram_below_4g=RAM_SIZE,
        kernel_entry=kernel.entry,
        kernel_addr=kernel.load_addr,
        kernel_size=kernel.load_size,
        cmdline=cmdline,
        initrd=initrd,
        e820=list(profile.e820),
        setup_data=kernel_data[:8192],
        acpi_data_size=profile.acpi_data_size,
        extra_files=extra,
        dma=dma,
        cpus=SMP,
    )
