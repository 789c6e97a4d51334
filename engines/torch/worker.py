#!/usr/bin/env python3
"""haps-pipe's torch engine worker (docs/engine.md, "The torch worker").

haps-pipe starts this program and talks to it over its standard input and output in frames
(frames.py); it does tensor work only (the method, prompts, parsing, rewards, schedules and
seeds stay in Swift). The worker speaks first: a "hello" frame with the protocol version,
Python's, torch's, transformers' and CUDA's versions (null when absent), the GPUs, and
"missing": the packages it could not import. Then each request {"id": n, "op": str, ...} gets
one reply {"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": {"type": str,
"message": str}}. The worker starts without torch (to say so); ops that need it fail with a
clear error. It exits on "shutdown", at the end of its input, or when its parent dies.
"""
import contextlib
import os
import struct
import sys
import time
import traceback

# CPU torch's BLAS (MKL) may round a product differently with its operands' memory alignment,
# so the same call in two worker processes can differ in its last bits (seen with the fused
# projections of decoder.py). Strict conditional numerical reproducibility makes a CPU worker's
# results independent of alignment, so that a resumed run ends with the uninterrupted run's
# output byte for byte. Set before torch loads MKL; GPUs are unaffected.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from frames import Channel, float_tensors, from_blob, hello
from models import (Models, UpdateHooks, adamw, check_memory, sft_loss, generator_forward, load_optimizer_state, named_weights, optimizer_state,
                    read_weights, round_to_bfloat16, save_weights, set_weights)
from decoder import PHASES, Decoder, bucket, decode, reply_logq, supported, tail_gradient
from sampling import choose
from encoder import Encoders, embed


class Worker:
    def __init__(self, channel):
        self.channel = channel
        self.models = Models()
        self.hooks = {}
        self.decoders = {}
        self.calls = {}
        self.next_call = 0
        self.kept = {}
        self.next_kept = 0
        self.generators = []
        self.ranks = []
        self.generator_device = "cpu"
        self.generator_optimizers = []
        self.router_optimizers = {}
        self.sft_optimizers = {}
        self.encoders = Encoders()

    def op_echo(self, request, blobs):
        """The framing's own check: the tensors come back as they came, byte for byte."""
        return {"tensors": request.get("tensors", [])}, blobs

    def op_embed_sentences(self, request, blobs):
        """Sentence embeddings of token-id lists ("ids") with the encoder of "directory" on
        "device": pooled ("pooling": mean, cls or max) and, with "normalize", unit length."""
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        model = self.encoders.get(request["directory"], request.get("device", "cpu"), request.get("dtype", "float32"))
        vectors = embed(model, request["ids"], request.get("pooling", "mean"), bool(request.get("normalize", True)))
        return float_tensors([("embeddings", vectors)])

    def op_load_model(self, request, blobs):
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        trainable = bool(request.get("trainable", False))
        check_memory(request["directory"], request.get("device", "cpu"), request.get("dtype", "float32"), trainable)
        handle, model = self.models.load(request["directory"], request.get("device", "cpu"), request.get("dtype", "float32"))
        model.requires_grad_(trainable)  # a candidate's weights take no gradient
        self.hooks[handle] = UpdateHooks(model)
        return {"model": handle}, []

    def op_weights(self, request, blobs):
        """A model's weights by torch's names (float32)."""
        return float_tensors(named_weights(self.models[request["model"]]))

    def op_set_weights(self, request, blobs):
        """A trainable model's weights from the request's tensors (torch's names)."""
        model = self.models.trainable(request["model"])
        weights = {t["name"]: from_blob(t, b, "cpu") for t, b in zip(request.get("tensors", []), blobs)}
        set_weights(model, weights, "the request")
        return {}, []

    def op_load_weights(self, request, blobs):
        """A trainable model's weights from a directory's safetensors (a kept checkpoint)."""
        model = self.models.trainable(request["model"])
        set_weights(model, read_weights(request["directory"]), request["directory"])
        return {}, []

    def op_save_weights(self, request, blobs):
        """A model's weights to `path` (safetensors, torch's names, float32)."""
        save_weights(self.models[request["model"]], request["path"])
        return {}, []

    def op_round_bf16(self, request, blobs):
        round_to_bfloat16(self.models.trainable(request["model"]))
        return {}, []

    def tensor(self, request, blobs, name, device):
        for t, b in zip(request.get("tensors", []), blobs):
            if t["name"] == name:
                return from_blob(t, b, device)
        raise KeyError("no tensor '%s' in the request" % name)

    def op_generate(self, request, blobs):
        """The calls, each with its own update (A, B as tensors "a<i>", "b<i>") and uniforms,
        batched by model (decoder.py; transformers' own forward, one call at a time, for a model
        it cannot run or with HAPS_TORCH_DECODER=transformers); ids and per-token log q come
        back as tensors; a recorded call's Σ log q and its gradient are kept under a call id."""
        calls = request["calls"]
        updates = []
        for i, call in enumerate(calls):
            u = call.get("update")
            if call.get("record") and u is None:
                raise ValueError("a recorded call needs an update (its gradient is with respect to A and B)")
            model = self.models[call["model"]]
            device = next(model.parameters()).device
            updates.append(None if u is None else {"alpha": u["alpha"], "layers": u["layers"], "handle": u.get("handle"),
                                                   "a": self.tensor(request, blobs, "a%d" % i, device),
                                                   "b": self.tensor(request, blobs, "b%d" % i, device)})
        results = [None] * len(calls)
        by_model = {}
        for i, call in enumerate(calls):
            by_model.setdefault(call["model"], []).append(i)
        for handle, indices in sorted(by_model.items()):
            model = self.models[handle]
            if os.environ.get("HAPS_TORCH_DECODER") == "transformers" or supported(model) is not None:
                for i in indices:
                    results[i] = self.generate_one(model, self.hooks[handle], calls[i], updates[i])
                continue
            decoder = self.decoder(handle, model, [calls[i] for i in indices])
            decoded = decode(decoder, [calls[i] for i in indices], [updates[i] for i in indices])
            for i, (ids, logprobs, finish, captured) in zip(indices, decoded):
                reply = {"finish_reason": finish}
                if calls[i].get("record"):
                    u = updates[i]
                    if u["layers"] == 1:
                        logq, da, db = tail_gradient(model, captured, u, calls[i], ids)
                        reply["logq"], reply["call"] = logq, self.keep_call(da, db, u)
                    else:  # the update reaches layers whose attention mixes positions: a taped pass
                        reply["logq"], reply["call"] = self.record(model, self.hooks[handle], calls[i], ids, u)
                results[i] = (ids, logprobs, reply)
        out_tensors, out_blobs, replies = [], [], []
        for i, (ids, logprobs, reply) in enumerate(results):
            replies.append(reply)
            out_tensors += [{"name": "ids%d" % i, "dtype": "int64", "shape": [len(ids)]},
                            {"name": "logprobs%d" % i, "dtype": "float32", "shape": [len(ids)]}]
            out_blobs += [struct.pack("<%dq" % len(ids), *ids), struct.pack("<%df" % len(ids), *logprobs)]
        return {"replies": replies, "tensors": out_tensors}, out_blobs

    def decoder(self, handle, model, calls):
        """The model's decoder, made (or remade larger) to hold these calls: rows for every
        call, a cache as long as the longest prompt and reply (rounded up to 256)."""
        rows = len(calls)
        length = max(len(c["prompt"]) + c["max_new_tokens"] for c in calls)
        d = self.decoders.get(handle)
        if d is None or rows > d.rows or length > d.length:
            rows = bucket(max(rows, d.rows if d else 1))
            length = -(-max(length, d.length if d else 0) // 256) * 256
            self.decoders.pop(handle, None)
            d = self.decoders[handle] = Decoder(model, rows, length)
        return d

    def generate_one(self, model, hooks, call, update):
        """One call by transformers' forward with its KV cache, the update as a hook."""
        import torch
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype  # the update in the model's own precision
        hooks.update = None if update is None else dict(update, a=update["a"].to(dtype), b=update["b"].to(dtype))
        uniforms = iter(call.get("uniforms", []))
        ids, logprobs, finish = [], [], "length"
        stop = set(call.get("stop", []))
        with torch.no_grad():
            past, tokens = None, torch.tensor([call["prompt"]], device=device)
            for _ in range(call["max_new_tokens"]):
                out = model(input_ids=tokens, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].float().cpu()
                token, lp = choose(logits, call.get("temperature", 0), call.get("top_p", 1), call.get("rule", "standard"),
                                   lambda: next(uniforms))
                ids.append(token)
                logprobs.append(lp)
                if token in stop:
                    finish = "stop"
                    break
                tokens = torch.tensor([[token]], device=device)
        reply = {"finish_reason": finish}
        if call.get("record"):
            reply["logq"], reply["call"] = self.record(model, hooks, call, ids, update)
        hooks.update = None
        return ids, logprobs, reply

    def keep_call(self, da, db, update):
        handle = self.next_call
        self.next_call += 1
        self.calls[handle] = {"da": da, "db": db, "update": update.get("handle")}
        return handle

    def record(self, model, hooks, call, ids, update):
        """Σ log q of a generated reply and its gradient with respect to the update's A and B,
        by autograd over one taped pass of prompt + reply (the nucleus of each position held
        fixed, as the CPU engine's sampledLogProbability; greedy calls: the plain
        log-softmax); kept under a new call id for `accumulate`."""
        import torch
        a = update["a"].detach().float().clone().requires_grad_(True)
        b = update["b"].detach().float().clone().requires_grad_(True)
        hooks.update = dict(update, a=a, b=b)
        prompt = call["prompt"]
        with torch.enable_grad():
            logits = model(input_ids=torch.tensor([prompt + ids], device=a.device)).logits[0].float()
            total = reply_logq(logits[len(prompt) - 1:len(prompt) - 1 + len(ids)], ids, call)
            total.backward()
        hooks.update = None
        return float(total.detach()), self.keep_call(a.grad.detach(), b.grad.detach(), update)

    def op_call_gradient(self, request, blobs):
        """A recorded call's gradient of Σ log q with respect to A and B (an inspection op:
        the differential tests read it; training accumulates it in the worker)."""
        c = self.calls[request["call"]]
        return float_tensors([("da", c["da"]), ("db", c["db"])])

    def op_set_generators(self, request, blobs):
        """The parameter generators from named weights (tensors "g<c>.<torch name>": mlp.<2i>,
        head_a, head_b), replacing any there were; on `device`, float32."""
        import torch
        device = self.generator_device = request.get("device", "cpu")
        generators = {}
        for t, b in zip(request.get("tensors", []), blobs):
            c, name = t["name"].split(".", 1)
            generators.setdefault(int(c[1:]), {})[name] = from_blob(t, b, device).float()
        self.generators = [generators[c] for c in sorted(generators)]
        for g in self.generators:
            for v in g.values():
                v.requires_grad_(True)
        self.generator_optimizers = [adamw(list(g.values()), 0.0) for g in self.generators]
        self.ranks = request["ranks"]
        return {"generators": len(self.generators)}, []

    def op_make_update(self, request, blobs):
        """Generator `generator`'s update for the pooled state given as tensor "pooled"."""
        import torch
        c = request["generator"]
        if not 0 <= c < len(self.generators):
            raise KeyError("no generator %s (set_generators first)" % c)
        g = self.generators[c]
        device = g["head_a.weight"].device
        keep = bool(request.get("keep", False))
        if "pooled" in request:  # a kept pooled state, by handle: its graph reaches the router
            pooled = self.kept_pooled(request["pooled"])[2]
        else:
            pooled = self.tensor(request, blobs, "pooled", device)
        with torch.set_grad_enabled(keep):
            a, b = generator_forward(g, pooled, self.ranks[c])
        header = {}
        if keep:
            header["update"] = self.keep(("update", c, request.get("pooled"), a, b, [torch.zeros_like(a), torch.zeros_like(b)]))
        return float_tensors([("a", a), ("b", b)], header)

    def op_generator_weights(self, request, blobs):
        return float_tensors([("g%d.%s" % (c, n), v) for c, g in enumerate(self.generators) for n, v in sorted(g.items())])

    def op_continuation_logprobs(self, request, blobs):
        """Σ log-softmax of each continuation's tokens after the prompt, teacher-forced."""
        import torch
        model = self.models[request["model"]]
        device = next(model.parameters()).device
        prompt, out = request["prompt"], []
        with torch.no_grad():
            for cont in request["continuations"]:
                logits = model(input_ids=torch.tensor([prompt + cont], device=device)).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                out.append(float(sum(logp[len(prompt) + j - 1, tok] for j, tok in enumerate(cont))))
        return {"logprobs": out}, []

    def op_pooled_state(self, request, blobs):
        """The mean over positions of the last hidden state (after the final norm), over
        `positions` [start, end) only when given; with `keep`, computed with its graph and kept
        under a new id, for a step's backward."""
        import torch
        model = self.models[request["model"]]
        device = next(model.parameters()).device
        keep = bool(request.get("keep", False))
        with torch.set_grad_enabled(keep):
            h = model(input_ids=torch.tensor([request["prompt"]], device=device), output_hidden_states=True).hidden_states[-1][0]
            if "positions" in request:
                start, end = request["positions"]
                h = h[start:end]
            pooled = h.float().mean(0)
        header = {"pooled": self.keep(("pooled", request["model"], pooled))} if keep else {}
        return float_tensors([("pooled", pooled)], header)

    def keep(self, value):
        handle = self.next_kept
        self.next_kept += 1
        self.kept[handle] = value
        return handle

    def kept_pooled(self, handle):
        v = self.kept.get(handle)
        if v is None or v[0] != "pooled":
            raise KeyError("pooled state %s was not kept (or was released)" % handle)
        return v

    def op_accumulate(self, request, blobs):
        """coefficient · Σ (the calls' dA, dB), in the order given, added to the update's gradient."""
        import torch
        u = self.kept.get(request["update"])
        if u is None or u[0] != "update":
            raise KeyError("update %s was not kept for backward" % request["update"])
        _, c, pooled, a, b, grads = u
        da, db = torch.zeros_like(a), torch.zeros_like(b)
        for cid in request["calls"]:
            call = self.calls.get(cid)
            if call is None or call.get("update") != request["update"]:
                raise KeyError("call %s was not recorded under update %s" % (cid, request["update"]))
            da, db = da + call["da"], db + call["db"]
        k = float(request["coefficient"])
        grads[0] = grads[0] + k * da
        grads[1] = grads[1] + k * db
        return {}, []

    def op_step(self, request, blobs):
        """Each question's updates' gradients through their generators and, with `router_lr`,
        through its pooled state into the router, summed over the questions (the first is
        `updates` and `pooled`; `more` lists further ones, several questions per update); then
        each generator used steps once (AdamW at its rate, weight decay 0) and the router once
        (AdamW, weight decay 0.01; bfloat16 rounding when asked); then the questions' state is
        released."""
        import torch
        questions = [(request["updates"], request["pooled"])] + [(q["updates"], q["pooled"]) for q in request.get("more", [])]
        used, router, model_handle = set(), None, None
        for update_handles, pooled_handle in questions:
            _, model_handle, _ = self.kept_pooled(pooled_handle)
            router = self.models[model_handle]
            ordered = sorted([self.kept[h] for h in update_handles], key=lambda u: u[1])
            for i, (_, c, _, a, b, grads) in enumerate(ordered):
                torch.autograd.backward([a, b], [grads[0], grads[1]], retain_graph=i < len(ordered) - 1)
                used.add(c)
        for c in sorted(used):
            opt = self.generator_optimizers[c]
            for group in opt.param_groups:
                group["lr"] = float(request["generator_lrs"][str(c)])
            opt.step()
            opt.zero_grad(set_to_none=True)
        if request.get("router_lr") is not None:
            opt = self.router_optimizers.get(model_handle)
            if opt is None:
                params = [p for p in router.parameters() if p.requires_grad]
                opt = self.router_optimizers[model_handle] = adamw(params, 0.01)
            for group in opt.param_groups:
                group["lr"] = float(request["router_lr"])
            opt.step()
            if request.get("router_bf16"):
                with torch.no_grad():
                    for p in router.parameters():
                        p.copy_(p.to(torch.bfloat16).to(p.dtype))
        router.zero_grad(set_to_none=True)
        for update_handles, pooled_handle in questions:
            self.release(update_handles, pooled_handle)
        return {}, []

    def op_sft_step(self, request, blobs):
        """One SFT step of a trainable model, as the CPU engine's DecoderTrainer: each
        sequence's mean next-token loss on its targets (from targets_from), the gradients of
        the batch's mean, clipped to max_grad_norm (torch's clip_grad_norm_), one AdamW step at
        `lr` (its own optimiser, weight decay as given). Returns the mean loss before the step."""
        import torch
        handle = request["model"]
        model = self.models.trainable(handle)
        params = [p for p in model.parameters() if p.requires_grad]
        device = params[0].device
        opt = self.sft_optimizers.get(handle)
        if opt is None:
            opt = self.sft_optimizers[handle] = adamw(params, float(request["weight_decay"]))
        batch, starts = request["batch"], request["targets_from"]
        model.zero_grad(set_to_none=True)
        # `accumulation` micro-batches, each's share of the batch's loss backward in turn: the
        # same sum, with the activations of one micro-batch at a time.
        parts = max(1, min(int(request.get("accumulation", 1)), len(batch)))
        size = -(-len(batch) // parts)
        total = 0.0
        for i in range(0, len(batch), size):
            loss = sft_loss(model, batch[i:i + size], starts[i:i + size], device)
            if loss is not None:
                loss = loss * (len(batch[i:i + size]) / len(batch))
                loss.backward()
                total += float(loss.detach()) * len(batch)
        if request.get("max_grad_norm") is not None:
            torch.nn.utils.clip_grad_norm_(params, float(request["max_grad_norm"]))
        for group in opt.param_groups:
            group["lr"] = float(request["lr"])
            group["weight_decay"] = float(request["weight_decay"])
        opt.step()
        model.zero_grad(set_to_none=True)
        return {"loss": total / max(1, len(batch))}, []

    def trainable_models(self):
        return [(h, m) for h, m in sorted(self.models.models.items()) if any(p.requires_grad for p in m.parameters())]

    def op_save_state(self, request, blobs):
        """Every trainable model's weights, the generators', and each optimiser's moments and
        step, to `path` (safetensors; the request's `metadata` and the generators' ranks in its
        metadata): what `restore_state` continues from bit for bit."""
        from safetensors.torch import save_file
        out = {}
        for h, m in self.trainable_models():
            names = [n for n, p in m.named_parameters() if p.requires_grad]
            out.update({"m%d.param.%s" % (h, n): p for n, p in named_weights(m)})
            for kind, opts in (("rl_opt", self.router_optimizers), ("sft_opt", self.sft_optimizers)):
                if h in opts:
                    out.update(optimizer_state(opts[h], names, "m%d.%s." % (h, kind)))
        for c, g in enumerate(self.generators):
            names = list(g.keys())
            out.update({"g%d.param.%s" % (c, n): v for n, v in g.items()})
            out.update(optimizer_state(self.generator_optimizers[c], names, "g%d.opt." % c))
        metadata = dict(request.get("metadata", {}), engine="torch", generator_ranks=",".join(str(r) for r in self.ranks))
        save_file({k: v.detach().cpu().contiguous() for k, v in out.items()}, request["path"], metadata=metadata)
        return {}, []

    def op_restore_state(self, request, blobs):
        """The inverse of `save_state`: weights, generators and moments from `path`; the
        file's metadata comes back."""
        from safetensors import safe_open
        path = request["path"]
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}

        def part(prefix):
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        for h, m in self.trainable_models():
            set_weights(m, part("m%d.param." % h), path)
            names = [n for n, p in m.named_parameters() if p.requires_grad]
            params = [p for p in m.parameters() if p.requires_grad]
            for kind, opts, decay in (("rl_opt", self.router_optimizers, 0.01), ("sft_opt", self.sft_optimizers, 0.0)):
                moments = part("m%d.%s." % (h, kind))
                if not moments:
                    opts.pop(h, None)
                    continue
                if h not in opts:  # an SFT optimiser's weight decay is set by each step
                    opts[h] = adamw(params, decay)
                load_optimizer_state(opts[h], names, "", moments)
        ranks = [int(r) for r in metadata.get("generator_ranks", "").split(",") if r]
        device = self.generator_device
        self.generators = []
        for c in range(len(ranks)):
            g = {n: v.to(device).float().requires_grad_(True) for n, v in sorted(part("g%d.param." % c).items())}
            self.generators.append(g)
        self.ranks = ranks
        self.generator_optimizers = [adamw(list(g.values()), 0.0) for g in self.generators]
        for c, g in enumerate(self.generators):
            load_optimizer_state(self.generator_optimizers[c], list(g.keys()), "g%d.opt." % c, tensors)
        return {"metadata": metadata}, []

    def release(self, updates, pooled):
        for h in updates:
            self.kept.pop(h, None)
        self.calls = {k: v for k, v in self.calls.items() if v.get("update") not in set(updates)}
        if pooled is not None:
            self.kept.pop(pooled, None)

    def op_release(self, request, blobs):
        self.release(request.get("updates", []), request.get("pooled"))
        return {}, []

    def serve(self):
        self.channel.send(hello())
        # Fault injection for the tests of a worker that dies mid-stage: "OP:N" exits, as a
        # crash would, on receiving the N-th request of OP.
        die_op, _, die_at = os.environ.get("HAPS_TORCH_WORKER_DIE_AT", "").partition(":")
        seen = 0
        timing = OpTiming(self.models.names)
        while True:
            waited = time.perf_counter()
            message = self.channel.receive()
            timing.idle += time.perf_counter() - waited
            if message is None:
                timing.report("at the end")
                return
            request, blobs = message
            op = request.get("op")
            if op == die_op:
                seen += 1
                if seen == int(die_at or 0):
                    print("haps-pipe torch worker: dying on request %d of '%s' (HAPS_TORCH_WORKER_DIE_AT)" % (seen, op), file=sys.stderr)
                    os._exit(9)
            if op == "shutdown":
                timing.report("at the end")
                self.channel.send({"id": request.get("id"), "ok": True})
                return
            handler = getattr(self, "op_" + str(op), None)
            try:
                if handler is None:
                    raise KeyError("unknown op '%s'" % op)
                with timing.op(op, request):
                    header, out = handler(request, blobs)
                header.update({"id": request.get("id"), "ok": True})
                self.channel.send(header, out)
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                self.channel.send({"id": request.get("id"), "ok": False,
                                   "error": {"type": type(e).__name__, "message": str(e)}})


class OpTiming:
    """Where the worker's time goes, written to its log (standard error) every 5 minutes and
    at the end (and appended to the file HAPS_TORCH_WORKER_TIMES names, when set): seconds and
    count per op (and calls, for ops that take them), and the time spent waiting for the
    caller (the Swift side's own work between requests)."""

    def __init__(self, models, every=300.0):
        self.ops, self.idle, self.every, self.models = {}, 0.0, every, models  # models(): the loaded models' names
        self.started = self.last = time.perf_counter()

    @contextlib.contextmanager
    def op(self, name, request):
        t = time.perf_counter()
        try:
            yield
        finally:
            seconds, count, calls = self.ops.get(name, (0.0, 0, 0))
            self.ops[name] = (seconds + time.perf_counter() - t, count + 1, calls + len(request.get("calls", [])))
            if time.perf_counter() - self.last > self.every:
                self.report("so far")

    def report(self, when):
        self.last = time.perf_counter()
        total = self.last - self.started
        parts = ["%s %.1f s (%d%s)" % (name, s, n, ", %d calls" % c if c else "")
                 for name, (s, n, c) in sorted(self.ops.items(), key=lambda kv: -kv[1][0])]
        line = "haps-pipe torch worker (%s): time %s: %.1f s in all; waiting for requests %.1f s; %s" % (
            ", ".join(self.models()) or "no model", when, total, self.idle, "; ".join(parts))
        if PHASES:  # generate's batched decoding, by part
            line += "; decoding: " + ", ".join("%s %.1f s (%d)" % (name, s, n) for name, (s, n) in sorted(PHASES.items(), key=lambda kv: -kv[1][0]))
        print(line, file=sys.stderr, flush=True)
        if os.environ.get("HAPS_TORCH_WORKER_TIMES") and when == "at the end":  # a benchmark's copy (the log goes with the work area)
            with open(os.environ["HAPS_TORCH_WORKER_TIMES"], "a") as f:
                f.write(line + "\n")


def die_with_parent():
    """Exit when the process that started us dies, even mid-computation (when the end of our
    input is not being read), so that a haps-pipe killed with -9 leaves no worker holding GPU
    memory: a daemon thread that watches the parent's pid. (Linux's PR_SET_PDEATHSIG is not
    used: it fires when the *thread* that started us exits, and haps-pipe serve starts its
    worker from a pool thread that may end long before the process does.)"""
    import threading
    parent = os.getppid()
    if parent == 1:  # the parent died before we got here
        os._exit(1)

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main():
    die_with_parent()
    # The frames get the real standard output; anything a library prints goes to standard
    # error instead of into the protocol.
    frames = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        Worker(Channel(sys.stdin.buffer, frames)).serve()
    except EOFError as e:
        print("haps-pipe torch worker: %s" % e, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
