#!/usr/bin/env python3
"""Random-weight Hugging Face model directories of the paper's shapes (no weights can be
downloaded on the GPU machine), for the joint-RL benchmark (bench/gpu/rl_bench.sh):

    python3 bench/gpu/paper_models.py OUT_DIR [--tiny] [--encoder]

writes OUT_DIR/router (Llama-3.2-1B shape), OUT_DIR/llama (Llama-3.1-8B), OUT_DIR/qwen
(Qwen2.5-7B): config.json, model.safetensors (bfloat16), generation_config.json,
tokenizer.json and tokenizer_config.json with a chat template. `--tiny`: the same three with
hidden 64, 2 layers (the full vocabularies), for checks on a CPU. `--encoder`: also
OUT_DIR/encoder, all-MiniLM-L6-v2's shape with random weights (write_encoder).

The tokenizer is the repository's small Llama-3-style byte-level BPE
(Tests/Fixtures/engine/tokenizer-llama3.json, 1200 entries) with the family's chat tokens
added after it and filler entries up to the model's vocabulary size, so that every id a
random model can emit decodes (to " w<id>"), in transformers and in haps-pipe alike. The chat
templates render exactly what haps-pipe's ChatTemplate renders (Llama 3; Qwen2.5 with its
default system message), so both sides prompt the models with the same ids.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "engine", "tokenizer-llama3.json")

LLAMA_ROPE_8B = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_max_position_embeddings": 8192}
LLAMA_ROPE_1B = dict(LLAMA_ROPE_8B, factor=32.0)
SHAPES = {  # the models' own config.json values (bench/gpu/speed.py has the same)
    "router": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=131072,
                   rope_scaling=LLAMA_ROPE_1B, tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=131072,
                  rope_scaling=LLAMA_ROPE_8B, tie_word_embeddings=False, rms_norm_eps=1e-5),
    "qwen": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, rope_theta=1000000.0, max_position_embeddings=32768,
                 tie_word_embeddings=False, use_sliding_window=False, rms_norm_eps=1e-6),
}
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

LLAMA3_TEMPLATE = (
    "{{- '<|begin_of_text|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\n" + QWEN_DEFAULT_SYSTEM + "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Per family: the chat tokens added after the base vocabulary (in this order), and which are
# BOS, EOS (the end of an assistant turn, as the instruct models' tokenizers say) and PAD.
FAMILIES = {
    "llama": dict(added=["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], template=LLAMA3_TEMPLATE,
                  bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, stop=["<|end_of_text|>", "<|eot_id|>"]),
    "qwen2": dict(added=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], template=QWEN2_TEMPLATE,
                  bos=None, eos="<|im_end|>", pad="<|endoftext|>", stop=["<|im_end|>", "<|endoftext|>"]),
}


def make_tokenizer(family, vocab_size):
    """tokenizer.json (a dict) and the ids of the family's chat tokens."""
    tok = json.load(open(BASE_TOKENIZER))
    vocab = tok["model"]["vocab"]
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    next_id = max(vocab.values()) + 1
    for content in FAMILIES[family]["added"]:
        tok["added_tokens"].append({"id": next_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                                    "normalized": False, "special": True})
        vocab[content] = ids[content] = next_id  # in the model's vocabulary too, or `tokenizers` moves it to the end
        next_id += 1
    # Fillers: plain vocabulary entries (no merge makes them, so text never encodes to them)
    # for every id a random model can emit; byte-level "Ġw<id>" decodes to " w<id>".
    for i in range(next_id, vocab_size):
        filler = f"Ġw{i}"
        assert filler not in vocab, filler
        vocab[filler] = i
    if family == "qwen2":
        tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = QWEN2_SPLIT
    return tok, ids


def tokenizer_config(family, ids):
    f = FAMILIES[family]
    decoder = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
               for c, i in sorted(ids.items(), key=lambda kv: kv[1])}
    return {"tokenizer_class": "PreTrainedTokenizerFast", "added_tokens_decoder": decoder, "bos_token": f["bos"], "eos_token": f["eos"],
            "pad_token": f["pad"], "clean_up_tokenization_spaces": False, "model_max_length": 131072, "chat_template": f["template"]}


def write_model(out, name, tiny):
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM
    fields = dict(SHAPES[name])
    if tiny:
        fields.update(TINY)
    family = "qwen2" if fields["model_type"] == "qwen2" else "llama"
    tok, ids = make_tokenizer(family, fields["vocab_size"])
    f = FAMILIES[family]
    bos = ids[f["bos"]] if f["bos"] else ids["<|endoftext|>"]
    eos = [ids[s] for s in f["stop"]]
    pad = ids[f["pad"]] if f["pad"] else None
    config = AutoConfig.for_model(fields.pop("model_type"), bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, **fields)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init of 8B weights is minutes on a CPU
    torch.manual_seed({"router": 1, "llama": 2, "qwen": 3}[name])
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    config.dtype = torch.bfloat16
    config.save_pretrained(d)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    del model, tensors
    with open(os.path.join(d, "generation_config.json"), "w") as g:
        json.dump({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "do_sample": True, "temperature": 0.6, "top_p": 0.9}, g, indent=2)
    with open(os.path.join(d, "tokenizer.json"), "w") as g:
        json.dump(tok, g, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as g:
        json.dump(tokenizer_config(family, ids), g, indent=2)
    return d


def check(d):
    """transformers loads the tokenizer, renders the template, and decodes every id."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(d)
    config = json.load(open(os.path.join(d, "config.json")))
    text = tok.apply_chat_template([{"role": "user", "content": "Who wrote Hamlet?"}], tokenize=False, add_generation_prompt=True)
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text, (tok.decode(ids), text)
    top = config["vocab_size"] - 1
    assert tok.decode([top]) == f" w{top}", tok.decode([top])
    assert len(tok) == config["vocab_size"], (len(tok), config["vocab_size"])
    return {"template": text, "ids": ids, "eos": tok.eos_token_id, "pad": tok.pad_token_id}


def write_encoder(out):
    """OUT/encoder: a sentence-transformers directory of all-MiniLM-L6-v2's shape (BERT, 6
    layers, hidden 384, mean pooling, 256 tokens) with random weights and a WordPiece
    vocabulary of single characters (every word splits into them), for the stages that embed
    questions (route-table's knn, evaluate): the real one is not on the GPU machine."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    config = BertConfig(vocab_size=len(vocab), hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=512, pad_token_id=0)
    torch.manual_seed(4)
    model = BertModel(config, add_pooling_layer=False)
    d = os.path.join(out, "encoder")
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    config.save_pretrained(d)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    files = {"tokenizer_config.json": {"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512},
             "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                              {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
             "sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": False},
             "1_Pooling/config.json": {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                                       "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}}
    for name, value in files.items():
        with open(os.path.join(d, name), "w") as f:
            json.dump(value, f, indent=2)
    return d


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: paper_models.py OUT_DIR [--tiny] [--encoder]")
    tiny = "--tiny" in sys.argv
    for name in ("router", "llama", "qwen"):
        d = write_model(args[0], name, tiny)
        c = check(d)
        print(f"{d}: {len(c['ids'])} prompt ids for one user turn, eos {c['eos']}, pad {c['pad']}", flush=True)
    if "--encoder" in sys.argv:
        print(write_encoder(args[0]), flush=True)


if __name__ == "__main__":
    main()
