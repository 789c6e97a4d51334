#!/usr/bin/env bash
# bench/engine: the NN engine against PyTorch on the CPU, same config and thread count.
# THREADS (default 2), STEPS (default 5), RUNS (default 5: medians are reported).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/bench/torch-venv.sh"
build_bench engine-bench
export THREADS=${THREADS:-2} STEPS=${STEPS:-5}
exec "$py" - "$root/.build/release/engine-bench" "$here/torch_peer.py" "${RUNS:-5}" <<'PY'
import json, statistics, subprocess, sys
swift, peer, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[0])
# Interleaved (ours, theirs, ours, ...), so that a drift of the machine's speed during the
# run weighs on both sides alike.
ours, theirs = [], []
for _ in range(runs):
    ours.append(run([swift]))
    theirs.append(run([sys.executable, peer]))
med = lambda rs, k: statistics.median(r[k] for r in rs)
steps, tsteps = med(ours, "train_steps_per_s"), med(theirs, "train_steps_per_s")
gen, tgen = med(ours, "generate_tokens_per_s"), med(theirs, "generate_tokens_per_s")
gflops, peak = med(ours, "train_matmul_gflops"), med(ours, "sgemm_peak_gflops")
print(f"config: llama-shaped, vocab 4096, hidden 256, 4 layers, 8 heads (4 kv), seq 128 x batch 4; "
      f"{ours[0]['threads']} threads; medians of {runs} runs; torch {theirs[0]['torch']}")
print(f"machine: {ours[0]['cpu']}; OpenBLAS kernels: {ours[0]['openblas_core']}")
print(f"training steps/s: haps-pipe {steps:.2f}, PyTorch {tsteps:.2f} -> {steps / tsteps:.2f}x (target >= 1.2)")
print(f"generation tokens/s (8 x 64, greedy, KV cache): haps-pipe {gen:.0f}, PyTorch {tgen:.0f} -> {gen / tgen:.2f}x")
print(f"training-step matmuls: {gflops:.1f} GFLOP/s of an sgemm peak of {peak:.1f} (1024^3) -> {gflops / peak:.0%} (target > 50%)")
PY
