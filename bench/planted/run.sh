#!/usr/bin/env bash
# bench/planted: the planted-adaptation world of issue 28 (pipelines/planted.json; docs/routing.md),
# run once and its two RL stages replicated over seeds; checks HAPS live F1 − no-LoRA on test.
# Needs a release haps-pipe (HAPS_PIPE=... or the PATH).
# usage: bench/planted/run.sh [--fresh]     (store under bench/work/planted, kept between runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/check.py" "$@"
