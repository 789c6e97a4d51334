#!/usr/bin/env python3
"""bench/sampling: haps-pipe's sample stage against a re-creation of the reference's design,
both talking to the same loopback server that answers after a fixed latency.

Measures: wall time against the ideal (calls × latency / concurrency) at concurrency 32; wall
and client CPU time against the Python design (process pool of 32, requests, one question per
worker, actions in sequence); HTTP calls of a second run (0 expected); calls paid when the
budget is raised by one (only the new turns).

usage: bench/sampling/run.sh   (HAPS_PIPE=... for a specific build; QUESTIONS=100; LATENCY=0.05)
"""
import json, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
WORK = os.path.join(ROOT, "bench", "work", "sampling")
PY = os.path.join(ROOT, "bench", ".venv", "bin", "python")
HAPS = os.environ.get("HAPS_PIPE", "haps-pipe")
N = int(os.environ.get("QUESTIONS", "100"))
LATENCY = float(os.environ.get("LATENCY", "0.05"))
REPEAT = int(os.environ.get("REPEAT", "3"))  # cold runs of each design; medians are reported
CONCURRENCY = 32  # HTTP requests in flight, both designs
DIALOGUES = int(os.environ.get("DIALOGUES", "128"))  # haps-pipe's dialogues in flight (--workers)


def timed(cmd, cwd):
    """Runs cmd; returns (wall seconds, user+sys CPU seconds of it and its children)."""
    t0 = time.time()
    before = os.times()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    after = os.times()
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return time.time() - t0, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def median(runs):
    """Median wall and median CPU of (wall, cpu, calls) runs, with the calls of the median-wall run."""
    by_wall = sorted(runs)
    mid = by_wall[len(runs) // 2]
    return mid[0], sorted(r[1] for r in runs)[len(runs) // 2], mid[2]


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    qs = os.path.join(WORK, "q.jsonl")
    with open(os.path.join(ROOT, "dataset", "valid.jsonl")) as src, open(qs, "w") as dst:
        for i, line in enumerate(src):
            if i < N:
                dst.write(line)
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"), str(LATENCY)], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    url = f"http://127.0.0.1:{port}/v1"
    count = lambda: json.loads(subprocess.run(["curl", "-s", "-X", "POST", f"http://127.0.0.1:{port}/count"], capture_output=True, text=True).stdout)["count"]
    try:
        def sample(store, budget, out):
            return timed([HAPS, "sample", "--questions", qs, "--preset", "llama_qwen", "--model-url", f"llama={url}",
                          "--model-url", f"qwen={url}", "--retriever", "lexical", "--workers", str(DIALOGUES), "--concurrency", str(CONCURRENCY),
                          "--budget", str(budget), "--output", out, "--store", store], WORK)
        runs = []
        for r in range(REPEAT):
            shutil.rmtree(os.path.join(WORK, "store"), ignore_errors=True)
            c0 = count()
            w, c = sample("store", 3, "b3.jsonl")
            runs.append((w, c, count() - c0))
        wall, cpu, calls = median(runs)
        ideal = calls * LATENCY / CONCURRENCY
        c1 = count()
        wall2, _ = sample("store", 3, "b3-again.jsonl")
        again = count() - c1
        c2 = count()
        sample("store", 4, "b4.jsonl")
        raised = count() - c2
        c3 = count()
        sample("store-fresh", 4, "b4-fresh.jsonl")
        fresh4 = count() - c3
        pruns = []
        for r in range(REPEAT):
            c4 = count()
            w, c = timed([PY, os.path.join(HERE, "reference_design.py"), url, qs, str(N)], ROOT)
            pruns.append((w, c, count() - c4))
        pwall, pcpu, pcalls = median(pruns)
    finally:
        server.kill()
    print(f"{N} questions x 4 assignments, budget 3, server latency {LATENCY * 1000:.0f} ms, concurrency {CONCURRENCY}, "
          f"medians of {REPEAT} cold runs each")
    print("haps-pipe runs (wall s, CPU s): " + ", ".join(f"({w:.2f}, {c:.2f})" for w, c, _ in runs))
    print("Python runs (wall s, CPU s):    " + ", ".join(f"({w:.2f}, {c:.2f})" for w, c, _ in pruns))
    print(f"haps-pipe sample: {wall:.2f} s wall, {cpu:.2f} s CPU, {calls} HTTP calls (a call another thread already made is replayed from the memo)")
    print(f"  ideal for those calls (calls x latency / {CONCURRENCY}): {ideal:.2f} s -> wall / ideal = {wall / ideal:.3f} (target <= 1.1)")
    print(f"  second run: {again} HTTP calls in {wall2:.2f} s (target 0)")
    print(f"  budget 3 -> 4: {raised} new HTTP calls, against {fresh4} for budget 4 from scratch (target: only the new turns)")
    print(f"Python design (pool of 32, requests): {pwall:.2f} s wall, {pcpu:.2f} s CPU, {pcalls} HTTP calls; ideal {pcalls * LATENCY / CONCURRENCY:.2f} s")
    print(f"  Python wall / haps-pipe wall = {pwall / wall:.2f}x (target >= 1.4); haps-pipe CPU / Python CPU = {cpu / pcpu:.3f} (target <= 0.2)")


if __name__ == "__main__":
    main()
