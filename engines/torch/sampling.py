"""Token choice, exactly as the CPU engine's TokenSampler: the top-p nucleus and the draw at
the caller's uniform, in float32, vectorised with numpy's sequential accumulations (cumsum and
subtract.accumulate add in order, as the CPU engine's loops do), so that a 128k vocabulary
costs a few array passes a token, not a Python loop."""
import numpy as np

F32 = np.float32


def nucleus(values, top_p, rule, with_mass=False):
    """The tokens the top-p nucleus keeps, most probable first (ties by index), in float32
    as the CPU engine's TokenSampler.nucleus; top_p ≥ 1 keeps every token in index order. The
    standard rule keeps the token that crosses top_p, the reference's drops it (but always
    keeps the first). With their total mass when asked."""
    values = np.asarray(values, dtype=F32)
    if top_p >= 1:
        tokens = np.arange(len(values))
        mass = np.cumsum(values, dtype=F32)[-1]
    else:
        order = np.argsort(-values, kind="stable")  # by probability, ties by index
        cum = np.cumsum(values[order], dtype=F32)  # cum[i]: the mass once token i is in
        p = F32(top_p)
        if rule == "reference":
            count = 1 + int(np.count_nonzero(cum[1:] <= p))
        else:
            count = 1 + int(np.count_nonzero(cum[:-1] < p))
        tokens, mass = order[:count], cum[count - 1]
    return (tokens, F32(mass)) if with_mass else tokens


def draw(values, tokens, mass, uniform):
    """The inverse CDF over the nucleus at `uniform`: u = uniform · mass, then the first token
    whose probability exceeds what is left of u after the ones before it (the last token when
    none does), each subtraction in float32 in order."""
    u = F32(F32(uniform) * mass)
    kept = values[tokens]
    left = np.subtract.accumulate(np.concatenate([np.array([u], dtype=F32), kept[:-1]]), dtype=F32)
    hits = np.flatnonzero(left < kept)
    return int(tokens[hits[0]] if len(hits) else tokens[-1])


def choose(logits, temperature, top_p, rule, uniform):
    """A token and its log-probability from one row of float32 logits (a torch tensor), exactly
    as the CPU engine's TokenSampler.choose: greedy is the first maximum with the plain
    log-softmax; sampling draws by the inverse CDF of the top-p nucleus at the caller's uniform
    and returns the log-probability under the renormalised nucleus."""
    import torch
    if temperature <= 0:
        best = int(torch.argmax(logits).item())
        return best, float(logits[best] - torch.logsumexp(logits, 0))
    values = torch.softmax(logits / temperature, 0).cpu().numpy().astype(F32)
    tokens, mass = nucleus(values, top_p, rule, with_mass=True)
    pick = draw(values, tokens, mass, uniform())
    return pick, float(np.log(F32(values[pick] / mass)))
