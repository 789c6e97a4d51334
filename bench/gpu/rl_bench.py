#!/usr/bin/env python3
"""Helpers of bench/gpu/rl_bench.sh (the joint-RL benchmark against the reference's rl_batch.py):

    rl_bench.py router ROUTER_MODEL_DIR REFERENCE_PROMPT_DIR OUT_DIR   a decoder router artifact
    rl_bench.py poll STORE OUT.jsonl STOP_FILE                         when each rl-train step is journalled
    rl_bench.py samples QUESTIONS.jsonl OUT.jsonl                      stand-in sample rows (evaluate step)
    rl_bench.py run-report DIR OUT.json START TITLE N DEVICE DTYPE     a run's wall time and stages' times
    rl_bench.py wait-servers PORT:PATH:LOG:PID ...                     until each server answers (PATH: /v1/models or /retrieve)
    rl_bench.py report OUT_DIR                                         OUT_DIR/rl.json from both sides' times

`router` writes what DecoderRouter.save writes (the model directory, hard-linked, and
router.json: kind decoder, the two candidates' names, the Llama 3 template) with the
reference's router prompt (prompt/system_router.txt and router_template.txt, its
`0: {model_0}\\n1: {model_1}` lines being exactly what our `{candidates}` renders; braces
escaped for Python's str.format), so that both routers read the same text.
`samples` writes four rows a question (actions 0..3, llama_qwen's teacher and student), each
with a made-up F1 (a hash of the question and action: 0, 0.25, 0.5 or 1): the score tables that
`evaluate` needs for its fixed rows and its best fixed action. Random-weight candidates cannot
answer anything, so real sampling would cost GPU time for rows of zeros; the evaluate step
times the live HAPS rows, which do not read these.
`poll` reads the stage's steps journal (Sources/Pipeline/Stage/Journal.swift's format) in the
store's work area and writes {"step", "t"} (time.monotonic()) when each step's record appears.
"""
import glob
import json
import os
import shutil
import statistics
import sys
import time

CANDIDATES = ["Llama-3.1-8B-Instruct", "Qwen2.5-7B-Instruct"]  # rl_batch.py's llama_qwen preset, ids 0 and 1


def router(model_dir, prompts, out):
    os.makedirs(out, exist_ok=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        dst = os.path.join(out, name)
        if os.path.exists(dst):
            os.remove(dst)
        try:
            os.link(os.path.join(model_dir, name), dst)
        except OSError:
            shutil.copyfile(os.path.join(model_dir, name), dst)
    system = open(os.path.join(prompts, "system_router.txt")).read()
    user = open(os.path.join(prompts, "router_template.txt")).read()
    lines = "0: {model_0}\n1: {model_1}"
    assert lines in user, "the reference's router template no longer lists the candidates as expected"
    user = user.replace(lines, "{candidates}")
    system = system.replace("{", "{{").replace("}", "}}")  # the reference uses it unformatted
    router_json = {"kind": "decoder", "space": {"candidates": 2, "roles": ["teacher", "student"]}, "template": "llama3",
                   "candidates": CANDIDATES, "prompt": {"system": system, "user": user}, "date": None,
                   "double_bos_when_routing": False, "max_new_tokens": 16}
    with open(os.path.join(out, "router.json"), "w") as f:
        json.dump(router_json, f, indent=2)


def samples(questions, out):
    import hashlib
    with open(out, "w") as f:
        for qid, line in enumerate(open(questions)):
            q = json.loads(line)
            for action in range(4):
                h = hashlib.sha256(f"{q['question']}|{action}".encode()).digest()[0] % 4
                score = [0.0, 0.25, 0.5, 1.0][h]
                f.write(json.dumps({"qid": qid, "action_index": action, "question": q["question"],
                                    "teacher": CANDIDATES[action // 2], "student": CANDIDATES[action % 2], "answer": "",
                                    "ground_truth": q.get("answer", ""), "f1": score, "precision": score, "recall": score,
                                    "em": int(score == 1.0)}) + "\n")


def journal_keys(path):
    """Keys of a journal's complete records, in order."""
    data = open(path, "rb").read()
    magic = b"HAPSJNL1\n"
    if not data.startswith(magic):
        return []
    keys, p = [], len(magic)
    while p + 12 <= len(data):
        n = int.from_bytes(data[p:p + 4], "little")
        if p + 12 + n > len(data):
            break
        payload = data[p + 12:p + 12 + n]
        klen = int.from_bytes(payload[:4], "little")
        keys.append(payload[4:4 + klen].decode())
        p += 12 + n
    return keys


def poll(store, out, stop):
    seen = set()
    with open(out, "a", buffering=1) as f:
        f.write(json.dumps({"event": "launch", "t": time.monotonic(), "wall": time.time()}) + "\n")
        while True:
            done = os.path.exists(stop)  # one last look after the stop file appears
            for path in glob.glob(os.path.join(store, "work", "*", "journal", "steps.log")):
                for key in journal_keys(path):
                    if key.startswith("s") and key not in seen:
                        seen.add(key)
                        f.write(json.dumps({"event": "step", "step": int(key[1:]), "t": time.monotonic(), "wall": time.time()}) + "\n")
            if done:
                return
            time.sleep(0.05)


def load(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def side(out_dir, name, begin, ends, log):
    """One side's figures: `ends` the monotonic times at which its questions finished, `begin`
    the time before the first one where known (the reference's loop start), `launch` and `end`
    of its program. steady: the mean of questions 2..n (the reference pays its first CUDA
    kernels, ours its decode graphs, in question 1); all-in: the program's wall time over n
    (start, loading, warm-up, saving)."""
    meta_path = os.path.join(out_dir, f"meta-{name}.json")
    if not os.path.exists(meta_path):
        return {"status": "not run"}
    meta = json.load(open(meta_path))
    events = load(os.path.join(out_dir, f"{name}-times.jsonl"))
    launch = [e["t"] for e in events if e["event"] == "launch"]
    end = [e["t"] for e in events if e["event"] == "end"]
    r = {"settings": meta, "questions": len(ends)}
    if not ends:
        r["status"] = f"no question finished (see {log})"
        return r
    starts = ([begin] if begin is not None else []) + ends
    r["per_question_s"] = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
    if begin is not None:
        r["first_question_s"] = r["per_question_s"][0]
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    r["steady_s_per_question"] = statistics.mean(gaps) if gaps else None
    r["steady_questions"] = len(gaps)
    if launch and end:
        r["all_in_s_per_question"] = (end[-1] - launch[-1]) / len(ends)
    r["status"] = "ok" if len(ends) == meta["questions"] and end else f"incomplete (see {log})"
    return r


def report(out_dir):
    ref = load(os.path.join(out_dir, "reference-times.jsonl"))
    begin = [e["t"] for e in ref if e["event"] == "start"]
    result = {"benchmark": "joint RL, seconds per training question (bench/gpu/rl_bench.sh)",
              "reference": side(out_dir, "reference", begin[-1] if begin else None, [e["t"] for e in ref if e["event"] == "question"], "reference.log"),
              "ours": side(out_dir, "ours", None, [e["t"] for e in load(os.path.join(out_dir, "ours-times.jsonl")) if e["event"] == "step"], "ours.log")}
    steps_file = os.path.join(out_dir, "ours", "output", "steps.jsonl")
    if os.path.exists(steps_file) and "settings" in result["ours"]:
        result["ours"]["actions"] = [json.loads(line)["action"] for line in open(steps_file)]  # 0: teacher 0, student 0 (rl_batch.py's fallback)
    for key, field in (("speedup_steady", "steady_s_per_question"), ("speedup_all_in", "all_in_s_per_question")):
        r, o = result["reference"].get(field), result["ours"].get(field)
        if r and o:
            result[key] = r / o
    with open(os.path.join(out_dir, "rl.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def run_report(directory, dst, start, title, questions, device, dtype):
    """A haps-pipe run's figures: its wall time (launch to exit, including the worker's start
    and loading the models) and each stage's seconds and outcome from the store's run record
    (DIRECTORY/store/runs), written to DST and printed."""
    records = sorted(glob.glob(os.path.join(directory, "store", "runs", "*.json")))
    record = json.load(open(records[-1])) if records else {}
    stages = {r["stage"]: {"seconds": r.get("seconds"), "outcome": r.get("outcome"), "error": r.get("error")}
              for r in record.get("stages", [])}
    result = {"benchmark": title, "questions": int(questions), "device": device, "dtype": dtype,
              "wall_s": time.time() - float(start), "stages": stages}
    with open(dst, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{title}: {questions} questions, {result['wall_s']:.1f} s in all")
    for name, st in stages.items():
        print(f"  {name}: {st['outcome']} in {st['seconds']} s" + (f" ({st['error']})" if st.get("error") else ""))


def wait_servers(*servers):
    """Waits for each server (PORT:PATH:LOG:PID) to answer on 127.0.0.1:PORT, a chat server at
    /v1/models, a retriever at /retrieve (one retrieval); one that exits first (a port in use),
    or does not answer in 5 minutes, stops the bench, naming its log."""
    import urllib.request
    for server in servers:
        port, path, rest = server.split(":", 2)
        log, pid = rest.rsplit(":", 1)
        for _ in range(1200):
            stat = f"/proc/{pid}/stat"
            if not os.path.exists(stat) or open(stat).read().split(")")[-1].split()[0] == "Z":
                sys.exit(f"the server for 127.0.0.1:{port} exited (see {log}: a port in use?)")
            try:
                if path == "/retrieve":
                    body = json.dumps({"entity": "Andes", "data": ["The Andes are mountains.", "Paris is a city."]}).encode()
                    request = urllib.request.Request(f"http://127.0.0.1:{port}/retrieve", data=body, headers={"Content-Type": "application/json"})
                    print(f"retriever on {port}:", json.loads(urllib.request.urlopen(request).read()), flush=True)
                else:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}").read()
                    print(f"server on {port} is up", flush=True)
                break
            except OSError:
                time.sleep(0.25)
        else:
            sys.exit(f"no server answered on 127.0.0.1:{port} in 5 minutes (see {log})")


def fmt(x):
    return "-" if x is None else f"{x:.2f}"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "router":
        router(*args)
    elif cmd == "samples":
        samples(*args)
    elif cmd == "wait-servers":
        wait_servers(*args)
    elif cmd == "run-report":
        run_report(*args)
    elif cmd == "poll":
        poll(*args)
    elif cmd == "report":
        r = report(*args)
        for name in ("reference", "ours"):
            x = r[name]
            print(f"{name}: {x.get('status')}; {x.get('questions')} questions, steady {fmt(x.get('steady_s_per_question'))} s/question "
                  f"(questions 2..n), all-in {fmt(x.get('all_in_s_per_question'))} s/question; per question {x.get('per_question_s')}")
        print(f"ratio (reference / ours): steady {fmt(r.get('speedup_steady'))}x, all-in {fmt(r.get('speedup_all_in'))}x")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
