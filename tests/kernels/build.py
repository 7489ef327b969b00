"""Build the PVH test kernels from source, and read what they report.

Kernels (sources next to this file):

* ``pvhcheck`` - ELF32, C + assembly.  Saves the CPU state found at its PVH
  entry (``pvh_entry``) or its 32-bit Linux boot protocol entry
  (``linux32_entry``), reports it and the hvm_start_info / boot_params contents
  over COM1 as ``PVHCHECK ...`` lines, cross-checks against fw_cfg, runs that
  protocol's checks and ends QEMU through isa-debug-exit (0x10 -> status 33
  when every check passed, 0x11 -> 35 otherwise).
* ``exitfirst`` - ELF64 with a 32-bit PVH entry (like Linux's vmlinux) whose
  first instructions end QEMU with status 33.  For benchmarks.

``build_kernel(name, out_dir, load_addr=0x200000, **options)`` runs the host's
gcc/as/ld and returns the ELF's path.  Options (all kernels):

* ``extra_note`` (bool, False): put an unrelated note (GNU build-id shaped) in
  a PT_NOTE segment *before* the one holding the Xen note.
* ``note_desc_size`` (4 or 8, default 4): size of the Xen note's descriptor.

``pvhcheck`` only: ``lar`` (bool, True): probe cs/ds/es/ss with ``lar``/``lsl``.
With False the access rights and limits are derived from the GDT entries
instead (report lines say ``probe=gdt``): this machine's PVM-backed KVM stops
with "KVM internal error" on ``lar``, so use ``lar=False`` under ``-accel kvm``.
``bzimage`` (bool, False; needs ``load_addr=0x100000``): also wrap the ELF in a
bzImage (``<variant>-bz.bzImage``, returned instead of the ELF): boot protocol 2.15
header with code32_start = ``linux32_entry``, no payload, a real-mode setup entry
that exits at once with status 37 (:data:`EXIT_REAL_MODE_ENTRY`).

``exitfirst`` only: ``vaddr_offset`` (int, 0): link at virtual address
``load_addr + vaddr_offset`` with physical addresses ``load_addr`` (Linux's
vmlinux: 0xffffffff80000000); the note holds the physical entry.

``build_bzimage(out_dir)`` builds ``exitfirst-bz``, a bzImage (boot protocol 2.15, no
payload) whose real-mode setup entry and 32-bit entry both end QEMU with status 33 at their
first instructions: the bzImage counterpart of ``exitfirst``, for benchmarks.

``parse_report(serial_text)`` turns the serial output into a :class:`Report`.  Reports
from before the BIOS-table lines existed (or cut short) parse with those fields empty.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXIT_FAILURE",
    "EXIT_REAL_MODE_ENTRY",
    "EXIT_SUCCESS",
    "KERNELS",
    "KERNEL_ENTRY_SYMBOL",
    "LINUX32_ENTRY_SYMBOL",
    "XEN_ELFNOTE_PHYS32_ENTRY",
    "KernelBuildError",
    "KernelToolchainMissing",
    "NoteSegment",
    "Report",
    "SmbiosStructure",
    "build_bzimage",
    "build_kernel",
    "elf_note_segments",
    "elf_pvh_entry",
    "elf_symbol",
    "parse_report",
]

KERNELS_DIR = Path(__file__).resolve().parent
KERNELS = ("pvhcheck", "exitfirst")
KERNEL_ENTRY_SYMBOL = "pvh_entry"
LINUX32_ENTRY_SYMBOL = "linux32_entry"  # pvhcheck's 32-bit Linux boot protocol entry
XEN_ELFNOTE_PHYS32_ENTRY = 18
DEFAULT_LOAD_ADDR = 0x200000

# QEMU -device isa-debug-exit,iobase=0xf4,iosize=0x01: a write of v exits with (v << 1) | 1.
EXIT_SUCCESS = (0x10 << 1) | 1  # 33
EXIT_FAILURE = (0x11 << 1) | 1  # 35
# pvhcheck's bzImage: its real-mode setup entry (a loader that did not use code32_start).
EXIT_REAL_MODE_ENTRY = (0x12 << 1) | 1  # 37

PVHCHECK_CFLAGS = (
    "-m32",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-nostdlib",
    "-O2",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-mno-sse",
    "-mno-mmx",
    "-mno-80387",
    "-mgeneral-regs-only",
)
PVHCHECK_SOURCES = (
    "entry.S",
    "main.c",
    "checks.c",
    "check.c",
    "regions.c",
    "segments.c",
    "fwcfg.c",
    "fwdump.c",
    "pci.c",
    "pam.c",
    "pcie.c",
    "smbios.c",
    "mptable.c",
    "cpu.c",
    "trap.S",
    "mtrr.c",
    "serial.c",
    "crc32.c",
    "lib.c",
)
LD_COMMON = ("-nostdlib", "--build-id=none", "-z", "noexecstack", "-z", "max-page-size=0x1000")

_COMMON_OPTIONS = {"extra_note", "note_desc_size"}
_OPTIONS = {
    "pvhcheck": _COMMON_OPTIONS | {"lar", "bzimage"},
    "exitfirst": _COMMON_OPTIONS | {"vaddr_offset"},
}


class KernelToolchainMissing(RuntimeError):
    """gcc, as or ld is not installed: tests should skip (loudly) or fail under CI."""


class KernelBuildError(RuntimeError):
    """A build tool failed; the message names the tool, its command line and its stderr."""

    def __init__(self, tool: str, cmd: list[str], returncode: int, stderr: str) -> None:
        self.tool = tool
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(
            f"{tool} failed with exit status {returncode}\n"
            f"command: {' '.join(cmd)}\n"
            f"stderr:\n{stderr.rstrip()}"
        )


def _require_tools(*tools: str) -> dict[str, str]:
    found = {tool: shutil.which(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        raise KernelToolchainMissing(
            f"cannot build the test kernels: {', '.join(missing)} not found on PATH "
            "(install gcc and binutils)"
        )
    return {tool: path for tool, path in found.items() if path is not None}


def _run(tool: str, cmd: list[str], log: list[str]) -> None:
    log.append("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:  # vanished between which() and here, or not executable
        raise KernelToolchainMissing(f"cannot run {tool}: {exc}") from exc
    if proc.stderr:
        log.append(proc.stderr.rstrip())
    if proc.returncode != 0:
        raise KernelBuildError(tool, cmd, proc.returncode, proc.stderr)


def _render_linker_script(template: Path, out: Path, values: dict[str, str], extra: bool) -> None:
    lines = []
    for line in template.read_text().splitlines():
        if line.startswith("@EXTRA_NOTE@"):
            if not extra:
                continue
            line = line.removeprefix("@EXTRA_NOTE@")
        for key, value in values.items():
            line = line.replace(f"@{key}@", value)
        lines.append(line)
    for line in lines:
        leftover = re.search(r"@[A-Z_]+@", line)
        if leftover and not line.lstrip().startswith(("/*", "*")):  # comments may name them
            raise ValueError(f"{template}: placeholder {leftover.group(0)} left unfilled")
    out.write_text("\n".join(lines) + "\n")


def _variant_name(name: str, load_addr: int, opts: dict[str, object]) -> str:
    parts = [name, f"{load_addr:x}"]
    if opts["extra_note"]:
        parts.append("extranote")
    if opts["note_desc_size"] != 4:
        parts.append(f"desc{opts['note_desc_size']}")
    if opts.get("lar") is False:
        parts.append("nolar")
    if opts.get("vaddr_offset"):
        parts.append(f"v{opts['vaddr_offset']:x}")
    if opts.get("bzimage"):
        parts.append("bz")
    return "-".join(parts)


def build_kernel(
    name: str, out_dir: Path, load_addr: int = DEFAULT_LOAD_ADDR, **options: object
) -> Path:
    """Build kernel ``name`` for physical ``load_addr`` into ``out_dir``; return the ELF path.

    The ELF is ``out_dir/<name>-<load_addr hex>[-extranote][-desc8][-nolar][-v<offset>].elf``;
    objects, the rendered linker script and a build log go to a sibling ``.build``
    directory.  With ``bzimage=True`` (pvhcheck only; ``load_addr`` must be 0x100000) the
    variant name ends in ``-bz`` and the path returned is ``<variant>.bzImage`` (the ELF it
    was made from stays next to it as ``<variant>.elf``).  Raises
    :class:`KernelToolchainMissing` without gcc/as/ld (and objcopy for a bzImage),
    :class:`KernelBuildError` when a tool fails, ValueError on bad arguments.
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    unknown = set(options) - _OPTIONS[name]
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for {name}; valid: {sorted(_OPTIONS[name])}"
        )
    if load_addr % 0x1000 or not 0x1000 <= load_addr < 0xC000_0000:
        raise ValueError(f"load_addr {load_addr:#x} must be 4 KiB aligned, in [4 KiB, 3 GiB)")
    opts: dict[str, object] = {
        "extra_note": bool(options.get("extra_note", False)),
        "note_desc_size": options.get("note_desc_size", 4),
    }
    if opts["note_desc_size"] not in (4, 8):
        raise ValueError("note_desc_size must be 4 or 8")
    if name == "pvhcheck":
        opts["lar"] = bool(options.get("lar", True))
        opts["bzimage"] = bool(options.get("bzimage", False))
        if opts["bzimage"] and load_addr != BZIMAGE_LOAD_ADDR:
            raise ValueError(
                f"bzimage=True needs load_addr={BZIMAGE_LOAD_ADDR:#x} (a LOADED_HIGH, "
                f"non-relocatable bzImage runs where it is loaded), not {load_addr:#x}"
            )
    if name == "exitfirst":
        vaddr_offset = options.get("vaddr_offset", 0)
        if not isinstance(vaddr_offset, int) or vaddr_offset < 0 or vaddr_offset % 0x1000:
            raise ValueError("vaddr_offset must be a non-negative multiple of 4 KiB")
        if load_addr + vaddr_offset >= 1 << 64:
            raise ValueError("load_addr + vaddr_offset does not fit in 64 bits")
        opts["vaddr_offset"] = vaddr_offset

    tools = _require_tools("gcc", "as", "ld", *(("objcopy",) if opts.get("bzimage") else ()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    variant = _variant_name(name, load_addr, opts)
    work = out_dir / f"{variant}.build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    elf = out_dir / f"{variant}.elf"
    image = out_dir / f"{variant}.bzImage"
    log: list[str] = []
    try:
        if name == "pvhcheck":
            _build_pvhcheck(tools, work, elf, load_addr, opts, log)
            if opts["bzimage"]:
                _build_pvhcheck_bzimage(tools, work, elf, image, log)
                return image
        else:
            _build_exitfirst(tools, work, elf, load_addr, opts, log)
    finally:
        (work / "build.log").write_text("\n".join(log) + "\n")
    return elf


def _build_pvhcheck(
    tools: dict[str, str],
    work: Path,
    elf: Path,
    load_addr: int,
    opts: dict[str, object],
    log: list[str],
) -> None:
    src = KERNELS_DIR / "pvhcheck"
    defines = [f"-DNOTE_DESC_SIZE={opts['note_desc_size']}"]
    if opts["extra_note"]:
        defines.append("-DEXTRA_NOTE=1")
    if not opts["lar"]:
        defines.append("-DNO_LAR=1")
    objects = []
    for source in PVHCHECK_SOURCES:
        obj = work / (Path(source).stem + ".o")
        _run(
            "gcc",
            [
                tools["gcc"],
                *PVHCHECK_CFLAGS,
                *defines,
                f"-I{src}",
                "-c",
                str(src / source),
                "-o",
                str(obj),
            ],
            log,
        )
        objects.append(str(obj))
    script = work / "link.ld"
    _render_linker_script(
        src / "link.ld.in", script, {"LOAD_ADDR": f"{load_addr:#x}"}, bool(opts["extra_note"])
    )
    _run(
        "ld",
        [tools["ld"], "-m", "elf_i386", *LD_COMMON, "-T", str(script), "-o", str(elf), *objects],
        log,
    )


def _build_exitfirst(
    tools: dict[str, str],
    work: Path,
    elf: Path,
    load_addr: int,
    opts: dict[str, object],
    log: list[str],
) -> None:
    src = KERNELS_DIR / "exitfirst"
    obj = work / "entry.o"
    vaddr_offset = opts["vaddr_offset"]
    assert isinstance(vaddr_offset, int)
    _run(
        "as",
        [
            tools["as"],
            "--64",
            "--defsym",
            f"NOTE_DESC_SIZE={opts['note_desc_size']}",
            "--defsym",
            f"EXTRA_NOTE={1 if opts['extra_note'] else 0}",
            "--defsym",
            f"VADDR_OFFSET={vaddr_offset:#x}",
            "-o",
            str(obj),
            str(src / "entry.S"),
        ],
        log,
    )
    script = work / "link.ld"
    _render_linker_script(
        src / "link.ld.in",
        script,
        {"LOAD_ADDR": f"{load_addr:#x}", "VADDR_OFFSET": f"{vaddr_offset:#x}"},
        bool(opts["extra_note"]),
    )
    _run(
        "ld",
        [tools["ld"], "-m", "elf_x86_64", *LD_COMMON, "-T", str(script), "-o", str(elf), str(obj)],
        log,
    )


BZIMAGE_SETUP_SECTS = 1
BZIMAGE_SYSSIZE = 0x100  # 16-byte units: exitfirst-bz's 4 KiB protected-mode part
BZIMAGE_REAL_MODE_ENTRY = 0x200  # file offset of the setup entry (boot protocol)
BZIMAGE_LOAD_ADDR = 0x100000  # where a LOADED_HIGH bzImage's protected-mode part goes
BZIMAGE_HEADER = "bzimage_header.inc"  # the shared boot sector + setup header
# pvhcheck's CMDLINE_MAX (boot.h) less the NUL: the header's cmdline_size.
PVHCHECK_CMDLINE_SIZE = 16384 - 1
EXITFIRST_BZ_CMDLINE_SIZE = 2047
EXITFIRST_BZ_INIT_SIZE = 0x1000


def _assemble_setup(
    tools: dict[str, str],
    source: Path,
    out: Path,
    work: Path,
    defsyms: dict[str, int],
    log: list[str],
) -> None:
    """Assemble a bzImage setup source (which includes :data:`BZIMAGE_HEADER`) with
    ``--defsym`` values and link it to the flat binary ``out`` at offset 0."""
    obj = work / (source.stem + ".o")
    cmd = [tools["as"], "--32", "-I", str(KERNELS_DIR)]
    for key, value in defsyms.items():
        cmd += ["--defsym", f"{key}={value:#x}"]
    _run("as", [*cmd, "-o", str(obj), str(source)], log)
    _run(
        "ld",
        [
            tools["ld"],
            "-m",
            "elf_i386",
            *LD_COMMON,
            "-Ttext=0",
            "-e",
            "_start",
            "--oformat=binary",
            "-o",
            str(out),
            str(obj),
        ],
        log,
    )


def _build_pvhcheck_bzimage(
    tools: dict[str, str], work: Path, elf: Path, image: Path, log: list[str]
) -> None:
    """Wrap the linked pvhcheck ELF (at 1 MiB) in a bzImage: pvhcheck/bzsetup.S (the
    shared header, code32_start = ``linux32_entry``, a real-mode entry that exits 37)
    followed by ``objcopy -O binary`` of the ELF padded to 16 bytes."""
    flat = work / "kernel.bin"
    _run("objcopy", [tools["objcopy"], "-O", "binary", str(elf), str(flat)], log)
    kernel = flat.read_bytes()
    kernel += bytes(-len(kernel) % 16)
    start = elf_symbol(elf, "__kernel_start")
    if start != BZIMAGE_LOAD_ADDR:
        raise ValueError(f"{elf}: __kernel_start {start:#x}, not {BZIMAGE_LOAD_ADDR:#x}")
    init_size = elf_symbol(elf, "__kernel_end") - start
    init_size += -init_size % 0x1000
    setup = work / "setup.bin"
    _assemble_setup(
        tools,
        KERNELS_DIR / "pvhcheck" / "bzsetup.S",
        setup,
        work,
        {
            "SETUP_SECTS": BZIMAGE_SETUP_SECTS,
            "SYSSIZE": len(kernel) // 16,
            "CODE32_START": elf_symbol(elf, LINUX32_ENTRY_SYMBOL),
            "INIT_SIZE": init_size,
            "CMDLINE_SIZE": PVHCHECK_CMDLINE_SIZE,
        },
        log,
    )
    setup_bytes = setup.read_bytes()
    if len(setup_bytes) != (BZIMAGE_SETUP_SECTS + 1) * 512:
        raise ValueError(f"{setup}: {len(setup_bytes)} bytes, not (setup_sects + 1) * 512")
    image.write_bytes(setup_bytes + kernel)
    log.append(f"# {image}: setup {len(setup_bytes):#x} + kernel {len(kernel):#x} bytes")


def build_bzimage(out_dir: Path) -> Path:
    """Build ``exitfirst-bz`` into ``out_dir/exitfirst-bz.bzImage`` and return its path
    (objects and a build log in ``exitfirst-bz.build``).  Raises like :func:`build_kernel`."""
    tools = _require_tools("as", "ld")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "exitfirst-bz.build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    image = out_dir / "exitfirst-bz.bzImage"
    log: list[str] = []
    try:
        _assemble_setup(
            tools,
            KERNELS_DIR / "exitfirst-bz" / "bzimage.S",
            image,
            work,
            {
                "SETUP_SECTS": BZIMAGE_SETUP_SECTS,
                "SYSSIZE": BZIMAGE_SYSSIZE,
                "CODE32_START": BZIMAGE_LOAD_ADDR,
                "INIT_SIZE": EXITFIRST_BZ_INIT_SIZE,
                "CMDLINE_SIZE": EXITFIRST_BZ_CMDLINE_SIZE,
            },
            log,
        )
    finally:
        (work / "build.log").write_text("\n".join(log) + "\n")
    return image


# ---- ELF inspection ---------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSegment:
    """One PT_NOTE program header and the notes in it: (owner, type, descriptor) tuples."""

    index: int  # program header index
    offset: int
    filesz: int
    align: int
    notes: tuple[tuple[str, int, bytes], ...]


def _parse_notes(data: bytes, align: int) -> tuple[tuple[str, int, bytes], ...]:
    step = 8 if align == 8 else 4
    notes = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        name = data[pos : pos + namesz].rstrip(b"\0").decode("ascii", "replace")
        pos += -(-namesz // step) * step
        desc = data[pos : pos + descsz]
        pos += -(-descsz // step) * step
        notes.append((name, ntype, desc))
    return tuple(notes)


def elf_note_segments(path: Path) -> list[NoteSegment]:
    """Every PT_NOTE segment of the ELF at ``path``, in program header order."""
    from elftools.elf.elffile import ELFFile

    segments = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for index, seg in enumerate(elf.iter_segments()):
            if seg["p_type"] != "PT_NOTE":
                continue
            segments.append(
                NoteSegment(
                    index=index,
                    offset=seg["p_offset"],
                    filesz=seg["p_filesz"],
                    align=seg["p_align"],
                    notes=_parse_notes(seg.data(), seg["p_align"]),
                )
            )
    return segments


def elf_pvh_entry(path: Path) -> int:
    """The physical PVH entry from the first Xen PHYS32_ENTRY note (4- or 8-byte descriptor)."""
    for seg in elf_note_segments(path):
        for owner, ntype, desc in seg.notes:
            if owner == "Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                if len(desc) == 4:
                    return int(struct.unpack("<I", desc)[0])
                if len(desc) == 8:
                    return int(struct.unpack("<Q", desc)[0])
                raise ValueError(f"{path}: Xen PHYS32_ENTRY note with {len(desc)}-byte descriptor")
    raise ValueError(f"{path}: no Xen PHYS32_ENTRY note in any PT_NOTE segment")


def elf_symbol(path: Path, symbol: str = KERNEL_ENTRY_SYMBOL) -> int:
    """The value of ``symbol`` in the ELF's symbol table (a virtual address)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if isinstance(section, SymbolTableSection):
                for sym in section.get_symbol_by_name(symbol) or []:
                    return int(sym["st_value"])
    raise ValueError(f"{path}: no symbol {symbol!r}")


# ---- the pvhcheck report ----------------------------------------------------------------

Value = int | str
MARKER = "PVHCHECK "


@dataclass(frozen=True)
class SmbiosStructure:
    """One SMBIOS structure as pvhcheck walked it (``PVHCHECK smbios struct`` lines)."""

    index: int  # its position in the table
    type: int
    handle: int
    length: int  # the formatted area's, header included
    size: int  # the whole structure: formatted area, strings, terminating NUL(s)
    data: bytes  # the formatted area
    strings: tuple[bytes, ...]  # string 1, 2, ...

    def string(self, offset: int) -> bytes | None:
        """The string whose number is the byte at ``offset`` of the formatted area (SMBIOS's
        way of naming a field's string); None for number 0, a missing string or an offset
        past the formatted area."""
        if offset >= len(self.data) or self.data[offset] == 0:
            return None
        number = self.data[offset]
        return self.strings[number - 1] if number <= len(self.strings) else None


@dataclass
class Report:
    """What pvhcheck printed.  Numbers are ints; ``none``-like values stay strings.

    ``protocol`` is the entry taken (``"pvh"`` or ``"linux32"``; ``""`` when no protocol
    line was printed).  In linux32 mode ``boot_params`` holds the zero page's fields and
    ``memmap``/``cmdline``/``modules`` come from its e820_table, cmd_line_ptr and
    ramdisk_image/size (module 0); ``start_info`` stays empty.

    The BIOS tables and CPU state (tests/kernels/README.md, "BIOS tables"): ``cpuid``;
    ``mtrr`` (MSR index -> value, None when the rdmsr raised #GP); ``pam`` and ``pcie``
    (the host bridge's registers); ``smbios`` (the entry point line and the fw_cfg
    comparison line, merged), ``smbios_structures``, ``smbios_types`` and ``smbios_bios``
    (the type 0 strings ``vendor``/``version``/``date``, None when absent); ``mptable``
    (the summary line, ``oem``/``product`` as text), ``mptable_isa_irqs`` and
    ``mptable_entries`` (``kind`` cpu/bus/ioapic/intsrc/lintsrc, ``index``, the fields;
    a bus ``type`` as text).
    """

    protocol: str = ""
    regs: dict[str, int] = field(default_factory=dict)  # eax..esp, eflags
    cr: dict[str, int] = field(default_factory=dict)  # cr0 cr3 cr4
    segs: dict[str, dict[str, Value]] = field(default_factory=dict)  # cs -> sel lar lsl base ...
    start_info: dict[str, int] = field(default_factory=dict)  # addr magic version ... memmap
    boot_params: dict[str, int] = field(default_factory=dict)  # addr boot_flag ... setup_data
    memmap: list[tuple[int, int, int]] = field(default_factory=list)  # (addr, size, type)
    cmdline: bytes | None = None  # None: no cmdline line, or cmdline_paddr was 0 ("-")
    modules: list[dict[str, Value]] = field(default_factory=list)  # paddr size cmdline crc32
    fwcfg: dict[str, object] = field(default_factory=dict)  # items, plus "e820": [(a, s, t)]
    cpuid: dict[str, Value] = field(default_factory=dict)  # max_basic edx1 ... phys_bits
    mtrr: dict[int, int | None] = field(default_factory=dict)  # MSR index -> value
    pam: dict[str, Value] = field(default_factory=dict)  # host reg pam0..pam6
    pcie: dict[str, Value] = field(default_factory=dict)  # host pciexbar base size ecam ...
    smbios: dict[str, Value] = field(default_factory=dict)  # ep anchor ... layout
    smbios_structures: list[SmbiosStructure] = field(default_factory=list)
    smbios_types: list[int] = field(default_factory=list)
    smbios_bios: dict[str, bytes | None] = field(default_factory=dict)  # vendor version date
    mptable: dict[str, Value] = field(default_factory=dict)  # fp table spec ... ioapic
    mptable_isa_irqs: list[int] = field(default_factory=list)
    mptable_entries: list[dict[str, Value]] = field(default_factory=list)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (ok, detail)
    done_failures: int | None = None
    extra: dict[str, dict[str, Value]] = field(default_factory=dict)  # "dt", "kernel", ...
    lines: list[str] = field(default_factory=list)  # every PVHCHECK line, marker stripped

    @property
    def complete(self) -> bool:
        """The kernel got as far as its final ``done`` line."""
        return self.done_failures is not None

    @property
    def failed_checks(self) -> dict[str, str]:
        return {name: detail for name, (ok, detail) in self.checks.items() if not ok}


def _value(text: str) -> Value:
    try:
        return int(text, 0)
    except ValueError:
        return text


def _kv(tokens: list[str]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            out[key] = _value(value)
    return out


def _ints(values: dict[str, Value]) -> dict[str, int]:
    return {k: v for k, v in values.items() if isinstance(v, int)}


def _entry(values: dict[str, Value]) -> tuple[int, int, int]:
    return (int(values["addr"]), int(values["size"]), int(values["type"]))


def _raw(tokens: list[str]) -> dict[str, str]:
    """key=value tokens with the values as printed (hex bytes, lists: not numbers)."""
    out: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def _hex_bytes(text: str) -> bytes | None:
    return None if text in ("-", "none") else bytes.fromhex(text)


def _text(hex_text: str) -> str:
    return bytes.fromhex(hex_text).decode("latin-1")


def _int_list(text: str) -> list[int]:
    return [] if text in ("", "-") else [int(v, 0) for v in text.split(",")]


# Values printed as hex bytes or lists: parsed by hand, never as numbers.
_SMBIOS_STRUCT_RAW = ("data", "strings")
_MPTABLE_RAW = ("oem", "product", "isa_irqs")
_MPTABLE_KINDS = ("cpu", "bus", "ioapic", "intsrc", "lintsrc")


def _parse_smbios(report: Report, rest: list[str]) -> None:
    if not rest:
        return
    head = rest[0]
    if head == "struct" and len(rest) >= 2:
        raw = _raw(rest[2:])
        values = _ints(_kv([t for t in rest[2:] if t.split("=")[0] not in _SMBIOS_STRUCT_RAW]))
        strings = raw.get("strings", "")
        report.smbios_structures.append(
            SmbiosStructure(
                index=int(rest[1]),
                type=values["type"],
                handle=values["handle"],
                length=values["length"],
                size=values["size"],
                data=bytes.fromhex(raw.get("data", "")),
                strings=tuple(bytes.fromhex(v) for v in strings.split(",")) if strings else (),
            )
        )
    elif head.startswith("types="):
        report.smbios_types = _int_list(head.partition("=")[2])
    elif head == "bios":
        report.smbios_bios = {key: _hex_bytes(value) for key, value in _raw(rest[1:]).items()}
    elif head == "fwcfg":
        report.smbios.update(_kv(rest[1:]))
    else:
        report.smbios.update(_kv(rest))


def _parse_mptable(report: Report, rest: list[str]) -> None:
    if rest and rest[0] in _MPTABLE_KINDS and len(rest) >= 2:
        raw = _raw(rest[2:])
        entry: dict[str, Value] = {"kind": rest[0], "index": int(rest[1])}
        if rest[0] == "bus":
            entry.update(_kv([t for t in rest[2:] if not t.startswith("type=")]))
            entry["type"] = _text(raw["type"])
        else:
            entry.update(_kv(rest[2:]))
        report.mptable_entries.append(entry)
        return
    raw = _raw(rest)
    report.mptable.update(_kv([t for t in rest if t.split("=")[0] not in _MPTABLE_RAW]))
    for key in ("oem", "product"):
        if key in raw:
            report.mptable[key] = _text(raw[key])
    if "isa_irqs" in raw:
        report.mptable_isa_irqs = _int_list(raw["isa_irqs"])


def parse_report(serial_text: str) -> Report:
    """Parse the ``PVHCHECK`` lines out of serial output (other output is ignored).

    The marker may follow other bytes on a line (firmware escape sequences);
    the text after the last ``PVHCHECK `` on each line is used.
    """
    report = Report()
    e820: list[tuple[int, int, int]] = []
    for raw in serial_text.splitlines():
        pos = raw.rfind(MARKER)
        if pos < 0:
            continue
        line = raw[pos + len(MARKER) :].strip()
        report.lines.append(line)
        tokens = line.split()
        if not tokens:
            continue
        key, rest = tokens[0], tokens[1:]
        if key == "regs":
            report.regs.update(_ints(_kv(rest)))
        elif key == "cr":
            report.cr.update(_ints(_kv(rest)))
        elif key == "seg" and rest:
            report.segs[rest[0]] = _kv(rest[1:])
        elif key == "protocol" and rest:
            report.protocol = rest[0]
        elif key == "start_info":
            report.start_info.update(_ints(_kv(rest)))
        elif key == "boot_params":
            report.boot_params.update(_ints(_kv(rest)))
        elif key == "memmap" and len(rest) >= 2:
            report.memmap.append(_entry(_kv(rest[1:])))
        elif key == "cmdline":
            if rest and rest[0] == "-":
                report.cmdline = None
            else:
                report.cmdline = bytes.fromhex(rest[0]) if rest else b""
        elif key == "module" and rest:
            module: dict[str, Value] = {"index": int(rest[0])}
            module.update(_kv(rest[1:]))
            report.modules.append(module)
        elif key == "fwcfg":
            if rest and rest[0] == "e820" and len(rest) >= 2:
                e820.append(_entry(_kv(rest[2:])))
            else:
                report.fwcfg.update(_kv(rest))
        elif key == "check" and len(rest) >= 2:
            ok = rest[1] == "ok"
            detail = line.split(None, 3)[3] if not ok and len(rest) >= 3 else ""
            report.checks[rest[0]] = (ok, detail)
        elif key == "cpuid":
            report.cpuid.update(_kv(rest))
        elif key == "mtrr":
            values = _kv(rest)
            msr, value = values.get("msr"), values.get("value")
            if isinstance(msr, int):
                report.mtrr[msr] = value if isinstance(value, int) else None
        elif key == "pam":
            report.pam.update(_kv(rest))
        elif key == "pcie":
            report.pcie.update(_kv(rest))
        elif key == "smbios":
            _parse_smbios(report, rest)
        elif key == "mptable":
            _parse_mptable(report, rest)
        elif key == "done":
            values = _kv(rest)
            failures = values.get("failures")
            report.done_failures = failures if isinstance(failures, int) else None
        else:
            report.extra.setdefault(key, {}).update(_kv(rest))
    if e820 or "e820_file" in report.fwcfg:
        report.fwcfg["e820"] = e820
    return report
