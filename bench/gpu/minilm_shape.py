"""A random-weight encoder of all-MiniLM-L6-v2's shape, for timing the embed stage on a machine
that cannot fetch the model (the GPU machine has no network): SRC's config, tokenizer and
sentence-transformers files copied into OUT, the weights drawn. Its speed is the real model's;
its embeddings are not. Usage: minilm_shape.py SRC OUT (SRC may lack the weights)."""
import shutil
import sys

import torch
from transformers import BertConfig, BertModel

src, out = sys.argv[1], sys.argv[2]
shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "README.md"), dirs_exist_ok=True)
torch.manual_seed(0)
BertModel(BertConfig.from_pretrained(src)).save_pretrained(out, safe_serialization=True)
print("wrote", out)
