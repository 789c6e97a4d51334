#!/usr/bin/env bash
# bench/slurm: our Slurm executor against Snakemake's (snakemake-executor-plugin-slurm, from
# PyPI, in bench/.venv) on the same Slurm and the same 8-stage DAG and 8-point sweep as
# bench/orchestration. Starts a one-node Slurm here (scripts/local-slurm.sh) unless SLURM_CONF
# is set. BENCH_RUNS (default 3), POLL (seconds between status checks for both tools, default 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ ! -x "$root/bench/.venv/bin/snakemake" ] || ! "$root/bench/.venv/bin/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null; then
  [ -x "$root/bench/.venv/bin/python" ] || python3 -m venv "$root/bench/.venv"
  "$root/bench/.venv/bin/pip" install --quiet snakemake snakemake-executor-plugin-slurm
fi
if [ -z "${HAPS_PIPE:-}" ]; then
  (cd "$root" && swift build -c release --product haps-pipe >/dev/null)
  export HAPS_PIPE="$root/.build/release/haps-pipe"
fi
if [ -z "${SLURM_CONF:-}" ]; then
  slurm_dir=$(mktemp -d /tmp/haps-slurm-bench.XXXXXX)
  eval "export $("$root/scripts/local-slurm.sh" start "$slurm_dir")"
  trap '"$root/scripts/local-slurm.sh" stop "$slurm_dir"' EXIT
fi
# Snakemake's job step drops SLURM_CONF before its inner srun (it keeps only a few SLURM_*
# variables), so its jobs find the cluster only through the default /etc/slurm/slurm.conf.
if [ ! -e /etc/slurm/slurm.conf ]; then
  mkdir -p /etc/slurm && ln -s "$SLURM_CONF" /etc/slurm/slurm.conf
  trap 'rm -f /etc/slurm/slurm.conf; [ -n "${slurm_dir:-}" ] && "$root/scripts/local-slurm.sh" stop "$slurm_dir"' EXIT
fi
"$root/bench/.venv/bin/python" "$here/bench.py"
