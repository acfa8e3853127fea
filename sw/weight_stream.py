"""The weight stream: one tile of a memory image as the word beats ``rtl.weight_port`` reads.

A tile is rows ``r0 .. r0+R-1`` of a quantized ``[out, K]`` matrix over inputs ``k0 .. k1-1``
(``k0``, ``k1`` multiples of the group size ``G``). Each row's part of the packed stream
(``sw.pack.pack``: rows row-major, the group axis innermost) is cut into words of
``word_bits`` bits, the stream's bytes little-endian (byte ``j`` of a word at bits
``[8j+7:8j]``); a *beat* is the ``R`` rows' next words, row ``r`` at bits
``[r*W + W-1 : r*W]``. Rows past the matrix (the last tile of an ``out`` that ``R`` does not
divide) carry zero words, as the engine's zero codes.

Which streams a format has and their element bits follow ``sw.pack``: one ``codes`` stream of
``sw.terms.code_bits(fmt)`` bits, except 6-bit formats, which ``pack`` writes in the 4+2 split
(``seg2`` = ``code[5:4]`` and ``seg4`` = ``code[3:0]``). Their schedule, per row, is blocks of
``W/2`` elements: the block's ``seg2`` word (its ``W/2`` crumbs), then its two ``seg4`` words.
So the stream carries exactly the format's element bits per weight (:func:`stream_bits_per_weight`).

A tile starts on a word when ``G * b`` is a multiple of ``W`` for every stream of ``b``-bit
elements (:func:`check_geometry`); the port also needs every beat of ``L`` elements to be whole
bytes of each stream (``L * b`` a multiple of 8). ``G`` being a multiple of ``L`` too, a tile is
then whole periods of ``lcm(W, L*b)`` bits, where word and beat boundaries meet (with the port's
``W = 8L``, :func:`default_word_bits`: 3 words = 8 beats of a 3-bit format; an FP6 block of
``4L`` weights = 3 words = 4 beats).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import pack as P
from . import terms as T

__all__ = ["Segment", "segments", "stream_bits_per_weight", "default_word_bits", "check_geometry", "tile_words",
           "words_to_codes", "wgt_beats", "beat_word"]

#: element bits of the FP6 4+2 split streams (``sw.pack.pack_fp6_split``): crumbs, nibbles
SPLIT_BITS = {"seg2": 2, "seg4": 4}


@dataclass(frozen=True)
class Segment:
    """One packed stream of a format: its ``sw.pack`` stream name, element bits and bit order."""
    name: str
    bits: int
    order: str


def segments(fmt: str) -> tuple[Segment, ...]:
    """The streams of ``fmt`` in ``sw.pack``'s image, in schedule order (``seg2`` before ``seg4``)."""
    b = T.code_bits(fmt)
    if b == 6:   # sw.pack.pack writes every 6-bit format in the 4+2 split (its default layout)
        return tuple(Segment(n, bits, "msb_first") for n, bits in SPLIT_BITS.items())
    return (Segment("codes", b, P.default_order(b)),)


def is_split(fmt: str) -> bool:
    return len(segments(fmt)) > 1


def fill_cycles(fmt: str) -> int:
    """Cycles the weight port needs at a tile's start before its first beat: 1 for the 6-bit formats
    (the block's ``seg2`` word is stored first), 0 for the others (read in place)."""
    return 1 if is_split(fmt) else 0


def stream_bits_per_weight(fmt: str) -> int:
    """Bits per weight on the weight stream (codes only; scales travel on ``meta``)."""
    return sum(s.bits for s in segments(fmt))


def default_word_bits(lanes: int) -> int:
    """``W = 8 * L`` bits per row and word: one INT8 beat, two 4-bit beats, 8/3 3-bit beats, and
    per FP6 block of ``4L`` weights one ``seg2`` word and two ``seg4`` words (``rtl.weight_port``
    reads them in place)."""
    return 8 * lanes


def _check_word_bits(word_bits) -> None:
    if isinstance(word_bits, bool) or not isinstance(word_bits, int) or word_bits <= 0 or word_bits % 8:
        raise ValueError(f"word_bits={word_bits!r} must be a positive multiple of 8 (whole little-endian bytes)")


def _check_tile_start(fmt: str, group_size: int, word_bits: int) -> None:
    for s in segments(fmt):
        if group_size * s.bits % word_bits:
            raise ValueError(f"group_size={group_size} x {s.bits} bits ({fmt}, {s.name} stream) is not a "
                             f"multiple of word_bits={word_bits}: tiles would not start on a word")


def check_geometry(formats, lanes: int, group_size: int, word_bits: int) -> None:
    """Raise ``ValueError`` unless ``(lanes, group_size, word_bits)`` suits every format."""
    _check_word_bits(word_bits)
    for f in formats:
        for s in segments(f):
            if lanes * s.bits % 8:
                step = 8 // math.gcd(8, s.bits)
                raise ValueError(f"lanes={lanes}: a beat of {f} is {lanes * s.bits} bits of its {s.name} stream, "
                                 f"not whole bytes; {f} needs lanes a multiple of {step}")
        _check_tile_start(f, group_size, word_bits)


def _row_streams(img: P.MemoryImage) -> tuple[int, int]:
    """``(rows, K)`` of the image's streams (the group axis moved innermost)."""
    shape = list(img.shape)
    k = shape.pop(img.axis)
    return math.prod(shape), k


def _words(data: torch.Tensor, start_bit: int, nbits: int, word_bits: int) -> list[int]:
    raw = bytes(data[start_bit // 8:(start_bit + nbits) // 8].tolist())
    nb = word_bits // 8
    return [int.from_bytes(raw[i:i + nb], "little") for i in range(0, len(raw), nb)]


def tile_words(img: P.MemoryImage, fmt: str, *, r0: int, rows: int, k0: int, k1: int,
               word_bits: int) -> list[list[int]]:
    """The word beats of one tile: a list of beats, each ``rows`` words (row ``r0 + r`` at index ``r``)."""
    if T.code_bits(fmt) != img.element_bits:
        raise ValueError(f"fmt={fmt!r} has {T.code_bits(fmt)}-bit codes but the image holds "
                         f"{img.element_bits}-bit ones ({img.format})")
    if is_split(fmt) and img.fp6_layout != "split":
        raise ValueError(f"the weight stream reads 6-bit formats in the 4+2 split; the image is "
                         f"fp6_layout={img.fp6_layout!r}")
    n_out, K = _row_streams(img)
    G = img.group_size
    if not (0 <= k0 < k1 <= K and k0 % G == 0 and k1 % G == 0):
        raise ValueError(f"k0={k0}, k1={k1} must be multiples of group_size={G} with 0 <= k0 < k1 <= K={K}")
    if not 0 <= r0 < n_out:
        raise ValueError(f"r0={r0} is outside the image's {n_out} rows")
    _check_word_bits(word_bits)
    _check_tile_start(fmt, G, word_bits)
    n = k1 - k0
    per_row = []
    for r in range(r0, r0 + rows):
        seg_words = {}
        for s in segments(fmt):
            if r < n_out:
                seg_words[s.name] = _words(img.streams[s.name], (r * K + k0) * s.bits, n * s.bits, word_bits)
            else:
                seg_words[s.name] = [0] * (n * s.bits // word_bits)
        if is_split(fmt):
            w2, w4 = seg_words["seg2"], seg_words["seg4"]
            per_row.append([w for j in range(len(w2)) for w in (w2[j], w4[2 * j], w4[2 * j + 1])])
        else:
            per_row.append(seg_words["codes"])
    return [list(beat) for beat in zip(*per_row)]


def beat_word(beat: list[int], word_bits: int) -> int:
    """A beat as the port's ``words`` payload: row ``r``'s word at bits ``[r*W + W-1 : r*W]``."""
    return sum(w << (r * word_bits) for r, w in enumerate(beat))


def words_to_codes(beats: list[list[int]], fmt: str, *, word_bits: int) -> torch.Tensor:
    """Inverse of :func:`tile_words`: the ``[rows, k1-k0]`` codes a tile's beats carry."""
    nb = word_bits // 8
    rows = len(beats[0]) if beats else 0
    out = []
    for r in range(rows):
        ws = [b[r] for b in beats]
        if is_split(fmt):
            w2 = ws[0::3]
            w4 = [w for j in range(len(w2)) for w in (ws[3 * j + 1], ws[3 * j + 2])]
            s2 = torch.tensor(list(b"".join(w.to_bytes(nb, "little") for w in w2)), dtype=torch.uint8)
            s4 = torch.tensor(list(b"".join(w.to_bytes(nb, "little") for w in w4)), dtype=torch.uint8)
            n = len(w2) * word_bits // SPLIT_BITS["seg2"]
            out.append(P.unpack_fp6_split(s2, s4, n))
        else:
            s = segments(fmt)[0]
            data = torch.tensor(list(b"".join(w.to_bytes(nb, "little") for w in ws)), dtype=torch.uint8)
            out.append(P.unpack_stream(data, s.bits, len(ws) * word_bits // s.bits, s.order))
    return torch.stack(out).to(torch.int64)


def wgt_beats(codes: torch.Tensor, *, lanes: int, code_bits: int) -> list[int]:
    """The engine's ``wgt`` beats for ``[R, K]`` codes: weight ``(r, s*L + l)`` at slot ``r*L + l``."""
    R, K = codes.shape
    c = codes.to(torch.int64).tolist()
    return [sum(c[r][s * lanes + l] << ((r * lanes + l) * code_bits) for r in range(R) for l in range(lanes))
            for s in range(K // lanes)]
