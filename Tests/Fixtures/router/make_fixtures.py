"""Records the router's reference fixtures with Hugging Face transformers (the reference's rl_batch.py; docs/routing.md, Joint RL).

Run where torch and transformers are installed (the device tool's GPU machine, or a venv):
`python3 make_fixtures.py OUTDIR`. Everything runs on the CPU in float32. Writes:

- `tokenizer.json`: the engine's Llama 3 tokenizer fixture with the chat template's special
  tokens added (<|start_header_id|> 1200, <|end_header_id|> 1201, <|eot_id|> 1202);
- `examples.json`: per routing example, the messages, the prompt ids from
  `apply_chat_template` (a Llama 3.2-style template, date block included, one BOS) and the
  target ids (`output` tokenised on its own, then <|eot_id|>), as sft.py builds them;
- `router_init.safetensors` / `config.json`: a tiny random Llama;
- `router_step.safetensors`: its weights after one SFT optimiser step on the four examples as
  two micro-batches of two (gradient accumulation, labels -100 on the prompt, right padding),
  AdamW (lr 1e-3, weight decay 0), gradients clipped at 1, and `loss.json` (the step's loss).
"""
import json, os, sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

OUT = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(4)

# A Llama 3.2-style chat template (the date is a template variable, as strftime_now gives it).
TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
DATE = "26 Jul 2024"

# RouterPrompt.standard of Sources/Stages/Routing/DecoderRouter.swift, rendered (the Swift test
# checks that its own messages are these, then compares the ids).
SYSTEM = ("You route questions to language models. Two agents answer each question together: a student, "
          "who searches a knowledge base and answers, and a teacher, who reviews every step of the student. "
          "Choose the candidate model that should play each role so that the final answer is most likely correct.")
USER = ("Dataset: HotpotQA, multi-hop questions over Wikipedia paragraphs.\n\nQuestion: {question}\n\n"
        "Candidate models:\n{candidates}\n\nReply with one JSON object and nothing else: {format}")
CANDIDATES = ["Llama-3.1-8B-Instruct", "Qwen2.5-7B-Instruct"]
EXAMPLES = [
    ("Which magazine was started first, Arthur's Magazine or First for Women?", '{"teacher": 0,"student": 1}'),
    ("The Oberoi family is part of a hotel company that has a head office in what city?", '{"teacher": 1,"student": 1}'),
    ("Were Scott Derrickson and Ed Wood of the same nationality?", '{"teacher": 0,"student": 0}'),
    ("What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?", '{"teacher": 1,"student": 0}'),
]

tok = Tokenizer.from_file(os.path.join(HERE, "..", "engine", "tokenizer-llama3.json"))
tok.add_special_tokens(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
tok.save(os.path.join(OUT, "tokenizer.json"))
hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(OUT, "tokenizer.json"), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
hf.chat_template = TEMPLATE
EOT = hf.convert_tokens_to_ids("<|eot_id|>")
assert EOT == 1202, EOT

examples = []
for question, output in EXAMPLES:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER.format(question=question, candidates="\n".join(f"{i}: {n}" for i, n in enumerate(CANDIDATES)),
                                                        format='{"teacher": <id>, "student": <id>}')}]
    ids = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, date_string=DATE)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    target = hf(output, add_special_tokens=False)["input_ids"] + [EOT]
    examples.append({"question": question, "output": output, "messages": messages, "prompt_ids": list(ids), "target_ids": target})
assert len({len(e["target_ids"]) for e in examples}) == 1, "targets of one length: the loss normalisations agree"
json.dump({"date": DATE, "candidates": CANDIDATES, "examples": examples}, open(os.path.join(OUT, "examples.json"), "w"), indent=1)

cfg = LlamaConfig(vocab_size=1203, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1,
                  bos_token_id=0, eos_token_id=EOT, attn_implementation="eager", torch_dtype="float32")
model = LlamaForCausalLM(cfg).float()
model.config.save_pretrained(OUT)
save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "router_init.safetensors"))

# One optimiser step as transformers' Trainer takes it: micro-batches of two (right-padded,
# labels -100 on the prompt and the padding), each micro-batch's mean token loss divided by the
# accumulation steps, gradients summed, clipped at 1, one AdamW step.
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
total = 0.0
for micro in (examples[:2], examples[2:]):
    seqs = [e["prompt_ids"] + e["target_ids"] for e in micro]
    n = max(len(s) for s in seqs)
    input_ids = torch.tensor([s + [EOT] * (n - len(s)) for s in seqs])
    attention = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs])
    labels = torch.tensor([[-100] * len(e["prompt_ids"]) + e["target_ids"] + [-100] * (n - len(s)) for e, s in zip(micro, seqs)])
    loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    (loss / 2).backward()
    total += loss.item() / 2
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
opt.step()
save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "router_step.safetensors"))
json.dump({"loss": total, "lr": 1e-3, "micro_batches": 2, "max_grad_norm": 1.0}, open(os.path.join(OUT, "loss.json"), "w"))
print("ok", total, [len(e["prompt_ids"]) for e in examples])
