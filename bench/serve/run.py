#!/usr/bin/env python3
"""bench/serve: `haps-pipe serve --system` under load (issue 29).

Serves the quickstart's trained HAPS system (quickstart/rl_train, its test questions known)
and sends every test question from 1, 8 and 32 concurrent clients (model "haps": route, adapt,
dialogue), then route-only ("haps-route") from 32: questions per second and p50/p99 latency.
The quickstart runs first when the store lacks it (about 15 minutes on two cores).

usage: HAPS_PIPE=.build/release/haps-pipe bench/serve/run.py [--store DIR] [--clients 1,8,32]
       bench/serve/run.py --export DIR                  (the system, its candidates and questions, for another machine)
       bench/serve/run.py --exported DIR --engines cpu,torch --device cuda --dtype bfloat16   (there: both engines in one run)
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


def serve_and_load(tool, system_args, engine, args, questions, log_path):
    # HAPS_PIPE_SERVE: the server program itself (a machine given only haps-pipe-serve).
    cmd = ([os.environ["HAPS_PIPE_SERVE"]] if os.environ.get("HAPS_PIPE_SERVE") else [tool, "serve"]) + system_args + ["--port", "0", "--engine", engine, "--device", args.device, "--dtype", args.dtype]
    log = open(log_path, "w")
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=root)
    try:
        line = server.stdout.readline()
        if "listening on " not in line:
            sys.exit(f"bench/serve: the server did not start: {line!r}; see {log_path}")
        base = line.split("listening on ")[1].split()[0]
        ask(base, "haps", questions[0])  # warm: the first calls set up the engine's buffers
        clients = [int(c) for c in args.clients.split(",")]
        rows = [load(base, "haps", questions, c) for c in clients]
        rows.append(load(base, "haps-route", questions, max(clients)))
    finally:
        server.send_signal(2)
        server.wait(timeout=120)
    for r in rows:
        r["engine"] = engine if engine == "cpu" else f"torch {args.device} {args.dtype}"
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=os.path.join(root, "bench/work/serve/store"))
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--engines", default="cpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--export", help="write the trained system, its candidates and test questions here, then stop")
    ap.add_argument("--exported", help="serve the system from a directory --export wrote (no store)")
    args = ap.parse_args()
    tool = os.environ.get("HAPS_PIPE") or shutil.which("haps-pipe")
    if not tool and not (args.exported and os.environ.get("HAPS_PIPE_SERVE")):
        sys.exit("bench/serve: set HAPS_PIPE to a release haps-pipe (haps-pipe-serve beside it), or put it on the PATH")
    work = os.path.dirname(os.path.abspath(args.store))
    if args.exported:
        d = os.path.abspath(args.exported)
        qfile = d + "/questions/questions.jsonl"
        system_args = ["--system", d + "/haps", "--model", f"agent_a={d}/agent_a", "--model", f"agent_b={d}/agent_b", "--retriever", "lexical",
                       "--prompts", "embedded", "--budget", "3", "--reply-tokens", "64", "--questions", d + "/questions"]
        work = d
    else:
        os.makedirs(args.store, exist_ok=True)
        status = subprocess.run([tool, "show", "quickstart/rl_train", "--store", args.store, "--path"], capture_output=True, text=True, cwd=root)
        if status.returncode != 0:
            print("bench/serve: running the quickstart into", args.store, "(about 15 minutes on two cores)", flush=True)
            subprocess.run([tool, "run", "pipelines/quickstart.json", "--store", args.store, "--plain"], check=True, cwd=root)
        if args.export:
            for stage, name in [("rl_train", "haps"), ("agent_a", "agent_a"), ("agent_b", "agent_b"), ("world_test", "questions")]:
                subprocess.run([tool, "export", "quickstart/" + stage, os.path.join(args.export, name), "--store", args.store], check=True, cwd=root)
            print("bench/serve: exported to", args.export)
            return
        qfile = subprocess.run([tool, "show", "quickstart/world_test", "--store", args.store, "--path"], capture_output=True, text=True,
                               check=True, cwd=root).stdout.strip() + "/questions.jsonl"
        system_args = ["--system", "quickstart/rl_train", "--store", args.store, "--questions", "quickstart/world_test"]
    questions = [json.loads(l)["question"] for l in open(qfile)]
    rows = []
    for engine in args.engines.split(","):
        rows += serve_and_load(tool, system_args, engine, args, questions, os.path.join(work, f"serve-{engine}.log"))
    print(f"\nhaps-pipe serve --system quickstart/rl_train, {len(questions)} test questions a load, {os.cpu_count()} cores\n")
    print("| engine | model | clients | questions/s | p50 latency (s) | p99 latency (s) | tokens/question |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['engine']} | {r['model']} | {r['clients']} | {r['questions_per_second']:.2f} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | {r['tokens_per_question']:.0f} |")
    out = os.path.join(work, "results.json")
    json.dump({"cores": os.cpu_count(), "rows": rows}, open(out, "w"), indent=1)
    print(f"\n(written to {out})")


if __name__ == "__main__":
    main()
