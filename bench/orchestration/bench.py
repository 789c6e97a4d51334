#!/usr/bin/env python3
"""Orchestration benchmark: the same 8-stage DAG in haps-pipe, DVC, Snakemake and GNU make.

DAG: sample_train, sample_valid -> score_train, score_valid -> build_sft -> sft_train ->
rl_train (also reads score_train) -> evaluate (also reads score_valid). Every stage is the
trivial command stage.sh (concatenate inputs, append parameters, log the execution).

For each tool it first checks behaviour (a cold run executes 8 stages, a no-op rerun 0, a
plan/dry-run 0, an edit of rl_train's alpha exactly 2: rl_train and evaluate), then times
each case with hyperfine and prints the figures and the ratios of haps-pipe to each peer.

usage: bench/orchestration/run.sh   (creates the virtual environment with DVC and Snakemake)
"""
import json, os, random, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "..", "work", "orchestration")
STAGE = os.path.join(HERE, "stage.sh")
VENV_BIN = os.path.join(HERE, "..", ".venv", "bin")
HAPS = os.environ.get("HAPS_PIPE", "haps-pipe")
RUNS = int(os.environ.get("BENCH_RUNS", "10"))

# name -> (inputs, {param: value})
DAG = {
    "sample_train": ([], {"budget": 3}),
    "sample_valid": ([], {"budget": 3}),
    "score_train": (["sample_train"], {"metric": "f1"}),
    "score_valid": (["sample_valid"], {"metric": "f1"}),
    "build_sft": (["score_train"], {"tie_policy": "deterministic_one"}),
    "sft_train": (["build_sft"], {"lr": 0.0001}),
    "rl_train": (["sft_train", "score_train"], {"alpha": 0.01}),
    "evaluate": (["rl_train", "score_valid"], {"split": "valid"}),
}


def sh(cmd, cwd, check=True):
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"command failed in {cwd}: {cmd}\n{r.stdout}\n{r.stderr}")
    return r


def params_text(name, params):
    return " ".join(f"{k}={v}" for k, v in params.items())


class Tool:
    name = ""
    def __init__(self):
        self.dir = os.path.join(WORK, self.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.setup()
    def executions(self):
        p = os.path.join(self.dir, "executions.log")
        return open(p).read().split() if os.path.exists(p) else []
    def clear_log(self):
        p = os.path.join(self.dir, "executions.log")
        if os.path.exists(p):
            os.remove(p)
    def edit_command(self):
        return f"{sys.executable} {os.path.abspath(__file__)} --edit {self.name} {self.dir}"


class HapsPipe(Tool):
    name = "haps-pipe"
    def spec(self, alpha):
        stages = {}
        for n, (ins, ps) in DAG.items():
            ps = dict(ps)
            if n == "rl_train":
                ps["alpha"] = alpha
            args = " ".join("{inputs.%s}" % i for i in ins)
            pt = " ".join(f"{k}={{params.{k}}}" for k in ps)
            stages[n] = {"type": "command", "inputs": {i: i for i in ins},
                         "params": {"run": f"sh {STAGE} {n} '{pt}' {{outputs.out.txt}} {args}",
                                    "outputs": ["out.txt"], "params": ps}}
        return {"name": "bench", "stages": stages}
    def write(self, alpha):
        with open(os.path.join(self.dir, "spec.json"), "w") as f:
            json.dump(self.spec(alpha), f, indent=1)
    def setup(self):
        self.write(0.01)
    def reset(self):
        return "rm -rf artifacts executions.log"
    def run(self):
        return f"{HAPS} run spec.json -j 1 --plain"
    def plan(self):
        return f"{HAPS} plan spec.json"


def write_dvc_files(directory):
    """dvc.yaml (the DAG) and params.yaml, as DVC reads them."""
    stages, params = {}, {}
    for n, (ins, ps) in DAG.items():
        params[n] = ps
        pt = " ".join(f"{k}=${{{n}.{k}}}" for k in ps)
        stages[n] = {"cmd": f"sh {STAGE} {n} '{pt}' out/{n}.txt " + " ".join(f"out/{i}.txt" for i in ins),
                     "params": [f"{n}.{k}" for k in ps], "outs": [f"out/{n}.txt"]}
        if ins:
            stages[n]["deps"] = [f"out/{i}.txt" for i in ins]
    with open(os.path.join(directory, "dvc.yaml"), "w") as f:
        json.dump({"stages": stages}, f, indent=1)  # JSON is YAML
    with open(os.path.join(directory, "params.yaml"), "w") as f:
        json.dump(params, f, indent=1)


class DVC(Tool):
    name = "dvc"
    def setup(self):
        sh(f"{VENV_BIN}/dvc init --no-scm -q", self.dir)
        sh(f"{VENV_BIN}/dvc config core.analytics false", self.dir)
        write_dvc_files(self.dir)
    def reset(self):
        return "rm -rf out dvc.lock .dvc/cache .dvc/tmp executions.log"
    def run(self):
        return f"{VENV_BIN}/dvc repro -q"
    def plan(self):
        return f"{VENV_BIN}/dvc status -q"


class Snakemake(Tool):
    name = "snakemake"
    def setup(self):
        rules = ['configfile: "config.json"', "", "rule all:", '    input: "out/evaluate.txt"', ""]
        config = {}
        for n, (ins, ps) in DAG.items():
            config[n] = ps
            rules += [f"rule {n}:"]
            if ins:
                rules += ["    input: " + ", ".join(f'"out/{i}.txt"' for i in ins)]
            rules += [f'    output: "out/{n}.txt"',
                      "    params: p=lambda wildcards: ' '.join(f'{k}={v}' for k, v in config['%s'].items())" % n,
                      f"    shell: \"sh {STAGE} {n} '{{params.p}}' {{output}} {{input}}\"", ""]
        with open(os.path.join(self.dir, "Snakefile"), "w") as f:
            f.write("\n".join(rules))
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
    def reset(self):
        return "rm -rf out .snakemake executions.log"
    def run(self):
        return f"{VENV_BIN}/snakemake -c1 -q"
    def plan(self):
        return f"{VENV_BIN}/snakemake -c1 -n -q"


class Make(Tool):
    name = "make"
    def setup(self):
        lines = [".PHONY: all", "all: out/evaluate.txt", ""]
        os.makedirs(os.path.join(self.dir, "params"))
        for n, (ins, ps) in DAG.items():
            with open(os.path.join(self.dir, "params", n), "w") as f:
                f.write(params_text(n, ps) + "\n")
            deps = " ".join(f"out/{i}.txt" for i in ins)
            lines += [f"out/{n}.txt: params/{n} {deps}",
                      f"\tsh {STAGE} {n} \"$$(cat params/{n})\" $@ {deps}", ""]
        with open(os.path.join(self.dir, "Makefile"), "w") as f:
            f.write("\n".join(lines))
    def reset(self):
        return "rm -rf out executions.log"
    def run(self):
        return "make -s"
    def plan(self):
        return "make -n"


def edit(tool, directory):
    """Sets rl_train's alpha to a value never used before (so no tool can answer from a cache)."""
    alpha = round(random.random(), 9)
    if tool == "haps-pipe":
        p = os.path.join(directory, "spec.json")
        spec = json.load(open(p))
        spec["stages"]["rl_train"]["params"]["params"]["alpha"] = alpha
        json.dump(spec, open(p, "w"), indent=1)
    elif tool == "dvc":
        p = os.path.join(directory, "params.yaml")
        params = json.load(open(p)); params["rl_train"]["alpha"] = alpha
        json.dump(params, open(p, "w"), indent=1)
    elif tool == "snakemake":
        p = os.path.join(directory, "config.json")
        config = json.load(open(p)); config["rl_train"]["alpha"] = alpha
        json.dump(config, open(p, "w"), indent=1)
    elif tool == "make":
        with open(os.path.join(directory, "params", "rl_train"), "w") as f:
            f.write(f"alpha={alpha}\n")


def check(tool):
    """Behaviour first: the right number of stage executions in each case."""
    sh(tool.reset(), tool.dir)
    sh(tool.run(), tool.dir)
    counts = {"cold": len(tool.executions())}
    tool.clear_log(); sh(tool.run(), tool.dir); counts["noop"] = len(tool.executions())
    tool.clear_log(); sh(tool.plan(), tool.dir, check=False); counts["plan"] = len(tool.executions())
    tool.clear_log(); sh(tool.edit_command(), tool.dir); sh(tool.run(), tool.dir)
    counts["edit"] = sorted(tool.executions())
    expected = {"cold": 8, "noop": 0, "plan": 0, "edit": ["evaluate", "rl_train"]}
    ok = counts == expected
    print(f"  {tool.name:10s} executions: cold {counts['cold']}, no-op {counts['noop']}, plan {counts['plan']}, "
          f"edit {counts['edit']}  {'OK' if ok else 'WRONG (expected ' + str(expected) + ')'}")
    return ok


def hyperfine(tool, case):
    cmd = {"cold": tool.run(), "noop": tool.run(), "plan": tool.plan(), "edit": tool.run()}[case]
    prepare = {"cold": tool.reset(), "noop": "true", "plan": "true", "edit": tool.edit_command()}[case]
    if case in ("noop", "plan"):
        sh(tool.run(), tool.dir)
    out = os.path.join(WORK, f"{tool.name}-{case}.json")
    runs = RUNS if tool.name in ("dvc", "snakemake") else max(RUNS, 30)
    sh(f"hyperfine -N --warmup 2 --runs {runs} --prepare '{prepare}' --export-json {out} '{cmd}'", tool.dir)
    r = json.load(open(out))["results"][0]
    return r["mean"], r["stddev"]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--edit":
        return edit(sys.argv[2], sys.argv[3])
    os.makedirs(WORK, exist_ok=True)
    tools = [HapsPipe(), DVC(), Snakemake(), Make()]
    print(f"haps-pipe: {sh(f'command -v {HAPS}', WORK).stdout.strip()}")
    print(f"DVC {sh(f'{VENV_BIN}/dvc --version', WORK).stdout.strip()}, "
          f"Snakemake {sh(f'{VENV_BIN}/snakemake --version', WORK).stdout.strip()}, "
          f"{sh('make --version', WORK).stdout.splitlines()[0]}")
    print("checking behaviour:")
    if not all([check(t) for t in tools]):
        sys.exit("a tool executed the wrong stages; timings would be meaningless")
    cases = ["cold", "noop", "plan", "edit"]
    results = {t.name: {c: hyperfine(t, c) for c in cases} for t in tools}
    print("\nmean wall time (ms), hyperfine:")
    print(f"  {'case':6s}" + "".join(f"{t.name:>18s}" for t in tools))
    for c in cases:
        print(f"  {c:6s}" + "".join(f"{results[t.name][c][0]*1000:11.1f} ± {results[t.name][c][1]*1000:4.1f}" for t in tools))
    print("\nratios (peer time / haps-pipe time; above 1 means haps-pipe is faster):")
    h = results["haps-pipe"]
    for c in cases:
        print(f"  {c:6s}" + "".join(f"  {p}: {results[p][c][0] / h[c][0]:6.2f}x" for p in ("dvc", "snakemake", "make")))
    print("\ntargets: no-op and plan >= 20x faster than DVC and Snakemake, within 3x of make's no-op "
          "(make/haps-pipe >= 0.33); cold within 3x of make's")
    verdicts = []
    for c in ("noop", "plan"):
        for p in ("dvc", "snakemake"):
            verdicts.append((f"{c} vs {p} >= 20x", results[p][c][0] / h[c][0] >= 20))
        verdicts.append((f"{c} within 3x of make's no-op", h[c][0] <= 3 * results["make"]["noop"][0]))
    verdicts.append(("cold within 3x of make's cold", h["cold"][0] <= 3 * results["make"]["cold"][0]))
    for name, ok in verdicts:
        print(f"  {'met ' if ok else 'MISSED'}  {name}")


if __name__ == "__main__":
    main()
