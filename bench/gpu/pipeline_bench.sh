#!/usr/bin/env bash
# The whole pipelines/llama_qwen.json at the paper's shapes, with random weights, on one GPU
# machine: its candidates served by `haps-pipe serve --engine torch` (no vLLM), its learning
# stages on the torch engine as the pipeline says, N questions a split; the wall time of each
# stage (bench/README.md, "gpu: the whole pipeline"). From the repository root:
#
#   bench/gpu/pipeline_bench.sh OUT_DIR [--tiny] [--questions N] [--until STAGE]
#
# Steps:
#   1. OUT_DIR/models/{router,llama,qwen,encoder}: bench/gpu/paper_models.py --encoder (kept
#      when made at the same size; rl_bench.sh's models are the same, so one OUT_DIR serves both)
#   2. OUT_DIR/run: the pipeline as it is, with dataset/{train,valid,test}.jsonl the first N
#      lines of the repository's and models/<the pipeline's names> links to step 1's directories
#   3. servers: llama on 127.0.0.1:2024 and qwen on 2025 (serve --engine torch, the names the
#      pipeline asks for), the lexical retriever on 2022
#   4. haps-pipe run, timed; OUT_DIR/pipeline.json: the wall time and each stage's seconds;
#      OUT_DIR/worker-times.txt: each torch worker's time per op, named by its models
# --tiny: the tiny shapes, everything on the CPU (the learning stages and servers in float32,
# through --set), N default 3 (else 20). --until STAGE: stop after it (a rerun of the same
# command continues from the stored results: one device call need not hold the whole run).
# Disk at the paper's shapes: the models (35 GB) and the store's copies of the inputs (the two
# candidates, the router backbone: 34 GB) and rl_train's checkpoints (2 × 15 GB): ~100 GB, so
# the two-GPU machine's 128 GiB, not the one-GPU machine's 64. On the one-GPU machine (64 GiB
# of disk, 128 GiB of memory): BENCH_MODELS=/dev/shm/models keeps the models in memory, and
# BENCH_SET='--set rl_train.checkpoint_every=100000' leaves rl_train's checkpoints out (a run
# that is not stopped needs none): ~45 GB of disk. Run it detached (setsid) when one command's
# time limit is shorter than the run.
# BENCH_SET: more `--set` arguments for the run (words split on spaces).
# HAPS_PIPE, HAPS_PIPE_TARBALL, HAPS_TORCH_PYTHON: as rl_bench.sh.
set -euo pipefail
usage="usage: bench/gpu/pipeline_bench.sh OUT_DIR [--tiny] [--questions N] [--until STAGE]"
out=${1:?$usage}; shift
tiny=0; n=""; until_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --tiny) tiny=1 ;;
    --questions) n=${2:?$usage}; shift ;;
    --until) until_args=(--until "${2:?$usage}"); shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"; out=$(cd "$out" && pwd)
source "$root/bench/gpu/tools.sh"
export HAPS_TORCH_WORKER_TIMES=$out/worker-times.txt  # each worker's time per op, servers' and stages' (engines/torch/worker.py)
rm -f "$HAPS_TORCH_WORKER_TIMES"
if [ $tiny = 1 ]; then
  n=${n:-3}; size=tiny; device=cpu; dtype=float32; tiny_flag=--tiny
else
  n=${n:-20}; size=paper; device=cuda; dtype=bfloat16; tiny_flag=
fi
df -h "$out" | tail -1 | sed 's/^/disk at start: /' >&2

# 1. Models.
models=${BENCH_MODELS:-$out/models}
mkdir -p "$models"; models=$(cd "$models" && pwd)
if [ "$(cat "$models/size.txt" 2>/dev/null)" != "$size" ]; then
  rm -rf "$models"
  "$py" "$root/bench/gpu/paper_models.py" "$models" $tiny_flag --encoder
  echo "$size" > "$models/size.txt"
elif [ ! -f "$models/encoder/model.safetensors" ]; then
  "$py" -c "import sys; sys.path.insert(0, '$root/bench/gpu'); import paper_models; print(paper_models.write_encoder('$models'))"
fi

# 2. The pipeline's directory.
run=$out/run
mkdir -p "$run/dataset" "$run/models"
# The pipeline as it is; BENCH_PORTS="LLAMA QWEN" moves its two servers (default 2024 2025).
read -r llama_port qwen_port <<< "${BENCH_PORTS:-2024 2025}"
"$py" - "$root/pipelines/llama_qwen.json" "$run/pipeline.json" "$llama_port" "$qwen_port" <<'PY'
import sys
src, dst, llama, qwen = sys.argv[1:]
text = open(src).read()
for old, new in (("127.0.0.1:2024/", f"127.0.0.1:{llama}/"), ("127.0.0.1:2025/", f"127.0.0.1:{qwen}/")):
    assert text.count(old) == 1, old
    text = text.replace(old, new)
open(dst, "w").write(text)
PY
for split in train valid test; do head -n "$n" "$root/dataset/$split.jsonl" > "$run/dataset/$split.jsonl"; done
ln -sfn "$models/router" "$run/models/Llama-3.2-1B-Instruct"
ln -sfn "$models/llama" "$run/models/Llama-3.1-8B-Instruct"
ln -sfn "$models/qwen" "$run/models/Qwen2.5-7B-Instruct"
ln -sfn "$models/encoder" "$run/models/all-MiniLM-L6-v2"

# 3. The servers the pipeline's resources name (a server that cannot start stops the bench).
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$hp" serve --model "$models/llama" --name meta-llama/Llama-3.1-8B-Instruct --engine torch --device "$device" --dtype "$dtype" --port "$llama_port" > "$out/serve-llama.log" 2>&1 &
pids+=($!)
"$hp" serve --model "$models/qwen" --name Qwen/Qwen2.5-7B-Instruct --engine torch --device "$device" --dtype "$dtype" --port "$qwen_port" > "$out/serve-qwen.log" 2>&1 &
pids+=($!)
"$hp" serve --retriever lexical --port 2022 > "$out/retriever.log" 2>&1 &
pids+=($!)
"$py" "$root/bench/gpu/rl_bench.py" wait-servers "$llama_port:/v1/models:$out/serve-llama.log:${pids[0]}" \
  "$qwen_port:/v1/models:$out/serve-qwen.log:${pids[1]}" "2022:/retrieve:$out/retriever.log:${pids[2]}"

# 4. The run.
read -r -a overrides <<< "${BENCH_SET:-}"
if [ $tiny = 1 ]; then
  for stage in sft_train rl_train evaluate; do overrides+=(--set "$stage.device=\"cpu\"" --set "$stage.dtype=\"float32\""); done
fi
echo "pipeline: llama_qwen.json, $n questions a split, learning stages on $device ($dtype)" >&2
start=$("$py" -c "import time; print(time.time())")
( cd "$run" && "$hp" run pipeline.json --store "$run/store" --plain "${overrides[@]}" "${until_args[@]}" > "$out/pipeline.log" 2>&1 ) \
  || echo "the run failed: see $out/pipeline.log" >&2
"$py" "$root/bench/gpu/rl_bench.py" run-report "$run" "$out/pipeline.json" "$start" "pipelines/llama_qwen.json ($size shapes)" "$n" "$device" "$dtype"
df -h "$out" | tail -1 | sed 's/^/disk at the end: /' >&2
