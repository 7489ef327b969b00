"""How the benchmarks report: Markdown tables to stdout, progress to stderr, JSON files."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.host import kvm_label


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def accel_title(accel: str, backend: str) -> str:
    """The title of an accelerator's times: neither this KVM's nor TCG's are hardware times."""
    if accel == "kvm":
        return kvm_label(backend)
    return "TCG (emulation: not real-hardware times)"


def ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def progress(message: str) -> None:
    """A progress line: to stderr, so that stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def utc_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_json(path: Path, data: dict[str, Any], log: Callable[[str], None] = progress) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
    log(f"wrote {path}")
