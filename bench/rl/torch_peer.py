"""bench/rl's peer: the joint RL step of bench/rl/swift/main.swift in PyTorch, on the CPU with the
same thread count, models and prompts: the router's forward (LlamaModel, final norm) mean-pooled,
the parameter generator (Linear(128,256)+ReLU, Linear(256,256)+ReLU, heads to A and B), NEW
tokens sampled with a KV cache under the LoRA update (a hook adding alpha * x A B to the last
layer's o_proj) with the reference's nucleus rule, log q from a forward over prompt + reply with
gradients, backward of -R * log q into the generator and the router, an AdamW step each (torch
skips parameters without a gradient). Prints one JSON object."""
import json, os, sys, time

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "5"))
NEW = int(os.environ.get("NEW", "48"))
torch.set_num_threads(THREADS)
torch.manual_seed(0)
fixtures = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/router"
prompts = [e["prompt_ids"] for e in json.load(open(os.path.join(fixtures, "examples.json")))["examples"]]
routing, call = torch.tensor([prompts[0][:128]]), torch.tensor([prompts[1][:256]])
cfg = LlamaConfig(vocab_size=1203, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                  tie_word_embeddings=False, bos_token_id=0, eos_token_id=1202, torch_dtype="float32")
router, candidate = LlamaForCausalLM(cfg).float(), LlamaForCausalLM(cfg).float()
candidate.requires_grad_(False)
D, R = 128, 8


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.head_a, self.head_b = nn.Linear(256, D * R), nn.Linear(256, R * D)

    def forward(self, pooled):
        h = self.mlp(pooled)
        return self.head_a(h).view(D, R), self.head_b(h).view(R, D)


generator = Generator()
lora = {}
candidate.model.layers[-1].self_attn.o_proj.register_forward_hook(lambda m, inp, out: out + 0.01 * (inp[0] @ lora["a"] @ lora["b"]))
router_opt = torch.optim.AdamW(router.parameters(), lr=5e-6, weight_decay=0.01)
generator_opt = torch.optim.AdamW(generator.parameters(), lr=1e-5, weight_decay=0.0)


def nucleus(logits):
    """The reference's rule: keep the tokens whose inclusive cumulative probability is <= 0.9, always the first."""
    probs = torch.softmax(logits, -1)
    sorted_p, order = probs.sort(descending=True)
    keep_sorted = sorted_p.cumsum(-1) <= 0.9
    keep_sorted[..., 0] = True
    return torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, keep_sorted)


def step():
    pooled = router.model(routing).last_hidden_state.mean(1)[0]
    lora["a"], lora["b"] = generator(pooled)
    with torch.no_grad():
        out = candidate(call, use_cache=True)
        past, ids = out.past_key_values, []
        logits = out.logits[0, -1]
        for _ in range(NEW):
            keep = nucleus(logits)
            probs = torch.softmax(logits, -1) * keep
            token = torch.multinomial(probs / probs.sum(), 1)
            ids.append(int(token))
            out = candidate(token.view(1, 1), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
    sequence = torch.cat([call, torch.tensor([ids])], 1)
    logits = candidate(sequence).logits[0, call.shape[1] - 1:-1]
    keep = nucleus(logits.detach())
    logp = torch.log_softmax(logits, -1)
    mass = torch.logsumexp(logp.masked_fill(~keep, float("-inf")), -1)
    logq = (logp.gather(1, torch.tensor(ids).view(-1, 1))[:, 0] - mass).sum()
    (1.0 * logq).backward()  # -R * log q with R = -1
    generator_opt.step(); router_opt.step()
    generator_opt.zero_grad(); router_opt.zero_grad()


step()
t0 = time.perf_counter()
for _ in range(STEPS):
    step()
seconds = (time.perf_counter() - t0) / STEPS
print(json.dumps({"threads": THREADS, "step_s": seconds, "steps_per_s": 1 / seconds, "new_tokens": NEW, "torch": torch.__version__}))
