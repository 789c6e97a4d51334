"""Sentence embeddings in the worker: a BERT-style encoder (all-MiniLM-L6-v2 and its kind)
from a Hugging Face directory, run over token ids that haps-pipe's own WordPiece made, then
pooled and normalised as haps-pipe says (the directory's sentence-transformers settings, read
in Swift). Tensor work only: the tokenizer and the settings stay in Swift (docs/engine.md)."""
import sys
import time


class Encoders:
    """Loaded encoders by (directory, device, dtype), kept for the worker's life."""

    def __init__(self):
        self.encoders = {}

    def get(self, directory, device, dtype):
        import torch
        from transformers import AutoModel
        key = (directory, device, dtype)
        if key not in self.encoders:
            t = time.perf_counter()
            dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
            self.encoders[key] = AutoModel.from_pretrained(directory, dtype=dt).to(device).eval()
            print("haps-pipe torch worker: encoder %s loaded on %s (%s) in %.1f s" % (directory, device, dtype, time.perf_counter() - t), file=sys.stderr)
        return self.encoders[key]


def embed(model, ids, pooling, normalize, batch_rows=256):
    """Embeddings [len(ids), hidden] (float32, CPU) of token-id lists, in their order. Texts are
    batched by length (little padding), padding masked from attention and from the pooling."""
    import torch
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty(len(ids), model.config.hidden_size, dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_rows):
            rows = order[start:start + batch_rows]
            lengths = [len(ids[i]) for i in rows]
            width = max(lengths)
            flat = []
            for i in rows:
                flat += ids[i] + [0] * (width - len(ids[i]))
            tokens = torch.tensor(flat, dtype=torch.long).view(len(rows), width).to(device)
            mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long().to(device)
            hidden = model(input_ids=tokens, attention_mask=mask, token_type_ids=torch.zeros_like(tokens)).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            if pooling == "cls":
                pooled = hidden[:, 0]
            elif pooling == "max":
                pooled = hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
            elif pooling == "mean":
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
            else:
                raise ValueError("unknown pooling '%s' (mean, cls or max)" % pooling)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1, eps=1e-12)
            out[torch.tensor(rows)] = pooled.cpu()
    return out
