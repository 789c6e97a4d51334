"""A generated routing table in the long layout (`haps-pipe import`'s): PROMPTS prompts x K
models, each with a score in {0, 1} and a cost, written as train.csv and test.csv (80/20).
Prompts come in five types; each model has its own skill per type and its own price, so that
routing by type or by text pays. Deterministic for a SEED."""
import csv, os, random, sys

out, prompts, k, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
types = ["math", "code", "qa", "writing", "reasoning"]
words = {"math": ["integral", "prime", "matrix", "sum", "derivative", "probability"],
         "code": ["function", "loop", "regex", "compile", "recursion", "pointer"],
         "qa": ["capital", "river", "author", "planet", "year", "inventor"],
         "writing": ["poem", "letter", "summary", "essay", "story", "slogan"],
         "reasoning": ["puzzle", "riddle", "logic", "sequence", "deduce", "paradox"]}
models = [f"m{i}" for i in range(k)]
price = {m: 0.0002 * (2.2 ** i) for i, m in enumerate(models)}      # dearer models...
skill = {m: {t: min(0.95, 0.25 + 0.12 * i + rng.uniform(-0.2, 0.2)) for t in types} for i, m in enumerate(models)}  # ...mostly better
os.makedirs(out, exist_ok=True)
rows = {"train": [], "test": []}
for p in range(prompts):
    t = rng.choice(types)
    text = f"{t} task {p}: " + " ".join(rng.choice(words[t]) for _ in range(rng.randint(4, 12))) + "?"
    hard = rng.random()  # a prompt's difficulty shifts every model's chance
    split = "train" if p < prompts * 0.8 else "test"
    for m in models:
        ok = rng.random() < skill[m][t] * (1.3 - 0.6 * hard)
        tokens = 50 + len(text) // 4 + rng.randint(0, 200)
        rows[split].append({"id": f"p{p}", "prompt": text, "model": m, "score": 1.0 if ok else 0.0,
                            "cost": round(tokens * price[m] / 1000, 8), "type": t})
for split, rs in rows.items():
    with open(os.path.join(out, split + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "prompt", "model", "score", "cost", "type"])
        w.writeheader()
        w.writerows(rs)
print(f"wrote {out}/train.csv and test.csv: {prompts} prompts x {k} models")
