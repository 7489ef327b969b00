"""Assemble asm/*.s with Keystone into one firmware image.

Keystone gives bytes but no symbol table, and some statements silently assemble to nothing
(toolchain.md). So each source is preprocessed: comments go, layout constants come in as
``.equ``, and a check label is put before every statement. One extra ``.long`` per label,
appended after the code, makes Keystone write every label's address into the output without
changing a byte before it. A statement whose check labels are equal produced no bytes: that
is an error naming its file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from keystone import KS_ARCH_X86, KS_ERR_ASM_SYMBOL_MISSING, KS_MODE_16, KS_MODE_32, Ks, KsError

from pvhfw.firmware import layout

# The assembly sources: package data of pvhfw (the repository's asm/, linked as pvhfw/asm).
ASM_DIR: Traversable = resources.files("pvhfw") / "asm"
# A development override of ASM_DIR, for the mutation tool (tests/mutate.py): a directory of
# sources assembled instead of the package's, when set and not empty.
ASM_DIR_ENV = "PVHFW_ASM_DIR"


def sources_dir() -> Traversable:
    """The directory the sources are read from: $PVHFW_ASM_DIR if set, else ASM_DIR."""
    override = os.environ.get(ASM_DIR_ENV)
    return Path(override) if override else ASM_DIR


# The variants: "pvh" is the firmware, every source in asm/ (main.s first, with start32; the
# others in name order: none falls through into the next), "floor" the benchmark baseline,
# which only switches to 32-bit mode and jumps to the patched entry. The patch table
# (patch_table_source, from layout.PATCH_FIELDS) follows the 32-bit sources of both.
VARIANTS = ("pvh", "floor")
RESET16_SOURCE = "reset16.s"
FLOOR_SOURCE = "floor.s"
MAIN_SOURCE = "main.s"
PATCH_TABLE_SOURCE = "<patch table>"  # the listing's names for the generated statements
DATA_SOURCE = "<layout data>"
# Data the pvh variant's sources use, built in firmware/layout.py: label -> bytes.
LAYOUT_DATA = {
    "smbios_type0": layout.SMBIOS_TYPE0,
    # contiguous: the MP table's templates, copied in one pass but the tail
    "mp_floating": layout.MP_FLOATING_TEMPLATE,
    "mp_header": layout.MP_HEADER_TEMPLATE,
    "mp_tail": layout.MP_TAIL_TEMPLATE,
}

_LABEL = re.compile(r"^([A-Za-z_.][\w.]*):$")
_SILENT = (".equ", ".set", ".org", ".align", ".balign", ".p2align")  # may emit no bytes
_CHECK = "__stmt_"


class AssemblyError(Exception):
    """An assembly source could not be turned into bytes; the message names file and line."""


@dataclass(frozen=True)
class Statement:
    file: str
    line: int
    text: str


@dataclass(frozen=True)
class ListingLine:
    address: int
    data: bytes
    file: str
    line: int
    text: str


@dataclass(frozen=True)
class Block:
    """One Keystone assembly: bytes at an address, its labels and a listing."""

    name: str
    mode: int  # 16 or 32
    base: int  # address the code was assembled for (IP offset in 16-bit mode)
    code: bytes
    labels: dict[str, int]
    listing: tuple[ListingLine, ...]


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int  # linear address in the guest (the ROM copy below 4 GiB)
    offset: int  # offset in the image
    block: str


@dataclass(frozen=True)
class Firmware:
    variant: str
    image: bytes
    symbols: dict[str, Symbol]
    blocks: tuple[Block, ...]

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise AssemblyError(
                f"firmware: no symbol {name!r} in the {self.variant} image"
            ) from None

    def source_at(self, offset: int) -> ListingLine | None:
        """The listing line whose bytes hold image offset `offset` (None: no code there)."""
        for block in self.blocks:
            start = block.base - layout.ROM_BASE if block.mode == 32 else block.base
            if not start <= offset < start + len(block.code):
                continue
            for line in block.listing:
                at = line.address - layout.ROM_BASE if block.mode == 32 else line.address
                if at <= offset < at + len(line.data):
                    return line
        return None


def _strip_comment(text: str) -> str:
    """Drop a ';' comment, leaving ';' inside quotes alone."""
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == ";":
            return text[:i]
    return text


def parse_source(name: str, text: str) -> list[Statement]:
    """The non-empty lines of a source, without comments, with their provenance."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = _strip_comment(raw).strip()
        if stripped:
            out.append(Statement(name, number, stripped))
    return out


def _constants_prelude(constants: dict[str, int]) -> list[str]:
    return [f".equ {name}, {value:#x}" for name, value in sorted(constants.items())]


_MEMORY_OPERAND = re.compile(r"\[([^\]]*)\]")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_.][\w.]*")
_REGISTERS = frozenset(
    [
        "eax",
        "ebx",
        "ecx",
        "edx",
        "esi",
        "edi",
        "ebp",
        "esp",
        "ax",
        "bx",
        "cx",
        "dx",
        "si",
        "di",
        "bp",
        "sp",
        "al",
        "ah",
        "bl",
        "bh",
        "cl",
        "ch",
        "dl",
        "dh",
    ]
)


# Words of Intel-syntax operands that are not symbols.
_OPERAND_WORDS = frozenset(
    ["byte", "word", "dword", "qword", "ptr", "cs", "ds", "es", "fs", "gs", "ss"]
    + [f"cr{n}" for n in range(5)]
)


def fold_memory_constants(st: Statement, constants: dict[str, int]) -> str:
    """The statement with every layout constant inside a memory operand replaced by its value.

    Keystone silently keeps only the last symbol of ``[A + B]`` (``[ZERO_PAGE + BP_HEADER]``
    assembles as ``[BP_HEADER]``), so constants are folded to numbers here, and a memory
    operand still naming two symbols (labels) is an error.
    """

    def fold(match: re.Match[str]) -> str:
        inner = _IDENTIFIER.sub(
            lambda m: f"{constants[m.group(0)]:#x}" if m.group(0) in constants else m.group(0),
            match.group(1),
        )
        symbols = [name for name in _IDENTIFIER.findall(inner) if name.lower() not in _REGISTERS]
        if len(symbols) > 1:
            raise AssemblyError(
                f"{st.file}:{st.line}: a memory operand with two symbols ({', '.join(symbols)}) "
                f"would be mis-encoded by keystone: {st.text}"
            )
        return f"[{inner}]"

    return _MEMORY_OPERAND.sub(fold, st.text)


def _keystone(mode: int) -> Ks:
    return Ks(KS_ARCH_X86, KS_MODE_16 if mode == 16 else KS_MODE_32)


def _locate_error(
    mode: int, statements: Sequence[Statement], constants: dict[str, int], problem: str
) -> AssemblyError:
    """Keystone says neither which line failed nor that it dropped one (it may return no
    bytes at all): assemble each statement alone, the block's labels defined as 0. (Not with
    a symbol resolver: once one is set on any Keystone handle, Keystone refuses constant
    expressions such as ``X << 24`` in every handle of the process.)"""
    labels = {m.group(1) for st in statements if (m := _LABEL.match(st.text))}
    known = {**constants, **dict.fromkeys(labels, 0)}
    prelude = "\n".join(_constants_prelude(known))
    ks = _keystone(mode)
    for st in statements:
        if _LABEL.match(st.text):
            continue
        try:
            encoded, _ = ks.asm(prelude + "\n" + fold_memory_constants(st, constants), 0)
        except KsError as e:
            operands = st.text.split(None, 1)[1:]
            unknown = [
                name
                for name in _IDENTIFIER.findall(operands[0] if operands else "")
                if name not in known and name.lower() not in _REGISTERS | _OPERAND_WORDS
            ]
            if e.errno == KS_ERR_ASM_SYMBOL_MISSING and unknown:
                return AssemblyError(
                    f"{st.file}:{st.line}: undefined symbol {unknown[0]}: {st.text}"
                )
            return AssemblyError(f"{st.file}:{st.line}: {e}: {st.text}")
        if not encoded and st.text.split()[0].lower() not in _SILENT:
            return AssemblyError(
                f"{st.file}:{st.line}: keystone assembled this to no bytes: {st.text}"
            )
    return AssemblyError(f"{statements[0].file}: keystone: {problem}")


def assemble_block(
    name: str,
    statements: Sequence[Statement],
    *,
    mode: int,
    base: int,
    constants: dict[str, int],
) -> Block:
    """Assemble statements at base; every statement must produce bytes."""
    lines = _constants_prelude(constants)
    labels: list[str] = []
    checks: list[tuple[str, Statement]] = []
    for st in statements:
        label = _LABEL.match(st.text)
        if label:
            labels.append(label.group(1))
            lines.append(st.text)
            continue
        check = f"{_CHECK}{len(checks)}"
        checks.append((check, st))
        lines.append(f"{check}:")
        lines.append(fold_memory_constants(st, constants))
    end = f"{_CHECK}end"
    lines.append(f"{end}:")
    names = labels + [c for c, _ in checks] + [end]
    body = "\n".join(lines)
    trailer = "\n".join(f".long {n}" for n in names)
    ks = _keystone(mode)
    try:
        encoded, _ = ks.asm(body + "\n" + trailer, base)
    except KsError as e:
        raise _locate_error(mode, statements, constants, str(e)) from None
    data = bytes(encoded or b"")
    code_len = len(data) - 4 * len(names)
    if code_len < 0:
        raise _locate_error(mode, statements, constants, "fewer bytes than the label table")
    code = data[:code_len]
    values = [
        int.from_bytes(data[code_len + 4 * i : code_len + 4 * i + 4], "little")
        for i in range(len(names))
    ]
    addr = dict(zip(names, values, strict=True))
    if addr[end] - base != code_len:
        raise AssemblyError(f"{name}: label table out of step with the code")

    listing = []
    for i, (check, st) in enumerate(checks):
        start = addr[check]
        stop = addr[checks[i + 1][0]] if i + 1 < len(checks) else addr[end]
        size = stop - start
        directive = st.text.split()[0].lower()
        if size <= 0 and directive not in _SILENT:
            raise AssemblyError(
                f"{st.file}:{st.line}: keystone assembled this to no bytes: {st.text}"
            )
        listing.append(
            ListingLine(start, code[start - base : stop - base], st.file, st.line, st.text)
        )
    return Block(
        name=name,
        mode=mode,
        base=base,
        code=code,
        labels={n: addr[n] for n in labels},
        listing=tuple(listing),
    )


def _read_sources(asm_dir: Traversable, files: Iterable[str]) -> list[Statement]:
    statements: list[Statement] = []
    for f in files:
        path = asm_dir / f
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise AssemblyError(f"{path}: cannot read assembly source: {e.strerror}") from None
        statements.extend(parse_source(f"asm/{f}", text))
    return statements


def variant_sources(variant: str, asm_dir: Traversable) -> list[str]:
    """The 32-bit sources of a variant, in image order."""
    if variant == "floor":
        return [FLOOR_SOURCE]
    others = {RESET16_SOURCE, FLOOR_SOURCE, MAIN_SOURCE}
    names = sorted(p.name for p in asm_dir.iterdir() if p.name.endswith(".s"))
    return [MAIN_SOURCE, *(n for n in names if n not in others)]


def patch_table_source() -> list[Statement]:
    """The patch table's statements, generated from layout.PATCH_FIELDS (the one definition of
    its fields): ``patch_table``, the magic, then ``patch_<name>:`` and a zero per field. The
    statement's line is the field's number (0: the magic)."""
    src = PATCH_TABLE_SOURCE
    magic = layout.PATCH_MAGIC.decode("ascii")
    out = [Statement(src, 0, "patch_table:"), Statement(src, 0, f'.ascii "{magic}"')]
    directives = {1: ".byte", 2: ".word", 4: ".long", 8: ".quad"}
    for number, f in enumerate(layout.PATCH_FIELDS, start=1):
        if f.size not in directives:
            raise AssemblyError(f"firmware: patch field {f.name} has size {f.size}")
        out.append(Statement(src, number, f"{f.symbol}:"))
        out.append(Statement(src, number, f"{directives[f.size]} 0"))
    out.append(Statement(src, len(layout.PATCH_FIELDS) + 1, "patch_table_end:"))
    return out


def data_source(label: str, data: bytes) -> list[Statement]:
    """``label:``, the bytes (16 a statement), ``label_end:``; each statement's line is the
    offset of its first byte."""
    out = [Statement(DATA_SOURCE, 0, f"{label}:")]
    for at in range(0, len(data), 16):
        chunk = ", ".join(f"{b:#04x}" for b in data[at : at + 16])
        out.append(Statement(DATA_SOURCE, at, f".byte {chunk}"))
    out.append(Statement(DATA_SOURCE, len(data), f"{label}_end:"))
    return out


def assemble_firmware(variant: str = "pvh", asm_dir: Traversable | None = None) -> Firmware:
    """The unpatched image of a variant: 32-bit code at CODE32_OFFSET, 16-bit reset code at
    RESET16_OFFSET, the reset vector in the last 16 bytes."""
    if variant not in VARIANTS:
        raise AssemblyError(f"firmware: unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    asm_dir = asm_dir or sources_dir()
    constants = layout.asm_constants()

    code32 = assemble_block(
        f"{variant}32",
        [
            *_read_sources(asm_dir, variant_sources(variant, asm_dir)),
            *(
                s
                for label, data in LAYOUT_DATA.items()
                if variant == "pvh"
                for s in data_source(label, data)
            ),
            *patch_table_source(),
        ],
        mode=32,
        base=layout.ROM_BASE + layout.CODE32_OFFSET,
        constants=constants,
    )
    if "start32" not in code32.labels:
        raise AssemblyError(f"firmware: the {variant} sources define no start32")
    if layout.CODE32_OFFSET + len(code32.code) > layout.RESET16_OFFSET:
        raise AssemblyError(
            f"firmware: 32-bit code is {len(code32.code)} bytes and runs into the reset code"
        )
    code16 = assemble_block(
        "reset16",
        _read_sources(asm_dir, [RESET16_SOURCE]),
        mode=16,
        base=layout.RESET16_OFFSET,
        constants={**constants, "START32": code32.labels["start32"]},
    )
    if len(code16.code) > layout.IMAGE_SIZE - layout.RESET16_OFFSET:
        raise AssemblyError(f"firmware: 16-bit code is {len(code16.code)} bytes, too large")
    if code16.labels.get("reset_vector") != layout.RESET_VECTOR_OFFSET:
        raise AssemblyError("firmware: reset_vector is not at the reset vector offset")
    if code16.labels.get("gdt_desc") != layout.GDT_DESC_OFFSET:
        raise AssemblyError("firmware: gdt_desc is not at GDT_DESC_OFFSET")

    image = bytearray(layout.IMAGE_SIZE)
    image[layout.CODE32_OFFSET : layout.CODE32_OFFSET + len(code32.code)] = code32.code
    image[layout.RESET16_OFFSET : layout.RESET16_OFFSET + len(code16.code)] = code16.code

    symbols: dict[str, Symbol] = {}
    for name, address in code32.labels.items():
        offset = address - layout.ROM_BASE
        symbols[name] = Symbol(name, address, offset, code32.name)
    for name, ip in code16.labels.items():
        if name in symbols:
            raise AssemblyError(f"firmware: symbol {name} defined in both 16- and 32-bit code")
        symbols[name] = Symbol(name, layout.ROM_BASE + ip, ip, code16.name)
    return Firmware(variant, bytes(image), symbols, (code32, code16))
