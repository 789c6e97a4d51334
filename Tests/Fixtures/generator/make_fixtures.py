"""Records the parameter generator's reference fixture (the reference's rl_batch.py; docs/routing.md, Joint RL) with torch and
transformers, in float32 on the CPU: `python3 make_fixtures.py OUTDIR`.

The reference's generator written out from §6.1: input = the mean over positions of the router
backbone's last hidden state (after the final norm); Linear(H, 256)+ReLU, Linear(256, 256)+ReLU
(mlp_num_layer 2); heads 256 -> D*r viewed as A (D x r) and 256 -> r*D viewed as B (r x D);
Xavier-uniform weights, zero biases. The update alpha*A*B is added to o_proj of the candidate's
last layer. A fixed reply (the candidate's greedy reply under the update) is scored with the
reference's nucleus rule (inclusive cumulative mass <= top_p, the first always kept; T 1.0,
top_p 0.9): log q = sum of log renormalised probabilities. Loss = -R * log q. Writes:

- `router/` and `candidate/`: the two tiny random Llamas (config.json, model.safetensors);
- `generator.safetensors`: the generator's weights, torch state-dict names;
- `reference.safetensors`: prompt ids, reply ids, pooled state, A, B, log q, and the gradients
  of the loss with respect to the generator's weights (`grad.<name>`), A and B (`grad.A`,
  `grad.B`) and every router weight (`grad.router.<name>`).
"""
import json, os, sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(4)
R, ALPHA, RANK, TOP_P, NEW = 0.7, 0.5, 4, 0.9, 6


def llama(vocab, hidden, layers, init=0.2):
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0, initializer_range=init,
                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, attn_implementation="eager", torch_dtype="float32")
    m = LlamaForCausalLM(cfg).float()
    with torch.no_grad():  # norms are ones at init: vary them, so their gradients are checked too
        for n, p in m.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return m


router, candidate = llama(96, 32, 2), llama(80, 16, 2, init=0.6)
for name, m in (("router", router), ("candidate", candidate)):
    m.save_pretrained(os.path.join(OUT, name), safe_serialization=True)


class Generator(torch.nn.Module):
    def __init__(self, h, d, r, hidden=256, layers=2):
        super().__init__()
        mods, width = [], h
        for _ in range(layers):
            mods += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            width = hidden
        self.mlp = torch.nn.Sequential(*mods)
        self.head_a, self.head_b = torch.nn.Linear(hidden, d * r), torch.nn.Linear(hidden, r * d)
        self.d, self.r = d, r
        for m in self.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def forward(self, pooled):
        z = self.mlp(pooled)
        return self.head_a(z).view(self.d, self.r), self.head_b(z).view(self.r, self.d)


torch.manual_seed(43)  # set_seed(43) before each generator, as the reference builds them
gen = Generator(32, 16, RANK)
save_file({k: v.detach().clone().contiguous() for k, v in gen.state_dict().items()}, os.path.join(OUT, "generator.safetensors"))

prompt = torch.tensor([[0, 17, 42, 5, 88, 23, 61, 9, 30]])
hidden = router.model(input_ids=prompt).last_hidden_state[0]  # after the final norm
pooled = hidden.mean(0)
A, B = gen(pooled)
A.retain_grad(); B.retain_grad()

# The candidate's o_proj of its last layer patched with alpha * A @ B (a functional patch, so
# that the gradient flows into A and B).
o = candidate.model.layers[-1].self_attn.o_proj
w0 = o.weight.detach().clone()


def patched_forward(x):
    return torch.nn.functional.linear(x, w0 + ALPHA * A @ B)


o.forward = patched_forward
cand_prompt = [0, 7, 33, 12, 50]
with torch.no_grad():  # the fixed reply: greedy under the update (always inside the nucleus)
    ids = list(cand_prompt)
    for _ in range(NEW):
        ids.append(int(candidate(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
reply = ids[len(cand_prompt):]
logits = candidate(input_ids=torch.tensor([ids])).logits[0]
logq, sizes = 0, []
for j, tok in enumerate(reply):
    probs = torch.softmax(logits[len(cand_prompt) + j - 1] / 1.0, -1)
    sorted_p, order = torch.sort(probs, descending=True)
    cum = torch.cumsum(sorted_p, 0)
    assert (cum - TOP_P).abs().min() > 1e-4, "a token sits on the nucleus' edge: float rounding could move it"
    keep = cum <= TOP_P
    keep[0] = True
    kept = order[keep]
    assert tok in kept.tolist()
    sizes.append(len(kept))
    logq = logq + torch.log(probs[tok] / probs[kept].sum())
loss = -R * logq
loss.backward()

ref = {"prompt": prompt[0].float(), "candidate_prompt": torch.tensor(cand_prompt).float(), "reply": torch.tensor(reply).float(),
       "pooled": pooled.detach(), "A": A.detach(), "B": B.detach(), "logq": logq.detach().reshape(1),
       "grad.A": A.grad.detach(), "grad.B": B.grad.detach()}
for n, p in gen.named_parameters():
    ref["grad." + n] = p.grad.detach()
for n, p in router.named_parameters():
    if p.grad is not None:
        ref["grad.router." + n] = p.grad.detach()
save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "reference.safetensors"))
json.dump({"R": R, "alpha": ALPHA, "rank": RANK, "top_p": TOP_P, "temperature": 1.0, "layers": 1}, open(os.path.join(OUT, "settings.json"), "w"))
print("ok", float(logq.detach()), reply, "nucleus sizes", sizes)

# torch's LinearLR (1.0 -> 0.1) as joint RL steps it: the router's scheduler every question, a
# generator's only when that generator was used (the reference's rl_batch.py; docs/routing.md, Joint RL). lrs[i]: the lr of step i.
def linear_lr(total, used):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-5)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=total)
    out = []
    for u in used:
        out.append(opt.param_groups[0]["lr"])
        if u:
            opt.step()
            sched.step()
    return out


USED = [True, False, True, True, False, True, True, True, False, True, True, True]
json.dump({"base_lr": 1e-5, "total": 7, "used": USED, "router": linear_lr(7, [True] * len(USED)), "generator": linear_lr(7, USED)},
          open(os.path.join(OUT, "linear_lr.json"), "w"), indent=1)
