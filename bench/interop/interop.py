#!/usr/bin/env python3
"""Cross-engine differential and server interop for the quickstart's candidates (bench/interop/run.sh).

1. `haps-pipe export-gguf` writes each candidate (agent_a, agent_b) as F32 GGUF.
2. Prompts: the user messages of sample_valid's dialogues where that candidate answered (the
   quickstart's own prompts), rendered with the Llama 3 chat template, tokenized with the
   candidate's tokenizer.json (HF tokenizers); llama.cpp's tokenizer is checked on the same text.
3. Greedy continuations of MAX_TOKENS from both engines, from the same token ids: our engine
   (`haps-pipe generate --prompt-ids --json`) and llama.cpp (llama_cpp.Llama, top_k 1), each
   stopping at the candidate's end tokens; the share that agree token for token, and for each
   that does not, where it diverges and our engine's log-probability margin there.
4. llama.cpp's OpenAI-compatible server (python -m llama_cpp.server) serves both candidates;
   `haps-pipe sample --protocol openai` runs the world's valid questions against them.
"""
import json, os, socket, subprocess, sys, tempfile, time

HAPS, STORE = os.environ["HAPS_PIPE"], os.environ["STORE"]
N, MAX = int(os.environ.get("PROMPTS", "50")), int(os.environ.get("MAX_TOKENS", "48"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
from llama_cpp import Llama  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def haps(*args):
    return subprocess.run([HAPS, *args], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def tree(stage):
    ref = json.load(open(os.path.join(STORE, "refs", "quickstart", stage + ".json")))
    return os.path.join(STORE, "trees", ref["output"])


def render(user):  # ChatTemplate.llama3
    return ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + user.strip(" \n\t") +
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def prompts(candidate):
    """User messages of sample_valid's turns that `candidate` answered (action 0: a and a; 3: b and b)."""
    action = 0 if candidate == "agent_a" else 3
    haps("show", "quickstart/sample_valid", "--store", STORE)  # unpacks the tree
    out = []
    for line in open(os.path.join(tree("sample_valid"), "transcripts.jsonl")):
        t = json.loads(line)
        if t["action_index"] == action:
            out += [turn["prompt"] for turn in t["turns"]]
        if len(out) >= N:
            break
    return out[:N]


def differential(candidate, gguf_path, model_dir):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    stops = set(config["eos_token_id"] if isinstance(config["eos_token_id"], list) else [config["eos_token_id"]])
    hf = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    llm = Llama(model_path=gguf_path, n_ctx=4096, n_threads=2, n_batch=512, logits_all=False, verbose=False)
    agree, same_tokens, rows = 0, 0, []
    texts = prompts(candidate)
    for text in texts:
        rendered = render(text)
        ids = hf.encode(rendered, add_special_tokens=False).ids
        same_tokens += llm.tokenize(rendered.encode(), add_bos=False, special=True) == ids
        ours = json.loads(haps("generate", "--model", model_dir, "--prompt-ids", ",".join(map(str, ids)),
                               "--max-new-tokens", str(MAX), "--json", "--threads", "2"))
        mine = [t for t in ours["ids"] if t not in stops]
        llm.reset()
        theirs = []
        for tok in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if tok in stops or len(theirs) >= MAX:
                break
            theirs.append(tok)
        if mine == theirs:
            agree += 1
        else:
            at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
            rows.append((at, len(mine), len(theirs), ours["logprobs"][at] if at < len(ours["logprobs"]) else None))
    print(f"{candidate}: {agree}/{len(texts)} greedy continuations agree token for token "
          f"({agree / len(texts):.0%}); llama.cpp's tokenizer gives our ids for {same_tokens}/{len(texts)} prompts")
    for at, a, b, lp in rows:
        print(f"  diverges at token {at} (ours {a} tokens, llama.cpp {b}); our log-probability of our token there: {lp}")
    del llm


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


# llama-cpp-python's server applies repeat_penalty 1.1 to requests that do not say otherwise
# (OpenAI's API has no such field, so an OpenAI client never does); with PLAIN, the server runs
# with that default set to 1.0, i.e. plain greedy decoding as vLLM and our engine do.
PLAIN = """
import runpy
from llama_cpp.server import types
for model in (types.CreateCompletionRequest, types.CreateChatCompletionRequest):
    model.model_fields["repeat_penalty"].default = 1.0
    model.model_rebuild(force=True)
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def serve_and_sample(ggufs, plain):
    servers, urls = [], {}
    for name, preset in (("agent_a", "llama"), ("agent_b", "qwen")):
        port = free_port()
        log = open(os.path.join(tempfile.gettempdir(), f"llama-cpp-{name}.log"), "w")
        start = [sys.executable, "-c", PLAIN] if plain else [sys.executable, "-m", "llama_cpp.server"]
        servers.append(subprocess.Popen(start + ["--model", ggufs[name], "--port", str(port), "--n_ctx", "4096", "--n_threads", "1"],
                                        stdout=log, stderr=log))
        urls[preset] = f"http://127.0.0.1:{port}/v1"
    try:
        for url in urls.values():
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])), timeout=1).close(); break
                except OSError:
                    time.sleep(0.2)
        questions = os.path.join(tree("world_valid"), "questions.jsonl")
        out = os.path.join(tempfile.gettempdir(), f"interop-baseline-{'plain' if plain else 'default'}.jsonl")
        t0 = time.time()
        r = subprocess.run([HAPS, "sample", "--questions", questions, "--preset", "llama_qwen", "--model-url", f"llama={urls['llama']}",
                            "--model-url", f"qwen={urls['qwen']}", "--retriever", "lexical", "--prompts", "prompts/embedded",
                            "--budget", "3", "--concurrency", "4", "--store", tempfile.mkdtemp(prefix="interop-store-"),
                            "--output", out], cwd=ROOT, capture_output=True, text=True)
        label = "repeat_penalty 1.0" if plain else "its default repeat_penalty 1.1"
        print(f"haps-pipe sample (openai backend) against llama.cpp's server with {label}: exit {r.returncode} in {time.time() - t0:.0f} s")
        if r.returncode != 0:
            print(r.stderr[-2000:])
            return
        theirs = {(x["qid"], x["action_index"]): x for x in map(json.loads, open(out))}
        ours = {(x["qid"], x["action_index"]): x for x in map(json.loads, open(os.path.join(tree("sample_valid"), "baseline.jsonl")))}
        same = sum(1 for k, x in ours.items() if k in theirs and theirs[k]["answer"] == x["answer"])
        mean = lambda rows: sum(x["f1"] for x in rows) / len(rows)
        print(f"  {len(theirs)} rows (question x assignment): mean F1 {mean(list(theirs.values())):.4f} against our engine's "
              f"sample_valid {mean(list(ours.values())):.4f}; the same final answer in {same}/{len(ours)} rows")
    finally:
        for s in servers:
            s.terminate()


def main():
    haps("show", "quickstart/agent_a", "--store", STORE); haps("show", "quickstart/agent_b", "--store", STORE)
    ggufs = {}
    for c in ("agent_a", "agent_b"):
        ggufs[c] = os.path.join(tempfile.gettempdir(), c + ".gguf")
        haps("export-gguf", tree(c), ggufs[c], "--name", c)
        differential(c, ggufs[c], tree(c))
    serve_and_sample(ggufs, plain=False)
    serve_and_sample(ggufs, plain=True)


if __name__ == "__main__":
    main()
