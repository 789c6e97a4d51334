# Sourced by the GPU benches (rl_bench.sh, pipeline_bench.sh): puts a packed haps-pipe
# (HAPS_PIPE_TARBALL, bench/gpu/pack.sh) first on PATH when one is given, and sets the
# Python and worker the torch engine uses. Expects $root, the repository's root.
if [ -n "${HAPS_PIPE_TARBALL:-}" ]; then
  tools=$(mktemp -d)
  tar xzf "$HAPS_PIPE_TARBALL" -C "$tools"
  export PATH="$tools/bin:$PATH" LD_LIBRARY_PATH="$tools/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
py=${HAPS_TORCH_PYTHON:-$(command -v python3)}
hp=${HAPS_PIPE:-haps-pipe}
export HAPS_TORCH_PYTHON=$py
export HAPS_TORCH_WORKER=${HAPS_TORCH_WORKER:-$root/engines/torch/worker.py}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # nothing is downloaded: every model is a local directory
