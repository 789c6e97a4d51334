#!/usr/bin/env python3
"""Orchestration benchmark, sweep case: 8 values of rl_train's alpha on bench.py's 8-stage DAG.

haps-pipe `sweep --grid` (one merged DAG), DVC's experiment queue (`dvc exp run --queue` x 8, then
`dvc queue start`, waiting for the queue to empty), a Snakemake wildcard sweep, and a make pattern rule. Each tool is first
checked to execute the 6 upstream stages once and rl_train and evaluate once per value (22 stage
runs), then timed (RUNS cold sweeps each, from scratch). Target (issue 8): haps-pipe at least 50x
faster than DVC's queue and 5x faster than Snakemake.

usage: bench/orchestration/run.sh --sweep   (HAPS_PIPE=... BENCH_RUNS=... BENCH_DVC=1 to include DVC's queue)
"""
import collections, json, os, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import DAG, HAPS, STAGE, VENV_BIN, WORK, sh, write_dvc_files  # noqa: E402

ALPHAS = [f"0.{i}" for i in range(1, 9)]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
UPSTREAM = [n for n in DAG if n not in ("rl_train", "evaluate")]


def fresh(name):
    d = os.path.join(WORK, "sweep-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def haps(d):
    stages = {}
    for n, (ins, ps) in DAG.items():
        args = " ".join("{inputs.%s}" % i for i in ins)
        pt = " ".join(f"{k}={{params.{k}}}" for k in ps)
        stages[n] = {"type": "command", "inputs": {i: i for i in ins},
                     "params": {"run": f"sh {STAGE} {n} '{pt}' {{outputs.out.txt}} {args}", "outputs": ["out.txt"], "params": ps}}
    json.dump({"name": "bench", "stages": stages}, open(os.path.join(d, "spec.json"), "w"), indent=1)
    return [f"{HAPS} sweep spec.json --grid rl_train.params.alpha={','.join(ALPHAS)} --name alpha -j 1 --plain"]


def dvc(d):
    sh("git init -q && git config user.email b@b && git config user.name b", d)
    sh(f"{VENV_BIN}/dvc init -q && {VENV_BIN}/dvc config core.analytics false", d)
    write_dvc_files(d)
    sh("git add -A && git commit -qm base", d)
    # DVC 3 runs its queue in background workers: start one, then wait until nothing is queued or running.
    # The worker runs `dvc` by name, so the venv's bin must be on PATH (else it dies and the queue waits forever).
    wait = (f"export PATH={VENV_BIN}:$PATH; {VENV_BIN}/dvc queue start -j 1 -q && while {VENV_BIN}/dvc queue status 2>/dev/null | grep -qE 'Queued|Running'; "
            f"do sleep 0.2; done; {VENV_BIN}/dvc queue status | grep -q Failed && exit 1 || true")
    return [f"{VENV_BIN}/dvc exp run --queue -S rl_train.alpha={a} -q" for a in ALPHAS] + [wait]


def snakemake(d):
    rules = ['configfile: "config.json"', f"ALPHAS = {ALPHAS!r}", "", "rule all:",
             '    input: expand("out/evaluate_{alpha}.txt", alpha=ALPHAS)', ""]
    config = {}
    for n, (ins, ps) in DAG.items():
        config[n] = ps
        swept = n in ("rl_train", "evaluate")
        suffix = "_{alpha}" if swept else ""
        inputs = [f'"out/{i}{"_{alpha}" if i == "rl_train" else ""}.txt"' for i in ins]
        rules += [f"rule {n}:"]
        if inputs:
            rules += ["    input: " + ", ".join(inputs)]
        p = "'alpha=' + wildcards.alpha" if n == "rl_train" else "' '.join(f'{k}={v}' for k, v in config['%s'].items())" % n
        rules += [f'    output: "out/{n}{suffix}.txt"', f"    params: p=lambda wildcards: {p}",
                  f"    shell: \"sh {STAGE} {n} '{{params.p}}' {{output}} {{input}}\"", ""]
    open(os.path.join(d, "Snakefile"), "w").write("\n".join(rules))
    json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=1)
    return [f"{VENV_BIN}/snakemake -c1 -q"]


def make(d):
    lines = ["ALPHAS := " + " ".join(ALPHAS), ".PHONY: all", "all: $(foreach a,$(ALPHAS),out/evaluate_$(a).txt)", ""]
    for n, (ins, ps) in DAG.items():
        pt = " ".join(f"{k}={v}" for k, v in ps.items())
        if n == "rl_train":
            lines += ["out/rl_train_%.txt: out/sft_train.txt out/score_train.txt", f"\tsh {STAGE} rl_train alpha=$* $@ $^", ""]
        elif n == "evaluate":
            lines += ["out/evaluate_%.txt: out/rl_train_%.txt out/score_valid.txt", f"\tsh {STAGE} evaluate '{pt}' $@ $^", ""]
        else:
            deps = " ".join(f"out/{i}.txt" for i in ins)
            lines += [f"out/{n}.txt: {deps}", f"\tsh {STAGE} {n} '{pt}' $@ {deps}", ""]
    open(os.path.join(d, "Makefile"), "w").write("\n".join(lines))
    return ["make -s"]


def run(name, setup):
    """One cold sweep from scratch: (seconds, executions by stage)."""
    d = fresh(name)
    commands = setup(d)
    log = os.path.join(d, "executions.log")
    env = dict(os.environ, EXECUTIONS_LOG=log)
    t0 = time.perf_counter()
    for c in commands:
        r = subprocess.run(c, cwd=d, shell=True, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"{name}: {c} failed\n{r.stdout}\n{r.stderr}")
    elapsed = time.perf_counter() - t0
    counts = collections.Counter(open(log).read().split()) if os.path.exists(log) else collections.Counter()
    return elapsed, counts


def median_run(name, setup, expected, runs=RUNS, label=None):
    """Median seconds of `runs` cold runs, each checked to execute exactly `expected`; None
    (after saying what ran instead) when one did not."""
    times = []
    for _ in range(runs):
        elapsed, counts = run(label or name, setup)
        if counts != expected:
            print(f"  {name:10s} executed {sum(counts.values())} stages: {dict(counts)}  WRONG (expected {sum(expected.values())}: {dict(expected)})")
            return None
        times.append(elapsed)
    times.sort()
    return times[len(times) // 2]


def main():
    tools = {"haps-pipe": haps, "snakemake": snakemake, "make": make}
    if os.environ.get("BENCH_DVC") == "1":  # minutes per sweep (a workspace copy per experiment): opt in
        tools["dvc"] = dvc
    expected = collections.Counter({n: 1 for n in UPSTREAM} | {"rl_train": 8, "evaluate": 8})
    results = {}
    print(f"sweep case: 8 values of rl_train's alpha; {RUNS} cold sweeps per tool")
    for name, setup in tools.items():
        median = median_run(name, setup, expected)
        if median is not None:
            results[name] = median
            print(f"  {name:10s} 22 stage executions (upstream once) OK; median {results[name] * 1000:.0f} ms")
    if "haps-pipe" in results:
        h = results["haps-pipe"]
        for p, target in (("dvc", 50), ("snakemake", 5), ("make", None)):
            if p in results:
                verdict = "" if target is None else (f"  (target >= {target}x: {'met' if results[p] / h >= target else 'MISSED'})")
                print(f"  {p}: {results[p] / h:.1f}x haps-pipe's time{verdict}")


if __name__ == "__main__":
    main()
