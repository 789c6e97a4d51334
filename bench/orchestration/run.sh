#!/usr/bin/env bash
# Orchestration benchmark: haps-pipe vs DVC, Snakemake (from PyPI, in bench/.venv) and make.
# Needs hyperfine (apt-get install hyperfine) and a release haps-pipe on the PATH (or HAPS_PIPE=...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/../.venv/bin/snakemake" ] || [ ! -x "$here/../.venv/bin/dvc" ]; then
  python3 -m venv "$here/../.venv"
  "$here/../.venv/bin/pip" install --quiet dvc snakemake
fi
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine"; exit 1; }
if [ "${1:-}" = "--sweep" ]; then shift; exec python3 "$here/sweep.py" "$@"; fi
exec python3 "$here/bench.py" "$@"
