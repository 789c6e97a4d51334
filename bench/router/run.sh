#!/usr/bin/env bash
# bench/router: the router's SFT step (sft-train) against transformers on the CPU, same model,
# same sequences, same thread count. THREADS (default 2), STEPS (default 5), RUNS (default 5:
# medians are reported). Target: at least PyTorch's tokens/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/bench/torch-venv.sh"
need_pip transformers transformers numpy
build_bench router-bench
export THREADS=${THREADS:-2} STEPS=${STEPS:-5}
fixtures="$root/Tests/Fixtures/router"
exec "$py" - "$root/.build/release/router-bench" "$here/torch_peer.py" "$fixtures" "${RUNS:-5}" <<'PY'
import json, statistics, subprocess, sys
swift, peer, fixtures, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return json.loads(out[-1])
ours, theirs = [], []
for _ in range(runs):  # interleaved, so that a drift of the machine weighs on both
    ours.append(run([swift, fixtures]))
    theirs.append(run([sys.executable, peer, fixtures]))
med = lambda rs: statistics.median(r["tokens_per_s"] for r in rs)
print(f"config: Llama router, vocab 1203, hidden 128, 4 layers, 4 heads (2 kv); 8 sequences of {ours[0]['tokens_per_step'] // 8} tokens "
      f"a step as 2 accumulated micro-batches; {ours[0]['threads']} threads; medians of {runs} runs; torch {theirs[0]['torch']} ({theirs[0]['attention']} attention)")
print(f"machine: {ours[0]['cpu']}; OpenBLAS kernels: {ours[0]['openblas_core']}")
print(f"SFT tokens/s: haps-pipe {med(ours):.0f}, transformers {med(theirs):.0f} -> {med(ours) / med(theirs):.2f}x (target >= 1.0)")
PY
