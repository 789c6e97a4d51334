#!/usr/bin/env python3
"""bench/serve: `haps-pipe serve --system` under load (issue 29).

Serves the quickstart's trained HAPS system (quickstart/rl_train, its test questions known)
and sends every test question from 1, 8 and 32 concurrent clients (model "haps": route, adapt,
dialogue), then route-only ("haps-route") from 32: questions per second and p50/p99 latency.
The quickstart runs first when the store lacks it (about 15 minutes on two cores).

usage: HAPS_PIPE=.build/release/haps-pipe bench/serve/run.py [--store DIR] [--clients 1,8,32]
       [--engine torch --device cuda --dtype float32]   (the H200 figures)
"""
import argparse, concurrent.futures, json, os, shutil, subprocess, sys, time, urllib.request

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ask(base, model, question):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}]}).encode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        reply = json.loads(r.read())
    return time.perf_counter() - start, reply["usage"]["total_tokens"]


def load(base, model, questions, clients):
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda q: ask(base, model, q), questions))
    wall = time.perf_counter() - start
    latencies = [r[0] for r in results]
    return {"model": model, "clients": clients, "questions": len(questions), "seconds": wall,
            "questions_per_second": len(questions) / wall, "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99), "tokens_per_question": sum(r[1] for r in results) / len(results)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=os.path.join(root, "bench/work/serve/store"))
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    tool = os.environ.get("HAPS_PIPE") or shutil.which("haps-pipe")
    if not tool:
        sys.exit("bench/serve: set HAPS_PIPE to a release haps-pipe (haps-pipe-serve beside it), or put it on the PATH")
    os.makedirs(args.store, exist_ok=True)
    status = subprocess.run([tool, "show", "quickstart/rl_train", "--store", args.store, "--path"], capture_output=True, text=True, cwd=root)
    if status.returncode != 0:
        print("bench/serve: running the quickstart into", args.store, "(about 15 minutes on two cores)", flush=True)
        subprocess.run([tool, "run", "pipelines/quickstart.json", "--store", args.store, "--plain"], check=True, cwd=root)
    qfile = subprocess.run([tool, "show", "quickstart/world_test", "--store", args.store, "--path"], capture_output=True, text=True,
                           check=True, cwd=root).stdout.strip() + "/questions.jsonl"
    questions = [json.loads(l)["question"] for l in open(qfile)]

    cmd = [tool, "serve", "--system", "quickstart/rl_train", "--store", args.store, "--questions", "quickstart/world_test", "--port", "0",
           "--engine", args.engine, "--device", args.device, "--dtype", args.dtype]
    log = open(os.path.join(os.path.dirname(args.store), "serve.log"), "w")
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=root)
    try:
        line = server.stdout.readline()
        if "listening on " not in line:
            sys.exit(f"bench/serve: the server did not start: {line!r}; see {log.name}")
        base = line.split("listening on ")[1].split()[0]
        ask(base, "haps", questions[0])  # warm: the first calls set up the engine's buffers
        rows = [load(base, "haps", questions, int(c)) for c in args.clients.split(",")]
        rows.append(load(base, "haps-route", questions, max(int(c) for c in args.clients.split(","))))
    finally:
        server.send_signal(2)
        server.wait(timeout=60)
    machine = f"{os.cpu_count()} cores" + (f", torch on {args.device} ({args.dtype})" if args.engine == "torch" else ", cpu engine")
    print(f"\nhaps-pipe serve --system quickstart/rl_train, {len(questions)} test questions a load, {machine}\n")
    print("| model | clients | questions/s | p50 latency (s) | p99 latency (s) | tokens/question |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['clients']} | {r['questions_per_second']:.2f} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | {r['tokens_per_question']:.0f} |")
    out = os.path.join(os.path.dirname(args.store), "results.json")
    json.dump({"machine": machine, "rows": rows}, open(out, "w"), indent=1)
    print(f"\n(written to {out})")


if __name__ == "__main__":
    main()
