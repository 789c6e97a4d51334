#!/usr/bin/env python3
"""The torch worker's speed on a GPU at the paper's shapes, with random weights (no weights
can be downloaded here), against peers in the same run (issue 27's benchmarks):

- decode: the worker's batched decoder (engines/torch/decoder.py: static KV cache, CUDA
  graphs) on the Llama-3.1-8B and Qwen2.5-7B shapes in bfloat16, 512-token prompts, 128 new
  tokens, at batch 1 and 64; against transformers' `generate` on the same model, and
  against the memory-bandwidth limit (weight bytes ÷ 4.8 TB/s a step);
- a recorded call (the gradient of Σ log q with respect to A and B): the worker's tail
  gradient from captured rows against the taped full pass it replaces;
- router SFT: the worker's SFT step on the Llama-3.2-1B shape (pure bfloat16, as the
  reference's `sft.py` loads it) against transformers' `Trainer` with the reference's
  arguments (bf16=True, batch 8, gradient accumulation 8), tokens a second.

    python3 bench/gpu/speed.py OUT.json [--quick]
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "engines", "torch"))

BANDWIDTH = 4.8e12  # H200 HBM3e, bytes a second
DEVICE = os.environ.get("BENCH_DEVICE", "cuda")  # "cpu" with BENCH_SMOKE=1: a check of this script on tiny shapes
SMOKE = os.environ.get("BENCH_SMOKE") == "1"

SHAPES = {
    "llama-3.1-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=131072,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}, tie_word_embeddings=False),
    "qwen2.5-7b": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, rope_theta=1000000.0, max_position_embeddings=32768,
                       tie_word_embeddings=False, use_sliding_window=False),
    "llama-3.2-1b": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=131072,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}, tie_word_embeddings=True),
}


def random_model(shape, dtype):
    """A model of the shape with random weights (std 0.02), built on the GPU."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    fields = dict(SHAPES[shape])
    if SMOKE:
        fields.update(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    return model


def weight_bytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


def sync():
    import torch
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat=1):
    sync()
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    sync()
    return (time.perf_counter() - t) / repeat, out


def decode_bench(shape, batches, new_tokens, prompt_len, peer_batches):
    import torch
    from decoder import Decoder, decode
    model = random_model(shape, torch.bfloat16)
    model.requires_grad_(False)
    nbytes = weight_bytes(model)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    out = {"shape": shape, "weight_gb": nbytes / 1e9, "prompt": prompt_len, "new_tokens": new_tokens, "ours": {}, "transformers_generate": {}}
    decoder = Decoder(model, max(batches), -(-(prompt_len + new_tokens) // 256) * 256)
    for b in batches:
        prompts = torch.randint(0, vocab, (b, prompt_len), generator=g).tolist()

        def calls(n):
            return [{"prompt": p, "max_new_tokens": n, "stop": [], "temperature": 0} for p in prompts]
        decode(decoder, calls(4), [None] * b)  # captures the bucket's graph
        prefill, _ = timed(lambda: decode(decoder, calls(1), [None] * b))
        total, results = timed(lambda: decode(decoder, calls(new_tokens), [None] * b))
        steps = new_tokens - 1
        per_step = (total - prefill) / steps
        limit = b * BANDWIDTH / nbytes
        out["ours"][str(b)] = {"tokens_per_s": b / per_step, "ms_per_step": per_step * 1e3, "prefill_s": prefill,
                               "limit_tokens_per_s": limit, "share_of_limit": (b / per_step) / limit,
                               "tokens": sum(len(r[0]) for r in results)}
        print(shape, "ours batch", b, out["ours"][str(b)], flush=True)
    # Sampling (temperature 1, top-p 0.9 on the device) and a recorded call at batch 1.
    prompt = torch.randint(0, vocab, (1, prompt_len), generator=g).tolist()[0]
    sampled = [{"prompt": prompt, "max_new_tokens": new_tokens, "stop": [], "temperature": 1.0, "top_p": 0.9, "rule": "reference",
                "uniforms": [0.5] * new_tokens}]
    decode(decoder, sampled, [None])
    t, _ = timed(lambda: decode(decoder, sampled, [None]))
    out["ours"]["1_sampled_top_p_0.9"] = {"tokens_per_s": new_tokens / t}
    for b in peer_batches:
        ids = torch.randint(0, vocab, (b, prompt_len), generator=g).to(DEVICE)
        kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        model.generate(ids, **dict(kwargs, max_new_tokens=4, min_new_tokens=4))
        prefill, _ = timed(lambda: model.generate(ids, **dict(kwargs, max_new_tokens=1, min_new_tokens=1)))
        total, _ = timed(lambda: model.generate(ids, **kwargs))
        per_step = (total - prefill) / (new_tokens - 1)
        out["transformers_generate"][str(b)] = {"tokens_per_s": b / per_step, "ms_per_step": per_step * 1e3}
        print(shape, "transformers batch", b, out["transformers_generate"][str(b)], flush=True)
    out["gradient"] = gradient_bench(model, decoder, prompt, new_tokens)
    del decoder, model
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return out


def gradient_bench(model, decoder, prompt, new_tokens):
    """A recorded call under a rank-8 update of the last layer: decode + the tail gradient
    from captured rows, against decode + the taped full pass of prompt + reply."""
    import torch
    from decoder import decode, tail_gradient
    from models import UpdateHooks
    hidden = model.config.hidden_size
    g = torch.Generator(device=DEVICE).manual_seed(2)
    update = {"alpha": 0.01, "layers": 1, "a": torch.randn(hidden, 8, device=DEVICE, generator=g) * 0.02,
              "b": torch.randn(8, hidden, device=DEVICE, generator=g) * 0.02}
    call = {"prompt": prompt, "max_new_tokens": new_tokens, "stop": [], "temperature": 1.0, "top_p": 0.9, "rule": "reference",
            "uniforms": [0.5] * new_tokens, "record": True}
    ids, _, _, captured = decode(decoder, [call], [update])[0]
    tail, (logq, da, db) = timed(lambda: tail_gradient(model, captured, update, call, ids))
    hooks = UpdateHooks(model)
    a = update["a"].clone().requires_grad_(True)
    b = update["b"].clone().requires_grad_(True)

    def taped():
        hooks.update = {"alpha": update["alpha"], "layers": 1, "a": a, "b": b}
        with torch.enable_grad():
            logits = model(input_ids=torch.tensor([prompt + ids], device=DEVICE)).logits[0, len(prompt) - 1:-1].float()
            total = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids, device=DEVICE).view(-1, 1)).sum()
            total.backward()
        hooks.update = None
        return total
    full, _ = timed(taped)
    return {"reply_tokens": len(ids), "tail_gradient_s": tail, "taped_full_pass_s": full, "speedup": full / tail}


def sft_bench(steps):
    """Tokens a second of an SFT optimiser step of 8 micro-batches of 8 × 512 tokens."""
    import torch
    from models import adamw, sft_loss
    from transformers import Trainer, TrainerCallback, TrainingArguments
    out = {"shape": "llama-3.2-1b", "tokens_per_step": 64 * 512}
    model = random_model("llama-3.2-1b", torch.bfloat16)
    model.train()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(3)
    length = 64 if SMOKE else 512
    seqs = torch.randint(0, vocab, (64 * (steps + 1), length), generator=g).tolist()
    starts = [length - 32] * len(seqs)  # a routing prompt, then its target
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, 0.0)

    def step(k):
        batch = seqs[64 * k:64 * (k + 1)]
        for i in range(0, 64, 8):
            loss = sft_loss(model, batch[i:i + 8], starts[i:i + 8], DEVICE) * (8 / 64)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    step(0)
    t, _ = timed(lambda: [step(k + 1) for k in range(steps)])
    out["ours_tokens_per_s"] = steps * 64 * length / t
    del opt
    # The peer: transformers' Trainer as the reference's sft.py sets it up.
    model = random_model("llama-3.2-1b", torch.bfloat16)
    rows = [{"input_ids": s, "attention_mask": [1] * length, "labels": [-100] * (length - 32) + s[length - 32:]} for s in seqs]
    args = TrainingArguments(output_dir="/tmp/sft-peer", max_steps=steps + 1, learning_rate=1e-5, per_device_train_batch_size=8,
                             gradient_accumulation_steps=8, lr_scheduler_type="cosine", logging_steps=1000,
                             save_strategy="no", bf16=DEVICE == "cuda", use_cpu=DEVICE == "cpu", report_to=[], dataloader_pin_memory=True, seed=42)
    marks = []

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            sync()
            marks.append(time.perf_counter())
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[Marks()])
    trainer.train()
    out["trainer_tokens_per_s"] = steps * 64 * length / (marks[-1] - marks[0])
    out["ratio"] = out["ours_tokens_per_s"] / out["trainer_tokens_per_s"]
    print("sft", out, flush=True)
    return out


def main():
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    quick = "--quick" in sys.argv
    path = next((a for a in sys.argv[1:] if not a.startswith("--")), None)
    report = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"}
    import transformers
    report["transformers"] = transformers.__version__
    parts = os.environ.get("BENCH_PARTS", "decode,qwen,sft").split(",")
    if "decode" in parts:
        report["decode_llama_8b"] = decode_bench("llama-3.1-8b", [1, 64], 32 if quick else 128, 512, [1] if quick else [1, 64])
    if "qwen" in parts:
        report["decode_qwen_7b"] = decode_bench("qwen2.5-7b", [1], 32 if quick else 128, 512, [1])
    if "sft" in parts:
        try:
            report["sft_1b"] = sft_bench(2 if quick else 4)
        except Exception as e:  # the peer's own requirements (accelerate, for Trainer) may be missing
            report["sft_1b"] = {"error": repr(e)}
    write_report(report, path)


def write_report(report, path):
    """Prints a bench's report as JSON, and writes it to `path` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
