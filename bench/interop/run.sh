#!/usr/bin/env bash
# bench/interop: a quickstart candidate in llama.cpp (llama-cpp-python from PyPI, which builds
# llama.cpp; minutes on 2 cores): exported with `haps-pipe export-gguf`, its greedy
# continuations compared token for token with our engine's on the quickstart's own prompts, and
# `haps-pipe sample` run against llama.cpp's OpenAI-compatible server. Not part of CI.
#   STORE (default artifacts: a quickstart store; the two candidates are trained if missing),
#   PROMPTS (default 50 per candidate), MAX_TOKENS (default 48).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/bench/.venv-interop"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import llama_cpp.server, tokenizers, gguf" 2>/dev/null; then
  echo "installing llama-cpp-python (builds llama.cpp), tokenizers and gguf into $venv ..." >&2
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" "$venv/bin/pip" install --quiet "llama-cpp-python[server]" tokenizers gguf
fi
(cd "$root" && swift build -c release --product haps-pipe >/dev/null)
export HAPS_PIPE="$root/.build/release/haps-pipe" STORE="${STORE:-$root/artifacts}"
cd "$root"
"$HAPS_PIPE" run pipelines/quickstart.json --store "$STORE" --until agent_a --until agent_b --until sample_valid --plain
exec "$venv/bin/python" "$here/interop.py"
