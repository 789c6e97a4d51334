"""bench/encoder's peer: sentence-transformers (PyTorch on the CPU, same thread count) encoding
the same HotpotQA paragraphs in the same batches. Prints one JSON object."""
import json, os, sys, time

import torch
from sentence_transformers import SentenceTransformer

threads, count, batch = int(os.environ.get("THREADS", "2")), int(os.environ.get("SENTENCES", "512")), int(os.environ.get("BATCH", "32"))
shared, model = os.environ.get("SHARED", "dataset"), os.environ.get("MODEL", "models/all-MiniLM-L6-v2")
torch.set_num_threads(threads)
paragraphs = []
for split in ["train", "valid", "test"]:
    for line in open(os.path.join(shared, split + ".jsonl"), encoding="utf-8"):
        paragraphs += ["".join(sentences) for _, sentences in json.loads(line)["context"]]
paragraphs = paragraphs[:count]
m = SentenceTransformer(model, device="cpu")
m.encode(paragraphs[:batch], batch_size=batch)
t0 = time.perf_counter()
m.encode(paragraphs, batch_size=batch)
elapsed = time.perf_counter() - t0
print(json.dumps({"threads": threads, "sentences": len(paragraphs), "sentences_per_s": len(paragraphs) / elapsed, "torch": torch.__version__}))
