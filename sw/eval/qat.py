"""LLM-QAT-style quantization-aware training with data-free distillation (Liu et al., 2023).

Pipeline (:func:`section`):

1. **Data-free data** (:func:`generate_data`): the float teacher writes its own text. Per sequence a
   start token is drawn with the fixed seed from the vocabulary, the first ``j`` tokens (``j`` drawn in
   ``greedy`` = [3, 5], the start token included, as LLM-QAT's ``max_length=j``) are greedy, the rest
   sampled (temperature 1, top-k 50 -- ``transformers``' ``generate`` default that LLM-QAT ran with).
   Batched with a KV cache, deterministic under the seed; cached under ``build/eval/cache`` keyed by
   the model fingerprint, seed and sizes.
2. **Student** (:func:`make_student`): a deep copy of the teacher whose decoder linear weights are
   parametrized by :class:`sw.eval.learned.LearnedQuantizer` (weight perturbation in units of the
   group step + learned fp16 group scales, STE), and whose activations and K/V are fake-quantized per
   token with ``attach_act_kv(..., ste=True)``. Before training its forward equals the RTN-quantized
   model's forward bit for bit (W RTN through ``sw.quantize``, same act/KV hooks). Design choice:
   weights use bitmix's deployment granularity (int4, groups of 128 along ``in_features``, fp16
   scales) rather than LLM-QAT's per-channel absmax; the scale is learned (LSQ-style) instead of
   LLM-QAT's dynamic MinMax, so the trained weight is exported as a real ``sw.QuantizedTensor``.
   Embeddings / the tied head stay frozen and float; RMSNorm weights are trained in float.
3. **KD** (:func:`train`): ``KL(softmax(teacher) || log_softmax(student))`` per token (``kl_div``
   with ``batchmean`` over the flattened tokens), the teacher under ``no_grad``; AdamW (no weight
   decay), cosine schedule without warmup, fixed seed.
4. **Evaluation**: the trained student is deployed (weights re-quantized with the learned scales,
   exact format instances), then perplexity with the same per-token act/KV quantization as RTN.

Target: QAT perplexity at W4A8KV4 below RTN's.
"""
from __future__ import annotations

import copy
import hashlib
import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .hooks import QuantSpec, attach_act_kv, decoder_linears
from .learned import LearnedQuantizer
from .slices import spread_exceeds, spread_text, summary

PRESETS: dict[str, dict] = {
    # quick (16 KD steps) ~2 min on 2 idle cores (generation ~35 s at ~70 tok/s batched, ~6 s per KD step of
    # 2 x 256 tokens, two perplexities); full ~12 min (8 k generated tokens, cached afterwards).
    "smoke": dict(weight="int4", group_size=128, act="int8", kv="int4", n_seqs=6, seq_len=32, greedy=(3, 5),
                  top_k=50, gen_batch=3, steps=6, batch=2, lr=5e-3, lr_scale=5e-4, lr_norm=1e-4, heldout=2),
    "quick": dict(weight="int4", group_size=128, act="int8", kv="int4", n_seqs=20, seq_len=256, greedy=(3, 5),
                  top_k=50, gen_batch=10, steps=16, batch=2, lr=5e-3, lr_scale=5e-4, lr_norm=1e-4, heldout=4),
    "full": dict(weight="int4", group_size=128, act="int8", kv="int4", n_seqs=32, seq_len=256, greedy=(3, 5),
                 top_k=50, gen_batch=16, steps=60, batch=2, lr=5e-3, lr_scale=5e-4, lr_norm=1e-4, heldout=4),
}


# ============================================================================= data-free generation
def model_fingerprint(model: nn.Module) -> str:
    """Short hash of the model's config and a few weights (keys the generated-data cache)."""
    h = hashlib.sha1(repr(sorted(model.config.to_dict().items(), key=lambda kv: kv[0])).encode())
    for p in list(model.parameters())[:4]:
        h.update(p.detach().reshape(-1)[:4096].numpy().tobytes())
    return h.hexdigest()[:12]


def _top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


@torch.no_grad()
def generate_data(model: nn.Module, n_seqs: int, seq_len: int, *, greedy: tuple[int, int] = (3, 5),
                  top_k: int | None = 50, temperature: float = 1.0, batch: int = 8, seed: int = 0,
                  vocab_size: int | None = None, progress: bool = True) -> torch.Tensor:
    """LLM-QAT's hybrid self-generation: ``[n_seqs, seq_len]`` token ids.

    Start tokens and per-sequence greedy lengths ``j`` (uniform in ``greedy``, inclusive, the start
    token counts) are drawn from a generator seeded with ``seed``; tokens at positions ``< j`` are the
    argmax, later ones are sampled from ``softmax(top_k(logits) / temperature)`` with the same
    generator. Deterministic for a given model, seed and arguments. ``model`` is not modified.
    """
    from tqdm.auto import tqdm
    if n_seqs <= 0 or seq_len < 2 or batch <= 0:
        raise ValueError(f"n_seqs={n_seqs}, seq_len={seq_len}, batch={batch}: need n_seqs > 0, seq_len >= 2, "
                         f"batch > 0")
    lo, hi = greedy
    if not 1 <= lo <= hi:
        raise ValueError(f"greedy={greedy!r} must be (lo, hi) with 1 <= lo <= hi")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    vocab = vocab_size or model.config.vocab_size
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, vocab, (n_seqs,), generator=g)
    j = torch.randint(lo, hi + 1, (n_seqs,), generator=g)
    out = torch.empty(n_seqs, seq_len, dtype=torch.long)
    was_training = model.training
    model.eval()
    bar = tqdm(total=n_seqs * (seq_len - 1), desc="generate", disable=not progress, leave=False, unit="tok")
    try:
        for b0 in range(0, n_seqs, batch):
            sl = slice(b0, min(b0 + batch, n_seqs))
            toks = starts[sl].unsqueeze(1)
            r = model(input_ids=toks, use_cache=True)
            seq = [toks[:, 0]]
            for t in range(1, seq_len):
                logits = r.logits[:, -1, :vocab].float()
                greedy_tok = logits.argmax(-1)
                probs = torch.softmax(_top_k_filter(logits, top_k) / temperature, -1)
                sampled = torch.multinomial(probs, 1, generator=g).squeeze(1)
                nxt = torch.where(t < j[sl], greedy_tok, sampled)
                seq.append(nxt)
                bar.update(nxt.numel())
                if t < seq_len - 1:
                    r = model(input_ids=nxt.unsqueeze(1), past_key_values=r.past_key_values, use_cache=True)
            out[sl] = torch.stack(seq, 1)
    finally:
        bar.close()
        model.train(was_training)
    return out


def cached_data(model: nn.Module, params: Mapping, seed: int, cache_dir: Path | None,
                progress: bool = True) -> tuple[torch.Tensor, dict]:
    """:func:`generate_data` with the preset's sizes, cached as ``qat-gen-<key>.pt`` in ``cache_dir``
    (None: no cache). Returns ``(ids, info)`` with ``info`` = seconds, cached flag, path."""
    kw = dict(n_seqs=params["n_seqs"], seq_len=params["seq_len"], greedy=tuple(params["greedy"]),
              top_k=params["top_k"], batch=params["gen_batch"], seed=seed)
    key = hashlib.sha1(f"{model_fingerprint(model)}|{sorted(kw.items())}".encode()).hexdigest()[:12]
    path = None if cache_dir is None else Path(cache_dir) / f"qat-gen-{key}.pt"
    if path is not None and path.is_file():
        ids = torch.load(path)
        if tuple(ids.shape) == (kw["n_seqs"], kw["seq_len"]):
            return ids, {"seconds": 0.0, "cached": True, "path": str(path), "key": key}
    t0 = time.perf_counter()
    ids = generate_data(model, progress=progress, **kw)
    sec = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ids, path)
    return ids, {"seconds": sec, "cached": False, "path": None if path is None else str(path), "key": key}


# ============================================================================= student
class _QuantizedWeight(nn.Module):
    """Parametrization: the linear's weight is the :class:`LearnedQuantizer`'s output (the stored
    original is only its starting point and is frozen)."""

    def __init__(self, quantizer: LearnedQuantizer):
        super().__init__()
        self.quantizer = quantizer

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return self.quantizer()


def make_student(model: nn.Module, spec: QuantSpec):
    """Deep copy of ``model`` with learned-quantizer weights (``spec.weight``, ``group_size``,
    ``scale_format``) and STE act/KV quantization (``spec.act``/``spec.kv``). Returns
    ``(student, handle)``; ``handle.remove()`` detaches the act/KV hooks. ``model`` is untouched."""
    if spec.weight is None:
        raise ValueError("spec.weight must name a weight format for QAT")
    if spec.layer_formats:
        raise ValueError("spec.layer_formats is not supported by QAT (one weight format for all linears)")
    student = copy.deepcopy(model)
    for p in student.parameters():
        p.requires_grad_(False)
    for lin in decoder_linears(student).values():
        q = LearnedQuantizer(lin.weight, spec.weight, spec.group_size, spec.scale_format)
        parametrize.register_parametrization(lin, "weight", _QuantizedWeight(q), unsafe=True)
    for n, p in student.named_parameters():
        if n.endswith("norm.weight") or ".quantizer." in n and ("delta" in n or "log_scale" in n):
            p.requires_grad_(True)
    for lin in decoder_linears(student).values():
        lin.parametrizations.weight.original.requires_grad_(False)
        q = lin.parametrizations.weight[0].quantizer
        q.log_scale.requires_grad_(q.learn_scale)
    handle = attach_act_kv(student, QuantSpec(act=spec.act, kv=spec.kv), ste=True)
    return student, handle


@torch.no_grad()
def deploy_student(student: nn.Module) -> dict:
    """Replace every parametrized weight by its deployed, exactly representable value (learned
    scales, ``sw.QuantizedTensor``) and drop the parametrizations; returns ``{name: QuantizedTensor}``."""
    out = {}
    for name, lin in decoder_linears(student).items():
        if not parametrize.is_parametrized(lin, "weight"):
            continue
        q = lin.parametrizations.weight[0].quantizer
        out[name] = q.deploy()
        w = q.deployed_weight()
        parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
        lin.weight.copy_(w)
        lin.weight.requires_grad_(False)
    return out


# ============================================================================= KD
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(teacher) || softmax(student))`` averaged over tokens (``batchmean`` on ``[tokens, V]``)."""
    v = student_logits.shape[-1]
    s = F.log_softmax(student_logits.reshape(-1, v).float(), -1)
    t = F.softmax(teacher_logits.reshape(-1, v).float(), -1)
    return F.kl_div(s, t, reduction="batchmean")


@torch.no_grad()
def mean_kl(student: nn.Module, teacher: nn.Module, ids: torch.Tensor, batch: int = 2) -> float:
    """Token-mean KD loss of ``student`` vs ``teacher`` on ``ids`` ``[n, T]`` (no gradient)."""
    tot, n = 0.0, 0
    for i in range(0, ids.shape[0], batch):
        x = ids[i:i + batch]
        tl = teacher(input_ids=x, use_cache=False).logits
        sl = student(input_ids=x, use_cache=False).logits
        tot += float(kd_loss(sl, tl)) * x.numel()
        n += x.numel()
    return tot / n


def train(student: nn.Module, teacher: nn.Module, ids: torch.Tensor, *, steps: int, batch: int = 2,
          lr: float = 2e-3, lr_scale: float = 2e-4, lr_norm: float = 1e-4, seed: int = 0,
          progress: bool = True) -> dict:
    """KD-train ``student`` on ``ids`` ``[n, T]`` for ``steps`` AdamW steps (batches of ``batch``
    sequences, drawn in a seeded random order, epochs repeat), cosine learning rate, no warmup, no
    weight decay. ``lr`` applies to the weight perturbations (units of the group step), ``lr_scale``
    to the log group scales, ``lr_norm`` to the RMSNorm weights. Returns losses and timing."""
    from tqdm.auto import tqdm
    if steps < 0 or batch <= 0:
        raise ValueError(f"steps={steps} must be >= 0 and batch={batch} > 0")
    groups = {"delta": [], "log_scale": [], "norm": []}
    for n, p in student.named_parameters():
        if not p.requires_grad:
            continue
        key = "delta" if n.endswith("delta") else "log_scale" if n.endswith("log_scale") else "norm"
        groups[key].append(p)
    lrs = {"delta": lr, "log_scale": lr_scale, "norm": lr_norm}
    opt = torch.optim.AdamW([{"params": v, "lr": lrs[k]} for k, v in groups.items() if v], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    g = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    losses = []
    teacher_was = teacher.training
    teacher.eval()
    student.train()
    t0 = time.perf_counter()
    try:
        for step in tqdm(range(steps), desc="QAT", disable=not progress, leave=False):
            if order.numel() < batch:
                order = torch.cat([order, torch.randperm(ids.shape[0], generator=g)])
            idx, order = order[:batch], order[batch:]
            x = ids[idx]
            with torch.no_grad():
                tl = teacher(input_ids=x, use_cache=False).logits
            loss = kd_loss(student(input_ids=x, use_cache=False).logits, tl)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    finally:
        student.eval()
        teacher.train(teacher_was)
    return {"losses": losses, "seconds": time.perf_counter() - t0, "steps": steps,
            "tokens_per_step": batch * ids.shape[1]}


# ============================================================================= report section
def section(ctx, preset: str | None = None, params: Mapping | None = None):
    """W4A8KV4 (default: int4 g128 weights, int8 per-token activations, int4 per-token K/V):
    RTN perplexity vs LLM-QAT-style KD-QAT perplexity on the evaluation slice."""
    from .context import Section, Table
    p = dict(PRESETS[preset or ctx.preset.name])
    if params:
        unknown = sorted(set(params) - set(p) - {"slices"})
        if unknown:
            raise ValueError(f"qat section: unknown parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(set(p) | {'slices'}))}")
        p.update(params)
    t0 = time.perf_counter()
    spec = QuantSpec(weight=p["weight"], group_size=p["group_size"], act=p["act"], kv=p["kv"])
    act_kv = QuantSpec(act=p["act"], kv=p["kv"])
    ref = ctx.reference["ppl"]
    rtn = ctx.ppl(spec)
    n_slices = int(p.get("slices") or ctx.preset.slices)
    runs = [_train_one(ctx, p, spec, act_kv, ctx.seed + k) for k in range(n_slices)]
    sp = summary(r["qat"]["ppl"] for r in runs)
    qat_ppl = sp["mean"]
    met = qat_ppl < rtn["ppl"]
    first = runs[0]
    rows = [["float", "-", ref, None, 0.0, None],
            [spec.label(), "RTN", rtn["ppl"], None, rtn["delta_pct"], first["kl0"]]]
    for r in runs:
        rows.append([spec.label(), f"KD-QAT ({p['steps']} steps), data seed {r['seed']}", r["qat"]["ppl"], None,
                     r["qat"]["delta_pct"], r["kl1"]])
    if n_slices > 1:
        rows.append([spec.label(), f"KD-QAT mean over {n_slices} data sets", qat_ppl, spread_text(sp),
                     100.0 * (qat_ppl / ref - 1.0), statistics.fmean(r["kl1"] for r in runs)])
    tab = Table(f"QAT with data-free distillation vs RTN (perplexity on the evaluation slice; QAT on {n_slices} "
                f"generated data set(s), seeds {ctx.seed}..{ctx.seed + n_slices - 1})",
                ["config", "method", "PPL", "PPL mean (min..max)", "Δ vs float %",
                 "KL to teacher on held-out generated text"], rows)
    ids, gen, log = first["ids"], first["gen"], first["log"]
    n_hold = first["n_hold"]
    gen_tokens = int(ids.numel())
    spread = ""
    if spread_exceeds(sp, qat_ppl - rtn["ppl"]):
        spread = (f" The spread over the data sets ({sp['max'] - sp['min']:.2f}) is larger than the gain over RTN "
                  f"({rtn['ppl'] - qat_ppl:.2f}): one data set alone would not settle it.")
    text = "\n\n".join([
        f"Data-free sets: per calibration slice k the float model generated {ids.shape[0]} sequences x "
        f"{ids.shape[1]} tokens ({gen_tokens} tokens; start tokens drawn with seed {ctx.seed} + k, first 3-5 "
        f"tokens greedy, the rest sampled with top-k {p['top_k']}; the first set in {gen['seconds']:.0f} s"
        f"{' (cached: ' + gen['path'] + ')' if gen['cached'] else ''}); {n_hold} held out for the KL column. "
        f"{n_slices} set(s), each trained from the same RTN start with the training seed {ctx.seed} + k; the "
        f"target is judged on the mean.",
        f"Student: {spec.label()}; weights via learned quantizers (weight perturbation + fp16 group scales, "
        f"STE), act/KV fake-quantized per token with STE (K/V before RoPE, as LLM-QAT). KD loss KL(teacher "
        f"|| student) per token; AdamW, {p['steps']} steps of {p['batch']} x {ids.shape[1]} tokens, lr "
        f"{p['lr']} (weights, in group steps) / {p['lr_scale']} (log scales) / {p['lr_norm']} (norms), cosine, "
        f"no weight decay; training took {sum(r['log']['seconds'] for r in runs):.0f} s over the set(s) (first "
        f"set: loss {log['losses'][0]:.4f} -> {log['losses'][-1]:.4f})." if log["losses"] else "No training steps.",
        f"Target: QAT perplexity below RTN at {spec.label()}: **{'met' if met else 'missed'}** "
        f"({spread_text(sp)} vs {rtn['ppl']:.3f}; float {ref:.3f})." + spread
        + ("" if met else " Why: the preset's budget (few steps on a small self-generated set) does not move "
           "enough roundings; see the KL column for how far distillation got."),
    ])
    data = {"params": p, "reference_ppl": ref, "rtn": rtn, "qat": first["qat"], "qat_ppl": sp, "slices": n_slices,
            "per_slice": [{"seed": r["seed"], "ppl": r["qat"]["ppl"], "kl_heldout_before": r["kl0"],
                           "kl_heldout_after": r["kl1"], "train_seconds": r["log"]["seconds"]} for r in runs],
            "kl_heldout_before": first["kl0"], "kl_heldout_after": first["kl1"], "generation": gen,
            "generated_tokens": gen_tokens, "train": {k: v for k, v in log.items()}, "target_met": met}
    return Section(key="qat", title="QAT with data-free distillation (LLM-QAT)", text=text, tables=[tab],
                   data=data, seconds=time.perf_counter() - t0)


def _train_one(ctx, p: Mapping, spec: QuantSpec, act_kv: QuantSpec, seed: int) -> dict:
    """One calibration slice of the QAT section: generate the data set with ``seed``, train a student
    from the RTN start with ``seed``, deploy it and measure its perplexity."""
    from .models import DEFAULT_CACHE
    ids, gen = cached_data(ctx.model, p, seed, None if ctx.tiny else DEFAULT_CACHE, ctx.progress)
    n_hold = min(p["heldout"], ids.shape[0] - 1)
    train_ids, held = ids[:-n_hold] if n_hold else ids, ids[-n_hold:] if n_hold else ids[:1]
    student, handle = make_student(ctx.model, spec)
    try:
        kl0 = mean_kl(student, ctx.model, held)
        log = train(student, ctx.model, train_ids, steps=p["steps"], batch=p["batch"], lr=p["lr"],
                    lr_scale=p["lr_scale"], lr_norm=p["lr_norm"], seed=seed, progress=ctx.progress)
        kl1 = mean_kl(student, ctx.model, held)
    finally:
        handle.remove()
    deploy_student(student)
    qat = ctx.ppl(act_kv, model=student)
    del student
    return {"seed": seed, "ids": ids, "gen": gen, "log": log, "kl0": kl0, "kl1": kl1, "qat": qat, "n_hold": n_hold}
