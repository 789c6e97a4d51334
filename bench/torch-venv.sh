# Sourced by the benchmarks that run a PyTorch peer: makes bench/.venv with torch (a CPU
# build when the machine has a wheel of one, PIP_FIND_LINKS, else PyPI's) and sets `py`.
# Needs `root` (the repository) set. Defines need_pip and build_bench (below).
py="$root/bench/.venv/bin/python"
if [ ! -x "$py" ]; then python3 -m venv "$root/bench/.venv"; fi
if ! "$py" -c "import torch" 2>/dev/null; then
  wheel=$(ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-*cpu*.whl 2>/dev/null | head -1 || true)
  "$root/bench/.venv/bin/pip" install --quiet "${wheel:-torch}"
fi

# `need_pip MODULE PACKAGE...`: installs the packages into bench/.venv unless MODULE imports.
need_pip() {
  local module=$1; shift
  "$py" -c "import $module" 2>/dev/null || "$root/bench/.venv/bin/pip" install --quiet "$@"
}

# `build_bench PRODUCT`: a release build of the benchmark's Swift side; its log only on failure.
build_bench() {
  local log; log=$(mktemp)
  (cd "$root" && swift build -c release --product "$1" >"$log" 2>&1) || { cat "$log"; exit 1; }
}
