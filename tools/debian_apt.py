"""Debian packages fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``, cached.

What the project fetches from Debian's archive (tools/debian_kernel.py's kernels,
tools/alt_qemu.py's QEMU 10) comes through here:

- :func:`apt_download`: ``apt-get download`` of one or more packages (``name``,
  ``name=version`` or ``name/suite``) into a directory, through the system's apt configuration
  or an :class:`AptSource`; stale or missing package lists are refreshed once
  (``apt-get update`` with the same configuration) and the download retried.
- :class:`AptSource`: a separate apt configuration for one suite of Debian's archive
  (bookworm-backports, trixie), its sources.list, package lists and archive cache in the
  project's cache (``<cache>/apt/<suite>/``): fetching from it changes nothing of the
  system's apt, its sources, its lists or what is installed.
- :func:`dpkg_extract`: one or more .deb files unpacked side by side into one tree, replaced
  whole or not at all.
- :func:`cache_dir`: the cache root, ``$PVHFW_CACHE``, default ``~/.cache/pvhfw``.

Failures raise :class:`ToolError`, one line naming the package or file and the problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_CACHE = "PVHFW_CACHE"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class ToolError(Exception):
    """A failure with a one-line message naming the file/package and the problem."""


def run_tool(prog: str, body: Callable[[], int]) -> int:
    """A tool's main after its arguments: ``body()``'s status, or, when it fails, one line
    ``<prog>: <message>`` on stderr and status 1 (130 when interrupted): no traceback."""
    try:
        return body()
    except ToolError as e:
        print(f"{prog}: {e}", file=sys.stderr)
    except OSError as e:
        print(f"{prog}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 1


def cache_dir(cache: Path | None = None) -> Path:
    """The cache root: *cache*, else $PVHFW_CACHE, else ~/.cache/pvhfw (created)."""
    if cache is None:
        env = os.environ.get(ENV_CACHE)
        cache = Path(env) if env else Path.home() / ".cache" / "pvhfw"
    cache = cache.expanduser()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ToolError(f"cache directory {cache}: {e.strerror or e}") from e
    return cache


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write *data* to *path* through a temporary file beside it, renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on *path* (created), for one process at a time in a cache entry."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def last_line(text: bytes | str) -> str:
    """The line of a command's output that says what went wrong (apt's last "E:" line)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # apt prints "E:" lines last but may follow them with "N:" notes; prefer errors.
    errors = [ln for ln in lines if ln.startswith("E:")]
    return (errors or lines or [""])[-1]


def run(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command non-interactively in the C locale, its output captured."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    try:
        return subprocess.run(
            list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    except OSError as e:
        raise ToolError(f"cannot run {argv[0]}: {e.strerror or e}") from e


# ---- apt -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    """A separate apt configuration: one suite of Debian's archive, with its sources.list,
    package lists and archive cache under ``root``. The system's sources (SourceParts) are
    not read, its lists not touched; dpkg's status is apt's as always, so nothing is
    installed or replaced: ``apt-get download`` only fetches."""

    root: Path
    suite: str
    components: tuple[str, ...] = ("main",)
    mirror: str = DEBIAN_MIRROR
    keyring: str = DEBIAN_KEYRING

    @classmethod
    def in_cache(cls, suite: str, cache: Path | None = None) -> AptSource:
        """The configuration for *suite* in the project's cache: ``<cache>/apt/<suite>/``."""
        if not suite or "/" in suite or suite.startswith("."):
            raise ToolError(f"{suite!r}: not a Debian suite name")
        return cls(cache_dir(cache) / "apt" / suite, suite)

    @property
    def sources_list(self) -> Path:
        return self.root / "sources.list"

    def sources_line(self) -> str:
        """The one line of its sources.list."""
        components = " ".join(self.components)
        return f"deb [signed-by={self.keyring}] {self.mirror} {self.suite} {components}\n"

    def options(self) -> list[str]:
        """apt-get's ``-o`` options that select this configuration."""
        settings = {
            "Dir::Etc::SourceList": self.sources_list,
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::State::Lists": self.root / "lists",
            "Dir::Cache": self.root / "cache",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def prepare(self) -> None:
        """Create its directories and write its sources.list (only when it differs)."""
        try:
            for sub in ("lists/partial", "cache/archives/partial"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            line = self.sources_line()
            current = self.sources_list.read_text() if self.sources_list.is_file() else None
            if current != line:
                write_atomic(self.sources_list, line.encode())
        except OSError as e:
            raise ToolError(f"apt configuration {self.root}: {e.strerror or e}") from e


def package_of(spec: str) -> str:
    """The package name in an ``apt-get download`` argument: ``name``, ``name=version``,
    ``name/suite``."""
    return spec.split("=", 1)[0].split("/", 1)[0]


def apt_download(
    packages: Sequence[str],
    dest: Path,
    *,
    source: AptSource | None = None,
    note: Callable[[str], None] = lambda msg: None,
) -> list[Path]:
    """``apt-get download`` *packages* into *dest* through *source*'s configuration (default:
    the system's); the .deb paths, one for each package, in their order. On a failure the
    package lists are refreshed once (``apt-get update``, same configuration; *note* is told)
    and the download retried."""
    what = " ".join(packages)
    if not packages:
        raise ValueError("apt_download: no packages")
    if shutil.which("apt-get") is None:
        raise ToolError(f"{what}: apt-get not found, cannot download Debian packages")
    options: list[str] = []
    if source is not None:
        source.prepare()
        options = source.options()
    with tempfile.TemporaryDirectory(prefix=".download.", dir=dest) as tmp:
        os.chmod(tmp, 0o777)  # apt downloads as the _apt user when it can
        download = ["apt-get", *options, "download", *packages]
        proc = run(download, cwd=Path(tmp))
        if proc.returncode != 0:
            # Usually missing or stale package lists: refresh once and retry.
            where = f" ({source.suite})" if source is not None else ""
            note(
                f"apt-get download {what} failed ({last_line(proc.stderr)}); "
                f"running apt-get update{where}"
            )
            upd = run(["apt-get", *options, "update"])
            if upd.returncode != 0:
                raise ToolError(f"{what}: apt-get update failed: {last_line(upd.stderr)}")
            proc = run(download, cwd=Path(tmp))
        if proc.returncode != 0:
            raise ToolError(f"{what}: apt-get download failed: {last_line(proc.stderr)}")
        debs = sorted(Path(tmp).glob("*.deb"))
        found = []
        for spec in packages:
            name = package_of(spec)
            mine = [d for d in debs if d.name.startswith(f"{name}_")]
            if len(mine) != 1:
                raise ToolError(f"{spec}: apt-get download produced {len(mine)} .deb files")
            found.append(mine[0])
        if len(debs) != len(packages):
            raise ToolError(f"{what}: apt-get download produced {len(debs)} .deb files")
        final = []
        for deb in found:
            os.replace(deb, dest / deb.name)
            final.append(dest / deb.name)
    return final


# ---- dpkg ------------------------------------------------------------------------------------


def deb_field(deb: Path, field: str) -> str:
    """A control field of a .deb (``dpkg-deb -f``): Package, Version, Architecture..."""
    if shutil.which("dpkg-deb") is None:
        raise ToolError(f"{deb.name}: dpkg-deb not found")
    proc = run(["dpkg-deb", "-f", str(deb), field])
    if proc.returncode != 0:
        raise ToolError(f"{deb}: dpkg-deb -f failed: {last_line(proc.stderr)}")
    return proc.stdout.strip()


def dpkg_extract(debs: Sequence[Path], dest: Path) -> None:
    """Unpack *debs* (``dpkg-deb -x``), side by side, into *dest*: a new tree, renamed into
    place once every package is in it (an old *dest* is removed first)."""
    if shutil.which("dpkg-deb") is None:
        raise ToolError(f"{debs[0].name}: dpkg-deb not found")
    if dest.exists():
        shutil.rmtree(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for deb in debs:
        proc = run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ToolError(f"{deb}: dpkg-deb -x failed: {last_line(proc.stderr)}")
    os.replace(tmp, dest)
