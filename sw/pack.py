"""Bit-exact memory images: what the hardware reads.

Byte and bit order (also in ``docs/memory_image.md``):

* A tensor is stored row-major with the group axis (the reduction axis K) innermost:
  element ``(o, k)`` is number ``o*K + k`` of the stream. Streams are flat and padded
  with zero bits to a whole byte at the very end only.
* Widths that divide 8 (1, 2, 4, 8 bits) are packed **LSB-first**: element ``i`` of a
  byte occupies bits ``[b*i + b-1 : b*i]``. INT4/FP4: two per byte, the even element
  in bits [3:0] (the GGUF / torch ``float4_e2m1fn_x2`` convention).
* Other widths (3, 5, 6, 7 bits) are packed **MSB-first**, contiguous: the stream is
  the concatenation of the codes, most significant bit first. For FP6 this is the
  FP6-LLM "plain" layout: 4 codes in 3 bytes, ``byte0 = v0[5:0] v1[5:4]``,
  ``byte1 = v1[3:0] v2[5:2]``, ``byte2 = v2[1:0] v3[5:0]``.
* FP6 **4+2 split** (ZeroQuant(4+2) / FP6-LLM): two streams, ``seg2`` holding
  ``code[5:4]`` four per byte and ``seg4`` holding ``code[3:0]`` two per byte, both
  MSB-first (element 0 in bits [7:6] / [7:4]), so that for byte ``j`` of each stream
  ``(seg2[j] & 0xC0) | (seg4[j] & 0xF0) >> 2`` is the first code in bits [7:2].
* Per-group metadata, one entry per group in row-major ``[out, n_groups]`` order:
  ``scales`` are the raw bits of the scale format (fp16/bf16 2 bytes, fp32 4 bytes,
  e4m3/e8m0 1 byte), little-endian; ``selectors`` are 2 bits, LSB-first (4 per byte);
  ``zero_points`` are element-width codes under the rule above; NVFP4's
  ``tensor_scale`` is one fp32, little-endian.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checks import as_code_tensor
from .formats import get_scale_format
from .quantized import QuantizedTensor

ORDERS = ("lsb_first", "msb_first")


def default_order(bits: int) -> str:
    return "lsb_first" if 8 % bits == 0 else "msb_first"


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits={bits!r} must be an int in 1..8")


def pack_stream(codes, bits: int, order: str | None = None) -> torch.Tensor:
    """Pack ``bits``-wide codes (any shape, row-major) into a flat uint8 stream."""
    _check_bits(bits)
    order = order or default_order(bits)
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; choose one of {', '.join(ORDERS)}")
    c = as_code_tensor(codes, "codes", bits).reshape(-1).to(torch.uint8).numpy()
    if order == "lsb_first":
        b = np.unpackbits(c[:, None], axis=1, bitorder="little")[:, :bits]
        out = np.packbits(b.reshape(-1), bitorder="little")
    else:
        b = np.unpackbits(c[:, None], axis=1, bitorder="big")[:, 8 - bits:]
        out = np.packbits(b.reshape(-1), bitorder="big")
    return torch.from_numpy(out)


def unpack_stream(data, bits: int, n: int, order: str | None = None) -> torch.Tensor:
    """Inverse of :func:`pack_stream`: the first ``n`` codes of ``data`` (uint8)."""
    _check_bits(bits)
    order = order or default_order(bits)
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; choose one of {', '.join(ORDERS)}")
    d = as_code_tensor(data, "data", 8).to(torch.uint8).reshape(-1).numpy()
    need = (n * bits + 7) // 8
    if d.size < need:
        raise ValueError(f"data holds {d.size} bytes but {n} codes of {bits} bits need {need}")
    if order == "lsb_first":
        b = np.unpackbits(d, bitorder="little")[: n * bits].reshape(n, bits)
        c = np.packbits(np.pad(b, ((0, 0), (0, 8 - bits))), axis=1, bitorder="little")[:, 0]
    else:
        b = np.unpackbits(d, bitorder="big")[: n * bits].reshape(n, bits)
        c = np.packbits(np.pad(b, ((0, 0), (8 - bits, 0))), axis=1, bitorder="big")[:, 0]
    return torch.from_numpy(c.copy())


def pack_int4(codes) -> torch.Tensor:
    """Two 4-bit codes per byte, even element in bits [3:0]."""
    return pack_stream(codes, 4, "lsb_first")


def unpack_int4(data, n: int) -> torch.Tensor:
    return unpack_stream(data, 4, n, "lsb_first")


def pack_fp6(codes) -> torch.Tensor:
    """FP6 plain packing: 4 codes in 3 bytes, MSB-first (FP6-LLM)."""
    return pack_stream(codes, 6, "msb_first")


def unpack_fp6(data, n: int) -> torch.Tensor:
    return unpack_stream(data, 6, n, "msb_first")


def pack_fp6_split(codes) -> tuple[torch.Tensor, torch.Tensor]:
    """FP6 4+2 split: (``seg2`` = code[5:4] stream, ``seg4`` = code[3:0] stream)."""
    c = as_code_tensor(codes, "codes", 6).reshape(-1)
    return pack_stream(c >> 4, 2, "msb_first"), pack_stream(c & 0xF, 4, "msb_first")


def unpack_fp6_split(seg2, seg4, n: int) -> torch.Tensor:
    hi = unpack_stream(seg2, 2, n, "msb_first").to(torch.int64)
    lo = unpack_stream(seg4, 4, n, "msb_first").to(torch.int64)
    return ((hi << 4) | lo).to(torch.uint8)


def _le_bytes(words: torch.Tensor, nbytes: int) -> torch.Tensor:
    w = words.reshape(-1).to(torch.int64)
    return torch.stack([(w >> (8 * i)) & 0xFF for i in range(nbytes)], -1).reshape(-1).to(torch.uint8)


def _from_le_bytes(data: torch.Tensor, nbytes: int, n: int) -> torch.Tensor:
    d = data.reshape(-1)[: n * nbytes].to(torch.int64).reshape(n, nbytes)
    return sum(d[:, i] << (8 * i) for i in range(nbytes))


@dataclass(eq=False)
class MemoryImage:
    """The byte streams of one quantized matrix plus the header that gives their meaning."""

    format: str
    shape: tuple[int, ...]
    axis: int
    group_size: int
    scale_format: str
    rounding: str
    element_bits: int
    fp6_layout: str | None
    streams: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(int(s.numel()) for s in self.streams.values())

    def header(self) -> dict:
        return {"format": self.format, "shape": list(self.shape), "axis": self.axis,
                "group_size": self.group_size, "scale_format": self.scale_format, "rounding": self.rounding,
                "element_bits": self.element_bits, "fp6_layout": self.fp6_layout,
                "streams": {k: int(v.numel()) for k, v in self.streams.items()}}

    def write(self, directory) -> Path:
        """Write ``<stream>.bin`` files and ``image.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, s in self.streams.items():
            (d / f"{name}.bin").write_bytes(s.numpy().tobytes())
        (d / "image.json").write_text(json.dumps(self.header(), indent=2) + "\n")
        return d

    @classmethod
    def read(cls, directory) -> "MemoryImage":
        d = Path(directory)
        h = json.loads((d / "image.json").read_text())
        streams = {k: torch.from_numpy(np.frombuffer((d / f"{k}.bin").read_bytes(), dtype=np.uint8).copy())
                   for k in h["streams"]}
        return cls(format=h["format"], shape=tuple(h["shape"]), axis=h["axis"], group_size=h["group_size"],
                   scale_format=h["scale_format"], rounding=h["rounding"], element_bits=h["element_bits"],
                   fp6_layout=h["fp6_layout"], streams=streams)


def pack(qt: QuantizedTensor, fp6_layout: str = "split") -> MemoryImage:
    """The memory image of ``qt`` (groups innermost). ``fp6_layout``: ``split`` or ``plain``."""
    if fp6_layout not in ("split", "plain"):
        raise ValueError(f"fp6_layout={fp6_layout!r}; choose 'split' or 'plain'")
    bits = qt.element.bits
    codes = qt.codes.movedim(qt.axis, -1)
    img = MemoryImage(format=qt.format, shape=tuple(qt.shape), axis=qt.axis, group_size=qt.group_size,
                      scale_format=qt.scale_format, rounding=qt.rounding, element_bits=bits,
                      fp6_layout=fp6_layout if bits == 6 else None)
    if bits == 6 and fp6_layout == "split":
        img.streams["seg2"], img.streams["seg4"] = pack_fp6_split(codes)
    else:
        img.streams["codes"] = pack_stream(codes, bits)
    sf = get_scale_format(qt.scale_format)
    img.streams["scales"] = _le_bytes(sf.to_bits(qt.scales.movedim(qt.axis, -1)), sf.bits // 8)
    if qt.selectors is not None:
        img.streams["selectors"] = pack_stream(qt.selectors.movedim(qt.axis, -1), 2)
    if qt.zero_points is not None:
        img.streams["zero_points"] = pack_stream(qt.zero_points.movedim(qt.axis, -1), bits)
    if qt.tensor_scale is not None:
        ts = torch.tensor([qt.tensor_scale], dtype=torch.float32).view(torch.int32)
        img.streams["tensor_scale"] = _le_bytes(ts, 4)
    return img


def unpack(img: MemoryImage) -> QuantizedTensor:
    """Rebuild the :class:`QuantizedTensor` that :func:`pack` wrote (bit-exact)."""
    from .quantize import variants_for

    shape = list(img.shape)
    axis = img.axis
    k = shape[axis]
    moved = shape[:axis] + shape[axis + 1:] + [k]
    n = int(np.prod(moved))
    if img.fp6_layout == "split":
        codes = unpack_fp6_split(img.streams["seg2"], img.streams["seg4"], n)
    else:
        codes = unpack_stream(img.streams["codes"], img.element_bits, n)
    codes = codes.reshape(moved).movedim(-1, axis)
    meta = moved[:-1] + [k // img.group_size]
    ng = int(np.prod(meta))
    sf = get_scale_format(img.scale_format)
    scales = sf.from_bits(_from_le_bytes(img.streams["scales"], sf.bits // 8, ng)).reshape(meta).movedim(-1, axis)
    sel = zp = ts = None
    if "selectors" in img.streams:
        sel = unpack_stream(img.streams["selectors"], 2, ng).reshape(meta).movedim(-1, axis)
    if "zero_points" in img.streams:
        zp = unpack_stream(img.streams["zero_points"], img.element_bits, ng).reshape(meta).movedim(-1, axis)
    if "tensor_scale" in img.streams:
        ts = float(_from_le_bytes(img.streams["tensor_scale"], 4, 1).to(torch.int32).view(torch.float32)[0])
    return QuantizedTensor(format=img.format, variants=variants_for(img.format), codes=codes, scales=scales,
                           group_size=img.group_size, axis=axis, scale_format=img.scale_format,
                           rounding=img.rounding, selectors=sel, zero_points=zp, tensor_scale=ts)
