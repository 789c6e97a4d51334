#!/usr/bin/env bash
# The Debian packages haps-pipe builds and tests against. Used by scripts/setup.sh and .ci/run.
set -euo pipefail
# slurm-wlm and munge: the Slurm executor's tests run a one-node cluster (scripts/local-slurm.sh).
# chromium: the browser `haps-pipe ui`'s tests drive (through Playwright; UITests, docs/ui.md).
packages=(libopenblas-dev libcurl4-openssl-dev liblz4-dev lz4 pkg-config slurm-wlm munge chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "Debian packages already installed"; exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
