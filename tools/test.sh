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
exec python3 -m pytest -ra "$@"
