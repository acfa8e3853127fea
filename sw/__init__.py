"""bitmix golden model: the number-format library and the bit-accurate datapath.

* :mod:`sw.formats` — the element-format registry (``names()``, ``get(name)``);
* :mod:`sw.group_formats` — the group-format registry (BitMoD, MX, NVFP4), filled by the families;
* :func:`sw.quantize` — quantize a tensor to an element or group format;
* :mod:`sw.pack` — the memory image the hardware reads.
"""
from . import bitmod, formats, group_formats, mx, nvfp4, pack  # noqa: F401  (the families register their formats)
from .quantize import DEFAULT_GROUP_SIZE, format_spec, group_format_names, quantize
from .quantized import QuantizedTensor

__all__ = ["formats", "group_formats", "quantize", "format_spec", "QuantizedTensor", "group_format_names",
           "DEFAULT_GROUP_SIZE", "pack"]

