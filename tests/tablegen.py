"""SMBIOS and MP tables built in Python the way QEMU, SeaBIOS and qboot lay them out, to be
broken on purpose: what tests/test_pvhcheck_tables_emu.py puts in front of pvhcheck.

SMBIOS: QEMU's fw_cfg files (an anchor with address and checksums 0, the structure blob) and
what a BIOS installs from them (SeaBIOS's biostables.c: an optional type 0 in front, the
anchor's address, length, count and max structure size filled in, then the checksums).
MP table: MultiProcessor Specification 1.4 chapter 4, entries as qboot's mptable.c writes
them (or any list the test gives).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

# ---- SMBIOS ------------------------------------------------------------------------------


def smbios_struct(type_: int, handle: int, body: bytes, strings: Sequence[bytes] = ()) -> bytes:
    """One structure: header (type, length = 4 + len(body), handle), the formatted area after
    the header, its strings, the closing NUL (two NULs without strings)."""
    header = struct.pack("<BBH", type_, 4 + len(body), handle)
    tail = b"".join(s + b"\0" for s in strings) + b"\0" if strings else b"\0\0"
    return header + body + tail


def qemu_blob(with_type0: bool = False) -> bytes:
    """A QEMU-like structure blob: (type 0,) type 1, type 3, type 127."""
    out = b""
    if with_type0:
        out += smbios_struct(0, 0, bytes([1, 2, 0x00, 0xE8, 0, 0]) + bytes(12), [b"QEMU", b"1.0"])
    out += smbios_struct(1, 0x100, bytes([1, 2, 0, 0]) + bytes(19), [b"QEMU", b"Standard PC"])
    out += smbios_struct(3, 0x300, bytes([1, 1, 0, 0, 0]) + bytes(13), [b"QEMU"])
    out += smbios_struct(127, 0x7F00, b"")
    return out


def bios_type0() -> bytes:
    """A type 0 a BIOS adds: vendor, version, date (SeaBIOS's field values)."""
    body = struct.pack(
        "<BBHBB8s2sBBBB", 1, 2, 0xE800, 3, 0, b"\x08" + bytes(7), b"\x00\x04", 0, 0, 0xFF, 0xFF
    )
    return smbios_struct(0, 0, body, [b"TestBIOS", b"0.1", b"01/01/2026"])


def structures(blob: bytes) -> list[bytes]:
    """Split a well-formed blob into its structures."""
    out = []
    at = 0
    while at < len(blob):
        end = blob.index(b"\0\0", at + blob[at + 1]) + 2
        out.append(blob[at:end])
        at = end
    return out


def smbios21_anchor(blob: bytes) -> bytes:
    """QEMU's 31-byte etc/smbios/smbios-anchor for `blob`: checksums and address 0."""
    parts = structures(blob)
    return (
        b"_SM_" + bytes([0, 0x1F, 2, 8])
        + struct.pack("<H", max(len(p) for p in parts)) + bytes(6)
        + b"_DMI_" + b"\0" + struct.pack("<HIH", len(blob), 0, len(parts)) + bytes([0x28])
    )  # fmt: skip


def smbios30_anchor(blob: bytes) -> bytes:
    """QEMU's 24-byte _SM3_ anchor: checksum and address 0, maximum size the blob's."""
    return b"_SM3_" + bytes([0, 0x18, 3, 0, 0, 1, 0]) + struct.pack("<IQ", len(blob), 0)


def _fix(data: bytearray, at: int, start: int, end: int) -> None:
    data[at] = 0
    data[at] = -sum(data[start:end]) & 0xFF


def smbios21_install(anchor: bytes, table: bytes, address: int) -> bytes:
    """The 2.1 entry point a BIOS writes for `table` (QEMU's blob, maybe after a type 0) at
    `address`: length, address, count and max structure size from the table, checksums."""
    ep = bytearray(anchor)
    parts = structures(table)
    struct.pack_into("<H", ep, 0x08, max(len(p) for p in parts))
    struct.pack_into("<HIH", ep, 0x16, len(table), address, len(parts))
    _fix(ep, 0x15, 0x10, 0x1F)  # the intermediate part first: it is inside the whole
    _fix(ep, 0x04, 0x00, 0x10)
    return bytes(ep)


def smbios30_install(anchor: bytes, table: bytes, address: int) -> bytes:
    ep = bytearray(anchor)
    struct.pack_into("<IQ", ep, 0x0C, len(table), address)
    _fix(ep, 0x05, 0x00, 0x18)
    return bytes(ep)


def resum21(ep: bytes) -> bytes:
    """Both 2.1 checksums made right again after an edit."""
    out = bytearray(ep)
    _fix(out, 0x15, 0x10, 0x1F)
    _fix(out, 0x04, 0x00, 0x10)
    return bytes(out)


# ---- the MP table -------------------------------------------------------------------------

MP_INT, MP_NMI, MP_EXTINT = 0, 1, 3
IOAPIC_ADDR = 0xFEC0_0000
LAPIC_ADDR = 0xFEE0_0000


def mp_cpu(apic: int, flags: int = 1, signature: int = 0x663, features: int = 0x78BFBFD) -> bytes:
    return struct.pack("<BBBBII8x", 0, apic, 0x14, flags, signature, features)


def mp_bus(bus_id: int, kind: bytes) -> bytes:
    return struct.pack("<BB6s", 1, bus_id, kind.ljust(6))


def mp_ioapic(apic_id: int, addr: int = IOAPIC_ADDR, flags: int = 1) -> bytes:
    return struct.pack("<BBBBI", 2, apic_id, 0x20, flags, addr)


def mp_intsrc(irqtype: int, bus: int, irq: int, dst: int, pin: int, flags: int = 0) -> bytes:
    return struct.pack("<BBHBBBB", 3, irqtype, flags, bus, irq, dst, pin)


def mp_lintsrc(irqtype: int, dst: int, pin: int) -> bytes:
    return struct.pack("<BBHBBBB", 4, irqtype, 0, 0, 0, dst, pin)


def qboot_entries(cpus: int, irq0_override: bool = True) -> list[bytes]:
    """qboot's entries: CPUs 0..n-1 (0 the bootstrap one), ISA bus 0, IOAPIC n + 1, ISA IRQs
    0-15 on their pins (IRQ 0 on pin 2 and no IRQ 2 with the override), ExtINT, NMI."""
    ioapic = cpus + 1
    out = [mp_cpu(i, 3 if i == 0 else 1) for i in range(cpus)]
    out += [mp_bus(0, b"ISA"), mp_ioapic(ioapic)]
    for irq in range(16):
        if irq0_override and irq == 2:
            continue
        out.append(mp_intsrc(MP_INT, 0, irq, ioapic, 2 if irq0_override and irq == 0 else irq))
    return [*out, mp_lintsrc(MP_EXTINT, 0, 0), mp_lintsrc(MP_NMI, 0xFF, 1)]


def mp_config(
    entries: Sequence[bytes],
    *,
    oem: bytes = b"QBOOT",
    product: bytes = b"000000000000",
    lapic: int = LAPIC_ADDR,
    spec: int = 4,
    count: int | None = None,
) -> bytes:
    """The configuration table: header ("PCMP", base length, spec, checksum, OEM/product IDs,
    entry count, local APIC address) and the entries."""
    body = b"".join(entries)
    header = bytearray(
        struct.pack(
            "<4sHBB8s12sIHHIHBx", b"PCMP", 44 + len(body), spec, 0, oem.ljust(8),
            product.ljust(12), 0, 0, len(entries) if count is None else count, lapic, 0, 0,
        )
    )  # fmt: skip
    table = bytearray(header + body)
    _fix(table, 7, 0, len(table))
    return bytes(table)


def mp_floating(table_addr: int, spec: int = 4, length: int = 1) -> bytes:
    fp = bytearray(struct.pack("<4sIBBBBB3x", b"_MP_", table_addr, length, spec, 0, 0, 0))
    _fix(fp, 10, 0, 16)
    return bytes(fp)


def resum(data: bytes, at: int, start: int = 0, end: int | None = None) -> bytes:
    """The checksum byte at `at` made right again over [start, end)."""
    out = bytearray(data)
    _fix(out, at, start, len(out) if end is None else end)
    return bytes(out)
