#!/usr/bin/env bash
# Prepare a Debian 12 machine (as root) for pvhfw: apt packages, the Python
# package in editable mode with its dev extras, Debian's kernels (the cloud
# flavour; the generic one, which parses MP tables; Debian 13's 6.12 cloud
# kernel, from trixie through an apt configuration of its own), QEMU 10.0 beside the
# system's 7.2 (Debian's build from bookworm-backports, unpacked, never
# installed), the boot-test initramfs, plain and with the guest view's
# modules, virtme-ng in a venv with the generic kernel laid out for it (all
# cached in $PVHFW_CACHE, default ~/.cache/pvhfw), and libvirt for its client
# test (never started here: the test runs a libvirtd of its own).
# Idempotent: a second run installs nothing and rebuilds nothing.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf 'setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    say "run as root (apt-get install needs it)" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

packages=(qemu-system-x86 qemu-system-data busybox-static cpio lz4 zstd xz-utils binutils gcc make
    libvirt-daemon-system libvirt-clients kmod udev python3-venv)
command -v python3 >/dev/null || packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt-get update"
    apt-get update -qq
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
else
    say "apt packages already installed"
fi

pip_args=(-q -e '.[dev]')
# Debian's own python3 refuses pip installs (PEP 668) unless told otherwise.
if [[ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]]
then
    pip_args+=(--break-system-packages)
fi
say "pip install -e .[dev] ($(python3 --version))"
PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install "${pip_args[@]}"

say "Debian kernel"
python3 -m tools.debian_kernel

say "Debian kernel, generic flavour"
python3 -m tools.debian_kernel --generic

say "Debian 13's kernel, Linux 6.12 (trixie)"
python3 -m tools.debian_kernel --series 6.12

say "QEMU 10.0 beside the system's (bookworm-backports)"
python3 -m tools.alt_qemu

say "initramfs"
python3 -m tools.initramfs

say "initramfs with the guest view's modules"
python3 -m tools.initramfs --view-modules

say "initramfs with the guest view's modules, Linux 6.12"
python3 -m tools.initramfs --view-modules --series 6.12

say "virtme-ng in a venv, Debian's generic kernel laid out for it"
python3 -m tools.vng

say "done"
