"""Mutation testing of the firmware: break asm/ on purpose, one small change at a time, and
report every change the fast test layers do not notice.

One mutant per store to memory (dropped; its displacement one byte off), per conditional
branch (inverted) and per loop bound (a cmp's immediate, a count moved into ECX for rep or
loop: one more, one less). Each mutant is a copy of asm/ with one line changed, assembled
through $PVHFW_ASM_DIR (firmware/assemble.py); one that does not assemble is "invalid", one
whose images equal the originals "identical". The others run the kill set (the emulator
layers, quickest and most sensitive first) and stop at the first failure; a mutant that
survives it runs the rest of the fast layers (``-m "not qemu and not debian"``), and only one
that survives those too is a survivor. Survivors listed in docs/design.md's table of
equivalent mutants (file, kind, instruction, reason) are expected; any other fails the run.

    python3 -m tests.mutate                        # every mutant: docs/design.md has the figures
    python3 -m tests.mutate --sample 40 --seed 13 --no-baseline  # tools/test.sh's sample
    python3 -m tests.mutate --files asm/pvh.s --kinds drop
"""

from __future__ import annotations

import argparse
import ast
import operator
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pvhfw.firmware import layout
from pvhfw.firmware.assemble import (
    ASM_DIR_ENV,
    VARIANTS,
    AssemblyError,
    assemble_firmware,
    parse_source,
)

ROOT = Path(__file__).resolve().parent.parent
ASM = ROOT / "asm"
DESIGN = ROOT / "docs" / "design.md"
EQUIVALENTS_HEADING = "### Equivalent mutants"

KINDS = ("drop", "disp+1", "invert", "bound+1", "bound-1")
# The kill set, most sensitive and quickest first; the rest of the fast layers after it.
KILL_SET = (
    "tests/test_firmware_emu.py",
    "tests/test_firmware_emu_linux32.py",
    "tests/test_firmware_emu_failure.py",
    "tests/test_firmware_emu_tables.py",
    "tests/test_firmware_emu_memmap.py",
    # the whole boot against the model, over zeroed and over stale RAM (not the fuzzing)
    "tests/test_firmware_fuzz.py::test_the_model_and_the_firmware_agree_over_a_previous_boots_ram",
    "tests/test_firmware_fuzz.py::test_the_model_and_the_firmware_agree_on_qemus_files",
    "tests/test_emu_bench.py",
    "tests/test_spec.py",
    "tests/test_firmware_emu_anykernel.py",  # half a minute: last but for kernel.s
)
# The kill set's files closest to a source, run first for its mutants (the rest in the kill
# set's order after them): a mutant of asm/smbios.s dies in test_firmware_emu_tables.py's
# first second rather than after the boots of the files before it.
FIRST: dict[str, tuple[str, ...]] = {
    "asm/kernel.s": ("tests/test_firmware_emu_linux32.py", "tests/test_firmware_emu_anykernel.py"),
    "asm/linux32.s": ("tests/test_firmware_emu_linux32.py",),
    "asm/failure.s": ("tests/test_firmware_emu_failure.py",),
    "asm/errors.s": ("tests/test_firmware_emu_failure.py",),
    "asm/smbios.s": ("tests/test_firmware_emu_tables.py",),
    "asm/mptable.s": ("tests/test_firmware_emu_tables.py",),
    "asm/mtrr.s": ("tests/test_firmware_emu_tables.py",),
    "asm/memmap.s": ("tests/test_firmware_emu_memmap.py",),
    "asm/alloc.s": ("tests/test_firmware_emu_memmap.py",),
    "asm/sum.s": ("tests/test_firmware_emu_memmap.py",),
}


def kill_set(file: str) -> tuple[str, ...]:
    """The kill set in the order a mutant of `file` runs it."""
    first = FIRST.get(file, ())
    return (*first, *(t for t in KILL_SET if t not in first))


FAST_LAYERS = "not qemu and not debian"
# After the kill set: the fuzz tests, the likeliest to kill what the kill set did not.
NEXT = ("tests/test_firmware_fuzz.py",)

# Instructions that write their first operand when it is a memory operand.
_STORES = frozenset(
    [
        "mov",
        "add",
        "adc",
        "sub",
        "sbb",
        "and",
        "or",
        "xor",
        "inc",
        "dec",
        "not",
        "neg",
        "shl",
        "sal",
        "shr",
        "sar",
        "rol",
        "ror",
        "rcl",
        "rcr",
        "xchg",
        "bts",
        "btr",
        "btc",
        "pop",
    ]
)
# String instructions that store through EDI (any prefix); movsd here is the string move.
_STRING_STORE = re.compile(r"^(?:stos|movs)[bwd]?$")
_PREFIXES = frozenset(["rep", "repe", "repz", "repne", "repnz"])
_INVERSE = {
    "je": "jne",
    "jz": "jnz",
    "ja": "jbe",
    "jb": "jae",
    "jc": "jnc",
    "jg": "jle",
    "jl": "jge",
    "js": "jns",
    "jo": "jno",
    "jp": "jnp",
    "jnbe": "jna",
    "jnae": "jnb",
}
_INVERSE.update({v: k for k, v in list(_INVERSE.items())})
_REGISTER = re.compile(r"^(?:e?[abcd]x|[abcd][lh]|e?(?:si|di|bp|sp))$", re.IGNORECASE)
_COUNT_USERS = re.compile(r"^(?:rep\w*\s|loop\w*\s|jecxz\s)")
_COUNT_WINDOW = 4  # statements after `mov ecx, N` within which a rep or loop must use it


@dataclass(frozen=True)
class Mutant:
    file: str  # "asm/pvh.s"
    line: int
    kind: str
    text: str  # the statement, without its comment
    new: str  # what replaces it ("": nothing)

    @property
    def key(self) -> tuple[str, str, str]:
        """How the equivalents table names a mutant: line numbers shift, the text stays."""
        return (self.file, self.kind, self.text)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.text}"


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed, survived, invalid, identical, equivalent (survived, and listed)
    detail: str  # the test that killed it, the assembler's error, ...
    seconds: float


def _operands(text: str) -> tuple[str, list[str]]:
    parts = text.split(None, 1)
    ops = [o.strip() for o in parts[1].split(",")] if len(parts) > 1 else []
    return parts[0].lower(), ops


def _is_immediate(operand: str) -> bool:
    return bool(operand) and "[" not in operand and not _REGISTER.match(operand)


_ARITHMETIC: dict[type, Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}


def _value(expression: str, constants: dict[str, int]) -> int | None:
    """An immediate's value when it names only layout constants (None: it names a label).
    Keystone refuses parentheses around symbols, so a changed bound is written as a number."""

    def value(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        raise ValueError(expression)

    try:
        return value(ast.parse(expression.replace("/", "//"), mode="eval").body)
    except (SyntaxError, ValueError):
        return None


def _bound(expression: str, delta: int) -> str:
    number = _value(expression, layout.asm_constants())
    if number is None:
        return f"{expression} {'+' if delta > 0 else '-'} {abs(delta)}"
    bound = number + delta
    if bound == 1 << 32:  # one more than a dword holds: the 32-bit compare sees 0
        bound = 0
    return f"{bound:#x}" if bound >= 0 else str(bound)


def _off_by_one(operand: str) -> str:
    return re.sub(r"\[([^\]]*)\]", lambda m: f"[{m.group(1)} + 1]", operand, count=1)


def file_mutants(name: str, text: str) -> list[Mutant]:
    """The mutants of one source; name is its path as the listing gives it ("asm/pvh.s")."""
    statements = parse_source(name, text)
    out: list[Mutant] = []
    for i, st in enumerate(statements):
        mnemonic, ops = _operands(st.text)

        def add(kind: str, new: str) -> None:
            out.append(Mutant(name, st.line, kind, st.text, new))  # noqa: B023

        words = st.text.lower().split()
        if _STRING_STORE.match(words[1] if words[0] in _PREFIXES else words[0]):
            add("drop", "")
        elif mnemonic in _STORES and ops and "[" in ops[0]:
            add("drop", "")
            rest = st.text.split(None, 1)[1]
            add("disp+1", f"{st.text.split(None, 1)[0]} {_off_by_one(rest)}")
        elif mnemonic in _INVERSE:
            add("invert", f"{_INVERSE[mnemonic]} {', '.join(ops)}")
        if mnemonic == "cmp" and len(ops) == 2 and _is_immediate(ops[1]):
            add("bound+1", f"cmp {ops[0]}, {_bound(ops[1], 1)}")
            add("bound-1", f"cmp {ops[0]}, {_bound(ops[1], -1)}")
        if (
            mnemonic == "mov"
            and len(ops) == 2
            and ops[0].lower() in ("ecx", "cx")
            and _is_immediate(ops[1])
            and any(
                _COUNT_USERS.match(s.text.lower() + " ")
                for s in statements[i + 1 : i + 1 + _COUNT_WINDOW]
            )
        ):
            add("bound+1", f"mov {ops[0]}, {_bound(ops[1], 1)}")
            add("bound-1", f"mov {ops[0]}, {_bound(ops[1], -1)}")
    return out


def all_mutants(files: Iterable[str] | None = None) -> list[Mutant]:
    names = sorted(files) if files else sorted(f"asm/{p.name}" for p in ASM.glob("*.s"))
    out: list[Mutant] = []
    for name in names:
        path = ROOT / name
        if path.parent != ASM or not path.is_file():
            raise SystemExit(f"mutate: {name}: not a source in asm/")
        out.extend(file_mutants(name, path.read_text(encoding="utf-8")))
    return out


def equivalents(design: Path = DESIGN) -> dict[tuple[str, str, str], str]:
    """The table under docs/design.md's EQUIVALENTS_HEADING: key -> reason. In the table a
    `|` inside the instruction is written `\\|`."""
    row = re.compile(r"^\| (asm/\S+) \| (\S+) \| `(.+?)` \| (.+) \|$")
    out: dict[tuple[str, str, str], str] = {}
    inside = False
    for line in design.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            inside = line.strip() == EQUIVALENTS_HEADING
            continue
        m = row.match(line) if inside else None
        if m:
            kind = m.group(2)
            if kind not in KINDS:
                raise SystemExit(f"mutate: {design.name}: unknown mutant kind {kind!r}: {line}")
            out[(m.group(1), kind, m.group(3).replace("\\|", "|"))] = m.group(4)
    return out


def stale_equivalents(known: dict[tuple[str, str, str], str]) -> list[tuple[str, str, str]]:
    """The listed equivalents no source makes any more (a line changed or went)."""
    made = {m.key for m in all_mutants()}
    return [k for k in known if k not in made]


def write_mutant(mutant: Mutant, into: Path) -> None:
    """asm/ copied into `into` with the mutant's line replaced (its comment goes too)."""
    shutil.copytree(ASM, into, dirs_exist_ok=True)
    path = into / Path(mutant.file).name
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    indent = re.match(r"\s*", lines[mutant.line - 1])
    lines[mutant.line - 1] = (indent.group(0) if indent else "") + mutant.new + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def images(asm_dir: Path) -> tuple[bytes, ...]:
    return tuple(assemble_firmware(v, asm_dir=asm_dir).image for v in VARIANTS)


def _pytest(asm_dir: Path, args: Sequence[str], timeout: float) -> tuple[bool, str]:
    """Run pytest on a mutant: (passed, the first failure's name)."""
    env = {
        **os.environ,
        ASM_DIR_ENV: str(asm_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout:.0f} s"
    if proc.returncode == 0:
        return True, ""
    if proc.returncode not in (1, 2):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
        raise SystemExit(f"mutate: pytest exited {proc.returncode}: {' '.join(tail)}")
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.MULTILINE)
    return False, failed.group(1) if failed else "pytest failed"


def run_mutant(asm_dir: Path, file: str, timeout: float, quick: bool) -> tuple[str, str]:
    """(killed or survived, the killing test) for a mutant of `file`; quick: the kill set
    alone."""
    passed, detail = _pytest(asm_dir, kill_set(file), timeout)
    if not passed or quick:
        return ("killed", detail) if not passed else ("survived", "")
    rest = [f"--ignore={f}" for f in KILL_SET if "::" not in f]
    passed, detail = _pytest(asm_dir, ["-m", FAST_LAYERS, *NEXT, *rest, "tests"], timeout)
    return ("survived", "") if passed else ("killed", detail)


def baseline(timeout: float, quick: bool) -> str:
    """The unmutated sources through the same layers: "" when they pass, else the failing
    test (a broken checkout or environment would otherwise "kill" every mutant)."""
    status, detail = run_mutant(ASM, "", timeout, quick)
    return "" if status == "survived" else detail


def mutate(
    mutants: Sequence[Mutant],
    known: dict[tuple[str, str, str], str],
    *,
    jobs: int,
    timeout: float,
    quick: bool = False,
) -> list[Outcome]:
    original = images(ASM)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="pvhfw-mutate-") as tmp:

        def one(index: int, mutant: Mutant) -> Outcome:
            start = time.monotonic()
            asm_dir = Path(tmp) / str(index)
            write_mutant(mutant, asm_dir)
            try:
                same = images(asm_dir) == original
            except AssemblyError as e:
                status, detail = "invalid", str(e)
            else:
                status, detail = (
                    ("identical", "") if same else run_mutant(asm_dir, mutant.file, timeout, quick)
                )
            shutil.rmtree(asm_dir)
            if status == "survived" and mutant.key in known:
                status, detail = "equivalent", known[mutant.key]
            outcome = Outcome(mutant, status, detail, time.monotonic() - start)
            seconds = time.monotonic() - start
            print(f"mutate: {status} ({seconds:.0f} s): {mutant} {detail}".rstrip(), flush=True)
            return outcome

        # Assembling runs in the pool too: Keystone releases the GIL while it works.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(pool.map(one, range(len(mutants)), mutants))
    return outcomes


def report(outcomes: Sequence[Outcome], seconds: float) -> str:
    by_kind: Counter[tuple[str, str]] = Counter((o.mutant.kind, o.status) for o in outcomes)
    statuses = ("killed", "survived", "equivalent", "invalid", "identical")
    lines = [f"{'kind':8} {'mutants':>7} " + " ".join(f"{s:>10}" for s in statuses)]
    for kind in (*KINDS, "all"):
        counts = [
            sum(n for (k, s), n in by_kind.items() if s == status and kind in (k, "all"))
            for status in statuses
        ]
        total = sum(1 for o in outcomes if kind in (o.mutant.kind, "all"))
        lines.append(f"{kind:8} {total:7} " + " ".join(f"{n:10}" for n in counts))
    lines.append(f"{len(outcomes)} mutants in {seconds:.0f} s")
    for o in outcomes:
        if o.status in ("survived", "invalid"):
            lines.append(f"{o.status.upper()}: {o.mutant} -> {o.mutant.new or '(nothing)'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.mutate", description=__doc__)
    parser.add_argument("--files", nargs="+", help="sources to mutate (asm/NAME.s); all of them")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, help="mutant kinds; all of them")
    parser.add_argument("--sample", type=int, help="run N mutants, drawn with --seed")
    parser.add_argument("--seed", type=int, default=13, help="the sample's seed (13)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a pytest run")
    parser.add_argument("--at", nargs="+", help="only the mutants of these lines (asm/x.s:N)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run none")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the unmutated run (when the same layers have just passed, as in CI)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the kill set alone: candidates, not survivors"
    )
    args = parser.parse_args(argv)

    known = equivalents()
    mutants = [
        m
        for m in all_mutants(args.files)
        if (not args.kinds or m.kind in args.kinds)
        and (not args.at or f"{m.file}:{m.line}" in args.at)
    ]
    stale = stale_equivalents(known)
    if stale:
        print(f"mutate: {DESIGN.name} lists a mutant the sources no longer make: {stale[0]}")
        return 1
    if args.list:
        for m in mutants:
            print(f"{m} -> {m.new or '(nothing)'}")
        return 0
    if args.sample is not None:
        # Listed equivalents survive by definition: the sample spends its time on the rest.
        pool = [m for m in mutants if m.key not in known]
        mutants = random.Random(args.seed).sample(pool, min(args.sample, len(pool)))
    start = time.monotonic()
    if not args.no_baseline:
        failed = baseline(args.timeout, args.quick)
        if failed:
            print(f"mutate: the unmutated sources fail {failed}: no mutant can be judged")
            return 1
        print(f"mutate: the unmutated sources pass ({time.monotonic() - start:.0f} s)")
    outcomes = mutate(mutants, known, jobs=args.jobs, timeout=args.timeout, quick=args.quick)
    print(report(outcomes, time.monotonic() - start))
    survivors = [o for o in outcomes if o.status == "survived"]
    if args.quick:
        print(f"mutate: {len(survivors)} survived the kill set (--quick: not the fast layers)")
    elif survivors:
        print(f"mutate: {len(survivors)} survivors not listed in {DESIGN.name}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
