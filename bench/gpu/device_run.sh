#!/usr/bin/env bash
# The torch engine's GPU checks and benchmarks in one go, on a GPU machine with torch and
# transformers (bench/README.md, "gpu"). Usage, from the repository root:
#
#   bench/gpu/device_run.sh OUT_DIR [HAPS_PIPE_TARBALL]
#
# HAPS_PIPE_TARBALL: a stripped static haps-pipe and the shared libraries it loads
# (bench/gpu/pack.sh makes it), for machines without Swift; without it, haps-pipe is taken
# from PATH. Steps (each writes OUT_DIR/<name>):
#   check.json    the worker on the GPU against the worker on the CPU (bench/gpu/worker_check.py)
#   stages.json   the micro quickstart's rl_train, and sft-train on a task with a known
#                 answer (bench/gpu/sft_fixture.py), on the CPU engine and on the torch engine
#                 on cuda (float32), and how their outputs compare
#   speed.json    decode, recorded-call gradient and SFT speed against peers (bench/gpu/speed.py)
# BENCH_STEPS (default "check,stages,speed") picks steps.
set -euo pipefail
out=${1:?usage: bench/gpu/device_run.sh OUT_DIR [HAPS_PIPE_TARBALL]}
mkdir -p "$out"
steps=${BENCH_STEPS:-check,stages,speed}
root=$(cd "$(dirname "$0")/../.." && pwd)
HAPS_PIPE_TARBALL=${2:-${HAPS_PIPE_TARBALL:-}}
source "$root/bench/gpu/tools.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" || true

if [[ $steps == *check* ]]; then
  "$HAPS_TORCH_PYTHON" bench/gpu/worker_check.py "$out/check.json" > "$out/check.log" 2>&1 || echo "check failed: see check.log"
fi

if [[ $steps == *stages* ]]; then
  micro=()
  for split in train valid test; do micro+=(--set "world_$split.sizes={\"train\": 10, \"valid\": 5, \"test\": 5}" --set "sample_$split.max_tokens=24"); done
  for agent in agent_a agent_b; do
    for kv in steps=12 copy_steps=4 batch_size=4 fresh_worlds=1 fresh_questions=8 hidden_size=32 vocab_size=400 max_length=256; do
      micro+=(--set "$agent.$kv")
    done
  done
  micro+=(--set sft_train.epochs=2 --set 'world_rl.sizes={"train": 10, "valid": 5, "test": 5, "rl": 4}')
  micro+=(--set 'world_rl_valid.sizes={"train": 10, "valid": 5, "test": 5, "rl": 4, "rl_valid": 3}')
  micro+=(--set rl_train.samples=2 --set rl_train.max_tokens=24 --set rl_train.eval_interval=2)
  device=${BENCH_DEVICE:-cuda}
  torch=(--set rl_train.engine=torch --set "rl_train.device=\"$device\"")
  store=$(mktemp -d)/store
  for engine in cpu torch; do
    extra=()
    [ "$engine" = torch ] && extra=("${torch[@]}")
    start=$(date +%s%N)
    haps-pipe run pipelines/quickstart.json --store "$store" --until rl_train --plain "${micro[@]}" "${extra[@]}" > "$out/stages-$engine.log" 2>&1 \
      || echo "the $engine run failed: see stages-$engine.log"
    end=$(date +%s%N)
    for stage in rl_train; do
      mkdir -p "$out/$engine/$stage"
      dir=$(haps-pipe show "$stage" --path --store "$store") && cp -r "$dir"/. "$out/$engine/$stage/" || echo "no output of $stage ($engine)"
    done
    echo "quickstart micro, rl_train on $engine: $(( (end - start) / 1000000 )) ms" >> "$out/stages-seconds.txt"
  done
  cp "$store"/runs/*.json "$out/" 2>/dev/null || true
  # Router SFT on a task with a known answer (the micro quickstart's agents answer nothing, so
  # it has no SFT rows): 12 epochs on each engine.
  fixture=$(mktemp -d)
  "$HAPS_TORCH_PYTHON" bench/gpu/sft_fixture.py "$fixture" > "$out/sft-fixture.log" 2>&1
  for engine in cpu torch; do
    extra=()
    [ "$engine" = torch ] && extra=(--set router.engine=torch --set "router.device=\"$device\"")
    start=$(date +%s%N)
    (cd "$fixture" && haps-pipe run sft.json --store st --plain "${extra[@]}") > "$out/sft-$engine.log" 2>&1 || echo "the $engine SFT failed: see sft-$engine.log"
    end=$(date +%s%N)
    echo "sft fixture on $engine: $(( (end - start) / 1000000 )) ms" >> "$out/stages-seconds.txt"
    mkdir -p "$out/$engine/sft_train"
    dir=$(cd "$fixture" && haps-pipe show router --path --store st) && cp -r "$dir"/. "$out/$engine/sft_train/" || echo "no SFT output ($engine)"
  done
  python3 - "$out" > "$out/stages.json" <<'EOF'
import json, sys
out = sys.argv[1]
def lines(p):
    try:
        return [json.loads(l) for l in open(p) if l.strip()]
    except OSError:
        return None
report = {}
c, t = lines(out + "/cpu/sft_train/losses.jsonl"), lines(out + "/torch/sft_train/losses.jsonl")
if c and t:
    report["sft_losses_worst_relative"] = max(abs(a["loss"] - b["loss"]) / max(1, abs(a["loss"])) for a, b in zip(c, t))
    report["sft_steps"] = len(c)
for name in ("selection.json",):
    try:
        report["sft_selection"] = [json.load(open(out + "/%s/sft_train/%s" % (e, name))) for e in ("cpu", "torch")]
    except OSError:
        pass
c, t = lines(out + "/cpu/rl_train/steps.jsonl"), lines(out + "/torch/rl_train/steps.jsonl")
if c and t:
    report["rl_steps"] = len(c)
    report["rl_same_actions"] = sum(a["action"] == b["action"] for a, b in zip(c, t))
    report["rl_same_rewards"] = sum(a["rewards"] == b["rewards"] for a, b in zip(c, t))
    report["rl_logq_worst_relative"] = max(abs(a["logq"] - b["logq"]) / max(1, abs(a["logq"])) for a, b in zip(c, t))
print(json.dumps(report, indent=2))
EOF
  tar czf "$out/outputs.tgz" -C "$out" cpu torch && rm -rf "$out/cpu" "$out/torch"
fi

if [[ $steps == *speed* ]]; then
  "$HAPS_TORCH_PYTHON" bench/gpu/speed.py "$out/speed.json" > "$out/speed.log" 2>&1 || echo "speed failed: see speed.log"
fi
ls "$out"
