#!/usr/bin/env bash
# bench/encoder: MiniLM sentences/s in haps-pipe's encoder vs sentence-transformers (PyTorch CPU),
# same thread count and batches, on HotpotQA paragraphs; plus the dense and lexical retrievers'
# gold-paragraph hit rates over the 500 shared questions.
# THREADS (2), SENTENCES (512), BATCH (32), RUNS (3: medians).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/bench/torch-venv.sh"
need_pip sentence_transformers sentence-transformers
(cd "$root" && scripts/fetch-models.sh >/dev/null)
build_bench encoder-bench
export THREADS=${THREADS:-2} SENTENCES=${SENTENCES:-512} BATCH=${BATCH:-32}
export SHARED="$root/dataset" MODEL="$root/models/all-MiniLM-L6-v2"
exec "$py" - "$root/.build/release/encoder-bench" "$here/st_peer.py" "${RUNS:-3}" <<'PY'
import json, os, statistics, subprocess, sys
swift, peer, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()
    return json.loads(out[-1])
ours = [run([swift]) for _ in range(runs)]
theirs = [run([sys.executable, peer]) for _ in range(runs)]
a, b = statistics.median(r["sentences_per_s"] for r in ours), statistics.median(r["sentences_per_s"] for r in theirs)
print(f"MiniLM-L6 on {ours[0]['sentences']} HotpotQA paragraphs, batches of {ours[0]['batch']}, {ours[0]['threads']} threads, "
      f"medians of {runs} runs; torch {theirs[0]['torch']}")
print(f"sentences/s: haps-pipe {a:.1f}, sentence-transformers {b:.1f} -> {a / b:.2f}x (target: within 1.5x of the peer, >= 0.67x)")
hits = run([swift], dict(os.environ, HIT_RATE="1", SENTENCES="32"))
n = hits["searches"]
print(f"gold-title searches over the shared questions: dense {hits['dense_hits']}/{n} ({hits['dense_hits'] / n:.1%}), "
      f"lexical {hits['lexical_hits']}/{n} ({hits['lexical_hits'] / n:.1%}); dense embedded {hits['embeddings_computed']} texts, "
      f"reused {hits['embeddings_reused']} from its cache")
PY
