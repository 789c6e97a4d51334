#!/usr/bin/env python3
"""Where a batched decode step's time goes (bench/gpu/speed.py's decode at one batch size):
the captured graph's replay alone against a whole step of decoder.decode (the host's token
choice and bookkeeping around it), and torch.profiler's top CUDA kernels of one replay.

    python3 bench/gpu/profile_decode.py [BATCH] [SHAPE]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402


def main():
    import torch
    from decoder import Decoder, decode
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    shape = sys.argv[2] if len(sys.argv) > 2 else "llama-3.1-8b"
    model = speed.random_model(shape, torch.bfloat16)
    model.requires_grad_(False)
    decoder = Decoder(model, batch, 768)
    vocab = model.config.vocab_size
    prompts = torch.randint(0, vocab, (batch, 512)).tolist()
    calls = [{"prompt": p, "max_new_tokens": 64, "stop": [], "temperature": 0} for p in prompts]
    decode(decoder, calls, [None] * batch)
    ids = torch.zeros(batch, dtype=torch.long, device="cuda")
    positions = torch.full((batch,), 600, dtype=torch.long, device="cuda")
    with torch.no_grad():
        decoder.step(ids, positions, batch)
        replay, _ = speed.timed(lambda: decoder.step(ids, positions, batch), repeat=50)
        whole, _ = speed.timed(lambda: decode(decoder, calls, [None] * batch))
        prefill, _ = speed.timed(lambda: decode(decoder, [dict(c, max_new_tokens=1) for c in calls], [None] * batch))
        print("batch %d: graph replay %.2f ms; a whole decode step %.2f ms" % (batch, replay * 1e3, (whole - prefill) / 63 * 1e3))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                decoder.step(ids, positions, batch)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))
        eager, _ = speed.timed(lambda: decoder.forward(ids.view(-1, 1), positions.view(-1, 1)), repeat=10)
        print("eager forward %.2f ms" % (eager * 1e3))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            decoder.forward(ids.view(-1, 1), positions.view(-1, 1))
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))


if __name__ == "__main__":
    main()
