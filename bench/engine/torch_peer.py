"""bench/engine's PyTorch peer: the same Llama-shaped config as bench/engine/swift/main.swift,
written with torch.nn (RMSNorm, rotary embedding, grouped-query causal attention through
scaled_dot_product_attention, SwiGLU), on the CPU with the same thread count. Prints one JSON
object: training steps/s (forward, backward, AdamW) and greedy generation tokens/s with a KV cache."""
import json, math, os, sys, time

import torch
import torch.nn.functional as F

THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "5"))
torch.set_num_threads(THREADS)
torch.manual_seed(0)
VOCAB, HIDDEN, INTER, LAYERS, HEADS, KV, SEQ, BATCH = 4096, 256, 688, 4, 8, 4, 128, 4
HD = HIDDEN // HEADS


class RMSNorm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def rope(x, pos):  # x [b, h, t, hd]
    inv = 1.0 / (10000 ** (torch.arange(0, HD, 2).float() / HD))
    f = pos[:, None].float() * inv[None, :]
    emb = torch.cat([f, f], -1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        L = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.n1, self.n2 = RMSNorm(HIDDEN), RMSNorm(HIDDEN)
        self.q, self.k, self.v, self.o = L(HIDDEN, HIDDEN), L(HIDDEN, KV * HD), L(HIDDEN, KV * HD), L(HIDDEN, HIDDEN)
        self.g, self.u, self.d = L(HIDDEN, INTER), L(HIDDEN, INTER), L(INTER, HIDDEN)

    def forward(self, x, pos, cache=None):
        b, t, _ = x.shape
        h = self.n1(x)
        q = rope(self.q(h).view(b, t, HEADS, HD).transpose(1, 2), pos)
        k = rope(self.k(h).view(b, t, KV, HD).transpose(1, 2), pos)
        v = self.v(h).view(b, t, KV, HD).transpose(1, 2)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        k, v = k.repeat_interleave(HEADS // KV, 1), v.repeat_interleave(HEADS // KV, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=(t > 1))
        x = x + self.o(a.transpose(1, 2).reshape(b, t, HIDDEN))
        h = self.n2(x)
        return x + self.d(F.silu(self.g(h)) * self.u(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, HIDDEN)
        self.layers = torch.nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, ids, start=0, caches=None):
        x = self.emb(ids)
        pos = torch.arange(start, start + ids.shape[1])
        for i, l in enumerate(self.layers):
            x = l(x, pos, None if caches is None else caches[i])
        return self.head(self.norm(x))


model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
data = torch.randint(0, VOCAB, (BATCH, SEQ))


def train_step():
    opt.zero_grad()
    logits = model(data)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), data[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


train_step()
t0 = time.perf_counter()
for _ in range(STEPS):
    train_step()
train = (time.perf_counter() - t0) / STEPS

prompts = torch.randint(0, VOCAB, (8, 16))


@torch.no_grad()
def generate(n):
    caches = [[] for _ in range(LAYERS)]
    logits = model(prompts, 0, caches)
    tok = logits[:, -1].argmax(-1, keepdim=True)
    for i in range(n - 1):
        logits = model(tok, 16 + i, caches)
        tok = logits[:, -1].argmax(-1, keepdim=True)


generate(4)
t0 = time.perf_counter()
generate(64)
gen = time.perf_counter() - t0
print(json.dumps({"threads": THREADS, "torch": torch.__version__, "train_step_s": train, "train_steps_per_s": 1 / train,
                  "generate_tokens_per_s": 8 * 64 / gen}, sort_keys=True))
