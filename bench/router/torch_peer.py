"""bench/router's peer: the router SFT step as transformers' Trainer takes it (LlamaForCausalLM,
micro-batches right-padded with an attention mask, labels -100 on the prompt, the loss of each
micro-batch divided by the accumulation steps, gradients clipped at 1, AdamW), on the CPU with the
same thread count and the same sequences as bench/router/swift/main.swift. Prints one JSON object."""
import json, os, sys, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "5"))
torch.set_num_threads(THREADS)
torch.manual_seed(0)
fixtures = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/router"
examples = json.load(open(os.path.join(fixtures, "examples.json")))["examples"]
batch = examples + examples
cfg = LlamaConfig(vocab_size=1203, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                  tie_word_embeddings=False, bos_token_id=0, eos_token_id=1202, torch_dtype="float32")
model = LlamaForCausalLM(cfg).float()
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
micro = [batch[:4], batch[4:]]
tensors = []
for m in micro:
    seqs = [e["prompt_ids"] + e["target_ids"] for e in m]
    n = max(len(s) for s in seqs)
    tensors.append((torch.tensor([s + [1202] * (n - len(s)) for s in seqs]),
                    torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs]),
                    torch.tensor([[-100] * len(e["prompt_ids"]) + e["target_ids"] + [-100] * (n - len(s)) for e, s in zip(m, seqs)])))


def step():
    for ids, mask, labels in tensors:
        (model(input_ids=ids, attention_mask=mask, labels=labels).loss / len(tensors)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


step()
t0 = time.perf_counter()
for _ in range(STEPS):
    step()
seconds = (time.perf_counter() - t0) / STEPS
tokens = sum(len(e["prompt_ids"]) + len(e["target_ids"]) for e in batch)
print(json.dumps({"threads": THREADS, "step_s": seconds, "tokens_per_step": tokens, "tokens_per_s": tokens / seconds,
                  "torch": torch.__version__, "attention": model.config._attn_implementation}))
