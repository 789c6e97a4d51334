#!/usr/bin/env python3
"""The torch worker on a GPU against the same worker on the CPU (issue 27's GPU checks):
float32 with TF32 off must give the same ids and log q within 1e-4 of scale; bfloat16 is
reported as the share of identical greedy tokens. Speaks the worker's own protocol
(engines/torch/worker.py), so it needs no haps-pipe binary.

    python3 bench/gpu/worker_check.py [OUT.json]
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import write_report  # noqa: E402
WORKER = os.path.join(ROOT, "engines", "torch", "worker.py")


class Client:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.hello = self.receive()[0]
        self.next = 0

    def receive(self):
        n = struct.unpack("<I", self.p.stdout.read(4))[0]
        header = json.loads(self.p.stdout.read(n))
        blobs = []
        for t in header.get("tensors", []):
            count = 1
            for d in t["shape"]:
                count *= d
            blobs.append(self.p.stdout.read(count * {"float32": 4, "int64": 8}[t["dtype"]]))
        return header, blobs

    def call(self, op, tensors=(), **fields):
        self.next += 1
        header = dict(fields, id=self.next, op=op)
        if tensors:
            header["tensors"] = [{"name": n, "dtype": "float32", "shape": list(shape)} for n, shape, _ in tensors]
        body = json.dumps(header).encode()
        self.p.stdin.write(struct.pack("<I", len(body)) + body + b"".join(struct.pack("<%df" % len(v), *v) for _, _, v in tensors))
        self.p.stdin.flush()
        reply, blobs = self.receive()
        if not reply.get("ok"):
            raise RuntimeError(reply)
        return reply, blobs


def tiny_model(directory, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(directory)


def main():
    import torch
    out = sys.argv[1] if len(sys.argv) > 1 else None
    directory = tempfile.mkdtemp()
    tiny_model(directory)
    rng = random.Random(1)
    a = [rng.uniform(-0.5, 0.5) for _ in range(64 * 4)]
    b = [rng.uniform(-0.5, 0.5) for _ in range(4 * 64)]
    calls = []
    for i in range(8):
        sampled = i % 2 == 1
        call = {"model": 0, "prompt": [rng.randrange(1000) for _ in range(12)], "max_new_tokens": 32, "stop": [],
                "temperature": 1.0 if sampled else 0.0, "top_p": 0.9, "rule": "reference" if i % 4 == 3 else "standard"}
        if sampled:
            call["uniforms"] = [rng.random() for _ in range(32)]
        if i >= 4:
            call["update"] = {"alpha": 0.5, "layers": 1}
            call["record"] = True  # Σ log q's gradient with respect to A and B, from the captured rows
        calls.append(call)
    tensors = []
    for i, c in enumerate(calls):
        if "update" in c:
            tensors += [("a%d" % i, (64, 4), a), ("b%d" % i, (4, 64), b)]

    def run(device, dtype):
        w = Client()
        w.call("load_model", directory=directory, device=device, dtype=dtype)
        reply, blobs = w.call("generate", tensors=tensors, calls=calls)
        results = []
        for i in range(len(calls)):
            ids = list(struct.unpack("<%dq" % (len(blobs[2 * i]) // 8), blobs[2 * i]))
            lps = list(struct.unpack("<%df" % (len(blobs[2 * i + 1]) // 4), blobs[2 * i + 1]))
            gradient = []
            if "call" in reply["replies"][i]:
                _, g = w.call("call_gradient", call=reply["replies"][i]["call"])
                gradient = [x for blob in g for x in struct.unpack("<%df" % (len(blob) // 4), blob)]
            results.append((ids, lps, gradient))
        return w.hello, results

    report = {"torch": torch.__version__, "cuda": torch.version.cuda,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    _, cpu = run("cpu", "float32")
    hello, gpu = run("cuda", "float32")
    report["hello"] = hello
    same_ids = sum(c[0] == g[0] for c, g in zip(cpu, gpu))
    worst = 0.0
    worst_gradient = 0.0
    for (ci, cl, cg), (gi, gl, gg) in zip(cpu, gpu):
        if ci == gi:
            scale = max(max(abs(x) for x in cl), 1e-6)
            worst = max(worst, max(abs(x - y) for x, y in zip(cl, gl)) / scale)
            if cg:
                scale = max(max(abs(x) for x in cg), 1e-6)
                worst_gradient = max(worst_gradient, max(abs(x - y) for x, y in zip(cg, gg)) / scale)
    report["float32"] = {"calls": len(calls), "identical_ids": same_ids, "worst_logq_relative": worst,
                         "recorded_calls": sum(1 for c in calls if c.get("record")), "worst_gradient_relative": worst_gradient,
                         "pass": same_ids == len(calls) and worst <= 1e-4 and worst_gradient <= 1e-4}
    _, bf = run("cuda", "bfloat16")
    greedy = [i for i, c in enumerate(calls) if c["temperature"] == 0]
    total = sum(len(cpu[i][0]) for i in greedy)
    same = sum(sum(x == y for x, y in zip(cpu[i][0], bf[i][0])) for i in greedy)
    report["bfloat16"] = {"greedy_tokens": total, "identical_greedy_tokens": same, "share": same / max(1, total)}
    write_report(report, out)


if __name__ == "__main__":
    main()
