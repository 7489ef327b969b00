"""Session-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.assemble import Firmware, assemble_firmware


@pytest.fixture(scope="session")
def pvh_firmware() -> Firmware:
    return assemble_firmware("pvh")


@pytest.fixture(scope="session")
def floor_firmware() -> Firmware:
    return assemble_firmware("floor")


@pytest.fixture(scope="session")
def kernels_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory for the test kernels built in a session."""
    yield tmp_path_factory.mktemp("kernels")
