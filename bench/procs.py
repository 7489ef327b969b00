"""Running and scheduling the benchmarks' QEMU processes.

- :func:`timed_process`: one QEMU process timed from fork to reap, its peak RSS, its stderr.
- :func:`run_exec_log`: one QEMU TCG run whose single-step exec log (with the trace events
  bench/execlog.py reads) streams through a FIFO into a counter, up to a kernel entry.
- :func:`alternating_schedule`: the order of the timed runs, alternating and rotating.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.execlog import (
    REP_PER_ITERATION,
    ExecCount,
    ExecLogCounter,
    RepIterationCounter,
    rep_filter,
)

# What an exec-log run asks QEMU for: every instruction (one per translation block: see
# tools.qemu's singlestep) with `-d exec,nochain`, each block's disassembly (`in_asm`: where
# the rep string instructions are), and the trace events the counter takes port accesses and
# fw_cfg files from. The second run, on a QEMU that logs a rep once (bench/execlog.py), asks
# for the registers (`cpu`) at the rep instructions only.
EXEC_LOG_ITEMS = ("exec", "nochain", "in_asm")
REP_LOG_ITEMS = ("exec", "nochain", "cpu")
TCG_TRACE_EVENTS = ("memory_region_ops_read", "memory_region_ops_write", "fw_cfg_add_file")


@dataclass(frozen=True)
class LogRequest:
    """What one exec-log run logs: the `-d` items and, for the second run, the `-dfilter`
    ranges; a command maker puts both on its QEMU command line, beside its log path."""

    items: tuple[str, ...]
    dfilter: str | None = None


MakeCmd = Callable[[Path, LogRequest], list[str]]


# ---- one timed process ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TimedRun:
    seconds: float  # wall time of the whole process, fork to reap
    returncode: int | None  # None: killed at the timeout
    maxrss_kib: int  # peak RSS (getrusage of that child)
    stderr: str
    fork_wall: float  # time.time() just before the fork: the clock of `-msg timestamp=on`


def timed_process(cmd: Sequence[str], timeout: float) -> TimedRun:
    """Run ``cmd`` to its end (killed at ``timeout``) and time the whole process: see
    :class:`TimedRun`."""
    lock = threading.Lock()
    reaped = False
    killed = False
    with tempfile.TemporaryFile() as err:
        wall_start = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )

        def kill() -> None:
            nonlocal killed
            with lock:
                if not reaped:
                    killed = True
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            with lock:
                reaped = True
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return TimedRun(
        seconds=seconds,
        returncode=None if killed else proc.returncode,
        maxrss_kib=int(usage.ru_maxrss),
        stderr=stderr,
        fork_wall=wall_start,
    )


# ---- one exec-log run -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExecLogRun:
    cmd: list[str]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    count: ExecCount
    stderr: str
    rep_cmd: list[str] | None = None  # the second run's, when there was one


def run_exec_log(make_cmd: MakeCmd, entry: int, timeout: float) -> ExecLogRun:
    """Count QEMU's exec log up to the first instruction at ``entry`` (``make_cmd`` gets a
    FIFO's path for the log: SeaBIOS logs millions of lines, a thread counts them as they
    come and nothing is stored). The rep string instructions' iterations: one line each
    where QEMU took `-singlestep` (7.2); else counted from the registers in a second run
    (bench/execlog.py), when the first reached the entry and ran some."""
    counter = ExecLogCounter(entry)
    cmd, returncode, seconds, stderr = _logged_run(
        lambda fifo: make_cmd(fifo, LogRequest(EXEC_LOG_ITEMS)), counter.feed, timeout
    )
    count = counter.count
    rep_cmd = None
    if "-singlestep" in cmd:
        count.rep_iterations, count.rep_logging = count.rep_lines, REP_PER_ITERATION
    elif not count.rep_pcs:
        count.rep_iterations = 0
    elif count.reached_entry:
        reps = RepIterationCounter(count)
        request = LogRequest(REP_LOG_ITEMS, rep_filter(count))
        rep_cmd, rc, _, err = _logged_run(lambda fifo: make_cmd(fifo, request), reps.feed, timeout)
        if rc == returncode and reps.done:
            reps.finish()
        else:
            stderr += f"\nthe rep run ended with status {rc} before the entry:\n{err}"
    return ExecLogRun(
        cmd=cmd,
        returncode=returncode,
        seconds=seconds,
        count=count,
        stderr=stderr,
        rep_cmd=rep_cmd,
    )


def _logged_run(
    make_cmd: Callable[[Path], list[str]], feed: Callable[[bytes], None], timeout: float
) -> tuple[list[str], int | None, float, str]:
    """Run QEMU with its log going into a FIFO whose lines a thread feeds to ``feed``;
    return the command, its status (None: killed at the timeout), seconds and stderr."""
    failure: list[BaseException] = []
    with tempfile.TemporaryDirectory(prefix="bench-tcg-") as tmp:
        fifo = Path(tmp) / "exec.log"
        os.mkfifo(fifo)
        cmd = make_cmd(fifo)

        def reader() -> None:
            try:
                with open(fifo, "rb", buffering=1 << 20) as log:
                    for line in log:
                        feed(line)
            except BaseException as exc:  # reported after the run
                failure.append(exc)
                with open(fifo, "rb") as log:  # keep QEMU from blocking on a full FIFO
                    while log.read(1 << 20):
                        pass

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
            returncode: int | None
            try:
                returncode = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                returncode = None
            seconds = time.perf_counter() - start
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        # A reader still waiting in open() (QEMU died before opening its log) gets EOF.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join()
    if failure:
        raise RuntimeError(f"reading the exec log of {' '.join(cmd)} failed") from failure[0]
    return cmd, returncode, seconds, stderr


# ---- the schedule ---------------------------------------------------------------------------


def alternating_schedule(
    subjects: Sequence[str], runs: dict[str, int], warmup: int = 0
) -> list[tuple[int, str]]:
    """(round, subject) in execution order: every round runs each subject once, and round r
    starts r places further along (A B C, B C A, C A B, ...), so that no subject always
    follows the same other one (a run's start-up can feel the previous QEMU's teardown); a
    subject with fewer runs drops out after its last round; `warmup` rounds (numbered
    -warmup..-1, one run of each subject with runs > 0) come first and are not measured."""
    active = [s for s in subjects if runs.get(s, 0) > 0]
    order = [(r, s) for r in range(-warmup, 0) for s in active]
    for r in range(max((runs[s] for s in active), default=0)):
        present = [s for s in active if r < runs[s]]
        k = r % len(present)
        order += [(r, s) for s in present[k:] + present[:k]]
    return order
