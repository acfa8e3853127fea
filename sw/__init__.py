"""bitmix golden model: the number-format library and (later) the bit-accurate datapath.

* :mod:`sw.formats` — the element-format registry (``names()``, ``get(name)``);
* :func:`sw.quantize` — quantize a tensor to an element or group format;
* :mod:`sw.pack` — the memory image the hardware reads.
"""
from . import formats, pack
from .quantize import DEFAULT_GROUP_SIZE, group_format_names, quantize
from .quantized import QuantizedTensor

__all__ = ["formats", "quantize", "QuantizedTensor", "group_format_names", "DEFAULT_GROUP_SIZE", "pack"]

