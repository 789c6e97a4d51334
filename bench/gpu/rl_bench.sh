#!/usr/bin/env bash
# Joint RL, seconds per training question: haps-pipe's rl-train on the torch engine against
# the reference's rl_batch.py run as it is, on the same random-weight models of the paper's
# shapes (bench/README.md, "gpu: joint RL against rl_batch.py"). From the repository root:
#
#   bench/gpu/rl_bench.sh OUT_DIR REFERENCE_DIR [--tiny] [--questions N]
#
# REFERENCE_DIR holds the reference's HotpotQA/ (bench/gpu/fetch_reference.sh makes it); it
# is copied to OUT_DIR/reference and only that copy is touched. Steps:
#   1. OUT_DIR/models/{router,llama,qwen}: bench/gpu/paper_models.py (kept when already made
#      at the same size)
#   2. a stand-in retriever on 127.0.0.1:2022 (the reference's port): haps-pipe serve
#      --retriever lexical, for both sides
#   3. the reference: rl_batch.py --preset llama_qwen on its own first N training questions,
#      one epoch, no evaluation, every model on one device; its model names resolve to our
#      directories through links in joint_rl/ (transformers reads a local directory first);
#      the time of each question from bench/gpu/ref_timed.py (OUT_DIR/reference-times.jsonl)
#   4. ours: a pipeline with one rl-train stage (OUT_DIR/ours/rl.json) on the same N questions
#      of dataset/train.jsonl (the same file as the reference's rl_dataset/train.jsonl),
#      engine torch, cuda, bfloat16; the time of each step from its steps journal
#      (OUT_DIR/ours-times.jsonl)
#   5. OUT_DIR/rl.json: both sides' seconds per question and the ratio
#   evaluate (only when BENCH_STEPS names it): the live evaluation of the first M test
#      questions (--eval-questions, default 100) by the HAPS system ours trained: evaluate on
#      the torch engine, its score tables from stand-in sample rows (rl_bench.py samples);
#      OUT_DIR/eval.json: the wall time of the run and of each stage
# --tiny: the models' tiny shapes, everything on the CPU (ours in float32), N default 2 (else 5).
# HAPS_PIPE: the haps-pipe binary (default: haps-pipe on PATH); HAPS_PIPE_TARBALL: a packed one
# (bench/gpu/pack.sh), unpacked and put first on PATH; HAPS_TORCH_PYTHON: the Python of our
# worker, of paper_models.py and of the reference (default python3). BENCH_STEPS (default
# "models,reference,ours") picks steps, so that each fits a time limit per command: the models
# once, then each side with its own --questions; every step ends with the report of what both
# sides have recorded so far.
set -euo pipefail
usage="usage: bench/gpu/rl_bench.sh OUT_DIR REFERENCE_DIR [--tiny] [--questions N] [--eval-questions M]"
out=${1:?$usage}; ref_src=${2:?$usage}; shift 2
tiny=0; n=""; m=100
while [ $# -gt 0 ]; do
  case $1 in
    --tiny) tiny=1 ;;
    --questions) n=${2:?$usage}; shift ;;
    --eval-questions) m=${2:?$usage}; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"; out=$(cd "$out" && pwd)
ref_src=$(cd "$ref_src" && pwd)
[ -f "$ref_src/HotpotQA/joint_rl/rl_batch.py" ] || { echo "$ref_src has no HotpotQA/joint_rl/rl_batch.py (bench/gpu/fetch_reference.sh)" >&2; exit 1; }
source "$root/bench/gpu/tools.sh"
steps=${BENCH_STEPS:-models,reference,ours}
if [ $tiny = 1 ]; then
  n=${n:-2}; size=tiny; ref_device=cpu; device=cpu; dtype=float32; tiny_flag=--tiny
else
  n=${n:-5}; size=paper; ref_device=cuda:0; device=cuda; dtype=bfloat16; tiny_flag=
fi
[ "$n" -ge 2 ] || { echo "--questions must be at least 2 (the steady figure is the gaps between questions)" >&2; exit 2; }
far=1000000  # eval_interval and checkpoint_every beyond N: no evaluation, no checkpoint in the timed part

# 1. Models.
models=$out/models
df -h "$out" | tail -1 | sed 's/^/disk at start: /' >&2
if [[ $steps == *models* ]] && [ "$(cat "$models/size.txt" 2>/dev/null)" != "$size" ]; then
  rm -rf "$models"
  "$py" "$root/bench/gpu/paper_models.py" "$models" $tiny_flag
  echo "$size" > "$models/size.txt"
fi

[ "$(cat "$models/size.txt" 2>/dev/null)" = "$size" ] || { echo "no $size models in $models: run the models step first" >&2; exit 1; }
[[ $steps == *reference* || $steps == *ours* || $steps == *evaluate* ]] || { "$py" "$root/bench/gpu/rl_bench.py" report "$out"; exit 0; }

# 2. The stand-in retriever on the reference's port.
"$hp" serve --retriever lexical --port 2022 > "$out/retriever.log" 2>&1 &
retriever=$!
trap 'kill $retriever 2>/dev/null || true' EXIT
"$py" "$root/bench/gpu/rl_bench.py" wait-servers "2022:/retrieve:$out/retriever.log:$retriever"

# Both pipelines' resources: the candidates as local models on the bench's directories (not
# inputs: a store copy of 31 GB would not fit the GPU machine's disk), the stand-in retriever.
resources='{"models": {"llama": {"backend": "local", "path": "'"$models/llama"'", "name": "Llama-3.1-8B-Instruct"},
                      "qwen": {"backend": "local", "path": "'"$models/qwen"'", "name": "Qwen2.5-7B-Instruct"}},
           "retriever": {"backend": "http", "url": "http://127.0.0.1:2022/retrieve"}}'

meta() {  # OUT_DIR/meta-SIDE.json: what that side ran
  cat > "$out/meta-$1.json" <<EOF
{"questions": $n, "tiny": $([ $tiny = 1 ] && echo true || echo false), "device": "$2", "dtype": "$3",
 "reference_commit": "$(cat "$ref_src/COMMIT" 2>/dev/null || echo unknown)", "host": "$(hostname)", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "gpu": "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"}
EOF
}

# 3. The reference, as it is.
if [[ $steps == *reference* ]]; then
  rm -rf "$out/reference" "$out/reference-times.jsonl"
  meta reference "$ref_device" bfloat16  # load_mNt's default dtype, for the router and both candidates
  cp -r "$ref_src" "$out/reference"
  jr=$out/reference/HotpotQA/joint_rl
  mkdir -p "$jr/meta-llama" "$jr/Qwen"
  ln -s "$models/llama" "$jr/meta-llama/Meta-Llama-3.1-8B-Instruct"  # model2path's names, relative to joint_rl/
  ln -s "$models/qwen" "$jr/Qwen/Qwen2.5-7B-Instruct"
  head -n "$n" "$jr/rl_dataset/train.jsonl" > "$jr/rl_dataset/bench_train.jsonl"
  head -n "$n" "$jr/rl_dataset/valid.jsonl" > "$jr/rl_dataset/bench_valid.jsonl"
  head -n "$n" "$jr/../dataset/test.jsonl" > "$jr/rl_dataset/bench_test.jsonl"
  if [ $tiny = 1 ]; then
    # The only edit of the reference's code, at tiny sizes only: its generators' output sizes
    # are the candidates' hidden sizes written as constants (4096, 3584); the tiny models' is 64.
    hidden=$("$py" -c "import json; print(json.load(open('$models/llama/config.json'))['hidden_size'])")
    sed -i -e "s/^    qwen_7b_target_dim: int = 3584$/    qwen_7b_target_dim: int = $hidden/" \
           -e "s/^    llama_8b_target_dim: int = 4096$/    llama_8b_target_dim: int = $hidden/" "$jr/lora_generator.py"
    [ "$(grep -c "_target_dim: int = $hidden\$" "$jr/lora_generator.py")" = 2 ] || { echo "patching lora_generator.py's target dims failed" >&2; exit 1; }
  fi
  echo "reference: $n questions on $ref_device" >&2
  ( "$py" "$root/bench/gpu/ref_timed.py" "$out/reference-times.jsonl" "$jr" --preset llama_qwen --base_router_path "$models/router" \
      --s_device "$ref_device" --t_device "$ref_device" --r_device "$ref_device" --epochs 1 --high_router_lr 1e-6 \
      --eval_interval $far --train_jsonl rl_dataset/bench_train.jsonl --valid_jsonl rl_dataset/bench_valid.jsonl \
      --test_jsonl rl_dataset/bench_test.jsonl > "$out/reference.log" 2>&1 ) || echo "the reference failed: see $out/reference.log" >&2
fi

# 4. Ours.
if [[ $steps == *ours* ]]; then
  work=$out/ours
  rm -rf "$work" "$out/ours-times.jsonl"
  meta ours "$device" "$dtype"
  mkdir -p "$work"
  "$py" "$root/bench/gpu/rl_bench.py" router "$models/router" "$ref_src/HotpotQA/prompt" "$work/router"
  mkdir -p "$work/prompts" && cp -r "$ref_src/HotpotQA/prompt/student" "$ref_src/HotpotQA/prompt/teacher" "$work/prompts/"  # the reference's dialogue wording
  head -n "$n" "$root/dataset/train.jsonl" > "$work/train.jsonl"
  head -n "$n" "$root/dataset/valid.jsonl" > "$work/valid.jsonl"
  cat > "$work/rl.json" <<EOF
{
  "name": "rl_bench",
  "description": "bench/gpu/rl_bench.sh: joint RL on the paper's shapes against the reference's rl_batch.py (llama_qwen; its README's high_router_lr 1e-6).",
  "seed": 43,
  "resources": $resources,
  "stages": {
    "rl_train": {"type": "rl-train", "inputs": {"router": "router", "train": "train.jsonl", "valid": "valid.jsonl", "prompts": "prompts"},
                 "params": {"candidates": ["llama", "qwen"], "epochs": 1, "eval_interval": $far, "checkpoint_every": $far,
                            "high_router_lr": 1e-6, "engine": "torch", "device": "$device", "dtype": "$dtype"}}
  }
}
EOF
  "$py" "$root/bench/gpu/rl_bench.py" poll "$work/store" "$out/ours-times.jsonl" "$work/done" &
  poller=$!
  echo "ours: $n questions, engine torch on $device ($dtype)" >&2
  rm -f "$out/ours-worker-times.txt"
  ( cd "$work" && HAPS_TORCH_WORKER_TIMES="$out/ours-worker-times.txt" "$hp" run rl.json --store "$work/store" --plain > "$out/ours.log" 2>&1 ) || echo "ours failed: see $out/ours.log" >&2
  touch "$work/done"; wait $poller
  "$py" -c "import json, time; print(json.dumps({'event': 'end', 't': time.monotonic(), 'wall': time.time()}))" >> "$out/ours-times.jsonl"
  if dir=$(cd "$work" && "$hp" show rl_train --path --store "$work/store" 2>/dev/null); then
    mkdir -p "$work/output" && cp "$dir"/steps.jsonl "$dir"/summary.txt "$work/output/" 2>/dev/null || true
  fi
  cat "$out/ours-worker-times.txt" >&2 2>/dev/null || true
  df -h "$out" | tail -1 | sed 's/^/disk after ours: /' >&2
fi

# The live evaluation of M test questions by the system ours trained.
if [[ $steps == *evaluate* ]]; then
  ev=$out/eval
  rm -rf "$ev" "$out/eval.json"
  system=$(cd "$out/ours" && "$hp" show rl_train --path --store "$out/ours/store" 2>/dev/null) || { echo "no trained system: run the ours step first" >&2; exit 1; }
  mkdir -p "$ev/prompts" && cp -r "$out/ours/prompts/." "$ev/prompts/"
  head -n "$m" "$root/dataset/test.jsonl" > "$ev/test.jsonl"
  head -n "$m" "$root/dataset/valid.jsonl" > "$ev/valid.jsonl"
  "$py" "$root/bench/gpu/rl_bench.py" samples "$ev/test.jsonl" "$ev/test-samples.jsonl"
  "$py" "$root/bench/gpu/rl_bench.py" samples "$ev/valid.jsonl" "$ev/valid-samples.jsonl"
  cat > "$ev/eval.json" <<EOF
{
  "name": "eval_bench",
  "description": "bench/gpu/rl_bench.sh's evaluate step: the live evaluation of $m test questions by the HAPS system that the ours step trained.",
  "seed": 43,
  "resources": $resources,
  "stages": {
    "score_test": {"type": "score", "inputs": {"samples": "test-samples.jsonl"}, "params": {"use_recorded": true}},
    "score_valid": {"type": "score", "inputs": {"samples": "valid-samples.jsonl"}, "params": {"use_recorded": true}},
    "evaluate": {"type": "evaluate", "inputs": {"scores": "score_test", "valid_scores": "score_valid", "questions": "test.jsonl",
                                                "prompts": "prompts", "haps": "$system"},
                 "params": {"candidates": ["llama", "qwen"], "resamples": 1000, "engine": "torch", "device": "$device", "dtype": "$dtype"}}
  }
}
EOF
  echo "evaluate: $m test questions live, engine torch on $device ($dtype)" >&2
  start=$("$py" -c "import time; print(time.time())")
  rm -f "$out/eval-worker-times.txt"
  ( cd "$ev" && HAPS_TORCH_WORKER_TIMES="$out/eval-worker-times.txt" "$hp" run eval.json --store "$ev/store" --plain > "$out/eval.log" 2>&1 ) || echo "the evaluation failed: see $out/eval.log" >&2
  cat "$out/eval-worker-times.txt" >&2 2>/dev/null || true
  "$py" "$root/bench/gpu/rl_bench.py" run-report "$ev" "$out/eval.json" "$start" "live evaluation of the test questions by the trained HAPS system" "$m" "$device" "$dtype"
fi

# 5. The figures.
"$py" "$root/bench/gpu/rl_bench.py" report "$out"
