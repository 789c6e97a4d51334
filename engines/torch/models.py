"""Models in the worker: loading Hugging Face directories, their weights in and out, the
per-call LoRA update, the parameter generators' forward, and optimiser state by name."""
import glob
import os


class Models:
    """Loaded models by handle, each with its device and dtype."""

    def __init__(self):
        self.models = {}
        self.next_id = 0

    def load(self, directory, device, dtype):
        import torch
        from transformers import AutoModelForCausalLM
        dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dt).to(device).eval()
        handle = self.next_id
        self.next_id += 1
        self.models[handle] = model
        return handle, model

    def __getitem__(self, handle):
        if handle not in self.models:
            raise KeyError("no model %s in this worker" % handle)
        return self.models[handle]

    def names(self):
        """The loaded models' directory names, sorted (for the worker's log)."""
        import os
        return sorted({os.path.basename(os.path.normpath(m.name_or_path or "?")) for m in self.models.values()})

    def trainable(self, handle):
        """A model whose weights steps change (the router's backbone), or an error."""
        model = self[handle]
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError("model %s was loaded frozen; only the router's backbone is trained" % handle)
        return model


def named_weights(model):
    """A model's weights by torch's names, each once (a tied head is its embedding)."""
    return list(model.named_parameters())


def read_weights(directory):
    """Every tensor of a directory's safetensors files (one file, or shards)."""
    from safetensors.torch import load_file
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    if not files:
        raise FileNotFoundError("no .safetensors file in %s" % directory)
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


def set_weights(model, weights, source):
    """Copies named weights into a model's parameters, each converted to the parameter's
    dtype and device; a parameter the weights lack, or a weight of another shape, is an
    error naming it and `source` (a tied head may be absent)."""
    import torch
    params = dict(model.named_parameters())
    for name, p in params.items():
        if name not in weights:
            raise KeyError("%s has no weight '%s'" % (source, name))
        w = weights[name]
        if tuple(w.shape) != tuple(p.shape):
            raise ValueError("%s: '%s' has shape %s, the model's is %s" % (source, name, list(w.shape), list(p.shape)))
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name].to(device=p.device, dtype=p.dtype))


def save_weights(model, path):
    """model.safetensors with torch's names, float32 (what the CPU engine writes)."""
    from safetensors.torch import save_file

    def alone(t):  # a view of a fused projection (decoder.fuse_projections) saved as its own copy
        return t if t.untyped_storage().nbytes() == t.numel() * t.element_size() else t.clone()
    save_file({n: alone(p.detach().float().cpu().contiguous()) for n, p in named_weights(model)}, path, metadata={"format": "pt"})


def round_to_bfloat16(model):
    """Each parameter rounded to bfloat16 and back (round to nearest even)."""
    import torch
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


def parameter_count(directory):
    """The number of weights in a directory's safetensors files, from their headers alone."""
    import json
    import struct
    count = 0
    for f in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        with open(f, "rb") as h:
            (n,) = struct.unpack("<Q", h.read(8))
            header = json.loads(h.read(n))
        for name, t in header.items():
            if name != "__metadata__":
                size = 1
                for d in t["shape"]:
                    size *= d
                count += size
    return count


def check_memory(directory, device, dtype, trainable):
    """Refuses, before loading, a model that cannot fit in the GPU's free memory: its weights
    in `dtype` and, for a trainable one, gradients and AdamW's two moments (1.2x for
    activations and the allocator); the error names the model, the need and what is free."""
    import torch
    if not str(device).startswith("cuda"):
        return
    free, total = torch.cuda.mem_get_info(torch.device(device))
    per = {"float32": 4, "bfloat16": 2}[dtype]
    need = parameter_count(directory) * (per * 4 if trainable else per) * 1.2
    if need > free:
        gib = 1024 ** 3
        raise MemoryError("%s needs about %.1f GiB on %s (%s weights%s); %.1f of its %.1f GiB are free" % (
            directory, need / gib, device, dtype, ", gradients and AdamW moments" if trainable else "", free / gib, total / gib))


class UpdateHooks:
    """The per-call LoRA update on the last `layers` layers' o_proj: output + alpha · x Bᵀ Aᵀ,
    x the o_proj input (as the CPU engine's addLoRA)."""

    def __init__(self, model):
        self.update = None
        layers = model.model.layers
        self.layers = layers
        for i, layer in enumerate(layers):
            layer.self_attn.o_proj.register_forward_hook(self.hook(i))

    def hook(self, index):
        def apply(module, inputs, output):
            u = self.update
            if u is None or index < len(self.layers) - u["layers"]:
                return output
            x = inputs[0]
            return output + u["alpha"] * ((x @ u["b"].T.to(x.dtype)) @ u["a"].T.to(x.dtype))
        return apply


def generator_forward(g, pooled, rank):
    """A (target × rank) and B (rank × target) from a pooled state, as the CPU engine's
    ParameterGenerator.forward: Linear+ReLU layers, then the two heads."""
    import torch
    x = pooled.reshape(1, -1)
    i = 0
    while "mlp.%d.weight" % (2 * i) in g:
        x = torch.relu(x @ g["mlp.%d.weight" % (2 * i)].T + g["mlp.%d.bias" % (2 * i)])
        i += 1
    a = x @ g["head_a.weight"].T + g["head_a.bias"]
    b = x @ g["head_b.weight"].T + g["head_b.bias"]
    target = a.numel() // rank
    return a.reshape(target, rank), b.reshape(rank, target)


def adamw(params, weight_decay):
    """torch's AdamW as the CPU engine's: betas (0.9, 0.999), eps 1e-8; the rate is set per step."""
    import torch
    return torch.optim.AdamW(params, lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)


def optimizer_state(opt, names, prefix):
    """An AdamW's moments and step by parameter name: {prefix + name + ".exp_avg": ...}."""
    out = {}
    for p, name in zip([p for g in opt.param_groups for p in g["params"]], names):
        s = opt.state.get(p)
        if s:
            for k in ("exp_avg", "exp_avg_sq"):
                out["%s%s.%s" % (prefix, name, k)] = s[k]
            out["%s%s.step" % (prefix, name)] = s["step"].reshape(1).float()
    return out


def load_optimizer_state(opt, names, prefix, tensors):
    """The inverse of `optimizer_state`: moments and step from named tensors (none: fresh)."""
    import torch
    for p, name in zip([p for g in opt.param_groups for p in g["params"]], names):
        key = "%s%s." % (prefix, name)
        if key + "exp_avg" not in tensors:
            opt.state.pop(p, None)
            continue
        opt.state[p] = {"step": tensors[key + "step"].reshape(()).to(torch.float32).cpu(),
                        "exp_avg": tensors[key + "exp_avg"].to(p.device, p.dtype).clone(),
                        "exp_avg_sq": tensors[key + "exp_avg_sq"].to(p.device, p.dtype).clone()}


def sft_loss(model, batch, starts, device):
    """The SFT loss of a batch, as the CPU engine's DecoderTrainer: each sequence's mean
    next-token loss on its targets (positions from max(1, start)), summed over the batch and
    divided by its size; one padded forward (right padding, masked), the head applied only at
    target positions. None when no sequence has a target."""
    import torch
    n = len(batch)
    width = max(len(s) for s in batch)
    ids = torch.zeros(n, width, dtype=torch.long, device=device)
    mask = torch.zeros(n, width, dtype=torch.long, device=device)
    rows, cols, targets, weights = [], [], [], []
    for i, (seq, start) in enumerate(zip(batch, starts)):
        ids[i, :len(seq)] = torch.tensor(seq, device=device)
        mask[i, :len(seq)] = 1
        first = max(1, start)
        count = len(seq) - first
        for j in range(first, len(seq)):
            rows.append(i)
            cols.append(j - 1)
            targets.append(seq[j])
            weights.append(1.0 / (count * n))
    if not targets:
        return None
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
    logp = torch.log_softmax(model.lm_head(picked).float(), -1)
    nll = -logp.gather(1, torch.tensor(targets, device=device).view(-1, 1)).view(-1)
    return (nll * torch.tensor(weights, device=device)).sum()
