"""FP6 4+2 split unpacker: joins a ``seg2`` beat and a ``seg4`` beat into ``n`` 6-bit codes."""
from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fp6SplitUnpacker", "crumb_slice", "nibble_slice"]


def crumb_slice(i: int) -> tuple[int, int]:
    """``(lo, hi)`` bit range of element ``i``'s crumb (``code[5:4]``) in a ``seg2`` beat.

    ``seg2`` byte ``j = i // 4`` is at beat bits ``[8j+7 : 8j]``; its elements are MSB-first,
    element ``4j + q`` in byte bits ``[7-2q : 6-2q]``.
    """
    j, q = divmod(i, 4)
    lo = 8 * j + 6 - 2 * q
    return lo, lo + 2


def nibble_slice(i: int) -> tuple[int, int]:
    """``(lo, hi)`` bit range of element ``i``'s nibble (``code[3:0]``) in a ``seg4`` beat.

    ``seg4`` byte ``j = i // 2`` holds elements ``2j`` (bits [7:4]) and ``2j+1`` (bits [3:0]).
    """
    j, q = divmod(i, 2)
    lo = 8 * j + 4 - 4 * q
    return lo, lo + 4


class Fp6SplitUnpacker(wiring.Component):
    """Rebuilds ``n`` FP6 codes per beat from the two segment streams of the 4+2 split layout.

    A beat of each input stream is a little-endian word of the stream's bytes as
    :func:`sw.pack.pack_fp6_split` writes them (byte ``j`` at payload bits ``[8j+7:8j]``);
    beat ``t`` of ``seg2`` (``n/4`` bytes) and beat ``t`` of ``seg4`` (``n/2`` bytes) cover
    the same ``n`` elements ``t*n .. t*n+n-1``.

    Ports (flattened Verilog names in brackets)
    -----
    seg2 : In(stream.Signature(2*n))   [seg2__payload, seg2__valid, seg2__ready]
        ``code[5:4]`` crumbs, four per byte, MSB-first within a byte.
    seg4 : In(stream.Signature(4*n))   [seg4__payload, seg4__valid, seg4__ready]
        ``code[3:0]`` nibbles, two per byte, MSB-first within a byte.
    codes : Out(stream.Signature(6*n)) [codes__payload, codes__valid, codes__ready]
        Code ``i`` = ``(crumb_i << 4) | nibble_i`` at payload bits ``[6i+5:6i]``.
    clk, rst
        The ``sync`` domain (``rst`` synchronous, active high; clears ``codes.valid``).

    Behaviour: a stream join followed by one output register (a pipeline stage without a
    skid buffer). Both inputs are consumed in the same cycle, and only when both are valid
    and the register is empty or being emptied (``codes.ready``): ``seg2.ready =
    seg4.valid & (~codes.valid | codes.ready)`` and vice versa. Latency 1 cycle, full
    throughput (one beat per cycle with ``codes.ready`` held high). ``codes.valid`` and
    ``codes.payload`` come from flops; ``codes.ready`` reaches ``seg*.ready``
    combinationally, and each input's ``ready`` depends on the other input's ``valid``
    (allowed by the stream rules: ``valid`` never depends on ``ready``).
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % 4:
            self._MustUse__silence = True     # a rejected instance is not an "unused elaboratable"
            raise ValueError(f"n={n!r} must be a positive multiple of 4 (a whole seg2 byte per beat)")
        self.n = n
        super().__init__({
            "seg2": In(stream.Signature(2 * n)),
            "seg4": In(stream.Signature(4 * n)),
            "codes": Out(stream.Signature(6 * n)),
        })

    def elaborate(self, platform):
        m = Module()
        p2, p4 = self.seg2.payload, self.seg4.payload
        joined = Cat(*(Cat(p4[slice(*nibble_slice(i))], p2[slice(*crumb_slice(i))]) for i in range(self.n)))
        both = self.seg2.valid & self.seg4.valid
        can_load = ~self.codes.valid | self.codes.ready
        m.d.comb += [
            self.seg2.ready.eq(can_load & self.seg4.valid),
            self.seg4.ready.eq(can_load & self.seg2.valid),
        ]
        with m.If(can_load):
            m.d.sync += self.codes.valid.eq(both)
            with m.If(both):
                m.d.sync += self.codes.payload.eq(joined)
        return m
