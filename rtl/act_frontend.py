"""Activation front end: per-group block-floating-point alignment (step 1 of :mod:`sw.datapath`)."""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

MODES = ("fp16", "int8")


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
    """Aligns an endless stream of activation groups, bit-exact with ``sw.datapath.align``.

    ``L = lanes``, ``G = group_size``, ``W = act_bits``, ``B = G / L`` beats per group. A group
    is ``B`` consecutive ``act`` beats; the input is an endless sequence of groups (no command).

    Ports (``amaranth.lib.stream``: a beat transfers in a cycle with ``valid & ready``)
    -----
    act : In(stream.Signature(unsigned(16 * L)))
        Flat unsigned payload (Verilog ``act__payload[16L-1:0]``, ``act__valid``, ``act__ready``);
        lane ``l`` at bits ``[16l+15 : 16l]``. fp16 mode: the raw fp16 bits (the exponent field
        31, inf/NaN, is outside the contract: it is aligned as if it were a normal exponent).
        int8 mode: an int8 (two's complement) in bits ``[16l+7 : 16l]``; bits ``[16l+15 : 16l+8]``
        are ignored (not even stored).
    aligned : Out(stream.Signature(aligned_layout(L, G, W)))
        One flat vector in Verilog (``aligned__payload``, ``aligned__valid``, ``aligned__ready``),
        fields from the LSB up:

        * ``mant`` ``[L*W-1 : 0]``: lane ``l`` at ``[W*l + W-1 : W*l]``, the aligned mantissa ``A``
          (signed). fp16: ``A = (-1)^s ((sig << (W-12)) >> (emax - e'))`` with ``e' = max(e, 1)``,
          ``emax`` the max ``e'`` of the group (shifts >= ``W-1`` give 0; -0 gives 0).
          int8: ``A = x`` sign-extended to ``W`` bits.
        * ``ea`` signed(8) at ``[L*W+7 : L*W]``: ``emax - W - 13`` (fp16), 0 (int8); the same on
          every beat of a group.
        * ``sum_a`` signed(``S = W + ceil(log2 G) + 1``) at ``[L*W+8+S-1 : L*W+8]``: the sum of
          ``A`` over the group's beats up to and including this one, so on the ``last`` beat it is
          the group's ``S_A`` (the contract only requires the ``last`` beat).
        * ``first`` at bit ``L*W+8+S``: the group's first beat.
        * ``last`` at bit ``L*W+9+S``: the group's last beat.

    Implicit ``sync`` domain: ports ``clk`` and ``rst`` (synchronous, active high).

    Behaviour
    ---------
    Double-buffered (ping-pong): a group is written into one buffer while the previous group
    is read out of the other. ``act.ready`` is low only while both buffers hold a complete
    group not yet fully read out. ``aligned.valid`` is high only for beats of a complete group;
    it rises in the cycle after the group's last ``act`` beat was accepted at the earliest
    (``LATENCY = 1``: ``emax`` is known only then), and then (with ``aligned.ready`` high) the
    group's beats follow back to back; the next group follows the last beat without a bubble
    if it is complete by then. With both sides always valid/ready, beat ``i`` of group ``n``
    enters in cycle ``n*B + i`` and leaves in cycle ``(n+1)*B + i``: one beat per cycle on
    each side, ``N`` groups take ``(N+1)*B`` cycles from the first input to the last output
    inclusive. ``payload`` is stable while ``valid & ~ready`` (and ``valid`` does not drop).
    Both ``act.ready`` and every ``aligned`` output are functions of registers only (no
    combinational path from any input port to any output port).

    Reset (the ``sync`` domain's ``rst``) empties both buffers and clears all counters: the
    next accepted ``act`` beat is the first beat of a new group.

    Storage: one :class:`amaranth.lib.memory.Memory` of ``2*B`` rows of ``16*L`` bits (fp16) or
    ``8*L`` bits (int8), one write port and one synchronous read port whose data register is
    the output stage (its enable stalls it under back-pressure). Per buffer only the running
    ``emax`` (5 bits, fp16 mode only) and a full flag are registers. ``sum_a`` cannot be kept
    per buffer at write time in fp16 mode (the truncation of each ``A`` depends on the final
    ``emax``), so one accumulator sums the beats as they are read out. int8 mode builds no
    exponent logic and no shifters.
    """

    LATENCY = 1

    def __init__(self, lanes: int, group_size: int, act_bits: int, mode: str):
        try:
            self._check(lanes, group_size, act_bits, mode)
        except ValueError:
            self._MustUse__silence = True      # no "UnusedElaboratable" warning for a rejected object
            raise
        self.lanes, self.group_size, self.act_bits, self.mode = lanes, group_size, act_bits, mode
        self.beats = group_size // lanes
        self.sum_bits = sum_a_bits(group_size, act_bits)
        super().__init__({
            "act": In(stream.Signature(unsigned(16 * lanes))),
            "aligned": Out(stream.Signature(aligned_layout(lanes, group_size, act_bits))),
        })

    @staticmethod
    def _check(lanes, group_size, act_bits, mode):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes={lanes!r} must be a positive integer")
        if not isinstance(group_size, int) or group_size < 1 or group_size % lanes:
            raise ValueError(f"group_size={group_size!r} must be a positive multiple of lanes={lanes}")
        lo = 12 if mode == "fp16" else 8
        if not isinstance(act_bits, int) or not lo <= act_bits <= 32:
            raise ValueError(f"act_bits={act_bits!r} must be in {lo}..32 in {mode} mode")

    def elaborate(self, platform):
        m = Module()
        L, W, B = self.lanes, self.act_bits, self.beats
        fp16 = self.mode == "fp16"
        lane_bits = 16 if fp16 else 8
        act, out = self.act, self.aligned

        # ------------------------------------------------------------ storage: 2 buffers of B rows
        mem = m.submodules.mem = Memory(shape=unsigned(lane_bits * L), depth=2 * B, init=[])
        wr = mem.write_port()
        # With B == 1 a group's first beat is fetched in the cycle it is written (see `fetch`).
        rd = mem.read_port(transparent_for=(wr,) if B == 1 else ())

        pow2 = B & (B - 1) == 0

        def addr(buf, cnt):
            return Cat(cnt, buf) if pow2 else cnt + Mux(buf, B, 0)

        full = Signal(2)                   # buffer b holds a complete group not yet read out

        # ------------------------------------------------------------ write side
        wbuf = Signal()
        wcnt = Signal(range(B))
        wlast = wcnt == B - 1
        m.d.comb += act.ready.eq(~full.bit_select(wbuf, 1))
        take = act.valid & act.ready
        m.d.comb += [
            wr.addr.eq(addr(wbuf, wcnt)),
            wr.en.eq(take),
            wr.data.eq(Cat(*[act.payload[16 * l:16 * l + lane_bits] for l in range(L)])),
        ]
        with m.If(take):
            m.d.sync += wcnt.eq(Mux(wlast, 0, wcnt + 1))
            with m.If(wlast):
                m.d.sync += wbuf.eq(~wbuf)
        completes = take & wlast           # buffer wbuf becomes full at this edge

        if fp16:
            emax = [Signal(5, name=f"emax{b}") for b in range(2)]
            effs = []
            for l in range(L):
                e = act.payload[16 * l + 10:16 * l + 15]
                effs.append(Mux(e == 0, 1, e))
            beat_max = _tree(m, effs, lambda a, b: Mux(a > b, a, b), "beat_emax")
            for b in range(2):
                with m.If(take & (wbuf == b)):
                    with m.If(wcnt == 0):
                        m.d.sync += emax[b].eq(beat_max)
                    with m.Else():
                        m.d.sync += emax[b].eq(Mux(beat_max > emax[b], beat_max, emax[b]))

        # ------------------------------------------------------------ read side
        rbuf = Signal()                    # buffer / beat of the next fetch
        rcnt = Signal(range(B))
        rlast = rcnt == B - 1
        ovalid = Signal()                  # the read-data register holds a beat of a complete group
        o_first, o_last, o_buf = Signal(name="o_first"), Signal(name="o_last"), Signal(name="o_buf")
        acc = Signal(signed(self.sum_bits))

        advance = ~ovalid | out.ready
        # The fetch of a group's first beat may overlap the write of its last beat: the data
        # (and emax) are then complete by the cycle the beat is presented.
        can_fetch = full.bit_select(rbuf, 1) | (completes & (wbuf == rbuf))
        fetch = advance & can_fetch
        m.d.comb += [rd.addr.eq(addr(rbuf, rcnt)), rd.en.eq(fetch)]
        with m.If(advance):
            m.d.sync += ovalid.eq(can_fetch)
        with m.If(fetch):
            m.d.sync += [o_first.eq(rcnt == 0), o_last.eq(rlast), o_buf.eq(rbuf),
                         rcnt.eq(Mux(rlast, 0, rcnt + 1))]
            with m.If(rlast):
                m.d.sync += rbuf.eq(~rbuf)

        # full flags: set when the writer completes a buffer, cleared when its last beat leaves
        sent = ovalid & out.ready
        for b in range(2):
            with m.If(completes & (wbuf == b)):
                m.d.sync += full[b].eq(1)
            with m.Elif(sent & o_last & (o_buf == b)):
                m.d.sync += full[b].eq(0)

        # ------------------------------------------------------------ alignment of the output beat
        p = out.payload
        mants = []
        if fp16:
            emax_o = Signal(5)
            m.d.comb += emax_o.eq(Mux(o_buf, emax[1], emax[0]))
            for l in range(L):
                h = rd.data[16 * l:16 * l + 16]
                frac, e, s = h[0:10], h[10:15], h[15]
                sig = Cat(frac, e != 0)
                eff = Mux(e == 0, 1, e)
                shift = Signal(5, name=f"shift{l}")
                m.d.comb += shift.eq(emax_o - eff)          # emax >= e' for every beat of the group
                mag = Signal(W - 1, name=f"mag{l}")
                m.d.comb += mag.eq((sig << (W - 12)) >> shift)
                a = Signal(signed(W), name=f"a{l}")
                m.d.comb += a.eq(Mux(s, -mag, mag))
                mants.append(a)
            m.d.comb += p.ea.eq(emax_o - (W + 13))
        else:
            for l in range(L):
                a = Signal(signed(W), name=f"a{l}")
                m.d.comb += a.eq(rd.data[8 * l:8 * l + 8].as_signed())
                mants.append(a)
            m.d.comb += p.ea.eq(0)
        for l in range(L):
            m.d.comb += p.mant[l].eq(mants[l])
        beat_sum = _tree(m, mants, lambda a, b: a + b, "beat_sum")
        running = Signal(signed(self.sum_bits))
        m.d.comb += running.eq(Mux(o_first, 0, acc) + beat_sum)
        with m.If(sent):
            m.d.sync += acc.eq(running)
        m.d.comb += [
            p.sum_a.eq(running),
            p.first.eq(o_first),
            p.last.eq(o_last),
            out.valid.eq(ovalid),
        ]
        return m
