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
import os
import sys
import time

import numpy as np

from sampling import F32, draw, nucleus


PHASES = {}  # decode's parts: name -> (seconds, count), for the worker's log (worker.OpTiming)
CAPTURES = "graph captures (compilation included)"


def note_phase(name, seconds, count=1):
    total, n = PHASES.get(name, (0.0, 0))
    PHASES[name] = (total + seconds, n + count)


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


def fuse_projections(model):
    """Puts each layer's q, k, v projections into one weight (and bias), and its gate and up
    projections into another, the modules' own weights becoming views of them: a decode step
    then reads one weight for three (two) projections, in fewer and larger matrix products,
    with no memory added. Frozen models only (a trained model's optimiser holds its
    parameters); done once per model."""
    import torch
    if getattr(model, "haps_fused", False) or any(p.requires_grad for p in model.parameters()):
        return
    with torch.no_grad():
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            for owner, name, group in ((attn, "haps_qkv", (attn.q_proj, attn.k_proj, attn.v_proj)),
                                       (mlp, "haps_gate_up", (mlp.gate_proj, mlp.up_proj))):
                weight = torch.cat([m.weight for m in group])
                biases = [m.bias for m in group]
                bias = torch.cat(biases) if all(b is not None for b in biases) else None
                at = 0
                for m in group:
                    rows = m.weight.shape[0]
                    m.weight.data = weight[at:at + rows]
                    if bias is not None:
                        m.bias.data = bias[at:at + rows]
                    at += rows
                setattr(owner, name, (weight, bias))
    model.haps_fused = True


def layer_weights(layer, cfg):
    """A decoder layer's tensors and constants, as pre_attention and post_attention take them:
    the projections as (weight, bias) pairs, fused where fuse_projections fused them."""
    import torch.nn.functional as F
    attn, mlp = layer.self_attn, layer.mlp
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    act = F.silu if cfg.hidden_act == "silu" else mlp.act_fn
    qkv = getattr(attn, "haps_qkv", None)
    qkv = [qkv] if qkv else [(m.weight, m.bias) for m in (attn.q_proj, attn.k_proj, attn.v_proj)]
    gate_up = getattr(mlp, "haps_gate_up", None)
    gate_up = [gate_up[0]] if gate_up else [mlp.gate_proj.weight, mlp.up_proj.weight]
    pre = (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon, qkv, heads, kv_heads, attn.head_dim)
    post = (attn.o_proj.weight, attn.o_proj.bias, layer.post_attention_layernorm.weight,
            layer.post_attention_layernorm.variance_epsilon, gate_up, mlp.down_proj.weight, act)
    return pre, post


def rms_norm(h, weight, eps):
    """transformers' Llama/Qwen2/Mistral RMSNorm, operation for operation."""
    import torch
    dtype = h.dtype
    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def rotate(x, cos, sin):
    """transformers' apply_rotary_pos_emb for one of q, k ([n, heads, T, d]; cos, sin [n, T, d])."""
    import torch
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)


def pre_attention(h, cos, sin, norm, eps, qkv, heads, kv_heads, head_dim):
    """A layer's input norm, projections and rotary embedding: q [n, heads, T, d], and k, v as
    the cache holds them, [n, T, kv_heads, d]. `qkv`: one fused (weight, bias) or three."""
    import torch
    import torch.nn.functional as F
    n, t, _ = h.shape
    x = rms_norm(h, norm, eps)
    out = [F.linear(x, w, b) for w, b in qkv]
    out = out[0] if len(out) == 1 else torch.cat(out, -1)
    q, k, v = out.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], -1)
    q = q.view(n, t, heads, head_dim).transpose(1, 2)
    k = k.view(n, t, kv_heads, head_dim).transpose(1, 2)
    v = v.view(n, t, kv_heads, head_dim)
    return rotate(q, cos, sin), rotate(k, cos, sin).transpose(1, 2), v


def post_attention(o, residual, scale, lora, wo, bo, norm, eps, gate_up, wd, act):
    """A layer after its attention: the output projection (plus each row's update, scaled:
    o B^T A^T), the residual, the norm and the MLP (`gate_up`: one fused weight or two)."""
    import torch
    import torch.nn.functional as F
    out = F.linear(o, wo, bo)
    if lora is not None:
        a, b = lora
        out = out + scale.view(-1, 1, 1) * torch.bmm(torch.bmm(o, b.transpose(1, 2)), a.transpose(1, 2))
    h = residual + out
    x = rms_norm(h, norm, eps)
    if len(gate_up) == 1:
        gate, up = F.linear(x, gate_up[0]).chunk(2, -1)
    else:
        gate, up = F.linear(x, gate_up[0]), F.linear(x, gate_up[1])
    return h + F.linear(act(gate) * up, wd)


def final_logits(h, norm, eps, w):
    """The final norm and the head, in float32."""
    import torch.nn.functional as F
    return F.linear(rms_norm(h, norm, eps), w).float()


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
        self.scaling = attn.scaling
        fuse_projections(model)
        self.weights = [layer_weights(layer, cfg) for layer in self.layers]
        self.head_weights = (model.model.norm.weight, model.model.norm.variance_epsilon, model.lm_head.weight)
        self.fused = self.fuse()
        # One slot more than `length`: the scratch that graph captures and padding rows write.
        shape = (len(self.layers), rows, length + 1, self.kv_heads, self.head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.width = self.heads * self.head_dim
        self.rank = 1
        self.lora_a = torch.zeros(rows, cfg.hidden_size, self.rank, dtype=self.dtype, device=self.device)
        self.lora_b = torch.zeros(rows, self.rank, self.width, dtype=self.dtype, device=self.device)
        self.lora_scale = torch.zeros(len(self.layers), rows, dtype=self.dtype, device=self.device)
        self.graphs = {}  # by (rows' bucket, attention span, update_layers)
        self.pool = None
        self.update_layers = 0  # the last layers any row's update reaches (0: no row has one)
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
            self.graphs, self.pool = {}, None  # captured with the old buffers (their pool goes with them)
        self.lora_a.zero_()
        self.lora_b.zero_()
        self.lora_scale.zero_()
        # The products run on the layers some row's update reaches, no others (graphs are
        # captured per count: the reference's updates reach the last layer alone).
        self.update_layers = max([u["layers"] for u in updates if u is not None] or [0])
        n = len(self.layers)
        for i, u in enumerate(updates):
            if u is None:
                continue
            r = u["a"].shape[1]
            self.lora_a[i, :, :r] = u["a"].to(self.dtype)
            self.lora_b[i, :r, :] = u["b"].to(self.dtype)
            self.lora_scale[n - u["layers"]:, i] = u["alpha"]

    def forward(self, ids, positions, first=0, span=None):
        """Logits (float32) at the last position of each row: `ids` and `positions` [n, T],
        the cache rows first..first+n-1; the keys and values of every position are written to
        the cache at the row's positions, and each position attends to the row's cache up to
        it (attention reads the cache's first `span` positions, all by default: every
        position must be below it). The last layer's o_proj input and residual at the last
        position are captured. A decode step (T = 1) on a GPU runs the layers' fused pieces (`self.fused`)."""
        import torch
        import torch.nn.functional as F
        model = self.model
        n, t = ids.shape
        pre, post, head = self.fused if (t == 1 and self.fused) else (pre_attention, post_attention, final_logits)
        h = model.model.embed_tokens(ids)
        cos, sin = model.model.rotary_emb(h, positions)
        rows = slice(first, first + n)
        row_index = torch.arange(first, first + n, device=self.device).unsqueeze(1).expand(n, t)
        span = span or self.length + 1
        mask = (torch.arange(span, device=self.device).view(1, 1, 1, -1) <= positions.view(n, 1, t, 1))
        lora = (self.lora_a[rows], self.lora_b[rows])
        last = len(self.layers) - 1
        first_updated = len(self.layers) - self.update_layers
        for l, w in enumerate(self.weights):
            q, k, v = pre(h, cos, sin, *w[0])
            self.k[l].index_put_((row_index, positions), k)
            self.v[l].index_put_((row_index, positions), v)
            keys = self.k[l, rows, :span].transpose(1, 2)
            values = self.v[l, rows, :span].transpose(1, 2)
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scaling, enable_gqa=True)
            o = o.transpose(1, 2).reshape(n, t, self.width)
            if l == last:
                self.captured_x[rows].copy_(o[:, -1])
                self.captured_residual[rows].copy_(h[:, -1])
            h = post(o, h, self.lora_scale[l, rows], lora, *w[1]) if l >= first_updated else post(o, h, None, None, *w[1])
        return head(h[:, -1], *self.head_weights)

    def fuse(self):
        """The decode step's pieces compiled by torch.compile (on a GPU, unless
        HAPS_TORCH_COMPILE=0): each layer's norm, projections and rotary embedding as one
        piece, its output projection, update, residual, norm and MLP as another, so that a
        step launches a few kernels a layer instead of dozens (the attention and cache writes
        stay as they are). The pieces are the same functions the prefill runs uncompiled.
        HAPS_TORCH_COMPILE=always compiles them on the CPU too."""
        import torch
        flag = os.environ.get("HAPS_TORCH_COMPILE", "1")  # "always": on the CPU too (a check of the pieces)
        if flag == "0" or (self.device.type != "cuda" and flag != "always"):
            return None
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        return tuple(torch.compile(f) for f in (pre_attention, post_attention, final_logits))

    def step(self, ids, positions, n, reach):
        """One decode step of rows 0..n-1 (ids, positions: [n] on the device; every position
        below `reach`): a CUDA graph of the bucket's size and attention span replayed on a GPU
        (captured on first use), the plain forward elsewhere. The span is `reach` rounded up
        to a multiple of 128: attention reads the cache's filled part, not all of it."""
        span = min(self.length, -(-reach // 128) * 128)
        if self.device.type != "cuda" or n > self.rows:
            return self.forward(ids.view(n, 1), positions.view(n, 1), span=span)
        key = (min(bucket(n), self.rows), span, self.update_layers)
        g = self.graphs.get(key)
        if g is None:
            g = self.graphs[key] = self.capture(*key[:2])
        graph, static_ids, static_positions, static_logits = g
        static_ids[:n, 0] = ids
        static_positions[:n, 0] = positions
        static_positions[n:, 0] = self.length  # rows beyond n write the scratch slot
        graph.replay()
        return static_logits[:n]

    def capture(self, b, span):
        """The decode step's graph for b rows attending to `span` positions. Its forwards
        write the cache's scratch slot (position `length`, never attended), so a capture may
        come between steps of a decode in progress; they overwrite the captured rows, which
        the next replay rewrites. Graphs share one memory pool (they never run at once)."""
        import time
        import torch
        started = time.perf_counter()
        # cuBLASLt's kernels for the step's skinny products (b rows): at batch 64 of the 8B
        # shape the replay took 6.44 ms with them against 6.66 ms by cuBLAS's choice
        # (bench/README.md); only the captured decode steps, the prefill and training keep the default.
        default_blas = torch.backends.cuda.preferred_blas_library()
        torch.backends.cuda.preferred_blas_library("cublaslt")
        try:
            return self._capture(b, span, started)
        finally:
            torch.backends.cuda.preferred_blas_library(default_blas)

    def _capture(self, b, span, started):
        """capture's work: warm up (compiling the pieces), then capture."""
        import torch
        static_ids = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        static_positions = torch.full((b, 1), self.length, dtype=torch.long, device=self.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            try:  # the warm-up compiles the fused pieces (on first use)
                for _ in range(2):
                    self.forward(static_ids, static_positions, span=span)
            except Exception as e:
                if not self.fused:
                    raise
                # torch.compile may be unusable here (no triton, no compiler): decode uncompiled.
                print("haps-pipe torch worker: torch.compile of the decode step failed (%s: %s); decoding uncompiled "
                      "(HAPS_TORCH_COMPILE=0 skips the attempt)" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""),
                      file=sys.stderr, flush=True)
                self.fused = None
                for _ in range(2):
                    self.forward(static_ids, static_positions, span=span)
        torch.cuda.current_stream().wait_stream(stream)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_logits = self.forward(static_ids, static_positions, span=span)
        torch.cuda.synchronize()
        note_phase(CAPTURES, time.perf_counter() - started)
        return graph, static_ids, static_positions, static_logits


class Choices:
    """How each row of a decode chooses its tokens: greedy rows by argmax on the device;
    sampled rows exactly as the CPU engine's TokenSampler (sampling.py) on the host when the
    model is on the CPU, and on the device on a GPU (the same nucleus and inverse CDF with the
    device's sums: the logits themselves differ from the CPU's in their last bits there), with
    each row's uniforms put on the device once. Rows are grouped by rule (temperature, top_p,
    nucleus rule), each group chosen at once."""

    def __init__(self, calls, device):
        import torch
        self.n = len(calls)
        steps = max([c["max_new_tokens"] for c in calls] + [1])
        self.uniforms = [c.get("uniforms", []) for c in calls]
        groups = {}
        for i, c in enumerate(calls):
            t = c.get("temperature", 0)
            key = 0 if t <= 0 else (t, c.get("top_p", 1), c.get("rule", "standard"))
            groups.setdefault(key, []).append(i)
        self.groups = []
        for key, rows in groups.items():
            index = None if len(rows) == self.n else torch.tensor(rows, device=device)
            table = None
            if key != 0 and device.type != "cpu":  # row i's uniform of step s at [i, s]
                padded = [(self.uniforms[i] + [0.5] * steps)[:steps] for i in rows]
                table = torch.tensor(padded, dtype=torch.float32, device=device)
            self.groups.append((key, rows, index, table))

    def choose(self, logits, step, active):
        """Each row's token and log-probability ([2, n], float64, on the logits' device) from
        its logits row (float32 [n, V]) at decode step `step`; rows not `active` get zeros or
        a choice that is not read."""
        import torch
        out = torch.zeros(2, self.n, dtype=torch.float64, device=logits.device)
        for key, rows, index, table in self.groups:
            if not any(active[i] for i in rows):
                continue
            picked = logits if index is None else logits.index_select(0, index)
            if key == 0:
                best = torch.argmax(picked, 1)
                got = torch.stack([best.double(), (picked.gather(1, best.view(-1, 1)).view(-1) - torch.logsumexp(picked, 1)).double()])
            else:
                temperature, top_p, rule = key
                probs = torch.softmax(picked / temperature, 1)
                if table is not None:
                    got = device_draws(probs, top_p, rule, table[:, step])
                else:
                    got = torch.zeros(2, len(rows), dtype=torch.float64)
                    for j, i in enumerate(rows):
                        if active[i]:
                            values = probs[j].numpy().astype(F32)
                            kept, mass = nucleus(values, top_p, rule, with_mass=True)
                            tok = draw(values, kept, mass, self.uniforms[i][step])
                            got[0, j], got[1, j] = tok, float(np.log(F32(values[tok] / mass)))
            if index is None:
                out = got
            else:
                out[:, index] = got
        return out


def device_draws(probs, top_p, rule, us):
    """The nucleus and inverse CDF on the device for rows of one rule (probs [m, V], us [m]):
    sorted by probability (stable, so ties by index) for top_p < 1, else in index order; the
    nucleus is the first `count` of that order, the token the first whose cumulative sum
    passes u × the nucleus's mass. Returns [2, m] (token, log q) as float64, still on the
    device."""
    import torch
    m, size = probs.shape
    if top_p >= 1:
        values, order = probs, None
    else:
        values, order = torch.sort(probs, dim=1, descending=True, stable=True)
    cum = torch.cumsum(values, 1)
    if top_p >= 1:
        count = torch.full((m,), size, device=probs.device)
    elif rule == "reference":
        count = 1 + (cum[:, 1:] <= top_p).sum(1)
    else:
        count = 1 + (cum[:, :-1] < top_p).sum(1)
    last = (count - 1).view(-1, 1)
    mass = cum.gather(1, last)
    k = torch.minimum(torch.searchsorted(cum, us.view(-1, 1) * mass, right=True), last)
    token = k if order is None else order.gather(1, k)
    logq = torch.log(values.gather(1, k) / mass)
    return torch.stack([token.view(-1).double(), logq.view(-1).double()])


def prefill(decoder, calls, captures):
    """Each call's prompt into its own cache row (row i for call i), one call at a time; the
    logits at each prompt's last position ([n, V], float32), and a recorded call's first
    captured rows appended to its `captures` (None for others). Timed as decoding's
    "prefills"."""
    import torch
    started = time.perf_counter()
    logits = []
    for i, c in enumerate(calls):
        prompt = torch.tensor([c["prompt"]], device=decoder.device)
        positions = torch.arange(len(c["prompt"]), device=decoder.device).view(1, -1)
        logits.append(decoder.forward(prompt, positions, first=i, span=len(c["prompt"])))
        if captures[i] is not None:
            captures[i][0].append(decoder.captured_x[i].clone())
            captures[i][1].append(decoder.captured_residual[i].clone())
    if decoder.device.type == "cuda":
        torch.cuda.synchronize()
    note_phase("prefills", time.perf_counter() - started, len(calls))
    return torch.cat(logits, 0)


def decode(decoder, calls, updates):
    """Generates every call (rows of one model) together: each prompt prefilled into its own
    cache row, then one decode step a token for all rows, each token chosen by the row's own
    rule and uniforms, until every row has stopped or reached its length. On a GPU the host
    reads a step's tokens while the next step runs: that step is launched with the chosen
    tokens still on the device (a row whose token turns out to stop it wastes that one step,
    its result unread). Returns, per call, (ids, logprobs, finish reason, captured rows or
    None): the last layer's o_proj inputs and residuals at the positions whose logits chose
    the reply's tokens, for recorded calls."""
    import torch
    n = len(calls)
    decoder.set_updates(updates, max([u["a"].shape[1] for u in updates if u is not None] or [1]))
    recorded = [bool(c.get("record")) for c in calls]
    captures = [([], []) if r else None for r in recorded]
    cuda = decoder.device.type == "cuda"
    # HAPS_TORCH_OVERLAP=always: the GPU's order of work on the CPU too (a check of it)
    overlap = cuda or os.environ.get("HAPS_TORCH_OVERLAP") == "always"
    with torch.no_grad():
        first_logits = prefill(decoder, calls, captures)
        prefilled = time.perf_counter()
        captured_before = PHASES.get(CAPTURES, (0.0, 0))[0]
        choices = Choices(calls, decoder.device)
        ids, logprobs, finish = [[] for _ in calls], [[] for _ in calls], ["length"] * n
        limits = [c["max_new_tokens"] for c in calls]
        prompt_lengths = [len(c["prompt"]) for c in calls]
        done = [limit <= 0 for limit in limits]
        stops = [set(c.get("stop", [])) for c in calls]
        state = {"at": torch.tensor(prompt_lengths, device=decoder.device),
                 "advance": torch.tensor([0 if d else 1 for d in done], device=decoder.device)}  # 0: a row known to have finished

        def launch(chosen, step, unread):
            """The decode step that feeds each row's chosen token, and the choice from it for
            the rows that will want one (`unread`: the chosen tokens are not yet in `ids`)."""
            # every row's position is below its prompt and reply so far, plus one
            reach = max(length + len(reply) for length, reply in zip(prompt_lengths, ids)) + 1
            logits = decoder.step(chosen[0].long(), state["at"], n, reach)
            state["at"] = state["at"] + state["advance"]
            wanting = [not done[i] and len(ids[i]) + unread < limits[i] for i in range(n)]
            for i in range(n):
                if wanting[i] and recorded[i]:
                    captures[i][0].append(decoder.captured_x[i].clone())
                    captures[i][1].append(decoder.captured_residual[i].clone())
            return choices.choose(logits, step, wanting)

        chosen = None if all(done) else choices.choose(first_logits, 0, [not d for d in done])
        step = 0
        while chosen is not None:
            following = None
            host, read = chosen, None
            if cuda:
                host = chosen.to("cpu", non_blocking=True)
                read = torch.cuda.Event()
                read.record()
            if overlap and any(not done[i] and len(ids[i]) + 1 < limits[i] for i in range(n)):
                following = launch(chosen, step + 1, 1)
            if read is not None:
                read.synchronize()
            tokens, lps = host[0].tolist(), host[1].tolist()
            finished = False
            for i in range(n):
                if done[i]:
                    continue
                ids[i].append(int(tokens[i]))
                logprobs[i].append(lps[i])
                if ids[i][-1] in stops[i]:
                    done[i], finish[i], finished = True, "stop", True
                elif len(ids[i]) >= limits[i]:
                    done[i], finished = True, True
            if all(done):
                break
            if finished:  # such a row keeps rewriting its last slot from here on
                state["advance"] = torch.tensor([0 if d else 1 for d in done], device=decoder.device)
            chosen = following if following is not None else launch(chosen, step + 1, 0)
            step += 1
        capturing = PHASES.get(CAPTURES, (0.0, 0))[0] - captured_before
        note_phase("decode steps", time.perf_counter() - prefilled - capturing, step)
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
