"""tools/debian_apt.py, what tools/debian_kernel.py and tools/alt_qemu.py fetch Debian
packages with: the separate apt configuration, the download and its one retry after
`apt-get update` through the same configuration, without the network (a fake apt-get)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import write_executable
from tools import debian_apt
from tools.debian_apt import AptSource, ToolError

# ---- the apt configuration ------------------------------------------------------------------


def test_an_apt_source_lives_in_the_cache_and_reads_nothing_of_the_systems(
    tmp_path: Path,
) -> None:
    source = AptSource.in_cache("bookworm-backports", tmp_path)
    root = tmp_path / "apt" / "bookworm-backports"
    assert source.root == root
    assert source.sources_line() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm-backports main\n"
    )
    assert source.options() == [
        "-o", f"Dir::Etc::SourceList={root}/sources.list",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={root}/lists",
        "-o", f"Dir::Cache={root}/cache",
    ]  # fmt: skip
    source.prepare()
    assert (root / "sources.list").read_text() == source.sources_line()
    assert (root / "lists" / "partial").is_dir()
    assert (root / "cache" / "archives" / "partial").is_dir()
    before = (root / "sources.list").stat()
    source.prepare()  # idempotent: the file is not written again
    after = (root / "sources.list").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    trixie = AptSource.in_cache("trixie", tmp_path)
    assert trixie.root == tmp_path / "apt" / "trixie" and "trixie main" in trixie.sources_line()
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ToolError, match="not a Debian suite name"):
            AptSource.in_cache(bad, tmp_path)


FAKE_APT_GET = """#!/bin/sh
# apt-get as the tests need it: a log of each call; `download` fails until `update` ran,
# then writes <name>_<version>_all.deb for each package asked for.
echo "$*" >> "$FAKE_APT_LOG"
case " $* " in
*" update "*) touch "$FAKE_APT_LISTS"; exit 0 ;;
*" download "*)
    if [ ! -e "$FAKE_APT_LISTS" ]; then
        echo "E: Release 'bookworm-backports' for 'seabios' was not found" >&2; exit 100
    fi
    seen=""
    for a in "$@"; do
        if [ -n "$seen" ]; then
            name=${a%%/*}; name=${name%%=*}; : > "${name}_1.0_all.deb"
        fi
        [ "$a" = download ] && seen=1
    done
    exit 0 ;;
esac
exit 1
"""


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake apt-get first on PATH; returns its log."""
    write_executable(tmp_path / "fakebin" / "apt-get", FAKE_APT_GET)
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakebin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APT_LOG", str(tmp_path / "apt.log"))
    monkeypatch.setenv("FAKE_APT_LISTS", str(tmp_path / "lists-fetched"))
    return tmp_path / "apt.log"


def test_apt_download_refreshes_the_lists_once_through_the_same_configuration(
    tmp_path: Path, fake_apt: Path
) -> None:
    source = AptSource.in_cache("bookworm-backports", tmp_path / "cache")
    dest = tmp_path / "dest"
    dest.mkdir()
    notes: list[str] = []
    wanted = ["qemu-system-x86/bookworm-backports", "seabios/bookworm-backports"]
    debs = debian_apt.apt_download(wanted, dest, source=source, note=notes.append)
    assert debs == [dest / "qemu-system-x86_1.0_all.deb", dest / "seabios_1.0_all.deb"]
    assert all(d.is_file() for d in debs)
    assert sorted(p.name for p in dest.iterdir()) == [d.name for d in debs]  # no temp dir left
    options = " ".join(source.options())
    assert fake_apt.read_text().splitlines() == [
        f"{options} download {' '.join(wanted)}",
        f"{options} update",
        f"{options} download {' '.join(wanted)}",
    ]
    assert notes == [
        f"apt-get download {' '.join(wanted)} failed (E: Release 'bookworm-backports' for "
        "'seabios' was not found); running apt-get update (bookworm-backports)"
    ]


def test_apt_download_names_what_apt_get_left_out(tmp_path: Path, fake_apt: Path) -> None:
    """A .deb per package, or the package is named."""
    (tmp_path / "lists-fetched").touch()
    fake = tmp_path / "fakebin" / "apt-get"
    fake.write_text(fake.read_text().replace(': > "${name}_1.0_all.deb"', ": > only_1.0_all.deb"))
    with pytest.raises(ToolError, match=r"^a: apt-get download produced 0 \.deb files$"):
        debian_apt.apt_download(["a", "only"], tmp_path)


def test_the_system_configuration_is_the_default(tmp_path: Path, fake_apt: Path) -> None:
    """tools/debian_kernel's call: no -o options, the system's lists updated on a failure."""
    debian_apt.apt_download(["linux-image-x"], tmp_path)
    assert fake_apt.read_text().splitlines() == [
        "download linux-image-x",
        "update",
        "download linux-image-x",
    ]


def test_run_tool_turns_failures_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(exc: BaseException) -> Callable[[], int]:
        def body() -> int:
            raise exc

        return body

    assert debian_apt.run_tool("t", lambda: 3) == 3
    assert debian_apt.run_tool("t", fails(debian_apt.ToolError("x.deb: broken"))) == 1
    assert debian_apt.run_tool("t", fails(FileNotFoundError(2, "No such file", "/a"))) == 1
    assert debian_apt.run_tool("t", fails(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == ("t: x.deb: broken\nt: /a: No such file\nt: interrupted\n")
