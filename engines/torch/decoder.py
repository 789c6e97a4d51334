"""Batched decoding for the worker's `generate`: the model's own modules (norms, projections,
rotary embedding, MLP) driven by a forward of our own over a static KV cache, so that

- many calls decode together, each row at its own position, under its own LoRA update
  (per-row A and B, applied with `bmm`), with no padding: a row's cache entries are its own;
- a decode step has fixed shapes (the batch rounded up to a bucket, the cache's length), so
  on a GPU it is captured once as a CUDA graph and replayed (one launch a token, not hundreds);
- a recorded call keeps, at every position, the last layer's o_proj input and the residual
  before it: the gradient of Σ log q with respect to A and B is then the tail of the last
  layer alone (o_proj, MLP, final norm, head) over the reply's positions, as the CPU engine's
  one-pass gradient, instead of a second forward of the whole model with autograd.

Llama, Qwen2 and Mistral without sliding windows; `supported` says why another is not, and
the worker then decodes with transformers' forward instead.
"""
import sys

import numpy as np

from sampling import F32, draw, nucleus


def supported(model):
    """None when this decoder can run the model, else why not."""
    cfg = model.config
    if cfg.model_type not in ("llama", "qwen2", "mistral"):
        return "model type %s" % cfg.model_type
    if getattr(cfg, "use_sliding_window", False) or (cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None)):
        return "a sliding window"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return "sliding-window layers"
    return None


def bucket(n):
    """The batch a decode step runs at: the next power of two (graphs are captured per bucket)."""
    b = 1
    while b < n:
        b *= 2
    return b


class Decoder:
    """One model's static KV cache and decode step (see the module's doc)."""

    def __init__(self, model, rows, length):
        import torch
        cfg = model.config
        self.model, self.rows, self.length = model, rows, length
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.layers = model.model.layers
        attn = self.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        shape = (len(self.layers), rows, length, self.kv_heads, self.head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.width = self.heads * self.head_dim
        self.rank = 1
        self.lora_a = torch.zeros(rows, cfg.hidden_size, self.rank, dtype=self.dtype, device=self.device)
        self.lora_b = torch.zeros(rows, self.rank, self.width, dtype=self.dtype, device=self.device)
        self.lora_scale = torch.zeros(len(self.layers), rows, dtype=self.dtype, device=self.device)
        self.graphs = {}
        self.with_updates = False
        # The last layer's o_proj input and the residual before it, at each row's last position
        # of the latest forward (what a recorded call's gradient needs; graph-static buffers).
        self.captured_x = torch.zeros(rows, self.width, dtype=self.dtype, device=self.device)
        self.captured_residual = torch.zeros(rows, cfg.hidden_size, dtype=self.dtype, device=self.device)

    def fits(self, rows, length, rank):
        return rows <= self.rows and length <= self.length and rank <= self.rank

    def set_updates(self, updates, rank):
        """Row i's update (None: none): A (hidden × r), B (r × width), alpha, layers; ranks
        padded with zeros to the largest (the padding adds exact zeros)."""
        import torch
        if rank > self.rank:
            self.rank = rank
            self.lora_a = torch.zeros(self.rows, self.lora_a.shape[1], rank, dtype=self.dtype, device=self.device)
            self.lora_b = torch.zeros(self.rows, rank, self.width, dtype=self.dtype, device=self.device)
            self.graphs = {}  # captured with the old buffers
        self.lora_a.zero_()
        self.lora_b.zero_()
        self.lora_scale.zero_()
        self.with_updates = any(u is not None for u in updates)  # graphs are captured with and without the products
        n = len(self.layers)
        for i, u in enumerate(updates):
            if u is None:
                continue
            r = u["a"].shape[1]
            self.lora_a[i, :, :r] = u["a"].to(self.dtype)
            self.lora_b[i, :r, :] = u["b"].to(self.dtype)
            self.lora_scale[n - u["layers"]:, i] = u["alpha"]

    def forward(self, ids, positions, first=0):
        """Logits (float32) at the last position of each row: `ids` and `positions` [n, T],
        the cache rows first..first+n-1; the keys and values of every position are written to
        the cache at the row's positions, and each position attends to the row's cache up to
        it. The last layer's o_proj input and residual at the last position are captured."""
        import torch
        import torch.nn.functional as F
        model = self.model
        h = model.model.embed_tokens(ids)
        cos, sin = model.model.rotary_emb(h, positions)
        n, t = ids.shape
        rows = slice(first, first + n)
        row_index = torch.arange(first, first + n, device=self.device).unsqueeze(1).expand(n, t)
        mask = (torch.arange(self.length, device=self.device).view(1, 1, 1, -1) <= positions.view(n, 1, t, 1))
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            attn = layer.self_attn
            residual = h
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(n, t, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(n, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = self.rope(q, k, cos, sin)
            self.k[l].index_put_((row_index, positions), k.transpose(1, 2))
            self.v[l].index_put_((row_index, positions), v.transpose(1, 2))
            keys = self.k[l, rows].transpose(1, 2)
            values = self.v[l, rows].transpose(1, 2)
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=attn.scaling, enable_gqa=True)
            o = o.transpose(1, 2).reshape(n, t, self.width)
            out = attn.o_proj(o)
            if self.with_updates:
                out = out + self.lora_scale[l, rows].view(n, 1, 1) * torch.bmm(torch.bmm(o, self.lora_b[rows].transpose(1, 2)),
                                                                                self.lora_a[rows].transpose(1, 2))
            if l == last:
                self.captured_x[rows].copy_(o[:, -1])
                self.captured_residual[rows].copy_(residual[:, -1])
            h = residual + out
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return model.lm_head(model.model.norm(h[:, -1])).float()

    def ready(self, n):
        """Captures the decode graph for `n` rows before their prompts are in the cache: the
        capture's own forwards write (position 0 of rows 0..bucket-1), and a prefill after
        them overwrites what they wrote."""
        if self.device.type == "cuda" and n <= self.rows:
            key = (min(bucket(n), self.rows), self.with_updates)
            if key not in self.graphs:
                self.graphs[key] = self.capture(key[0])

    def step(self, ids, positions, n):
        """One decode step of rows 0..n-1 (ids, positions: [n] on the device): a CUDA graph
        of the bucket's size replayed on a GPU (captured on first use), the plain forward
        elsewhere."""
        if self.device.type != "cuda" or n > self.rows:
            return self.forward(ids.view(n, 1), positions.view(n, 1))
        b = min(bucket(n), self.rows)
        g = self.graphs.get((b, self.with_updates))
        if g is None:
            g = self.graphs[(b, self.with_updates)] = self.capture(b)
        graph, static_ids, static_positions, static_logits = g
        static_ids[:n, 0] = ids
        static_positions[:n, 0] = positions
        static_positions[n:, 0] = 0
        graph.replay()
        return static_logits[:n]

    def capture(self, b):
        import torch
        static_ids = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        static_positions = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.forward(static_ids, static_positions)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = self.forward(static_ids, static_positions)
        return graph, static_ids, static_positions, static_logits


def choose_rows(logits, calls, uniforms, step, active):
    """Each row's token and log-probability from its logits row (float32 [n, V]): greedy rows
    by argmax on the device; sampled rows exactly as the CPU engine's TokenSampler (sampling.py)
    on the host when the model is on the CPU, and on the device on a GPU (the same nucleus and
    inverse CDF with the device's sums: the logits themselves differ from the CPU's in their
    last bits there)."""
    import torch
    n = logits.shape[0]
    tokens, logprobs = [0] * n, [0.0] * n
    greedy = [i for i in range(n) if active[i] and calls[i].get("temperature", 0) <= 0]
    if greedy:
        rows = logits if len(greedy) == n else logits[greedy]
        best = torch.argmax(rows, 1)
        lp = rows.gather(1, best.view(-1, 1)).view(-1) - torch.logsumexp(rows, 1)
        both = torch.stack([best.double(), lp.double()]).tolist()  # one transfer
        for j, (t, p) in enumerate(zip(both[0], both[1])):
            tokens[greedy[j]], logprobs[greedy[j]] = int(t), p
    for i in range(n):
        c = calls[i]
        if not active[i] or c.get("temperature", 0) <= 0:
            continue
        u = uniforms[i][step]
        probs = torch.softmax(logits[i] / c["temperature"], 0)
        if logits.device.type == "cpu":
            values = probs.numpy().astype(F32)
            kept, mass = nucleus(values, c.get("top_p", 1), c.get("rule", "standard"), with_mass=True)
            tok = draw(values, kept, mass, u)
            tokens[i], logprobs[i] = tok, float(np.log(F32(values[tok] / mass)))
        else:
            tokens[i], logprobs[i] = device_draw(probs, c.get("top_p", 1), c.get("rule", "standard"), u)
    return tokens, logprobs


def device_draw(probs, top_p, rule, u):
    """The nucleus and inverse CDF on the device (one row): sorted by probability (stable,
    so ties by index) for top_p < 1, else in index order; one host sync."""
    import torch
    if top_p >= 1:
        order, values = None, probs
    else:
        values, order = torch.sort(probs, descending=True, stable=True)
    cum = torch.cumsum(values, 0)
    if top_p >= 1:
        count = values.numel()
    elif rule == "reference":
        count = 1 + int(torch.count_nonzero(cum[1:] <= top_p))
    else:
        count = 1 + int(torch.count_nonzero(cum[:-1] < top_p))
    mass = cum[count - 1]
    target = u * mass
    k = min(int(torch.searchsorted(cum[:count], target, right=True)), count - 1)
    token = int(order[k]) if order is not None else k
    return token, float(torch.log(values[k] / mass))


def decode(decoder, calls, updates):
    """Generates every call (rows of one model) together: each prompt prefilled into its own
    cache row, then one decode step a token for all rows, each token chosen by the row's own
    rule and uniforms, until every row has stopped or reached its length. Returns, per call,
    (ids, logprobs, finish reason, captured rows or None): the last layer's o_proj inputs and
    residuals at the positions whose logits chose the reply's tokens, for recorded calls."""
    import torch
    n = len(calls)
    decoder.set_updates(updates, max([u["a"].shape[1] for u in updates if u is not None] or [1]))
    recorded = [bool(c.get("record")) for c in calls]
    captures = [([], []) if r else None for r in recorded]
    decoder.ready(n)
    first_logits = []
    with torch.no_grad():
        for i, c in enumerate(calls):
            prompt = torch.tensor([c["prompt"]], device=decoder.device)
            first_logits.append(decoder.forward(prompt, torch.arange(len(c["prompt"]), device=decoder.device).view(1, -1), first=i))
            if recorded[i]:
                captures[i][0].append(decoder.captured_x[i].clone())
                captures[i][1].append(decoder.captured_residual[i].clone())
        logits = torch.cat(first_logits, 0)
        uniforms = [c.get("uniforms", []) for c in calls]
        ids, logprobs, finish = [[] for _ in calls], [[] for _ in calls], ["length"] * n
        done = [c["max_new_tokens"] <= 0 for c in calls]
        at = torch.tensor([len(c["prompt"]) for c in calls], device=decoder.device)
        advance = None  # 1 for each row still generating (a finished row keeps rewriting its last slot)
        stops = [set(c.get("stop", [])) for c in calls]
        step = 0
        while not all(done):
            tokens, lps = choose_rows(logits, calls, uniforms, step, active=[not d for d in done])
            for i in range(n):
                if done[i]:
                    continue
                ids[i].append(tokens[i])
                logprobs[i].append(lps[i])
                if tokens[i] in stops[i]:
                    done[i], finish[i] = True, "stop"
                elif len(ids[i]) >= calls[i]["max_new_tokens"]:
                    done[i] = True
            if all(done):
                break
            feed = torch.tensor([ids[i][-1] if ids[i] else 0 for i in range(n)], device=decoder.device)
            logits = decoder.step(feed, at, n)
            if advance is None or step == 0 or any(d != a for d, a in zip(done, was_done)):
                advance = torch.tensor([0 if d else 1 for d in done], device=decoder.device)
                was_done = list(done)
            at = at + advance
            for i in range(n):
                if not done[i] and recorded[i]:
                    captures[i][0].append(decoder.captured_x[i].clone())
                    captures[i][1].append(decoder.captured_residual[i].clone())
            step += 1
    return [(ids[i], logprobs[i], finish[i], None if captures[i] is None else (torch.stack(captures[i][0][:len(ids[i])]),
                                                                                 torch.stack(captures[i][1][:len(ids[i])])))
            for i in range(n)]


def tail_gradient(model, captured, update, call, ids):
    """Σ log q of a reply and its gradient with respect to the update's A and B, from the last
    layer's captured rows (the update on the last layer only): o_proj + the update, the
    residual, the MLP, the final norm and the head, over the reply's positions, with each
    position's nucleus held fixed (greedy: the plain log-softmax), as the CPU engine's one-pass
    gradient. Returns (Σ log q, dA, dB)."""
    import torch
    xs, residuals = captured
    layer = model.model.layers[-1]
    dtype = xs.dtype
    a = update["a"].detach().float().clone().requires_grad_(True)
    b = update["b"].detach().float().clone().requires_grad_(True)
    with torch.enable_grad():
        out = layer.self_attn.o_proj(xs) + update["alpha"] * ((xs @ b.T.to(dtype)) @ a.T.to(dtype))
        h = residuals + out
        h = h + layer.mlp(layer.post_attention_layernorm(h))
        total = reply_logq(model.lm_head(model.model.norm(h)).float(), ids, call)
        total.backward()
    return float(total.detach()), a.grad.detach(), b.grad.detach()


def reply_logq(logits, ids, call):
    """Σ log q of a reply from the logits that chose its tokens ([T, V], float32): greedy calls
    the plain log-softmax; sampled ones the log-probability under each position's nucleus,
    the nucleus held fixed (as the CPU engine's sampledLogProbability). Differentiable in the
    logits; what every recorded call's gradient is taken of."""
    import torch
    temperature = call.get("temperature", 0)
    greedy = temperature <= 0
    probs = torch.softmax(logits if greedy else logits / temperature, 1)
    total = torch.log(probs.gather(1, torch.tensor(ids, device=logits.device).view(-1, 1))).sum()
    if not greedy:
        kept = nucleus_masks(probs.detach(), call.get("top_p", 1), call.get("rule", "standard"))
        total = total - torch.log((probs * kept).sum(1)).sum()
    return total


def nucleus_masks(probs, top_p, rule):
    """Each row's nucleus as a 0/1 mask over the vocabulary ([T, V], probs' dtype): exactly
    the CPU engine's (sampling.nucleus, in float32 on the host) when on the CPU; on a GPU by a
    stable sort and the device's cumulative sums."""
    import torch
    if top_p >= 1:
        return torch.ones_like(probs)
    if probs.device.type == "cpu":
        mask = torch.zeros_like(probs)
        for j in range(probs.shape[0]):
            mask[j, torch.as_tensor(nucleus(probs[j].numpy(), top_p, rule))] = 1
        return mask
    values, order = torch.sort(probs, dim=1, descending=True, stable=True)
    cum = torch.cumsum(values, 1)
    if rule == "reference":
        count = 1 + (cum[:, 1:] <= top_p).sum(1)
    else:
        count = 1 + (cum[:, :-1] < top_p).sum(1)
    in_sorted = (torch.arange(probs.shape[1], device=probs.device).view(1, -1) < count.view(-1, 1)).to(probs.dtype)
    return torch.zeros_like(probs).scatter_(1, order, in_sorted)
