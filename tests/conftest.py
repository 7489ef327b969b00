"""Fixtures shared by the test modules: the firmware, the test kernels, QEMU."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pvhfw.firmware.assemble import Firmware, assemble_firmware
from tests.kernels.build import KernelToolchainMissing, build_kernel
from tests.support import KernelGetter, build_firmware, build_image, need, need_qemu
from tools.qemu import describe_qemu

INITRD_SIZE = 300 * 1024 + 123  # a few hundred KiB, not a whole number of pages


def pytest_report_header(config: pytest.Config) -> str:
    """Which QEMU the QEMU layers run ($PVHFW_QEMU or qemu-system-x86_64) and its version."""
    return f"qemu: {describe_qemu()}"


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


@pytest.fixture(scope="module")
def qemu() -> str:
    return need_qemu()


@pytest.fixture(scope="module")
def kernel(kernels_dir: Path) -> KernelGetter:
    """kernel(name, load_addr, **options) -> ELF path, each variant built once a session."""
    cache: dict[tuple[object, ...], Path] = {}

    def get(name: str, load_addr: int, **options: object) -> Path:
        key = (name, load_addr, *sorted(options.items()))
        if key not in cache:
            try:
                cache[key] = build_kernel(name, kernels_dir, load_addr, **options)
            except KernelToolchainMissing as exc:
                need(False, str(exc))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def fw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qemu_pvh_fw")


@pytest.fixture(scope="module")
def image(fw_dir: Path) -> Callable[[Path], Path]:
    """image(kernel) -> the firmware image build-fw makes for it, built once."""
    cache: dict[Path, Path] = {}

    def get(kernel: Path) -> Path:
        if kernel not in cache:
            cache[kernel], _ = build_firmware(kernel, fw_dir)
        return cache[kernel]

    return get


@pytest.fixture(scope="module")
def any_image(fw_dir: Path) -> Path:
    """The image `build-fw --any-kernel -o OUT` makes (for no kernel: the path is unused)."""
    return build_image("any-kernel", Path(), fw_dir)


@pytest.fixture(scope="module")
def initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qemu_pvh_initrd") / "initrd.bin"
    path.write_bytes(random.Random(0x5EED).randbytes(INITRD_SIZE))
    return path
