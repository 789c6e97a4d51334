"""Records the engine's reference fixtures with Hugging Face transformers and tokenizers.

Run where torch, transformers and tokenizers are installed (the GPU machine of the device tool,
or a throw-away venv): `python3 make_fixtures.py OUTDIR`. Everything runs on the CPU in float32.
Writes, per architecture (llama, qwen2, mistral), a tiny random model in the Hugging Face
layout and `reference.safetensors` with its logits, greedy continuations, LoRA-patched logits,
the LoRA log-probability gradient and a training-loss gradient; plus two byte-level BPE
tokenizers trained with `tokenizers` and their encodings of a few thousand strings.
"""
import json
import re, os, random, sys, unicodedata

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, MistralConfig, MistralForCausalLM

OUT = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(4)

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, initializer_range=0.2,
              bos_token_id=0, eos_token_id=1, pad_token_id=2)
ARCHS = {
    "llama": (LlamaConfig, LlamaForCausalLM, dict(rope_theta=500000.0, tie_word_embeddings=False,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 16})),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)),
    "mistral": (MistralConfig, MistralForCausalLM, dict(rope_theta=1000000.0, tie_word_embeddings=False, sliding_window=None)),
}
PROMPTS = [[0, 17, 42, 5, 88, 23, 61, 9], [0, 3, 77, 12], [0, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60]]
NEW_TOKENS = 12
LORA_R, LORA_ALPHA, LORA_LAYERS = 4, 0.5, 1


def logprob_sum(logits, tokens, temperature, top_p):
    """Sum over positions of log p(token) under the top-p renormalised distribution (the reference's rl_batch.py; docs/routing.md)."""
    probs = torch.softmax(logits / temperature, dim=-1)
    total = 0
    for row, tok in zip(probs, tokens):
        sorted_p, order = torch.sort(row, descending=True)
        cum = torch.cumsum(sorted_p, 0)
        keep = (cum - sorted_p) < top_p  # the smallest prefix whose mass reaches top_p
        mask = torch.zeros_like(row, dtype=torch.bool)
        mask[order[keep]] = True
        assert mask[tok], "the sampled token is outside the nucleus"
        total = total + torch.log(row[tok] / row[mask].sum())
    return total


for name, (Config, Model, extra) in ARCHS.items():
    cfg = Config(**COMMON, **extra, torch_dtype="float32")
    if name == "qwen2":
        cfg.max_window_layers = 2
    model = Model(cfg).float().eval()
    with torch.no_grad():  # the final norm and the layer norms are ones at init: vary them
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            if n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    d = os.path.join(OUT, name)
    model.save_pretrained(d, safe_serialization=True)
    model.generation_config.save_pretrained(d)
    ref = {}
    with torch.no_grad():
        for i, ids in enumerate(PROMPTS):
            x = torch.tensor([ids])
            ref[f"logits.{i}"] = model(x).logits[0].contiguous()
            out = model.generate(x, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=1, pad_token_id=2)
            ref[f"greedy.{i}"] = out[0, len(ids):].to(torch.int32).contiguous()
            seq = list(ids)  # greedy without stopping at the end-of-sequence token
            for _ in range(NEW_TOKENS):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
            ref[f"greedy_ignore_eos.{i}"] = torch.tensor(seq[len(ids):], dtype=torch.int32)
        # A batch with left padding: the attention mask must hide the pads.
        a, b = PROMPTS[0], PROMPTS[1]
        batch = torch.tensor([a, [2] * (len(a) - len(b)) + b])
        mask = torch.tensor([[1] * len(a), [0] * (len(a) - len(b)) + [1] * len(b)])
        ref["batch.logits"] = model(batch, attention_mask=mask).logits.contiguous()

    # LoRA on o_proj of the last LORA_LAYERS layers: W += alpha * A @ B, A (hidden x r), B (r x hidden).
    hidden = cfg.hidden_size
    A = (0.5 * torch.randn(hidden, LORA_R)).requires_grad_(True)
    B = (0.5 * torch.randn(LORA_R, hidden)).requires_grad_(True)
    ref["lora.A"], ref["lora.B"] = A.detach().clone(), B.detach().clone()
    layers = model.model.layers[-LORA_LAYERS:]
    originals = [l.self_attn.o_proj.weight.detach().clone() for l in layers]
    for l, w in zip(layers, originals):
        del l.self_attn.o_proj.weight
        l.self_attn.o_proj.weight = w + LORA_ALPHA * (A @ B)
    x = torch.tensor([PROMPTS[0]])
    logits = model(x).logits[0]
    ref["lora.logits"] = logits.detach().contiguous()
    # The log-probability of a sampled continuation (temperature 1, top-p 0.9) and its gradient.
    g = torch.Generator().manual_seed(7)
    seq = list(PROMPTS[0])
    with torch.no_grad():
        for _ in range(6):
            p = torch.softmax(model(torch.tensor([seq])).logits[0, -1], -1)
            sp, order = torch.sort(p, descending=True)
            keep = (torch.cumsum(sp, 0) - sp) < 0.9
            q = torch.zeros_like(p); q[order[keep]] = p[order[keep]]
            seq.append(int(torch.multinomial(q / q.sum(), 1, generator=g)))
    cont = seq[len(PROMPTS[0]):]
    logits = model(torch.tensor([seq])).logits[0]
    lp = logprob_sum(logits[len(PROMPTS[0]) - 1:-1], cont, 1.0, 0.9)
    lp.backward()
    ref["lora.sample"] = torch.tensor(seq, dtype=torch.int32)
    ref["lora.logprob"] = lp.detach().reshape(1)
    ref["lora.grad_A"], ref["lora.grad_B"] = A.grad.contiguous(), B.grad.contiguous()
    for l, w in zip(layers, originals):
        l.self_attn.o_proj.weight = torch.nn.Parameter(w)

    # Training: mean next-token cross-entropy of one sequence, and the gradient of every parameter.
    model.zero_grad()
    x = torch.tensor([PROMPTS[2]])
    loss = model(x, labels=x).loss
    loss.backward()
    ref["train.loss"] = loss.detach().reshape(1)
    for n, p in model.named_parameters():
        ref["train.grad." + n] = p.grad.contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors"))
    # The same weights in half precisions, for the safetensors reader.
    if name == "llama":
        sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, os.path.join(OUT, "llama-bf16.safetensors"))
        save_file({k: v.to(torch.float16) for k, v in sd.items()}, os.path.join(OUT, "llama-f16.safetensors"))
    print(name, "ok", flush=True)

# Tokenizers: byte-level BPE trained with `tokenizers` on text of the repository, one with the
# GPT-2 pre-tokenizer (ByteLevel's own regex), one with Llama 3's split pattern.
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
corpus = []
for dirpath, _, files in os.walk(root):
    if "/.git" in dirpath or "/.build" in dirpath or "Fixtures" in dirpath:
        continue
    for f in sorted(files):
        if f.endswith((".md", ".txt", ".swift", ".py", ".json")):
            try:
                corpus.extend(open(os.path.join(dirpath, f), encoding="utf-8").read().splitlines())
            except (UnicodeDecodeError, OSError):
                pass
rng = random.Random(11)
pieces = ["héllo wörld", "naïve café", "日本語のテキスト", "中文字符", "한국어", "Здравствуй мир", "مرحبا بالعالم",
          "emoji 😀🎉👍🏽", "e\u0301 combining", "tab\tsep", "  two  spaces", "\n\nnew lines\r\n", "don't we'll I'M",
          "12345 6789 3.14159", "x=1+2*3", "ÄÖÜ ß", "Ελληνικά", "עברית", "हिन्दी", "ﬁ ligature", "\u00a0nbsp", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]
for _ in range(400):
    corpus.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))))
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
tests = []
for _ in range(2200):
    line = rng.choice(corpus)
    if line:
        start = rng.randrange(len(line))
        tests.append(line[start:start + rng.randint(1, 120)])
for _ in range(1300):
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(pieces))
        elif r < 0.7:
            parts.append(" " * rng.randint(0, 3) + str(rng.randint(0, 10 ** rng.randint(1, 7))))
        elif r < 0.85:
            parts.append("".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff), rng.randint(0x3000, 0x9fff),
                                                  rng.randint(0x1f300, 0x1faff)])) for _ in range(rng.randint(1, 6))))
        else:
            parts.append(rng.choice(["\n", "\t", "  ", "\r\n", " \n ", "'s", "'LL", "?!", "..."]))
    tests.append(("" if rng.random() < 0.5 else " ").join(parts))
tests += ["", " ", "  ", "\n", "a", "'s", " 's", "1234567", "😀", "\u200b", "a  b   c    ", "x\n\n\ny"]
# Cases that quote the project's design notes (not in a user's clone) are left out, so that the
# repository cites only what it ships (the tokenizers still train on every line).
tests = [t for t in tests if not re.search(r"(REFERENCE|DESIGN)\.md", t)]
results = {"strings": tests}
for kind in ["gpt2", "llama3"]:
    tok = Tokenizer(models.BPE())
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.save(os.path.join(OUT, f"tokenizer-{kind}.json"))
    results[kind] = [tok.encode(t).ids for t in tests]
    assert all(tok.decode(ids) == t for ids, t in zip(results[kind], tests)), "byte-level BPE round-trips"
with open(os.path.join(OUT, "tokenizer-cases.json"), "w") as f:
    json.dump(results, f, ensure_ascii=False, separators=(",", ":"))
import transformers, tokenizers
with open(os.path.join(OUT, "VERSIONS"), "w") as f:
    f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\ntokenizers {tokenizers.__version__}\n")
print("done")
