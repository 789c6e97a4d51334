#!/usr/bin/env bash
# bench/routers: the table routers and the cost-aware metrics on a RouterBench-sized table:
# a generated K-model table of PROMPTS prompts (default 5 and 10 000; 80% train, 20% test),
# imported, every prompt embedded once (MiniLM, the embed stage), four table routers learnt (per
# type, kNN, logistic, matrix factorisation; the last three on the embeddings) and evaluated
# with the cost curves. Prints each stage's wall time (from the run record) and the whole run's,
# then (PEER=1, the default) times sentence-transformers embedding the same prompts on as many
# threads: the floor the embed stage is held to. HAPS_PIPE (default .build/release/haps-pipe), SEED,
# ENCODER, EMBED_CPUS (2), EMBED_PARAMS (the embed stage's params: '{"engine": "torch", "device":
# "cuda"}' on a GPU; bench/README.md, "routers").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
haps=${HAPS_PIPE:-$root/.build/release/haps-pipe}
prompts=${PROMPTS:-10000} k=${K:-5} seed=${SEED:-1}
# The embed stage's encoder, threads and engine parameters (a GPU: EMBED_PARAMS='{"engine": "torch", "device": "cuda"}').
encoder=${ENCODER:-$root/models/all-MiniLM-L6-v2} embed_cpus=${EMBED_CPUS:-2} embed_params=${EMBED_PARAMS:-"{}"}
jobs=${JOBS:-$(( embed_cpus > 2 ? embed_cpus : 2 ))}  # -j: at least the embed stage's threads
work="$root/bench/work/routers"
rm -rf "$work" && mkdir -p "$work"
python3 "$here/generate.py" "$work/data" "$prompts" "$k" "$seed"
cat > "$work/routers.json" <<JSON
{"name": "routers", "stages": {
  "train": {"type": "import", "inputs": {"data": "$work/data/train.csv"}},
  "test": {"type": "import", "inputs": {"data": "$work/data/test.csv"}},
  "embed": {"type": "embed", "cpus": $embed_cpus, "inputs": {"encoder": "$encoder", "train": "train", "test": "test"}, "params": $embed_params},
  "router_per_type": {"type": "route-table", "inputs": {"scores": "train"}, "params": {"method": "per-type"}},
  "router_knn": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "knn", "k": 10}},
  "router_logistic": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "logistic"}},
  "router_mf": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "mf"}},
  "evaluate": {"type": "evaluate", "inputs": {"scores": "test", "valid_scores": "train", "embeddings": "embed",
               "router_per_type": "router_per_type", "router_knn": "router_knn", "router_logistic": "router_logistic", "router_mf": "router_mf"}}
}}
JSON
start=$(date +%s.%N)
"$haps" run "$work/routers.json" --store "$work/store" --plain -j "$jobs" > "$work/run.log" 2>&1 || { tail -20 "$work/run.log"; exit 1; }
end=$(date +%s.%N)
python3 - "$work/store" "$start" "$end" <<'PY'
import glob, json, sys
store, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
record = json.load(open(sorted(glob.glob(store + "/runs/*.json"))[-1]))
print(f"{'stage':18} seconds")
for s in record["stages"]:
    print(f"{s['stage']:18} {s['seconds']:8.2f}")
print(f"{'whole run':18} {end - start:8.2f}  (wall, -j {record['machine'].get('jobs', '?')}, {record['machine'].get('cores', '?')} cores)")
PY
if [ "${PEER:-1}" != 0 ]; then  # the floor: sentence-transformers embedding the same prompts
  . "$root/bench/torch-venv.sh"
  need_pip sentence_transformers sentence-transformers
  THREADS=$embed_cpus "$py" "$here/st_embed.py" "$work/data" "$encoder" > "$work/peer.json" 2> "$work/peer.log" || { cat "$work/peer.log"; exit 1; }
  python3 - "$work/store" "$work/peer.json" <<'PY'
import glob, json, sys
record = json.load(open(sorted(glob.glob(sys.argv[1] + "/runs/*.json"))[-1]))
ours = next(s["seconds"] for s in record["stages"] if s["stage"] == "embed")
peer = json.load(open(sys.argv[2]))
print(f"embedding {peer['prompts']} prompts on {peer['threads']} threads: embed stage {ours:.1f} s, "
      f"sentence-transformers (torch {peer['torch']}) {peer['seconds']:.1f} s -> {peer['seconds'] / ours:.2f}x the peer's speed")
PY
fi
"$haps" show routers/evaluate --store "$work/store" | sed -n '/^--- summary.txt/,/^router_knn:/p' | sed -n '1,6p;/cost-aware/,/^$/p'
