"""Records sentence-transformers' all-MiniLM-L6-v2 embeddings and token ids for the encoder tests.

Run with torch and sentence-transformers installed (bench/.venv has them after bench/engine/run.sh
and `pip install sentence-transformers`): `python3 make_fixtures.py MODEL_DIR OUTDIR`. The
sentences are the repository's own text and generated Unicode mixtures (no dataset text).
"""
import json
import re, os, random, sys

import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer

model_dir, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(2)
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
lines = []
for name in ["README.md", "docs/sampling.md", "docs/engine.md", "docs/spec.md"]:
    lines += [l.strip() for l in open(os.path.join(root, name), encoding="utf-8") if len(l.strip()) > 20]
rng = random.Random(5)
pieces = ["Café au lait", "naïve résumé", "Ångström", "東京タワー", "北京大学", "한국어 문장", "Привет, мир!", "مرحبا بالعالم",
          "emoji 😀🎉", "e\u0301", "tab\tand\nnewline", "ﬁnance", "ÆØÅ æøå", "Straße", "ΑΒΓ αβγ", "\u200bzero width",
          "control\u0007char", "don't won't", "U.S.A. 3.14 $100", "ｆｕｌｌｗｉｄｔｈ", "Ⅻ Roman", "x²+y²=z²", "\u00a0nbsp"]
sentences = rng.sample(lines, 150)
for _ in range(70):
    sentences.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))))
long = " ".join(lines[:60])  # far past 256 tokens: truncated
sentences += [long, long[:1500], " ".join(["word"] * 300), "", " ", "a", "!!!", "[CLS] [SEP] [PAD]"]
# Sentences that quote the project's design notes (not in a user's clone) are left out, so that
# the repository cites only what it ships.
sentences = [s for s in sentences if not re.search(r"(REFERENCE|DESIGN)\.md", s)]
st = SentenceTransformer(model_dir, device="cpu")
emb = st.encode(sentences, batch_size=16, convert_to_tensor=True, normalize_embeddings=False).float().contiguous()
ids = [st.tokenizer(s, truncation=True, max_length=st.max_seq_length)["input_ids"] for s in sentences]
save_file({"embeddings": emb}, os.path.join(out, "minilm-embeddings.safetensors"))
with open(os.path.join(out, "minilm-cases.json"), "w") as f:
    json.dump({"sentences": sentences, "ids": ids, "max_seq_length": st.max_seq_length}, f, ensure_ascii=False)
import sentence_transformers, transformers
with open(os.path.join(out, "VERSIONS"), "w") as f:
    f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\nsentence-transformers {sentence_transformers.__version__}\n")
print(len(sentences), "sentences", emb.shape)
