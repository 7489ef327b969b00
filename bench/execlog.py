"""Count what QEMU TCG's single-step exec log shows from reset to a kernel entry.

The log is what `qemu-system-x86_64 -accel tcg -singlestep -d exec,nochain,in_asm -D LOG`
writes (QEMU >= 8.1: `-accel tcg,one-insn-per-tb=on` for `-singlestep`), with the `log` trace
backend's events (Debian's QEMU 7.2 and 10.0 builds) interleaved in the same file:

    Trace 0: 0x7fd4b4000100 [00000000ffff0000/00000000fffffff0/00000040/ff000201]
    memory_region_ops_write cpu 0 mr 0x55.. addr 0x510 value 0x0 size 2 name 'fwcfg'
    fw_cfg_add_file 0x55.. #1: etc/e820 (40 bytes)

A `Trace` line is printed when a translation block starts executing; with `-singlestep`
every block is one guest instruction, and `nochain` makes every block go through the logging
path. Its bracket holds cs_base / pc / flags / cflags, where pc is QEMU's x86 TB pc, the
*linear* address (cs_base + eip): the kernel entry is where pc equals the PVH entry.

`rep` string instructions are logged differently by QEMU versions. QEMU 7.2 (`-singlestep`)
translates one iteration per block execution and, with `nochain` (no goto_tb, so `repz_opt`
is on), leaves the loop as soon as the count reaches 0, so a rep with count n > 0 shows n lines
and a rep with count 0 one line, the same count as the unicorn bench (tests/emu/machine.py).
QEMU 10.0 (`-accel tcg,one-insn-per-tb=on`) runs all the iterations in one block execution:
one line per rep instruction. The count is made the same on both, iteration by iteration,
from the registers: the log also asks for `in_asm` (each block's disassembly when it is
translated), which names the pcs of rep string instructions (:data:`REP_STRING`); where the
binary is not of the one-line-per-iteration kind, a second run logs, through `-dfilter`,
only the blocks at those pcs, at the instructions after them and at the entry, each with
its registers (`-d cpu`), and :class:`RepIterationCounter` takes the iterations of each rep
line from ECX (RCX) there and at the next line: n - remaining, at least 1 (the count-0
line). `ExecCount.instructions` is then exec-log lines - rep lines + rep iterations. For a
firmware whose run depends on time (SeaBIOS polls timers) the two runs can differ a little;
the counts say so (`rep_lines_second_run`). An instruction that faults after its line was
printed and is restarted later would show twice (none of our code faults).

Port accesses: memory_region_ops_read/write fire for every access dispatched to a
non-RAM memory region, ports included; `addr` is the absolute address within its address
space. The event does not name the address space, so an access is taken as a port access when
it comes from a vCPU (cpu >= 0) and its address is below 0x10000: MMIO that low does not exist
on pc, q35 or microvm (the first 64 KiB are RAM). An access that QEMU's memory core splits
across regions counts once per piece. `cpu_in`/`cpu_out` are not used: they exist but fire
only for QEMU's own cpu_inb()/cpu_outb() calls, not for guest `in`/`out`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.spec import BOOT_EVENT_FW_DO_BOOT, BOOT_EVENT_FW_START, PORT_BOOT_EVENT
from tools.qemu import DEBUG_EXIT_PORT

TRACE = b"Trace "
# in_asm: "0xffff0eae:  f3 a7                    repe cmpsl %es:(%edi), (%esi)" (a block's
# first instruction; the bytes of a long one go on over more lines)
_IN_ASM_RE = re.compile(rb"^0x([0-9a-fA-F]+):  ((?:[0-9a-fA-F]{2} )+)\s*(\S+)(?:\s+(\S+))?")
REP_PREFIXES = frozenset((b"rep", b"repe", b"repz", b"repne", b"repnz"))
REP_PER_ITERATION = "a line per iteration"  # QEMU 7.2 with -singlestep
REP_PER_INSTRUCTION = "a line per instruction; iterations from the registers"  # QEMU 10.0
REP_STRING = (b"ins", b"outs", b"movs", b"stos", b"lods", b"cmps", b"scas")  # + b/w/l/q
# -d cpu: "EAX=00000000 EBX=00000000 ECX=00000004 EDX=00060511" (RAX=... in long mode)
_CX_RE = re.compile(rb"^[ER]AX=[0-9a-fA-F]+ [ER]BX=[0-9a-fA-F]+ [ER]CX=([0-9a-fA-F]+)")
OPS = b"memory_region_ops_"
ADD_FILE = b"fw_cfg_add_file "
PORT_LIMIT = 0x10000
FWCFG_REGIONS = frozenset(("fwcfg", "fwcfg.dma"))
PORT_DEBUG_EXIT = DEBUG_EXIT_PORT  # the test kernels' first instruction writes it

# memory_region_ops_write cpu 0 mr 0x5635 addr 0x510 value 0x0 size 2 name 'fwcfg'
_OPS_RE = re.compile(
    rb"^memory_region_ops_(read|write) cpu (-?\d+) mr \S+ addr (0x[0-9a-fA-F]+) "
    rb"value (0x[0-9a-fA-F]+) size (\d+) name '([^']*)'"
)
# fw_cfg_add_file 0x557e739cf920 #1: etc/e820 (40 bytes)
_ADD_FILE_RE = re.compile(rb"^fw_cfg_add_file \S+ #\d+: (.*) \((\d+) bytes\)\s*$")


def trace_pc(line: bytes) -> int:
    """The pc (linear address) of a `Trace` line."""
    start = line.index(b"[") + 1
    fields = line[start:].split(b"/", 2)
    if len(fields) < 3:
        raise ValueError(f"not an exec-log Trace line: {line!r}")
    return int(fields[1], 16)


@dataclass
class ExecCount:
    """What one exec log showed. Counts are of the part before the entry (all of the log when
    the entry never showed up)."""

    entry: int
    reached_entry: bool = False
    exec_lines: int = 0  # Trace lines before the first at the entry
    rep_lines: int = 0  # ... of them, at a rep string instruction
    # the iterations those rep lines stand for (rep_lines where the log shows one line per
    # iteration); None: not known yet (a second run counts them)
    rep_iterations: int | None = None
    rep_lines_second_run: int | None = None  # what the second run saw (differs: time-dependent)
    rep_pcs: dict[int, int] = field(default_factory=dict)  # pc -> length, from in_asm
    rep_logging: str = ""  # REP_PER_ITERATION, REP_PER_INSTRUCTION, "": not known
    port_accesses: int = 0  # vCPU port accesses (memory_region_ops, addr < 0x10000)
    fwcfg_accesses: int = 0  # ... of them, to the regions "fwcfg" and "fwcfg.dma"
    ports_by_region: dict[str, int] = field(default_factory=dict)
    same_pc_repeats: int = 0  # Trace lines at the pc of the line before (rep iterations)
    trace_lines: int = 0  # every Trace line, entry and after included
    fwcfg_files: dict[str, int] = field(default_factory=dict)  # fw_cfg_add_file: name -> size

    @property
    def instructions(self) -> int:
        """Instructions executed before the entry, each rep iteration one (rep lines count
        one each while their iterations are not known)."""
        iterations = self.rep_lines if self.rep_iterations is None else self.rep_iterations
        return self.exec_lines - self.rep_lines + iterations

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": f"{self.entry:#x}",
            "reached_entry": self.reached_entry,
            "instructions": self.instructions,
            "exec_lines": self.exec_lines,
            "rep_lines": self.rep_lines,
            "rep_iterations": self.rep_iterations,
            "rep_lines_second_run": self.rep_lines_second_run,
            "rep_logging": self.rep_logging,
            "port_accesses": self.port_accesses,
            "fwcfg_accesses": self.fwcfg_accesses,
            "ports_by_region": dict(sorted(self.ports_by_region.items())),
            "same_pc_repeats": self.same_pc_repeats,
            "trace_lines": self.trace_lines,
            "fwcfg_files": self.fwcfg_files,
        }


class ExecLogCounter:
    """Feed it the log's lines (bytes, newline or not) in order; read `count`."""

    def __init__(self, entry: int) -> None:
        self.count = ExecCount(entry)
        self._last_pc = -1

    def feed(self, line: bytes) -> None:
        count = self.count
        if line.startswith(TRACE):
            count.trace_lines += 1
            if count.reached_entry:
                return
            pc = trace_pc(line)
            if pc == count.entry:
                count.reached_entry = True
                return
            count.exec_lines += 1
            if pc in count.rep_pcs:
                count.rep_lines += 1
            if pc == self._last_pc:
                count.same_pc_repeats += 1
            self._last_pc = pc
        elif line.startswith(OPS):
            if count.reached_entry:
                return
            m = _OPS_RE.match(line)
            if m is None:
                raise ValueError(f"unexpected memory_region_ops line: {line!r}")
            cpu, addr, name = int(m.group(2)), int(m.group(3), 16), m.group(6).decode()
            if cpu < 0 or addr >= PORT_LIMIT:
                return
            count.port_accesses += 1
            count.ports_by_region[name] = count.ports_by_region.get(name, 0) + 1
            if name in FWCFG_REGIONS:
                count.fwcfg_accesses += 1
        elif line.startswith(ADD_FILE):
            m = _ADD_FILE_RE.match(line)
            if m is not None:
                count.fwcfg_files[m.group(1).decode()] = int(m.group(2))
        elif line.startswith(b"0x"):
            m = _IN_ASM_RE.match(line)
            if (
                m is not None
                and m.group(3) in REP_PREFIXES
                and (m.group(4) or b"").rstrip(b"bwlq") in REP_STRING
            ):
                count.rep_pcs[int(m.group(1), 16)] = len(m.group(2).split())

    def feed_lines(self, lines: Iterable[bytes]) -> ExecCount:
        for line in lines:
            self.feed(line)
        return self.count


def count_exec_log(lines: Iterable[bytes], entry: int) -> ExecCount:
    return ExecLogCounter(entry).feed_lines(lines)


def count_method(counts: Iterable[ExecCount]) -> str:
    """How the instruction counts were taken, for the reports: the same words for every QEMU,
    and how this one logged rep string instructions."""
    styles = {c.rep_logging for c in counts} - {""}
    if styles == {REP_PER_ITERATION}:
        how = "this QEMU logs each iteration of a rep string instruction as a line"
    elif styles == {REP_PER_INSTRUCTION}:
        how = (
            "this QEMU logs a rep string instruction once: its iterations come from ECX at it "
            "and after it, in a second run with `-d exec,nochain,cpu -dfilter <those pcs>`"
        )
    else:
        how = "no rep iterations known"
    return (
        "TCG, one guest instruction per translation block (`-singlestep` on QEMU 7.2, "
        "`-accel tcg,one-insn-per-tb=on` on 8.1 and later), `-d exec,nochain,in_asm`: "
        "exec-log `Trace` lines before the first at the entry, each rep iteration counted "
        f"once ({how})"
    )


def rep_filter(count: ExecCount) -> str:
    """The `-dfilter` ranges of the second run: each rep pc, the instruction after it, the
    entry."""
    pcs = {count.entry}
    for pc, length in count.rep_pcs.items():
        pcs |= {pc, pc + length}
    return ",".join(f"{pc:#x}+1" for pc in sorted(pcs))


class RepIterationCounter:
    """The second run's log (`-d exec,nochain,cpu -dfilter` :func:`rep_filter`): feed its
    lines in order, then :meth:`finish` the first run's count with the iterations. A rep line
    stands for ECX (RCX) at it minus ECX at the next logged line, at least 1."""

    def __init__(self, count: ExecCount) -> None:
        self._count = count
        self._pc: int | None = None  # the pc of the Trace line whose registers come next
        self._pending: tuple[int, int] | None = None  # (cx, width) at the last rep line
        self.iterations = 0
        self.rep_lines = 0
        self.done = False

    def feed(self, line: bytes) -> None:
        if self.done:
            return
        if line.startswith(TRACE):
            self._pc = trace_pc(line)
            return
        m = _CX_RE.match(line)
        if m is None or self._pc is None:
            return
        pc, self._pc = self._pc, None
        cx, width = int(m.group(1), 16), 4 * len(m.group(1))
        if self._pending is not None:
            before, bits = self._pending
            self.iterations += max(1, (before - cx) % (1 << bits))
            self._pending = None
        if pc == self._count.entry:
            self.done = True
        elif pc in self._count.rep_pcs:
            self.rep_lines += 1
            self._pending = (cx, width)

    def finish(self) -> ExecCount:
        self._count.rep_iterations = self.iterations
        self._count.rep_lines_second_run = self.rep_lines
        self._count.rep_logging = REP_PER_INSTRUCTION
        return self._count


# 4242@1795599458.408881:memory_region_ops_write cpu 0 mr 0x55.. addr 0xf5 value 0x1 size 1 ..
_STAMP_RE = re.compile(r"^\d+@(\d+\.\d+):(\w+) (.*)$")
_STAMPED_OPS_RE = re.compile(
    r"^cpu (-?\d+) mr \S+ addr (0x[0-9a-fA-F]+) value (0x[0-9a-fA-F]+) size \d+ name '([^']*)'"
)
_IOCTL_RUN_RE = re.compile(r"^cpu_index \d+, type 0xae80\b")  # KVM_RUN


@dataclass
class TraceSummary:
    """What one run's time-stamped trace shows: wall-clock stamps (s since the epoch) of the
    phases, and what happened before the kernel entry."""

    stamps: dict[str, float] = field(default_factory=dict)
    proxies: set[str] = field(default_factory=set)  # fw_start/fw_do_boot seen only by proxy
    port_accesses: int = 0  # vCPU port accesses before the entry (its own write excluded)
    kvm_exits: int = 0  # KVM exits to QEMU before the entry's


def parse_trace(text: str) -> TraceSummary:
    """The moments of one run from QEMU's trace log with `-msg timestamp=on` (any subset of
    the events vm_state_notify, kvm_vcpu_ioctl, kvm_run_exit, memory_region_ops_*): VM running
    (qemu_init_end), the first KVM_RUN (first_instr), fw_start and fw_do_boot (port 0xf5 = 1
    and 5; without them, the first port access and the last fw_cfg access before the entry,
    marked in `proxies`), the kernel entry (the first isa-debug-exit write); the events are
    vCPU 0's. Port accesses and KVM exits are counted up to the entry."""
    out = TraceSummary()
    s = out.stamps
    first_io: float | None = None
    last_fwcfg: float | None = None
    for line in text.splitlines():
        m = _STAMP_RE.match(line)
        if m is None:
            continue
        stamp, event, args = float(m.group(1)), m.group(2), m.group(3)
        if "entry" in s:
            break
        if event == "vm_state_notify":
            if args.startswith("running 1"):
                s.setdefault("qemu_init_end", stamp)
        elif event == "kvm_vcpu_ioctl":
            if _IOCTL_RUN_RE.match(args):
                s.setdefault("first_instr", stamp)
        elif event == "kvm_run_exit":
            out.kvm_exits += 1
        elif event.startswith("memory_region_ops_"):
            o = _STAMPED_OPS_RE.match(args)
            if o is None or int(o.group(1)) < 0 or int(o.group(2), 16) >= 0x10000:
                continue  # not a vCPU port access
            addr, value, name = int(o.group(2), 16), int(o.group(3), 16), o.group(4)
            write = event.endswith("write") and o.group(1) == "0"
            if write and addr == PORT_DEBUG_EXIT:
                s["entry"] = stamp
                out.kvm_exits -= 1  # the entry's own exit came just before it
                continue
            out.port_accesses += 1
            if first_io is None:
                first_io = stamp
            if name in FWCFG_REGIONS:
                last_fwcfg = stamp
            if write and addr == PORT_BOOT_EVENT and value == BOOT_EVENT_FW_START:
                s.setdefault("fw_start", stamp)
            elif write and addr == PORT_BOOT_EVENT and value == BOOT_EVENT_FW_DO_BOOT:
                s.setdefault("fw_do_boot", stamp)
    if "entry" not in s:
        out.kvm_exits = max(out.kvm_exits, 0)
    if "fw_start" not in s and first_io is not None:
        s["fw_start"] = first_io
        out.proxies.add("fw_start")
    if "fw_do_boot" not in s and last_fwcfg is not None and "entry" in s:
        s["fw_do_boot"] = last_fwcfg
        out.proxies.add("fw_do_boot")
    return out
