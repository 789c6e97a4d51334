#!/usr/bin/env bash
# Builds and runs every test (unit, differential, end-to-end CLI). Run scripts/setup.sh (or
# scripts/install-deps.sh and scripts/fetch-models.sh) first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f models/all-MiniLM-L6-v2/model.safetensors ]; then
  echo "warning: models/all-MiniLM-L6-v2 is missing; the encoder tests will fail. Run scripts/fetch-models.sh" >&2
  echo "         (scripts/setup.sh and .ci/run do)." >&2
fi
# The official openai Python client, an outside client of `haps-pipe serve` in the tests, and
# numpy, the oracle of the evaluation's bootstrap, and gguf (llama.cpp's GGUF library), the oracle of export-gguf,
# and playwright, which drives Debian's chromium through `haps-pipe ui`'s pages (no browser is downloaded).
# The tests find this Python (TestSupport's `Python`: $HAPS_TEST_PYTHON, else .build/test-venv,
# else python3 on PATH); with these modules installed, a test that misses one fails, not skips.
if ! .build/test-venv/bin/python -c "import openai, numpy, gguf, playwright" 2>/dev/null; then
  if python3 -m venv .build/test-venv 2>/dev/null; then
    .build/test-venv/bin/pip install --quiet --disable-pip-version-check openai numpy gguf playwright
  else  # no venv module: a plain target directory
    python3 -m pip install --quiet --disable-pip-version-check --target .build/test-python openai numpy gguf playwright
    export HAPS_TEST_PYTHON=$(command -v python3) PYTHONPATH="$PWD/.build/test-python${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
# With HAPS_TORCH_PYTHON set (.ci/run sets it), the torch engine's tests fail rather than skip.
export HAPS_REQUIRE_PYTHON_MODULES="openai numpy gguf playwright${HAPS_TORCH_PYTHON:+ torch}"
# A one-node Slurm for the Slurm executor's tests (SlurmExecutorTests), unless one is set already.
if [ -z "${SLURM_CONF:-}" ] && [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null; then
  slurm_dir=$(mktemp -d /tmp/haps-slurm-test.XXXXXX)
  if scripts/local-slurm.sh start "$slurm_dir" >/dev/null; then
    export SLURM_CONF="$slurm_dir/slurm.conf" HAPS_REQUIRE_SLURM=1
    trap 'scripts/local-slurm.sh stop "$slurm_dir"' EXIT
  else
    echo "warning: the local Slurm did not start (logs in $slurm_dir); the Slurm executor's tests will be skipped" >&2
  fi
fi
jobs=$(nproc 2>/dev/null || echo 2)
swift build --build-tests -j "$jobs"
swift test --skip-build "$@"
