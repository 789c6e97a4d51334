#!/usr/bin/env bash
# bench/rl: the joint RL step (rl-train's engine work) against the same step in PyTorch on the
# CPU, same models, prompts and thread count. THREADS (default 2), STEPS (default 5), NEW (new
# tokens a call, default 48), RUNS (default 5: medians). Target: at least PyTorch's steps/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/bench/torch-venv.sh"
need_pip transformers transformers numpy
build_bench rl-bench
export THREADS=${THREADS:-2} STEPS=${STEPS:-5} NEW=${NEW:-48}
exec "$py" - "$root/.build/release/rl-bench" "$here/torch_peer.py" "$root/Tests/Fixtures/router" "${RUNS:-5}" <<'PY'
import json, statistics, subprocess, sys
swift, peer, fixtures, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
ours, theirs = [], []
for _ in range(runs):  # interleaved, so that a drift of the machine weighs on both
    ours.append(run([swift, fixtures]))
    theirs.append(run([sys.executable, peer, fixtures]))
med = lambda rs: statistics.median(r["steps_per_s"] for r in rs)
o = ours[0]
print(f"config: router and candidate Llamas (vocab 1203, hidden 128, 4 layers, 4 heads, 2 kv), generator 128->256->256->A,B (rank 8); "
      f"routing prompt {o['routing_prompt']} tokens, one call of {o['call_prompt']} + {o['new_tokens']} sampled tokens; "
      f"{o['threads']} threads; medians of {runs} runs; torch {theirs[0]['torch']}")
print(f"machine: {o['cpu']}; OpenBLAS kernels: {o['openblas_core']}")
print(f"RL steps/s: haps-pipe {med(ours):.2f}, PyTorch {med(theirs):.2f} -> {med(ours) / med(theirs):.2f}x (target >= 1.0)")
PY
