"""Reading a bzImage: the setup header of the Linux/x86 boot protocol.

Documentation/arch/x86/boot.rst ("The real-mode kernel header") gives the fields; the offsets
are firmware/abi.py's BOOT_PARAMS, shared with the firmware that copies the header into the
zero page. Only the header is parsed: the payload is named by its magic, never decompressed.
A pure function of the file's bytes, bounded by the header's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvhfw.builder.errors import BuildError
from pvhfw.firmware import abi, layout

# The last field read here: init_size (protocol 2.10).
HEADER_END = abi.BOOT_PARAMS.end("init_size")
XLF_NAMES = (
    (0x01, "XLF_KERNEL_64"),
    (0x02, "XLF_CAN_BE_LOADED_ABOVE_4G"),
    (0x04, "XLF_EFI_HANDOVER_32"),
    (0x08, "XLF_EFI_HANDOVER_64"),
    (0x10, "XLF_EFI_KEXEC"),
    (0x20, "XLF_5LEVEL"),
    (0x40, "XLF_5LEVEL_ENABLED"),
)
# The payload formats Linux's decompressor knows (arch/x86/boot/compressed/misc.c), by magic.
PAYLOAD_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x89LZO", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


@dataclass(frozen=True)
class BzImage:
    """What the builder needs to know of a bzImage, and what QEMU will make of it."""

    protocol: int  # e.g. 0x020F for 2.15
    setup_sects: int  # as in the header (0 stands for 4)
    setup_size: int  # bytes of real-mode setup: QEMU's FW_CFG_SETUP_SIZE
    pm_size: int  # the protected-mode code: QEMU's FW_CFG_KERNEL_SIZE
    syssize: int  # the header's size of the protected-mode code, in 16-byte units
    code32_start: int  # the 32-bit entry
    loadflags: int
    relocatable: bool
    kernel_alignment: int
    xloadflags: int
    cmdline_size: int  # the longest command line the kernel takes, NUL excluded
    initrd_addr_max: int
    payload_offset: int  # in the protected-mode code
    payload_length: int
    compression: str  # by the payload's magic; "none" without a payload
    pref_address: int
    init_size: int  # memory the kernel needs from pref_address while it decompresses

    @property
    def load_addr(self) -> int:
        """FW_CFG_KERNEL_ADDR: where QEMU (and the firmware) put the protected-mode code."""
        return layout.BZIMAGE_LOAD_ADDR

    @property
    def entry(self) -> int:
        return self.code32_start

    @property
    def load_size(self) -> int:
        return self.pm_size

    @property
    def memory(self) -> tuple[int, int]:
        """[start, end) of every byte the kernel occupies before it runs its own code:
        the loaded code and the decompression space."""
        start = min(self.load_addr, self.pref_address)
        end = max(self.load_addr + self.pm_size, self.pref_address + self.init_size)
        return start, end

    @property
    def version(self) -> str:
        return f"{self.protocol >> 8}.{self.protocol & 0xFF:02d}"

    @property
    def xloadflag_names(self) -> list[str]:
        return [name for bit, name in XLF_NAMES if self.xloadflags & bit]


def is_bzimage(data: bytes) -> bool:
    """The file has the boot protocol's "HdrS" magic where a setup header would be."""
    header = abi.BOOT_PARAMS.field("header")
    return data[header.offset : header.offset + header.size] == b"HdrS"


def payload_format(payload: bytes) -> str | None:
    for magic, name in PAYLOAD_MAGIC:
        if payload.startswith(magic):
            return name
    return None


def read_bzimage(data: bytes, name: str) -> BzImage:
    """Parse a bzImage's setup header; every problem is a BuildError naming `name`."""
    if len(data) < HEADER_END:
        raise BuildError(
            f"{name}: truncated bzImage ({len(data)} bytes, shorter than the setup header's "
            f"{HEADER_END})"
        )

    def field(name: str) -> int:
        return abi.BOOT_PARAMS.read(data, name)

    boot_flag = field("boot_flag")
    if boot_flag != abi.BOOT_FLAG_MAGIC:
        raise BuildError(f"{name}: corrupt bzImage: boot_flag is {boot_flag:#06x}, not 0xaa55")
    protocol = field("version")
    version = f"{protocol >> 8}.{protocol & 0xFF:02d}"
    if protocol < layout.LINUX32_MIN_VERSION:
        raise BuildError(
            f"{name}: Linux boot protocol {version} is older than 2.10 (Linux 2.6.31), the "
            "oldest whose 32-bit entry this firmware uses (it needs init_size and pref_address)"
        )
    loadflags = field("loadflags")
    if not loadflags & abi.LOADED_HIGH:
        raise BuildError(
            f"{name}: a zImage (its code loads below 1 MiB, loadflags {loadflags:#04x} without "
            "LOADED_HIGH), not a bzImage"
        )
    setup_sects = field("setup_sects")
    setup_size = ((setup_sects or abi.SETUP_SECTS_DEFAULT) + 1) * abi.SETUP_SECTOR_SIZE
    if setup_size >= len(data):
        raise BuildError(
            f"{name}: truncated bzImage: {setup_size} bytes of setup code ({setup_sects} "
            f"setup_sects) and no protected-mode code after them ({len(data)} bytes in all)"
        )
    pm_size = len(data) - setup_size
    syssize = field("syssize")
    if syssize * 16 > pm_size + 15:
        raise BuildError(
            f"{name}: truncated bzImage: the header's syssize says {syssize * 16:#x} bytes of "
            f"protected-mode code, the file has {pm_size:#x}"
        )
    code32_start = field("code32_start")
    load = layout.BZIMAGE_LOAD_ADDR
    if not load <= code32_start < load + pm_size:
        raise BuildError(
            f"{name}: corrupt bzImage: code32_start {code32_start:#x} is outside its "
            f"protected-mode code, loaded at {load:#x}-{load + pm_size:#x}"
        )
    payload_offset = field("payload_offset")
    payload_length = field("payload_length")
    if payload_offset + payload_length > pm_size:
        raise BuildError(
            f"{name}: corrupt bzImage: the payload at {payload_offset:#x}+{payload_length:#x} "
            f"runs past the protected-mode code ({pm_size:#x} bytes)"
        )
    if payload_length == 0:
        compression = "none"
    else:
        start = setup_size + payload_offset
        found = payload_format(data[start : start + 8])
        if found is None:
            head = data[start : start + 4].hex(" ")
            raise BuildError(
                f"{name}: corrupt bzImage: the payload at {payload_offset:#x} starts with "
                f"{head}, in no compression format Linux knows"
            )
        compression = found
    pref_address = field("pref_address")
    init_size = field("init_size")
    if init_size == 0:
        raise BuildError(f"{name}: corrupt bzImage: init_size is 0")
    if pref_address < load or pref_address + init_size > 1 << 32:
        raise BuildError(
            f"{name}: pref_address {pref_address:#x} + init_size {init_size:#x} is not between "
            "1 MiB and 4 GiB, where this firmware's 32-bit entry can boot it"
        )
    return BzImage(
        protocol=protocol,
        setup_sects=setup_sects,
        setup_size=setup_size,
        pm_size=pm_size,
        syssize=syssize,
        code32_start=code32_start,
        loadflags=loadflags,
        relocatable=bool(field("relocatable_kernel")),
        kernel_alignment=field("kernel_alignment"),
        xloadflags=field("xloadflags"),
        cmdline_size=field("cmdline_size"),
        initrd_addr_max=field("initrd_addr_max"),
        payload_offset=payload_offset,
        payload_length=payload_length,
        compression=compression,
        pref_address=pref_address,
        init_size=init_size,
    )
