#!/usr/bin/env bash
# A Python for the torch engine's worker (engines/torch/worker.py; docs/engine.md): a venv with
# pinned torch and transformers (PyPI's torch wheel: CUDA where the machine has it, the CPU
# otherwise). Usage: scripts/setup-gpu.sh [VENV]  (default .venv-torch); then
#   export HAPS_TORCH_PYTHON=$PWD/.venv-torch/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-torch}
torch_version=2.15.0
transformers_version=5.24.0
if "$venv/bin/python" -c "import torch, transformers, safetensors, numpy; assert torch.__version__.split('+')[0] == '$torch_version' and transformers.__version__ == '$transformers_version'" 2>/dev/null; then
  echo "$venv already has torch $torch_version and transformers $transformers_version"
else
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$torch_version" "transformers==$transformers_version" safetensors numpy
fi
"$venv/bin/python" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__, '| CUDA devices:', torch.cuda.device_count())"
case "$venv" in /*) path=$venv ;; *) path=$PWD/$venv ;; esac
echo "export HAPS_TORCH_PYTHON=$path/bin/python"
