#!/usr/bin/env bash
# bench/sampling: haps-pipe's sample stage vs a re-creation of the reference's design.
# Needs a release haps-pipe on the PATH (or HAPS_PIPE=...), and curl (the questions are dataset/valid.jsonl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/../.venv/bin/python" ] || ! "$here/../.venv/bin/python" -c "import requests" 2>/dev/null; then
  python3 -m venv "$here/../.venv"
  "$here/../.venv/bin/pip" install --quiet requests
fi
exec python3 "$here/bench.py" "$@"
