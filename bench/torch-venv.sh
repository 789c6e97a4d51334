# Sourced by the benchmarks that run a PyTorch peer: makes bench/.venv with torch (a CPU
# build when the machine has a wheel of one, PIP_FIND_LINKS, else PyPI's) and sets `py`.
# Needs `root` (the repository) set.
py="$root/bench/.venv/bin/python"
if [ ! -x "$py" ]; then python3 -m venv "$root/bench/.venv"; fi
if ! "$py" -c "import torch" 2>/dev/null; then
  wheel=$(ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-*cpu*.whl 2>/dev/null | head -1 || true)
  "$root/bench/.venv/bin/pip" install --quiet "${wheel:-torch}"
fi
