#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it): lints, types, then every test layer.
# Tests that need QEMU, KVM or the Debian kernel skip loudly when those are missing, and fail
# instead when CI=true (tools/setup.sh installs them all).
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
echo "test: ruff check"
ruff check .
echo "test: ruff format --check"
ruff format --check .
echo "test: mypy pvhfw bench tools tests"
mypy pvhfw bench tools tests
echo "test: pytest"
python3 -m pytest -ra "$@"

# A seeded sample of the firmware's mutants (tests/mutate.py, docs/design.md "Mutation
# testing"): each must be killed by the fast layers, or be listed there as equivalent. The
# layers have just passed unmutated, hence --no-baseline. Not with a selection of tests.
if [[ $# -eq 0 ]]; then
    echo "test: python3 -m tests.mutate --sample ${PVHFW_MUTANTS:-40} --seed 13 --no-baseline"
    python3 -m tests.mutate --sample "${PVHFW_MUTANTS:-40}" --seed 13 --no-baseline
else
    echo "test: no mutation sample with a selection of tests ($*)"
fi

# The QEMU and Debian layers again on QEMU 10.0, which tools/setup.sh unpacks beside the
# system's 7.2 (tools/alt_qemu.py), unless PVHFW_QEMU already chose the one QEMU to test.
if [[ -n "${PVHFW_QEMU:-}" ]]; then
    echo "test: PVHFW_QEMU=$PVHFW_QEMU chose the QEMU; no second pass on QEMU 10.0"
    exit 0
fi
if ! alt=$(python3 -m tools.alt_qemu --installed); then
    if [[ "${CI:-}" == true ]]; then
        echo "test: FAILED: QEMU 10.0 is missing under CI (tools/setup.sh installs it)" >&2
        exit 1
    fi
    echo "test: SKIPPED the QEMU and Debian layers on QEMU 10.0: not installed" \
        "(python3 -m tools.alt_qemu installs it)"
    exit 0
fi
echo "test: pytest -m 'qemu or debian' on QEMU 10.0 ($alt)"
PVHFW_QEMU="$alt" exec python3 -m pytest -ra -m "qemu or debian" "$@"
