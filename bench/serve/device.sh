#!/usr/bin/env bash
# bench/serve on a GPU machine without Swift or the store: the system bench/serve/run.py
# --export wrote, served by a packed haps-pipe-serve (bench/gpu/pack.sh's tarball, or one with
# bin/haps-pipe-serve alone) on the CPU engine and on the torch engine in one run. From the
# repository root:
#   bench/serve/device.sh EXPORTED_DIR HAPS_PIPE_TARBALL [DTYPE]     (DTYPE: float32, the default, or bfloat16)
set -euo pipefail
exported=${1:?usage: bench/serve/device.sh EXPORTED_DIR HAPS_PIPE_TARBALL [DTYPE]}
HAPS_PIPE_TARBALL=${2:?usage: bench/serve/device.sh EXPORTED_DIR HAPS_PIPE_TARBALL [DTYPE]}
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/bench/gpu/tools.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
HAPS_PIPE_SERVE=$(command -v haps-pipe-serve) python3 "$root/bench/serve/run.py" --exported "$exported" --engines cpu,torch --device cuda --dtype "${3:-float32}"
