"""bench/routers' peer for the embed stage: sentence-transformers (PyTorch's CPU build, the same
thread count) embedding the same prompts, each distinct text once, with its default batches of
32. Prints one JSON object: prompts and seconds."""
import csv, json, os, sys, time

import torch
from sentence_transformers import SentenceTransformer

data, model, threads = sys.argv[1], sys.argv[2], int(os.environ.get("THREADS", "2"))
torch.set_num_threads(threads)
texts, seen = [], set()
for split in ["test", "train"]:  # the embed stage's order: its inputs by name
    with open(os.path.join(data, split + ".csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t = row["prompt"].strip()
            if t not in seen:
                seen.add(t)
                texts.append(t)
m = SentenceTransformer(model, device="cpu")
m.encode(texts[:32], batch_size=32)
t0 = time.perf_counter()
m.encode(texts, batch_size=32)
print(json.dumps({"prompts": len(texts), "seconds": time.perf_counter() - t0, "threads": threads, "torch": torch.__version__}))
