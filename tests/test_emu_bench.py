"""Tests of the unicorn bench (tests/emu) with tiny firmware images assembled here."""

from __future__ import annotations

import re
import struct

import pytest
from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, Cs
from keystone import KS_ARCH_X86, KS_MODE_16, KS_MODE_32, Ks

from tests import spec
from tests.emu.fwcfg import FlatMemory, PortAccess, SimFwCfg
from tests.emu.machine import BootEvent, Descriptor, run_firmware

IMAGE = 0x10000
HIGH = (1 << 32) - IMAGE  # where a 64 KiB image's offset 0 is; the shadow is at 0xF0000
START32, GDT, GDT_DESC = 0x40, 0x100, 0x120
RESET_IP = 0xFFF0
ENTRY = 0x100000
FLAT = (0, 0xFFFFFFFF)

_KS = {16: Ks(KS_ARCH_X86, KS_MODE_16), 32: Ks(KS_ARCH_X86, KS_MODE_32)}
_CS = {16: Cs(CS_ARCH_X86, CS_MODE_16), 32: Cs(CS_ARCH_X86, CS_MODE_32)}
_ALIASES = {"jz": "je", "jnz": "jne"}


def listing(code: bytes, bits: int, base: int) -> list[str]:
    return [f"{i.mnemonic} {i.op_str}".strip() for i in _CS[bits].disasm(code, base)]


def asm(src: str, bits: int, base: int = 0) -> bytes:
    """Assemble, and check (keystone drops some statements silently) that the bytes
    disassemble into exactly the source's instructions, same mnemonics, nothing left over."""
    statements = [re.sub(r"^\w+:", "", s).strip() for s in src.strip().splitlines()]
    statements = [s for s in statements if s]
    code = bytes(_KS[bits].asm(src, base)[0])
    insns = list(_CS[bits].disasm(code, base))
    assert sum(i.size for i in insns) == len(code)
    assert len(insns) == len(statements), (statements, listing(code, bits, base))
    for insn, statement in zip(insns, statements, strict=True):
        words = statement.split()
        mnemonic = " ".join(words[:2] if words[0] in ("rep", "repe", "repne") else words[:1])
        assert insn.mnemonic == _ALIASES.get(mnemonic, mnemonic), (statement, insn.mnemonic)
    return code


def reset_jump(target: int) -> bytes:
    return b"\xe9" + ((target - (RESET_IP + 3)) & 0xFFFF).to_bytes(2, "little")


# 16-bit prologue at offset 0: load a GDT at 0xFFFFxxxx (o32 lgdt: a 32-bit base), enter
# protected mode, far jump (o32 ljmp, hand-encoded: keystone mis-encodes it) to START32.
LGDT32 = bytes([0x2E, 0x66, 0x0F, 0x01, 0x16]) + struct.pack("<H", GDT_DESC)
PROLOGUE16 = (
    asm("cli", 16)
    + LGDT32
    + asm("mov eax, cr0\nor eax, 1\nmov cr0, eax", 16)
    + bytes([0x66, 0xEA])
    + struct.pack("<IH", HIGH + START32, 0x08)
)
SEGMENTS32 = "mov ax, 0x10\nmov ds, ax\nmov es, ax\nmov ss, ax\n"
# Flat code and data, "accessed" already set: the CPU sets that bit when it loads a data
# segment, and with the GDT in ROM that write is dropped (and recorded) on every load.
GDT_BYTES = struct.pack("<QQQ", 0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF)


def image32(code32: str, gdt: bytes = GDT_BYTES) -> tuple[bytes, int]:
    """A 64 KiB image: reset vector -> 16-bit prologue -> 32-bit `code32` (with flat data
    segments loaded first). Also returns how many instructions run before `code32`."""
    img = bytearray(b"\xf4" * IMAGE)
    img[: len(PROLOGUE16)] = PROLOGUE16
    assert len(PROLOGUE16) <= START32
    body = asm(SEGMENTS32 + code32, 32, HIGH + START32)
    img[START32 : START32 + len(body)] = body
    img[GDT : GDT + len(gdt)] = gdt
    img[GDT_DESC : GDT_DESC + 6] = struct.pack("<HI", len(gdt) - 1, HIGH + GDT)
    img[RESET_IP : RESET_IP + 3] = reset_jump(0)
    before = 1 + len(listing(PROLOGUE16, 16, 0)) + 4  # reset jmp, prologue, segment loads
    return bytes(img), before


def image16(code16: str) -> bytes:
    img = bytearray(b"\xf4" * IMAGE)
    code = asm(code16, 16)
    img[: len(code)] = code
    img[RESET_IP : RESET_IP + 3] = reset_jump(0)
    return bytes(img)


def dma_kick(desc: int) -> str:
    """32-bit code starting a DMA transfer with the descriptor at `desc` (< 4 GiB)."""
    low = int.from_bytes(desc.to_bytes(4, "big"), "little")  # the register is big-endian
    return (
        f"mov dx, 0x514\nxor eax, eax\nout dx, eax\nmov dx, 0x518\nmov eax, {low:#x}\nout dx, eax\n"
    )


def descriptor(control: int, length: int, address: int) -> bytes:
    return struct.pack(">IIQ", control, length, address)


def be32(value: int) -> bytes:
    return struct.pack(">I", value)


# -- (a) the floor firmware ------------------------------------------------------------------


def test_floor_reaches_entry_in_flat_protected_mode() -> None:
    img, before = image32(f"jmp {ENTRY:#x}")
    listed = (
        listing(reset_jump(0), 16, RESET_IP)
        + listing(PROLOGUE16, 16, 0)
        + listing(img[START32 : START32 + 18], 32, HIGH + START32)
    )
    assert listed == [
        "jmp 0x10000",  # capstone does not wrap IP at 64 KiB; the CPU lands on IP 0
        "cli",
        "lgdt cs:[0x120]",
        "mov eax, cr0",
        "or eax, 1",
        "mov cr0, eax",
        "ljmp 8:0xffff0040",
        "mov ax, 0x10",
        "mov ds, ax",
        "mov es, ax",
        "mov ss, ax",
        "jmp 0x100000",
    ]
    r = run_firmware(img, SimFwCfg(), stop_at=ENTRY)
    assert r.error is None and r.stopped_at_entry and not r.halted
    assert r.instructions == len(listed) == before + 1 == 12
    regs = r.regs
    assert regs["eip"] == ENTRY
    assert (regs["cs"], regs["ds"], regs["es"], regs["ss"]) == (0x08, 0x10, 0x10, 0x10)
    assert regs["cr0"] == 0x60000011  # reset CR0 (CD|NW|ET) | PE: QEMU's value too
    assert (regs["gdtr_base"], regs["gdtr_limit"]) == (HIGH + GDT, 23)
    assert r.descriptor(0x08) == Descriptor(*FLAT, 0x9B, 0xC)
    assert r.descriptor(0x10) == Descriptor(*FLAT, 0x93, 0xC)
    assert r.port_accesses == [] and r.rom_writes == [] and r.fwcfg_accesses == 0


def test_reset_state_and_rom_mapping() -> None:
    img = bytearray(b"\xf4" * 0x40000)  # 256 KiB: only the last 128 KiB are below 1 MiB
    img[0:4] = b"HEAD"
    img[-0x20000 : -0x20000 + 4] = b"SHAD"
    r = run_firmware(bytes(img), SimFwCfg(), stop_at=0xFFFF0)
    assert r.stopped_at_entry and r.instructions == 0
    assert (r.regs["cs"], r.regs["eip"], r.regs["cr0"], r.regs["edx"]) == (
        0xF000,
        0xFFF0,
        0x60000010,
        0x663,
    )
    assert r.mem((1 << 32) - 0x40000, 4) == b"HEAD"
    assert r.mem(0xE0000, 4) == b"SHAD"
    assert r.mem(0xFFFFFFF0, 16) == r.mem(0xFFFF0, 16) == bytes(img[-16:])
    with pytest.raises(ValueError):
        run_firmware(bytes(0x18000), SimFwCfg())


def test_lgdt_without_operand_size_prefix_loads_a_24_bit_base() -> None:
    # The pitfall of toolchain.md, reproduced by unicorn as by a CPU.
    img = bytearray(image16("lgdt cs:[0x120]\nhlt"))
    img[GDT_DESC : GDT_DESC + 6] = struct.pack("<HI", 23, HIGH + GDT)
    r = run_firmware(bytes(img), SimFwCfg())
    assert r.halted and r.regs["gdtr_base"] == (HIGH + GDT) & 0xFFFFFF


def test_rom_writes_are_dropped_and_recorded() -> None:
    img, before = image32(f"mov dword ptr [{HIGH + 0x800:#x}], 0x12345678\nhlt")
    r = run_firmware(img, SimFwCfg())
    assert r.halted and r.instructions == before + 2
    assert [(w.insn, w.address, w.size, w.value) for w in r.rom_writes] == [
        (before, HIGH + 0x800, 4, 0x12345678)
    ]
    assert r.mem(HIGH + 0x800, 4) == b"\xf4" * 4


def test_accessed_bit_writes_to_a_gdt_in_rom_are_recorded() -> None:
    gdt = struct.pack("<QQQ", 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF)
    img, before = image32("hlt", gdt)
    r = run_firmware(img, SimFwCfg())
    assert r.halted and r.error is None
    # DS, ES, SS loads each try to set the accessed bit of descriptor 0x10 (bytes 4-7).
    assert r.rom_writes == [(before - 3 + i, HIGH + GDT + 0x14, 4, 0x00CF9300) for i in range(3)]
    assert r.descriptor(0x10).access == 0x92


def test_errors_and_limits_end_the_run() -> None:
    r = run_firmware(image32("int3")[0], SimFwCfg())
    assert r.exception == 3 and r.error and not r.halted
    r = run_firmware(image32("ud2")[0], SimFwCfg())
    assert r.error and "INSN_INVALID" in r.error
    r = run_firmware(image32("mov eax, [0xc0000000]")[0], SimFwCfg())
    assert r.error and "UNMAPPED" in r.error
    r = run_firmware(image32("l: jmp l")[0], SimFwCfg(), max_instructions=100)
    assert r.timeout and r.instructions == 100 and r.error is None


def test_code_outside_the_rom_ends_the_run() -> None:
    """A jump into RAM (here a hlt the test put there) is an error, not a run of RAM."""
    img, before = image32("mov eax, 0x7000\njmp eax")
    r = run_firmware(img, SimFwCfg(), ram_init={0x7000: b"\xf4"})
    assert r.error == "executed 0x7000, outside the ROM" and not r.halted
    assert r.instructions == before + 2


def test_writes_are_tracked_from_the_cpu_and_from_dma() -> None:
    desc = 0x3000
    img, _ = image32(f"mov dword ptr [0x2000], 1\nmov word ptr [0x2010], 2\n{dma_kick(desc)}hlt")
    sim = SimFwCfg(items={0x30: b"abcdef"})
    ram = {desc: descriptor(0x30 << 16 | 0x8 | 0x2, 6, 0x4000)}  # select 0x30, read 6 bytes
    r = run_firmware(img, sim, ram_init=ram, track_writes=True)
    assert r.halted and r.mem(0x4000, 6) == b"abcdef"
    assert r.writes == [(0x2000, 4), (0x2010, 2), (0x4000, 6), (desc, 4)]  # then the status
    assert run_firmware(img, SimFwCfg(items={0x30: b"abcdef"}), ram_init=ram).writes == []


# -- (b) fw_cfg through the CPU --------------------------------------------------------------


def test_signature_by_io_ports_and_dma_register() -> None:
    img, _ = image32(
        "mov dx, 0x510\nxor eax, eax\nout dx, ax\n"
        "mov dx, 0x511\nmov edi, 0x2000\nmov ecx, 4\ncld\nrep insb\n"
        "mov dx, 0x514\nin eax, dx\nmov [0x2004], eax\n"
        "mov dx, 0x518\nin eax, dx\nmov [0x2008], eax\n"
        "mov dx, 0x510\nmov ax, 1\nout dx, ax\nmov dx, 0x511\nin al, dx\nmov [0x200c], al\n"
        "hlt"
    )
    r = run_firmware(img, SimFwCfg())
    assert r.halted and r.error is None
    assert r.mem(0x2000, 13) == b"QEMUQEMU CFG\x03"
    assert r.fwcfg.accesses[:2] == [
        PortAccess("out", 0x510, 2, 0),
        PortAccess("in", 0x511, 1, 0x51),
    ]
    assert r.fwcfg.violations == []


def test_dma_read_of_the_file_directory() -> None:
    files = {"etc/e820": b"x" * 20, "bootorder": b"", "etc/acpi/rsdp": b"r" * 20}
    sim = SimFwCfg(files=files)
    size = 4 + 64 * spec.FW_CFG_FILE_SLOTS_DFLT
    img, _ = image32(dma_kick(0x3000) + "hlt")
    desc = descriptor(
        (spec.FW_CFG_FILE_DIR << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_READ,
        size,
        0x4000,
    )
    r = run_firmware(img, sim, ram_init={0x3000: desc})
    assert r.halted and r.error is None
    directory = r.mem(0x4000, size)
    assert directory == sim.items[spec.FW_CFG_FILE_DIR]
    assert struct.unpack_from(">I", directory)[0] == 3
    entries = [struct.unpack_from(">IHH56s", directory, 4 + 64 * i) for i in range(3)]
    assert [(n.rstrip(b"\0"), sel, ln) for ln, sel, _, n in entries] == [
        (b"bootorder", 0x20, 0),
        (b"etc/acpi/rsdp", 0x21, 20),
        (b"etc/e820", 0x22, 20),
    ]
    assert r.mem(0x3000, 4) == be32(0)  # control cleared
    assert r.fwcfg.dma_addr == 0
    (t,) = r.fwcfg.dma_log
    assert (t.desc_addr, t.key, t.length, t.address, t.status) == (0x3000, 0x19, size, 0x4000, 0)
    dma_outs = [a for a in r.port_accesses if a.port in (0x514, 0x518)]
    assert [(a.port, a.size, a.value) for a in dma_outs] == [(0x514, 4, 0), (0x518, 4, 0x00300000)]


def test_dma_write_to_read_only_item_sets_the_error_bit() -> None:
    img, _ = image32(dma_kick(0x3000) + "hlt")
    desc = descriptor(
        (spec.FW_CFG_SIGNATURE << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_WRITE,
        4,
        0x4000,
    )
    r = run_firmware(img, SimFwCfg(), ram_init={0x3000: desc, 0x4000: b"ABCD"})
    assert r.mem(0x3000, 4) == be32(spec.FW_CFG_DMA_CTL_ERROR)
    assert r.fwcfg.items[spec.FW_CFG_SIGNATURE] == b"QEMU"
    assert r.fwcfg.dma_log[0].status == spec.FW_CFG_DMA_CTL_ERROR


def test_dma_zero_fills_past_the_end_and_for_missing_keys() -> None:
    img, _ = image32(dma_kick(0x3000) + dma_kick(0x3010) + dma_kick(0x3020) + "hlt")
    ram = {
        0x3000: descriptor(
            (spec.FW_CFG_SIGNATURE << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_READ,
            8,
            0x4000,
        ),
        0x3010: descriptor(
            (0x1234 << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_READ, 4, 0x4100
        ),
        0x3020: descriptor(
            (spec.FW_CFG_SIGNATURE << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_READ,
            4,
            0xA0000,
        ),
        0x4000: b"\xaa" * 16,
        0x4100: b"\xaa" * 8,
    }
    r = run_firmware(img, SimFwCfg(), ram_init=ram)
    assert r.mem(0x4000, 16) == b"QEMU" + bytes(4) + b"\xaa" * 8
    assert r.mem(0x4100, 8) == bytes(4) + b"\xaa" * 4
    assert r.mem(0x3000, 4) == r.mem(0x3010, 4) == be32(0)
    assert r.mem(0x3020, 4) == be32(spec.FW_CFG_DMA_CTL_ERROR)  # destination is not RAM


def test_io_and_dma_share_the_item_offset() -> None:
    img, _ = image32(
        "mov dx, 0x510\nxor eax, eax\nout dx, ax\n"
        "mov dx, 0x511\nin al, dx\nmov [0x2000], al\nin al, dx\nmov [0x2001], al\n"
        + dma_kick(0x3000)
        + "mov dx, 0x511\nin al, dx\nmov [0x2004], al\n"
        + dma_kick(0x3010)
        + "mov dx, 0x511\nin al, dx\nmov [0x2005], al\n"
        "hlt"
    )
    ram = {
        0x3000: descriptor(spec.FW_CFG_DMA_CTL_READ, 2, 0x2002),
        0x3010: descriptor(
            (spec.FW_CFG_ID << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_SKIP, 0, 0
        ),
        0x2000: b"\xaa" * 6,
    }
    r = run_firmware(img, SimFwCfg(), ram_init=ram)
    # "QE" by I/O, "MU" by DMA, then 0 past the end; a select by DMA resets the offset.
    assert r.mem(0x2000, 6) == b"QEMU\x00\x03"


# -- (c) serial and events -------------------------------------------------------------------


def test_serial_and_boot_events() -> None:
    putc = (
        "mov dx, 0x3fd\n{l}: in al, dx\ntest al, 0x20\njz {l}\n"  # wait for THR empty
        "mov dx, 0x3f8\nmov al, {c}\nout dx, al\n"
    )
    code = "mov al, 1\nout 0xf5, al\n" + "".join(
        putc.format(l=f"w{i}", c=ord(c)) for i, c in enumerate("hi\n")
    )
    img, before = image32(code + "mov al, 7\nout 0xf4, al\nhlt")
    r = run_firmware(img, SimFwCfg())
    assert r.halted and r.serial == "hi\n"
    per_char = 7
    assert r.events == [
        BootEvent(0xF5, 1, before + 1),
        BootEvent(0xF4, 7, before + 2 + 3 * per_char + 1),
    ]
    assert r.instructions == before + 2 + 3 * per_char + 3
    assert [a.value for a in r.port_accesses if a.port == 0x3FD] == [0x60] * 3
    assert r.fwcfg_accesses == 0


# -- (d) rep counting --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 300])
def test_rep_insb_counts_one_instruction_per_iteration(n: int) -> None:
    img, before = image32(
        f"mov dx, 0x510\nmov ax, {spec.FW_CFG_FILE_DIR}\nout dx, ax\n"
        f"mov dx, 0x511\nmov edi, 0x2000\nmov ecx, {n}\ncld\nrep insb\nhlt"
    )
    sim = SimFwCfg(files={"etc/e820": b"e" * 20})
    r = run_firmware(img, sim)
    assert r.halted
    assert r.instructions == before + 7 + max(n, 1) + 1
    reads = [a for a in r.port_accesses if a.port == 0x511]
    assert len(reads) == n
    assert r.mem(0x2000, n) == sim.items[spec.FW_CFG_FILE_DIR][:n]
    assert [a.insn for a in reads] == list(range(before + 7, before + 7 + n))


def test_rep_in_real_mode_uses_cx() -> None:
    # ECX's high half is not the count with a 16-bit address size: 3 iterations.
    img = image16("mov ecx, 0x10003\nmov dx, 0x80\nxor di, di\nrep insb\nhlt")
    r = run_firmware(img, SimFwCfg())
    assert r.halted and r.instructions == 1 + 3 + 3 + 1
    assert r.regs["ecx"] == 0x10000
    assert len([a for a in r.port_accesses if a.port == 0x80]) == 3


# -- SimFwCfg without a CPU ----------------------------------------------------------------------


def test_selector_needs_a_16_bit_write() -> None:
    sim = SimFwCfg()
    sim.port_out(0x510, 2, spec.FW_CFG_ID)
    sim.port_out(0x510, 1, spec.FW_CFG_SIGNATURE)  # ignored by QEMU
    assert sim.key == spec.FW_CFG_ID and sim.violations
    assert sim.port_in(0x511, 1) == 3  # ID: version 1 | DMA
    assert sim.port_in(0x510, 1) == 0  # a byte read at 0x510 reads data too
    assert sim.port_in(0x511, 2) == 0xFF00  # 1 data byte (0 past the end) + unassigned 0x512
    assert sim.port_in(0x511, 4) == 0x51FFFF00  # ... + 0x512-0x513 + "Q" of the DMA register


def test_wide_reads_and_dma_register_rules() -> None:
    sim = SimFwCfg()
    assert sim.port_in(0x510, 2) == 0  # rejected: the data port is 8-bit
    assert sim.port_in(0x514, 4) == int.from_bytes(b"QEMU", "little")
    assert sim.port_in(0x51A, 2) == int.from_bytes(b"FG", "little")
    assert sim.port_in(0x514, 1) == ord("Q")
    sim.port_out(0x514, 2, 0x1234)  # rejected
    assert sim.dma_addr == 0
    sim.memory = FlatMemory(0x10000)
    sim.memory.write(0x100, descriptor(spec.FW_CFG_DMA_CTL_SELECT | (spec.FW_CFG_ID << 16), 0, 0))
    sim.port_out(0x514, 4, 0)
    sim.port_out(0x518, 4, int.from_bytes((0x100).to_bytes(4, "big"), "little"))
    assert sim.dma_log[0].desc_addr == 0x100 and sim.key == spec.FW_CFG_ID and sim.dma_addr == 0


def test_without_dma_or_device() -> None:
    sim = SimFwCfg(dma=False)
    assert sim.items[spec.FW_CFG_ID] == struct.pack("<I", 1)
    assert sim.port_in(0x514, 4) == 0xFFFFFFFF and sim.violations
    gone = SimFwCfg(present=False)
    gone.port_out(0x510, 2, 0)
    assert gone.port_in(0x511, 1) == 0xFF and gone.port_in(0x514, 4) == 0xFFFFFFFF
    assert len(gone.accesses) == 3 and gone.violations == []


def test_for_pvh_boot_items() -> None:
    below = 128 << 20
    initrd = b"i" * 5000
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=below,
        kernel_entry=0x1000850,
        kernel_addr=0x1000000,
        kernel_size=0x200000,
        cmdline=b"console=ttyS0",
        initrd=initrd,
        acpi_data_size=0,
    )

    def u32(key: int) -> int:
        return int(struct.unpack("<I", sim.items[key])[0])

    assert (
        u32(spec.FW_CFG_KERNEL_ENTRY),
        u32(spec.FW_CFG_KERNEL_ADDR),
        u32(spec.FW_CFG_KERNEL_SIZE),
    ) == (
        0x1000850,
        0x1000000,
        0x200000,
    )
    assert (
        u32(spec.FW_CFG_CMDLINE_SIZE) == 14
        and sim.items[spec.FW_CFG_CMDLINE_DATA] == b"console=ttyS0\0"
    )
    assert u32(spec.FW_CFG_INITRD_ADDR) == (below - 1 - 5000) & ~4095 == 0x7FFE000
    assert u32(spec.FW_CFG_INITRD_SIZE) == 5000 and sim.items[spec.FW_CFG_INITRD_DATA] == initrd
    assert struct.unpack("<Q", sim.items[spec.FW_CFG_RAM_SIZE]) == (below,)
    assert spec.FW_CFG_KERNEL_CMDLINE not in sim.items and spec.FW_CFG_SETUP_DATA not in sim.items
    assert sim.file_keys == {"etc/boot-fail-wait": 0x20, "etc/e820": 0x21}
    assert sim.items[0x21] == struct.pack("<QQI", 0, below, 1)
    pc = SimFwCfg.for_pvh_boot(
        ram_below_4g=below,
        ram_above_4g=1 << 30,
        kernel_entry=0,
        kernel_addr=0,
        kernel_size=0,
        initrd=initrd,
        setup_data=b"MZ",
    )
    assert struct.unpack("<I", pc.items[spec.FW_CFG_INITRD_ADDR]) == (
        (below - 0x28000 - 1 - 5000) & ~4095,
    )
    e820 = struct.pack("<QQIQQI", 0, below, 1, 1 << 32, 1 << 30, 1)
    assert pc.items[pc.file_keys["etc/e820"]] == e820
    assert (
        pc.items[spec.FW_CFG_CMDLINE_DATA] == b"\0"
        and len(pc.items[spec.FW_CFG_SETUP_DATA]) == 8192
    )


# -- a mini PVH loader on for_pvh_boot ------------------------------------------------------


def test_mini_pvh_loader_reaches_the_kernel_entry() -> None:
    entry = 0x1000850
    sim = SimFwCfg.for_pvh_boot(
        ram_below_4g=128 << 20,
        kernel_entry=entry,
        kernel_addr=0x1000000,
        kernel_size=0x1000,
        cmdline=b"console=ttyS0",
    )
    desc = descriptor(
        (spec.FW_CFG_KERNEL_ENTRY << 16) | spec.FW_CFG_DMA_CTL_SELECT | spec.FW_CFG_DMA_CTL_READ,
        4,
        0x2000,
    )
    img, before = image32(dma_kick(0x3000) + "mov ebx, 0x5000\njmp dword ptr [0x2000]")
    r = run_firmware(img, sim, stop_at=entry, ram_init={0x3000: desc, entry: b"\xf4"})
    assert r.stopped_at_entry and r.error is None
    assert r.instructions == before + 6 + 2
    assert (r.regs["eip"], r.regs["ebx"]) == (entry, 0x5000)
    assert r.fwcfg_accesses == 2 and r.fwcfg.violations == []
