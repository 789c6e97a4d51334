#!/usr/bin/env python3
"""haps-pipe and transformers read the models of bench/gpu/paper_models.py alike (run it on the
tiny ones: the CPU engine serves them):

    HAPS_PIPE=.build/debug/haps-pipe python3 bench/gpu/paper_models_check.py MODELS_DIR

For the llama and qwen directories, with a system + user and a user-only conversation: the
text of sampled ids from `haps-pipe generate` (ids anywhere in the vocabulary) is
transformers' decode of them; `haps-pipe serve` (our ChatTemplate and tokenizer) counts as
many prompt tokens as transformers' apply_chat_template, and its greedy reply is
transformers' greedy `generate` from those ids.
"""
import json, os, subprocess, sys, time, urllib.request, torch
from transformers import AutoTokenizer, AutoModelForCausalLM
hp = os.environ.get("HAPS_PIPE", "haps-pipe")
models = sys.argv[1]
msgs = [{"role": "system", "content": "You are a router. Reply {\"teacher\": 0}."}, {"role": "user", "content": "Who wrote Hamlet? Ünïcode 123456 ok\n\nThought:"}]
for name, port in (("llama", 2031), ("qwen", 2032)):
    d = os.path.join(models, name)
    tok = AutoTokenizer.from_pretrained(d)
    for m in (msgs, msgs[1:]):
        text = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        ids = tok(text)["input_ids"]
        # Swift: the raw rendered text through its tokenizer, 24 sampled tokens: their text must be transformers' decode of the ids
        r = json.loads(subprocess.check_output([hp, "generate", "--model", d, "--prompt", text, "--max-new-tokens", "24", "--temperature", "1", "--seed", "5", "--ignore-eos", "--json"]))
        assert r["text"] == tok.decode(r["ids"]), (r["text"], tok.decode(r["ids"]))
        print(name, "decode of sampled ids agrees:", r["ids"][:6], repr(r["text"][:40]))
    srv = subprocess.Popen([hp, "serve", "--model", d, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for m in (msgs, msgs[1:]):
            body = json.dumps({"messages": m, "max_tokens": 16, "temperature": 0}).encode()
            for _ in range(600):
                try:
                    resp = json.loads(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})).read()); break
                except OSError:
                    time.sleep(0.2)
            ids = tok.apply_chat_template(m, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
            out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids):]
            ref = tok.decode(out, skip_special_tokens=True)
            same = resp["usage"]["prompt_tokens"] == len(ids) and resp["choices"][0]["message"]["content"] == ref
            print(name, "prompt tokens: serve", resp["usage"]["prompt_tokens"], "transformers", len(ids), "| greedy reply equal:", same)
            assert same
            print("   serve:", repr(resp["choices"][0]["message"]["content"][:60]), " transformers:", repr(ref[:60]))
    finally:
        srv.kill()
