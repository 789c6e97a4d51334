#!/usr/bin/env python3
"""Where a batched decode step's time goes (bench/gpu/speed.py's decode), with the decode
step's fused pieces compiled (the default on a GPU) and without (HAPS_TORCH_COMPILE=0): per
batch size, the time to capture the bucket's graph (and compile the pieces), the captured
graph's replay alone, a whole step of decoder.decode (the host's token choice and
bookkeeping around it, greedy and sampled), and how far the compiled step's logits are from
the uncompiled forward's.

    python3 bench/gpu/profile_decode.py [SHAPE] [BATCH...]     (default llama-3.1-8b 1 64)

PROFILE_COMPILE="1" measures the compiled step alone (default "1 0": both).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402

NEW = 192  # new tokens a timed decode makes (long enough that the steps outweigh the prefills' noise)


def per_step(decoder, calls, updates, repeat=3):
    """A whole decode step of these calls: a decode of their NEW new tokens less one of 2
    (the same prefills), over the steps between, the fastest of `repeat` runs of each, after
    one run that captures what the calls need."""
    from decoder import decode
    short = [dict(c, max_new_tokens=2) for c in calls]
    decode(decoder, calls, updates)
    whole = min(speed.timed(lambda: decode(decoder, calls, updates))[0] for _ in range(repeat))
    prefill = min(speed.timed(lambda: decode(decoder, short, updates))[0] for _ in range(repeat))
    return (whole - prefill) / (calls[0]["max_new_tokens"] - 2)


def main():
    import torch
    from decoder import Decoder, decode
    shape = sys.argv[1] if len(sys.argv) > 1 else "llama-3.1-8b"
    batches = [int(b) for b in sys.argv[2:]] or [1, 64]
    model = speed.random_model(shape, torch.bfloat16)
    model.requires_grad_(False)
    vocab = model.config.vocab_size
    for compiled in os.environ.get("PROFILE_COMPILE", "1 0").split():
        os.environ["HAPS_TORCH_COMPILE"] = compiled
        decoder = Decoder(model, max(batches), 768)
        for batch in batches:
            prompts = torch.randint(0, vocab, (batch, 512)).tolist()
            calls = [{"prompt": p, "max_new_tokens": NEW, "stop": [], "temperature": 0} for p in prompts]
            sampled = [dict(c, temperature=1.0, top_p=0.9, rule="reference", uniforms=[0.5] * NEW) for c in calls]
            start = time.perf_counter()
            decode(decoder, [dict(c, max_new_tokens=2) for c in calls], [None] * batch)
            first = time.perf_counter() - start
            ids = torch.zeros(batch, dtype=torch.long, device=speed.DEVICE)
            positions = torch.full((batch,), 600, dtype=torch.long, device=speed.DEVICE)
            with torch.no_grad():
                replay, logits = speed.timed(lambda: decoder.step(ids, positions, batch, 601).clone(), repeat=50)  # span 640
                difference = None
                if decoder.fused:  # the same step by the plain pieces, on the same cache
                    fused, decoder.fused = decoder.fused, None
                    plain = decoder.forward(ids.view(-1, 1), positions.view(-1, 1))
                    decoder.fused = fused
                    difference = ((logits - plain).abs().max().item(), plain.abs().max().item(),
                                  int((logits.argmax(1) == plain.argmax(1)).sum()))
                # Joint RL's calls: sampled, each under its own rank-8 update of the last layer.
                hidden = model.config.hidden_size
                updates = [{"alpha": 0.01, "layers": 1, "a": torch.randn(hidden, 8, device=speed.DEVICE) * 0.02,
                            "b": torch.randn(8, decoder.width, device=speed.DEVICE) * 0.02} for _ in range(batch)]
                steps = [per_step(decoder, c, u) for c, u in ((calls, [None] * batch), (sampled, [None] * batch), (sampled, updates))]
            line = "compile=%s batch %d: first decode (capture%s) %.1f s; replay %.2f ms; whole step %.2f ms greedy, %.2f ms sampled, %.2f ms sampled under updates" % (
                compiled, batch, " + compile" if compiled == "1" else "", first, replay * 1e3, *[t * 1e3 for t in steps])
            if difference:
                line += "; |compiled - plain| max %.3g (logits' scale %.3g), argmax equal %d/%d" % (difference + (batch,))
            print(line, flush=True)
        del decoder
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
