"""Activation front end: block-floating-point alignment against a host-supplied block exponent."""
from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

MODES = ("fp16", "int8")


def act_layout(lanes: int, mode: str) -> data.StructLayout:
    """Payload of the ``act`` stream (first field at the LSB).

    ``x``: lane ``l`` at bits ``[16l+15 : 16l]`` (fp16 bits, or an int8 in ``[16l+7 : 16l]``);
    fp16 mode only: ``emax`` (5 bits) at ``[16L+4 : 16L]``, the group's block exponent,
    read on the group's first beat and ignored on the others.
    """
    fields = {"x": data.ArrayLayout(unsigned(16), lanes)}
    if mode == "fp16":
        fields["emax"] = unsigned(5)
    return data.StructLayout(fields)


def aligned_layout(lanes: int, group_size: int, act_bits: int) -> data.StructLayout:
    """Payload of :attr:`ActFrontEnd.aligned` (first field at the LSB)."""
    return data.StructLayout({
        "mant": data.ArrayLayout(signed(act_bits), lanes),
        "ea": signed(8),
        "sum_a": signed(sum_a_bits(group_size, act_bits)),
        "first": 1,
        "last": 1,
    })


def sum_a_bits(group_size: int, act_bits: int) -> int:
    """Width of ``sum_a``: ``act_bits + ceil(log2(group_size)) + 1`` (holds any group's sum)."""
    return act_bits + ceil_log2(group_size) + 1


def _tree(m: Module, values: list, op, name: str):
    """Balanced reduction of ``values`` with the binary ``op`` (combinational)."""
    level = 0
    while len(values) > 1:
        nxt = []
        for i in range(0, len(values) - 1, 2):
            v = op(values[i], values[i + 1])
            s = Signal(v.shape(), name=f"{name}_l{level}_{i // 2}")
            m.d.comb += s.eq(v)
            nxt.append(s)
        if len(values) % 2:
            nxt.append(values[-1])
        values, level = nxt, level + 1
    return values[0]


class ActFrontEnd(wiring.Component):
    """Aligns a stream of activation groups on the fly, bit-exact with ``sw.datapath.align``.

    ``L = lanes``, ``G = group_size``, ``W = act_bits``, ``B = G / L`` beats per group. A group
    is ``B`` consecutive ``act`` beats; the input is an endless sequence of groups (no command).
    There is no group buffer: in fp16 mode the group's block exponent ``emax`` comes with the
    group's first beat (computed upstream, once per activation vector:
    :func:`sw.datapath.block_exponents`), so every beat is aligned as it passes.

    Parameters (keyword-only)
    ----------
    lanes : int >= 1
    group_size : int, a positive multiple of ``lanes``
    act_bits : int, 12..32 (fp16) or 8..32 (int8)
    mode : "fp16" | "int8"

    Ports (``amaranth.lib.stream``: a beat transfers in a cycle with ``valid & ready``)
    -----
    act : In(stream.Signature(act_layout(L, mode)))
        Verilog ``act__payload``: lane ``l`` at bits ``[16l+15 : 16l]``; fp16 mode: the raw fp16
        bits, and ``emax`` at ``[16L+4 : 16L]`` (read on the group's first beat only). int8 mode:
        an int8 (two's complement) in bits ``[16l+7 : 16l]``; bits ``[16l+15 : 16l+8]`` are ignored.
        fp16 inf/NaN (exponent field 31) are outside the contract: they are aligned as if the
        field were a normal exponent (the result is then finite garbage, never a NaN).
    aligned : Out(stream.Signature(aligned_layout(L, G, W)))
        Fields from the LSB up:

        * ``mant`` ``[L*W-1 : 0]``: lane ``l`` at ``[W*l + W-1 : W*l]``, the aligned mantissa ``A``
          (signed). fp16: ``A = (-1)^s ((sig << (W-12)) >> max(0, emax - e'))`` with
          ``e' = max(e, 1)`` (shifts >= ``W-1`` give 0; -0 gives 0). ``emax`` is the host's value;
          when it is the group's true ``max e'`` (the contract), this is ``sw.datapath.align_fp16``;
          a lane with ``e' > emax`` is not shifted (no wrap-around). int8: ``A = x``.
        * ``ea`` signed(8) at ``[L*W+7 : L*W]``: ``emax - W - 13`` (fp16), 0 (int8).
        * ``sum_a`` signed(``S = W + ceil(log2 G) + 1``) at ``[L*W+8+S-1 : L*W+8]``: the sum of
          ``A`` over the group's beats up to and including this one (the group's ``S_A`` on the
          ``last`` beat).
        * ``first`` at bit ``L*W+8+S``, ``last`` at bit ``L*W+9+S``: the group's first / last beat.

    Timing: latency 0. ``aligned.valid = act.valid``, ``act.ready = aligned.ready`` and the payload
    is a combinational function of ``act.payload`` and three registers (beat counter, the latched
    ``emax``, the running ``sum_a``), which advance when a beat transfers. Stalls on either side
    pass through; no beat is stored.

    Reset (synchronous, active high): the next beat is the first beat of a group.
    """

    LATENCY = 0

    def __init__(self, *, lanes: int, group_size: int, act_bits: int, mode: str):
        try:
            self._check(lanes, group_size, act_bits, mode)
        except ValueError:
            self._MustUse__silence = True      # no "UnusedElaboratable" warning for a rejected object
            raise
        self.lanes, self.group_size, self.act_bits, self.mode = lanes, group_size, act_bits, mode
        self.beats = group_size // lanes
        self.sum_bits = sum_a_bits(group_size, act_bits)
        super().__init__({
            "act": In(stream.Signature(act_layout(lanes, mode))),
            "aligned": Out(stream.Signature(aligned_layout(lanes, group_size, act_bits))),
        })

    @staticmethod
    def _check(lanes, group_size, act_bits, mode):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes={lanes!r} must be a positive integer")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or group_size % lanes:
            raise ValueError(f"group_size={group_size!r} must be a positive multiple of lanes={lanes}")
        lo = 12 if mode == "fp16" else 8
        if isinstance(act_bits, bool) or not isinstance(act_bits, int) or not lo <= act_bits <= 32:
            raise ValueError(f"act_bits={act_bits!r} must be in {lo}..32 in {mode} mode")

    def elaborate(self, platform):
        m = Module()
        L, W, B = self.lanes, self.act_bits, self.beats
        act, out = self.act, self.aligned
        p = out.payload

        cnt = Signal(range(max(2, B)))
        first = cnt == 0
        last = cnt == B - 1
        m.d.comb += [act.ready.eq(out.ready), out.valid.eq(act.valid), p.first.eq(first), p.last.eq(last)]
        sent = act.valid & out.ready
        with m.If(sent):
            m.d.sync += cnt.eq(Mux(last, 0, cnt + 1))

        mants = []
        if self.mode == "fp16":
            emax_r = Signal(5)
            emax = Signal(5)
            m.d.comb += emax.eq(Mux(first, act.payload.emax, emax_r))
            with m.If(sent & first):
                m.d.sync += emax_r.eq(act.payload.emax)
            for l in range(L):
                h = act.payload.x[l]
                frac, e, s = h[0:10], h[10:15], h[15]
                sig = Signal(11, name=f"sig{l}")
                m.d.comb += sig.eq(frac | ((e != 0) << 10))
                diff = Signal(signed(7), name=f"diff{l}")
                m.d.comb += diff.eq(emax - Mux(e == 0, 1, e))
                shift = Signal(5, name=f"shift{l}")
                m.d.comb += shift.eq(Mux(diff < 0, 0, diff[:5]))
                mag = Signal(W - 1, name=f"mag{l}")
                m.d.comb += mag.eq((sig << (W - 12)) >> shift)
                a = Signal(signed(W), name=f"a{l}")
                m.d.comb += a.eq(Mux(s, -mag, mag))
                mants.append(a)
            m.d.comb += p.ea.eq(emax - (W + 13))
        else:
            for l in range(L):
                a = Signal(signed(W), name=f"a{l}")
                m.d.comb += a.eq(act.payload.x[l][:8].as_signed())
                mants.append(a)
            m.d.comb += p.ea.eq(0)
        for l in range(L):
            m.d.comb += p.mant[l].eq(mants[l])
        acc = Signal(signed(self.sum_bits))
        beat_sum = _tree(m, mants, lambda a, b: a + b, "beat_sum")
        running = Signal(signed(self.sum_bits))
        m.d.comb += [running.eq(Mux(first, 0, acc) + beat_sum), p.sum_a.eq(running)]
        with m.If(sent):
            m.d.sync += acc.eq(running)
        return m
