#!/usr/bin/env python3
"""Slurm executors: haps-pipe's against Snakemake's (snakemake-executor-plugin-slurm).

The same trivial 8-stage DAG as bench/orchestration (one point: 8 stage executions) and its
sweep over 8 values of rl_train's alpha (22 stage executions, the upstream stages once), each
stage one Slurm job on the same cluster, both tools asking Slurm for their jobs' states every
POLL seconds (Snakemake: --slurm-init-seconds-before-status-checks and
--seconds-between-status-checks; haps-pipe: the executor block's poll_seconds), at most 8 jobs
in flight. Each tool is first checked to execute exactly the expected stages, then timed cold
(BENCH_RUNS runs, median). The figure is wall time; per-stage overhead is wall time over the
stage executions. Target (issue 17): haps-pipe at least 2x faster than Snakemake on both.

usage: bench/slurm/run.sh
"""
import collections, json, os, sys, time, subprocess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "orchestration"))
import sweep  # noqa: E402  (bench/orchestration: the DAG, the stage script, the spec and Snakefile writers)

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
POLL = float(os.environ.get("POLL", "1"))
HAPS = os.environ["HAPS_PIPE"]
ALL_ALPHAS = sweep.ALPHAS


def haps(d):
    sweep.haps(d)
    spec = json.load(open(os.path.join(d, "spec.json")))
    spec["executor"] = {"type": "slurm", "poll_seconds": POLL}
    json.dump(spec, open(os.path.join(d, "spec.json"), "w"), indent=1)
    return [f"{HAPS} sweep run spec.json --grid rl_train.params.alpha={','.join(sweep.ALPHAS)} --name alpha -j 8 --plain"]


def snakemake(d):
    sweep.snakemake(d)
    return [f"{sweep.VENV_BIN}/snakemake --executor slurm -j 8 -q --slurm-status-command squeue "
            f"--slurm-init-seconds-before-status-checks {max(1, round(POLL))} --seconds-between-status-checks {max(1, round(POLL))} "
            "--default-resources slurm_partition=debug mem_mb=256 runtime=10"]


def measure(case, alphas):
    sweep.ALPHAS = alphas
    expected = collections.Counter({n: 1 for n in sweep.DAG} | {"rl_train": len(alphas), "evaluate": len(alphas)})
    results = {}
    os.environ["PATH"] = sweep.VENV_BIN + ":" + os.environ["PATH"]  # Snakemake's jobs run the venv's snakemake
    for name, setup in (("haps-pipe", haps), ("snakemake", snakemake)):
        median = sweep.median_run(name, setup, expected, runs=RUNS, label=f"slurm-{case}-{name}")
        if median is not None:
            results[name] = median
            n = sum(expected.values())
            print(f"  {case}: {name:10s} {n} stage jobs OK; median {median:.1f} s ({median / n:.2f} s per stage)")
    if len(results) == 2:
        ratio = results["snakemake"] / results["haps-pipe"]
        print(f"  {case}: Snakemake takes {ratio:.1f}x haps-pipe's wall time (target >= 2x: {'met' if ratio >= 2 else 'MISSED'})")


def main():
    print(f"same local Slurm (1 node, {os.cpu_count()} CPUs), status checks every {POLL:g} s, 8 jobs in flight, "
          f"{RUNS} cold runs each; {subprocess.run(['sinfo', '--version'], capture_output=True, text=True).stdout.strip()}")
    measure("dag", ALL_ALPHAS[:1])
    measure("sweep", ALL_ALPHAS)


if __name__ == "__main__":
    main()
