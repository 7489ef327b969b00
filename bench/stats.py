"""The benchmarks' statistics: min / median / max of runs, and ratios between firmwares."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    n: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no values")
        return cls(len(values), min(values), statistics.median(values), max(values))


def ratio_of_medians(ours: Sequence[float], base: Sequence[float]) -> float:
    return statistics.median(ours) / statistics.median(base)


def delta_of_medians(ours: Sequence[float], base: Sequence[float]) -> float:
    """Median of ours minus the median of base, in their unit."""
    return statistics.median(ours) - statistics.median(base)


def firmware_ratio(
    startup: Sequence[float], ours: Sequence[float], floor: Sequence[float]
) -> float:
    """Fork -> entry, ours over the floor's, with QEMU's start-up (fork -> fw_start) taken
    from the runs of both: nothing before the firmware's first instruction depends on which
    firmware it is (both images are 64 KiB files), so the start-up's spread, which on a noisy
    machine is far wider than the firmware's own time, is common to both sides."""
    s = statistics.median(startup)
    return (s + statistics.median(ours)) / (s + statistics.median(floor))


def median_of_pairs(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Median over (ours, base) pairs, each measured in the same round, of ours / base; None
    without pairs. Drift between rounds cancels within each pair."""
    ratios = [ours / base for ours, base in pairs]
    return statistics.median(ratios) if ratios else None
