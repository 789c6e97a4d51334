#!/usr/bin/env python3
"""A router-SFT task whose right router is known (as StagesTests' SFTTrainTests): comparison
questions are answered only by action 3, bridge questions only by action 0; a tiny random
Llama backbone (the tests' tokenizer) learns the mapping. Writes DIR/sft.json (a one-stage
pipeline `router`), the backbone, score tables, SFT rows and prompts; the GPU check runs it
on the CPU engine and on the torch engine and compares.

    python3 bench/gpu/sft_fixture.py DIR
"""
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["Alice Smith", "Bob Jones", "Carol Brown", "Dan White", "Eve Black", "Frank Green", "Gina Gray", "Hugo Stone", "Ivy Lane"]


def question(i, comparison):
    a, b = NAMES[i % 9], NAMES[(i + 4) % 9]
    return "Which is older, %s or %s?" % (a, b) if comparison else "In what year was the city where %s was born founded?" % a


def table(directory, questions):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "scores.jsonl"), "w") as f:
        for qi, (q, best) in enumerate(questions):
            for a in range(4):
                v = 1.0 if a == best else 0.0
                f.write(json.dumps({"question_index": qi, "question": q, "action": a, "teacher": a // 2, "student": a % 2,
                                    "f1": v, "em": v, "precision": v, "recall": v}) + "\n")


def main():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(5)
    config = LlamaConfig(vocab_size=1200, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, max_position_embeddings=2048)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1) if p.dim() > 1 else p.fill_(1.0)
    model.save_pretrained(os.path.join(d, "backbone"))
    shutil.copy(os.path.join(ROOT, "Tests", "Fixtures", "engine", "tokenizer-llama3.json"), os.path.join(d, "backbone", "tokenizer.json"))
    os.makedirs(os.path.join(d, "prompts"), exist_ok=True)
    with open(os.path.join(d, "prompts", "system.txt"), "w") as f:
        f.write("Route the question.")
    with open(os.path.join(d, "prompts", "user.txt"), "w") as f:
        f.write("Q: {question}\nModels:\n{candidates}\nReply {format}")

    def split(n, offset):
        return [(question(i + offset, i % 2 == 0), 3 if i % 2 == 0 else 0) for i in range(n)]
    train, valid = split(12, 0), split(6, 20)
    table(os.path.join(d, "train"), train)
    table(os.path.join(d, "valid"), valid)
    os.makedirs(os.path.join(d, "sft"), exist_ok=True)
    rows = [{"question": q, "reward": 1, "output": '{"teacher": %d,"student": %d}' % (best // 2, best % 2)} for q, best in train]
    with open(os.path.join(d, "sft", "sft.json"), "w") as f:
        json.dump(rows, f)
    spec = {"name": "s", "stages": {"router": {"type": "sft-train",
            "inputs": {"sft": "sft", "backbone": "backbone", "valid_scores": "valid", "train_scores": "train", "prompts": "prompts"},
            "params": {"epochs": 12, "lr": 0.01, "batch_size": 4, "gradient_accumulation": 1, "warmup_ratio": 0,
                       "candidate_names": ["small", "large"]}}}}
    with open(os.path.join(d, "sft.json"), "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
