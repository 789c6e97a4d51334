#!/usr/bin/env bash
# bench/quickstart: the offline quickstart cold and as a no-op, and the routing targets of
# issue 7 checked on its score tables. Needs a release haps-pipe (HAPS_PIPE=... or the PATH).
# usage: bench/quickstart/run.sh            (a fresh store under bench/work/quickstart)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/check.py" "$@"
