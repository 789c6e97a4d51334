#!/usr/bin/env bash
# Builds and runs every test (unit, differential, end-to-end CLI). Run scripts/setup.sh (or
# scripts/install-deps.sh) first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
swift build --build-tests -j "$jobs"
swift test --skip-build "$@"
