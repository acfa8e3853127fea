"""The properties ``bitmix formal`` proves, one small function per component (easy to adapt), and
their building blocks: :class:`Prop` (one property = one SymbiYosys job) and the generic harness
helpers (:func:`stream_ports`, :func:`harness`, :func:`stream_rules`, :func:`past`).

What each proves and how (harness, kind, depth: :mod:`verif.formal` runs them):

* ``stream_<component>``: for every component with ``amaranth.lib.stream`` ports (found through its
  ``wiring.Signature``, :func:`verif.formal.stream_ports`) and for the engine top: once a beat is
  offered (``valid & ~ready``), ``valid`` stays high and ``payload`` stays the same until it moves,
  under any ``ready`` pattern; assumed for the streams it consumes, asserted for those it produces,
  under free resets. k-induction where it closes; bounded (:data:`STREAM_BOUNDED`, the engine top)
  where a stall keeps unreachable states alive.
* ``decoder_table``: the term decoder equals ``sw.terms.term_table`` for every format, code,
  selector and term index (and gives the zero term for an unknown format index or a term past
  ``terms(f)``): the table is a constant word in the harness, indexed by the free inputs, so the
  solver covers every input at once (a combinational proof, not an enumeration).
* ``pe_step_exact``: each enabled cycle adds exactly ``sum_l ±(A_l << shift_l)`` (terms from
  ``sw.terms``) to the PE's group sum, modulo its width (``first`` restarts it; ``en`` low holds
  it). k-induction, small engine config.
* ``pe_group_sum_fits``: the exact group sum ``sum_j w_int_j A_j`` of the configured ``G`` weights
  (any codes, selectors, formats, activations) fits the PE's width; 1-inductive with the step
  bound. With ``pe_step_exact`` the PE's group sum is exact (no overflow).
* ``rescale_no_overflow``: the rescale unit's zero-point correction and scale multiply do not wrap
  for inputs in the engine's ranges (any group sum of the PE's width, zero points of the format's
  width, ``|sum_a| <= G * max|A|``, positive normal fp16 scales, front-end block exponents): the
  fp32 result is zero iff ``Pc = psum - zpc * sum_a`` is, and its sign is ``Pc``'s. Bounded at one
  batch (the pipeline's depth), small config.
* ``engine_no_res_before_cmd``: after a reset (or power-up) no ``res`` beat is offered until a
  ``cmd`` beat has been taken. Bounded, small engine config.
* ``engine_liveness``: with every input valid and ``res`` ready, the first result leaves within the
  cycle model's bound (``sw.cycles``: one tile of one group, plus the front end's fill of one
  group). Bounded at that bound, small engine config.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from amaranth import Cat, Const, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.hdl import Assert, Assume
from amaranth.lib import stream, wiring

from gen.config import EngineConfig
from sw import terms as T

# ---------------------------------------------------------------------------- a property
KINDS = ("prove", "bmc", "cover")


@dataclass
class Prop:
    """One property = one SymbiYosys job.

    ``build()`` returns ``(module, ports)``: the harness and its free inputs (see :func:`harness`).
    ``kind`` is ``prove``/``bmc``/``cover``; ``depth`` the induction or bound depth; ``reason`` says
    why a ``bmc`` property is not proven (empty for proofs); ``config`` names the engine config.
    """
    name: str
    component: str
    kind: str
    depth: int
    build: Callable[[], tuple]
    description: str = ""
    reason: str = ""
    config: str = "default"
    timeout: int = 600
    #: not part of a plain run (``bitmix formal --all`` or ``--only NAME`` runs it): z3 does not
    #: finish it within its timeout here
    optional: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: choose from {', '.join(KINDS)}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth={self.depth!r} must be a positive int")
        if self.kind == "bmc" and not self.reason:
            raise ValueError(f"{self.name}: a bounded property needs a reason (why no proof)")

    @property
    def kind_text(self) -> str:
        if self.kind == "prove":
            return f"k-induction proof (depth {self.depth})"
        if self.kind == "cover":
            return f"cover within {self.depth} cycles"
        return f"bounded at depth {self.depth}"


# ---------------------------------------------------------------------------- harness (generic)
def stream_ports(component) -> list[tuple[str, str, object]]:
    """``(name, role, interface)`` of every ``amaranth.lib.stream`` port of ``component``.

    ``role`` is ``"in"`` when the component consumes the stream (its member is ``In(...)``) and
    ``"out"`` when it produces it. Nested (non-stream) interfaces are walked; names join with ``__``.
    """
    out = []

    def walk(sig, obj, prefix, flipped):
        for name, member in sig.members.items():
            if not member.is_signature:
                continue
            sub = getattr(obj, name) if not isinstance(name, int) else obj[name]
            flow_in = (member.flow == wiring.In) != flipped
            full = f"{prefix}{name}"
            if isinstance(member.signature, stream.Signature):
                out.append((full, "in" if flow_in else "out", sub))
            else:
                walk(member.signature, sub, full + "__", flow_in)
    walk(component.signature, component, "", False)
    return out


def harness(dut, name: str = "dut") -> tuple[Module, list]:
    """A module holding ``dut`` and the list of ``dut``'s input ports (the harness's free inputs).

    Properties add statements to the module; :func:`run_job` makes the listed ports the
    top-level inputs, so each takes any value in every cycle unless an ``Assume`` constrains it.
    """
    m = Module()
    m.submodules[name] = dut
    ports = []
    for _, member, v in dut.signature.flatten(dut):
        if member.flow != wiring.In:
            continue
        v = Value.cast(v)       # a data.View payload is value-castable: left out, it would be undriven (0)
        if not _is_const(v):
            ports.append(v)
    return m, ports


def _is_const(v) -> bool:
    from amaranth.hdl import Const
    return isinstance(v, Const)


def past(m: Module, value, name: str):
    """A register holding ``value`` of the previous cycle (Amaranth 0.5 has no ``Past``); reset to 0."""
    v = Value.cast(value)
    r = Signal(len(v), name=name)
    m.d.sync += r.eq(v)
    return r


def stream_rules(m: Module, port, role: str, name: str) -> None:
    """The stream rule for one port: once ``valid & ~ready``, ``valid`` stays high and ``payload``
    stays the same until the beat moves. Assumed for ``role == "in"`` (any ``ready`` pattern of the
    component, any legal source), asserted for ``role == "out"`` (any ``ready`` of the sink).
    A reset ends the obligation (the hold register is in the reset domain)."""
    valid = Value.cast(port.valid)
    ready = Value.cast(port.ready)
    payload = Value.cast(port.payload)
    hold = past(m, valid & ~ready, f"{name}_held")
    prev = past(m, payload, f"{name}_prev_payload")
    ok = valid & (payload == prev)
    with m.If(hold):
        m.d.comb += (Assume(ok) if role == "in" else Assert(ok))


# ---------------------------------------------------------------------------- configs


def small_config(cfg: EngineConfig) -> EngineConfig:
    """2 rows x 2 lanes, G = 8, at most two groups: the config's formats, scales and activations."""
    return EngineConfig(rows=2, lanes=2, group_size=8, formats=tuple(cfg.formats),
                        scale_formats=tuple(cfg.scale_formats), act_mode=cfg.act_mode, act_bits=cfg.act_bits,
                        max_groups=2, name="small")


def engine_config(small: EngineConfig) -> EngineConfig:
    """The engine top's config for the whole-engine properties: the small config with G = 2 L (two
    beats a group) and at most three formats (an INT, an FP/BitMoD format, an asymmetric INT when
    configured) whose packed weight stream suits 2 lanes (4- and 8-bit formats; the 3- and 6-bit
    ones need 8 and 4 lanes) and one scale format, to keep the bounded checks' depth and z3's time
    small."""
    from sw.weight_stream import check_geometry

    def fits(f):
        try:
            check_geometry([f], small.lanes, 2 * small.lanes, 8 * small.lanes)
            return True
        except ValueError:
            return False
    pick = []
    for want in (T.is_booth, lambda f: not T.is_booth(f), T.is_asym):
        for f in small.formats:
            if not fits(f):
                continue
            if want(f) and f not in pick:
                pick.append(f)
                break
    return replace(small, group_size=2 * small.lanes, formats=tuple(pick or small.formats[:1]),
                   scale_formats=small.scale_formats[:1], name="small")


def components(cfg: EngineConfig) -> dict:
    """``gen.elaborate.components``: name -> a freshly built component (the top first)."""
    from gen.elaborate import components as comps
    return comps(cfg)


def component(cfg: EngineConfig, name: str):
    """One freshly built component by its ``gen.elaborate`` name (only that one is built)."""
    from gen.elaborate import component as build
    return build(cfg, name)


def _top_name() -> str:
    from gen.elaborate import TOP
    return TOP


# ---------------------------------------------------------------------------- stream handshakes


def stream_harness(dut):
    """Every stream port of ``dut`` under the stream rule (assumed in, asserted out). A component
    with a ``fmt`` input and an ``idle`` output (the weight port) gets its documented contract as
    an assumption too: ``fmt`` changes only after a cycle in which the port was ``idle`` and held
    no offered beat (``wgt.valid & ~wgt.ready``), as the engine does (it changes ``fmt`` only
    between tiles, with no word offered)."""
    m, ports = harness(dut)
    for name, role, port in stream_ports(dut):
        stream_rules(m, port, role, name)
    if hasattr(dut, "fmt") and hasattr(dut, "idle"):
        prev_fmt = Signal.like(dut.fmt, name="prev_fmt")
        prev_idle = Signal(name="prev_idle", init=1)
        m.d.sync += [prev_fmt.eq(dut.fmt), prev_idle.eq(dut.idle & ~(dut.wgt.valid & ~dut.wgt.ready))]
        m.d.comb += Assume(prev_idle | (dut.fmt == prev_fmt))
    return m, ports


#: Why the engine top's properties are bounded and on the small config.
ENGINE_REASON = ("the engine holds a tile's counters, the weight port's phase and the rescale pipeline: with a "
                 "stream stalled, "
                 "unreachable mid-tile states survive any number of cycles, so k-induction does not close "
                 "without invariants on internal registers; bounded to the cycle model's first-result bound "
                 "plus two cycles (a result beat and a stall on it), on the small engine config (2 rows x 2 "
                 "lanes, G = 4, three formats, fp16 scales): at G = 8 one such job ran past 10 minutes in z3, "
                 "the default engine is far beyond it.")

#: Components whose stream rule is checked bounded, not proven, and why. k-induction needs every
#: state that agrees with the property for k cycles to be reachable; a stall of any length keeps
#: these components' unreachable states (below) consistent for any k, and an invariant that rules
#: them out would be one on their internal registers, which the harness (built only from the
#: signature) does not name.
STREAM_BOUNDED = {
    "bitmix_act_frontend": "the latched block exponent and the running activation sum can hold values no "
                           "group reaches, and such states survive a stall of any length; not attempted as a "
                           "proof since the front end lost its group buffer; bounded to three groups of the small "
                           "config (G = 8, L = 2: 4 beats a group).",
    "bitmix_weight_port": "k-induction is inconclusive at depth 4: the shared phase counter and the row "
                          "flops can hold combinations no schedule reaches (a phase of one format's schedule "
                          "with another format's data), consistent with the rule under a stall of any length; "
                          "bounded on the default config to 12 cycles, which covers a whole 3-bit schedule "
                          "(8 beats over 3 words) and an FP6 block with stalls.",
}

#: The bounded stream checks that run on the default config (the others use the small one).
STREAM_BOUNDED_DEFAULT = {"bitmix_weight_port": 12}


def stream_depth(name: str, small: EngineConfig) -> int:
    """Bound of a bounded stream check: three groups of the small config's front end, or the engine
    top's liveness bound plus two cycles (the first result beat and a stall on it)."""
    if name == _top_name():
        return liveness_bound(engine_config(small)) + 2
    if name in STREAM_BOUNDED_DEFAULT:
        return STREAM_BOUNDED_DEFAULT[name]
    return 3 * small.steps_per_group + 2


def stream_props(cfg: EngineConfig, small: EngineConfig) -> list[Prop]:
    out = []
    top = _top_name()
    for name, comp in components(cfg).items():
        sp = stream_ports(comp)
        comp._MustUse__silence = True           # only looked at; the job builds its own
        if not any(role == "out" for _, role, _ in sp):
            continue
        bounded = name == top or name in STREAM_BOUNDED
        c = (engine_config(small) if name == top else small) if bounded and name not in STREAM_BOUNDED_DEFAULT else cfg
        desc = (f"streams {', '.join(f'{n} ({r})' for n, r, _ in sp)}: a source holds valid and payload "
                f"until the beat moves (assumed for in, proven for out), any ready pattern, free resets.")
        reason = ENGINE_REASON if name == top else STREAM_BOUNDED.get(name, "")
        out.append(Prop(f"stream_{name}", name, "bmc" if bounded else "prove",
                        stream_depth(name, small) if bounded else 4,
                        (lambda n=name, c=c: stream_harness(component(c, n))),
                        desc, reason=reason,
                        config=("small-engine" if name == top else "small")
                        if bounded and name not in STREAM_BOUNDED_DEFAULT else "default"))
    return out


# ---------------------------------------------------------------------------- the term decoder spec


def spec_term(m, formats, shift_bits: int, fmt, code, sel, term, table=T.term_table):
    """``(sign, shift, zero)`` of ``sw.terms`` for the (free) inputs: per format a constant word
    indexed by ``{term, sel, code}``; an unknown format index or an unused term gives the zero term."""
    fmt, code, sel, term = (Value.cast(x) for x in (fmt, code, sel, term))
    sign, shift, zero = Signal(name="spec_sign"), Signal(shift_bits, name="spec_shift"), Signal(name="spec_zero")
    width = 2 + shift_bits
    entries = []
    for f in formats:
        tab = table(f)
        b, sb, tb = T.code_bits(f), (len(tab) - 1).bit_length(), len(term)
        word = 0
        for idx in range(1 << (b + sb + tb)):
            c, s, t = idx & ((1 << b) - 1), (idx >> b) & ((1 << sb) - 1), idx >> (b + sb)
            ts = tab[s][c]
            tr = ts[t] if t < len(ts) else T.ZERO
            val = 1 if tr.zero else (tr.sign << 1) | (tr.shift << 2)
            word |= val << (idx * width)
        index = Cat(code[:b], sel[:sb], term) if sb else Cat(code[:b], term)
        entries.append(Const(word, width << (b + sb + tb)).word_select(index, width))
    m.d.comb += zero.eq(1)
    with m.Switch(fmt):
        for i, e in enumerate(entries):
            with m.Case(i):
                m.d.comb += Cat(zero, sign, shift).eq(e)
    return sign, shift, zero


def decoder_harness(dec, table=T.term_table):
    m, ports = harness(dec)
    sign, shift, zero = spec_term(m, dec.formats, len(dec.shift), dec.fmt, dec.code, dec.sel, dec.term, table)
    m.d.comb += Assert((dec.sign == sign) & (dec.shift == shift) & (dec.zero == zero))
    return m, ports


def decoder_props(cfg: EngineConfig) -> list[Prop]:
    return [Prop("decoder_table", "bitmix_term_decoder", "prove", 1,
                 lambda: decoder_harness(component(cfg, "bitmix_term_decoder")),
                 f"(sign, shift, zero) == sw.terms.term_table for every one of the {len(cfg.formats)} formats, "
                 "code (upper bits of narrow codes ignored), selector, term index; unknown format index and "
                 "terms past terms(f) give the zero term. Combinational: depth 1 covers every input.")]


# ---------------------------------------------------------------------------- the PE


def _lane_contribution(m, pe, lane: int, fmt, sel, term, width: int, table=T.term_table):
    """Exact ``±(A << shift)`` of one lane (``sw.terms`` spec) at ``width`` bits."""
    W, B = pe.act_bits, pe.code_bits
    code = Value.cast(pe.codes)[lane * B:(lane + 1) * B]
    a = Value.cast(pe.mant)[lane * W:(lane + 1) * W].as_signed()
    sign, shift, zero = spec_term(m, pe.formats, pe.shift_bits, fmt, code, sel, term, table)
    mag = Signal(signed(width), name=f"spec_prod{lane}")
    m.d.comb += mag.eq(Mux(zero, 0, Mux(sign, -(a << shift), a << shift)))
    return mag


def pe_step_harness(pe, table=T.term_table):
    m, ports = harness(pe)
    width = len(pe.psum) + 16
    contrib = sum(_lane_contribution(m, pe, lane, pe.fmt, pe.sel, pe.term, width, table) for lane in range(pe.lanes))
    psum = Value.cast(pe.psum)
    want = Signal(psum.shape(), name="want_psum")      # same shape: a signed/unsigned compare would sign-extend one side
    m.d.sync += want.eq(Mux(pe.en, Mux(pe.first, 0, psum) + contrib, psum))
    checking = past(m, Const(1), "checking")
    with m.If(checking):
        m.d.comb += Assert(psum == want)
    return m, ports


def _w_int(m, formats, fmt, code, sel, name: str, table=T.int_value_table):
    """``w_int`` of ``sw.terms.int_value_table`` (the sum of a code's terms, as the decoder sums them)
    for the (free) inputs: per format a constant word indexed by ``{sel, code}``."""
    w_bits = max(int(abs(table(f)).max()) for f in formats).bit_length() + 1
    w = Signal(signed(w_bits), name=name)
    with m.Switch(fmt):
        for i, f in enumerate(formats):
            tab = table(f)
            b, n = T.code_bits(f), tab.shape[0]
            sb = (n - 1).bit_length()
            word = 0
            for idx in range(1 << (b + sb)):
                word |= (int(tab[(idx >> b) % n, idx & ((1 << b) - 1)]) & ((1 << w_bits) - 1)) << (idx * w_bits)
            index = Cat(Value.cast(code)[:b], Value.cast(sel)[:sb]) if sb else Value.cast(code)[:b]
            with m.Case(i):
                m.d.comb += w.eq(Const(word, w_bits << (b + sb)).word_select(index, w_bits).as_signed())
    return w


def group_sum_bound(cfg: EngineConfig) -> int:
    """``max|w_int| * 2^(W-1)``: the largest ``|w_int A|`` of one weight (``A`` any ``act_bits`` two's
    complement mantissa, ``w_int`` any code of any configured format)."""
    wmax = max(int(abs(T.int_value_table(f)).max()) for f in cfg.formats)
    return wmax * (1 << (cfg.act_bits - 1))


def group_sum_harness(cfg: EngineConfig, psum_bits: int | None = None):
    """The exact group sum ``sum_j w_int_j A_j`` of one group (``G`` weights; any code, selector,
    format and activation for each) fits the PE's signed ``psum_bits``.

    A wide accumulator adds one ``w_int_j A_j`` per step, ``G`` steps (the exact sum does not depend
    on how the PE splits a group into lanes and terms; one multiplier per step keeps z3 quick); the
    step bound ``|acc| <= j * B`` (``B`` = :func:`group_sum_bound`) is asserted too, which makes the
    proof 1-inductive. With ``pe_step_exact`` (the PE adds each term exactly modulo
    ``2^psum_bits``) and the terms of a code summing to its ``w_int`` this is the PE's group sum
    being exact."""
    P = psum_bits or cfg.psum_width
    L, W, B, steps = 1, cfg.act_bits, cfg.code_bits, cfg.group_size
    m = Module()
    fmt = Signal(range(max(2, len(cfg.formats))), name="fmt")
    sel, codes, mant = Signal(2, name="sel"), Signal(L * B, name="codes"), Signal(L * W, name="mant")
    m.d.comb += Assume(fmt < len(cfg.formats))
    bound = group_sum_bound(cfg)
    wide = (bound * steps).bit_length() + 2
    prods = []
    for lane in range(L):
        w = _w_int(m, cfg.formats, fmt, codes[lane * B:(lane + 1) * B], sel, f"w_int{lane}")
        a = mant[lane * W:(lane + 1) * W].as_signed()
        prod = Signal(signed(wide), name=f"product{lane}")
        m.d.comb += prod.eq(w * a)
        prods.append(prod)
    acc = Signal(signed(wide), name="exact_sum")
    s = Signal(range(steps + 1), name="step")
    with m.If(s < steps):
        m.d.sync += [acc.eq(acc + sum(prods)), s.eq(s + 1)]
    limit = Signal(signed(wide), name="step_limit")
    m.d.comb += limit.eq(s * bound)
    m.d.comb += Assert((acc <= limit) & (acc >= -limit))
    with m.If(s == steps):
        m.d.comb += Assert((acc >= -(1 << (P - 1))) & (acc < (1 << (P - 1))))
    return m, [fmt, sel, codes, mant]


def pe_props(cfg: EngineConfig, small: EngineConfig) -> list[Prop]:
    ec = engine_config(small)
    return [
        Prop("pe_step_exact", "bitmix_pe", "prove", 2,
             lambda: pe_step_harness(component(ec, "bitmix_pe")),
             "each enabled cycle adds exactly sum_l ±(A_l << shift_l) (sw.terms) to the group sum modulo its "
             "width; first restarts it, en low holds it; any inputs, free resets. On the small engine config "
             f"({ec.lanes} lanes, formats {', '.join(ec.formats)}: a Booth INT, a ROM format, an asymmetric "
             "INT): the arithmetic around the decoder (shift, XOR negation, the root's count of negative "
             "terms, the adder tree) does not depend on the format; decoder_table proves every configured "
             "format's table. With all twelve formats' tables on both sides z3 ran past 5 minutes.",
             config="small-engine"),
        Prop("pe_group_sum_fits", "bitmix_pe", "prove", 2,
             lambda: group_sum_harness(cfg),
             f"the exact group sum sum_j w_int_j A_j of G = {cfg.group_size} weights (any codes, selectors, "
             f"formats, any {cfg.act_bits}-bit activations; one weight a step) fits the "
             f"PE's {cfg.psum_width}-bit group sum. With pe_step_exact (exact modulo 2^{cfg.psum_width} per term) "
             "and the terms of every code summing to its w_int (decoder_table, sw.terms), the PE's group sum "
             "is exact: no overflow for the configured formats and group size."),
    ]


# ---------------------------------------------------------------------------- the rescale unit


def _act_max(cfg: EngineConfig) -> int:
    """Largest |A| the front end produces (fp16: a W-1 bit magnitude; int8: 128)."""
    return (1 << (cfg.act_bits - 1)) - 1 if cfg.act_mode == "fp16" else 128


def _ea_range(cfg: EngineConfig) -> tuple[int, int]:
    if cfg.act_mode == "int8":
        return 0, 0
    return 1 - cfg.act_bits - 13, 30 - cfg.act_bits - 13


def rescale_harness(ru, cfg: EngineConfig, slack: int = 6, scale: int | None = None):
    """One ``last`` batch with inputs in the engine's ranges; at ``done`` the results' zero-ness and
    sign must be those of the exact ``Pc``; ``done`` must come within ``R + slack`` cycles."""
    m, ports = harness(ru)
    R = ru.rows
    m.d.comb += Assume(~ResetSignal())
    started = Signal(name="started")
    take = ru.start & ru.ready
    with m.If(take):
        m.d.sync += started.eq(1)
    m.d.comb += Assume(~(ru.start & started))
    m.d.comb += Assume(ru.last)
    # scale format: fp16 (a positive normal scale); unit: one of the formats'
    fp16 = cfg.scale_formats.index("fp16") if "fp16" in cfg.scale_formats else None
    if fp16 is None:
        raise ValueError("rescale_no_overflow needs fp16 among the scale formats")
    m.d.comb += Assume(ru.scale_fmt == fp16)
    units = sorted({T.unit_exp(f) for f in cfg.formats})
    m.d.comb += Assume(Cat(*[ru.unit == u for u in units]).any())
    lo, hi = _ea_range(cfg)
    m.d.comb += Assume((ru.ea >= lo) & (ru.ea <= hi))
    amax = _act_max(cfg) * cfg.group_size
    m.d.comb += Assume((ru.sum_a >= -amax) & (ru.sum_a <= amax))
    zlo = min([-(1 << (T.code_bits(f) - 1)) for f in cfg.formats if T.is_asym(f)] or [0])
    zhi = max([(1 << (T.code_bits(f) - 1)) - 1 for f in cfg.formats if T.is_asym(f)] or [0])
    wide = ru.psum_bits + ru.sum_bits + ru.zpc_bits + 2
    exact = [Signal(signed(wide), name=f"exact_pc{r}") for r in range(R)]
    for r in range(R):
        sc = ru.scale[r]
        e = sc[10:15]
        m.d.comb += Assume(~sc[15] & (e != 0) & (e != 31))
        if scale is not None:     # one fixed scale: the multiplier's other operand is a constant
            m.d.comb += Assume(Value.cast(sc) == scale)
        m.d.comb += Assume((ru.zpc[r] >= zlo) & (ru.zpc[r] <= zhi))
        # the scale and zero point stay until the batch has been issued (the registers holding the
        # previous values are made outside the If: inside it they would load only while started)
        prev_sc, prev_zpc = past(m, sc, f"prev_scale{r}"), past(m, ru.zpc[r], f"prev_zpc{r}")
        with m.If(started):
            m.d.comb += Assume((Value.cast(sc) == prev_sc) & (ru.zpc[r] == prev_zpc))
        with m.If(take):
            m.d.sync += exact[r].eq(ru.psum[r] - ru.zpc[r] * ru.sum_a)
    cnt = Signal(range(R + 16), name="cycles")
    seen = Signal(name="done_seen")
    with m.If(started & ~seen):
        m.d.sync += cnt.eq(cnt + 1)
    with m.If(ru.done):
        m.d.sync += seen.eq(1)
        for r in range(R):
            res = Value.cast(ru.result[r])
            m.d.comb += Assert(((res == 0) == (exact[r] == 0)) & ((res == 0) | (res[31] == (exact[r] < 0))))
    m.d.comb += Assert(~started | seen | (cnt <= R + slack))
    return m, ports


def rescale_props(small: EngineConfig) -> list[Prop]:
    R = small.rows
    return [Prop("rescale_no_overflow", "bitmix_rescale_unit", "bmc", R + 10,
                 lambda: rescale_harness(component(small, "bitmix_rescale_unit"), small),
                 "Pc = psum - zpc*sum_a and Q = Pc*sig never wrap for the engine's input ranges (any psum of the "
                 "configured width, zero points of the formats' widths, |sum_a| <= G max|A|, front-end block "
                 "exponents, positive normal fp16 scales): the fp32 result is zero iff Pc is and has Pc's sign; "
                 "done within R + 6 cycles.",
                 reason="one batch is the whole behaviour (R rows through a 5-stage pipeline; later batches "
                        "repeat it from the same captured state); the fp32 converter and adder make an "
                        "induction over the free pipeline state out of reach.",
                 config="small", timeout=600, optional=True)]


# ---------------------------------------------------------------------------- the engine top


def engine_cmd_assumptions(m, eng, cfg: EngineConfig, max_groups: int | None = None) -> None:
    """A legal command: known format and scale format, 1 <= n_groups <= max_groups."""
    p = eng.cmd.payload
    with m.If(eng.cmd.valid):
        m.d.comb += Assume((p.fmt < len(cfg.formats)) & (p.scale_fmt < len(cfg.scale_formats))
                           & (p.n_groups >= 1) & (p.n_groups <= (max_groups or cfg.max_groups)))


def engine_no_res_harness(eng, cfg: EngineConfig):
    m, ports = harness(eng)
    for name, role, port in stream_ports(eng):
        if role == "in":
            stream_rules(m, port, role, name)
    engine_cmd_assumptions(m, eng, cfg)
    taken = Signal(name="cmd_taken")
    with m.If(eng.cmd.valid & eng.cmd.ready):
        m.d.sync += taken.eq(1)
    m.d.comb += Assert(~eng.res.valid | taken)
    return m, ports


def liveness_bound(cfg: EngineConfig) -> int:
    """Cycles from the first command to the first result, no stalls: the cycle model of one tile of
    one group of the slowest format (``sw.cycles``, the weight port's fill included)."""
    from sw.weight_stream import fill_cycles
    return cfg.shape.gemv_cycles(cfg.max_terms, cfg.rows, cfg.group_size,
                                 fill=max(fill_cycles(f) for f in cfg.formats))


def engine_liveness_harness(eng, cfg: EngineConfig, bound: int):
    m, ports = harness(eng)
    m.d.comb += Assume(~ResetSignal())
    for name, role, port in stream_ports(eng):
        if role == "in":
            stream_rules(m, port, role, name)
            m.d.comb += Assume(port.valid)
        else:
            m.d.comb += Assume(port.ready)
    engine_cmd_assumptions(m, eng, cfg, max_groups=1)
    started, got = Signal(name="started"), Signal(name="got_result")
    cnt = Signal(range(bound + 4), name="cycles")
    with m.If(eng.cmd.valid & eng.cmd.ready):
        m.d.sync += started.eq(1)
    with m.If((started | eng.cmd.ready) & ~got & (cnt <= bound)):
        m.d.sync += cnt.eq(cnt + 1)
    with m.If(eng.res.valid):
        m.d.sync += got.eq(1)
    m.d.comb += Assert(got | eng.res.valid | (cnt <= bound))
    return m, ports


def engine_props(small: EngineConfig) -> list[Prop]:
    ec = engine_config(small)
    top = _top_name()
    bound = liveness_bound(ec)
    return [
        Prop("engine_no_res_before_cmd", top, "bmc", bound + 2,
             lambda: engine_no_res_harness(component(ec, top), ec),
             "after a reset (or power-up) no res beat is offered until a cmd beat has been taken; legal "
             "commands, inputs under the stream rule, any ready pattern, free resets.",
             reason=ENGINE_REASON, config="small-engine"),
        Prop("engine_liveness", top, "bmc", bound + 2,
             lambda: engine_liveness_harness(component(ec, top), ec, bound),
             f"with every input valid from power-up and res ready, a one-group command's result is offered "
             f"within {bound} cycles (sw.cycles' one-tile figure plus the front end's fill of one group): no "
             "deadlock on the way.",
             reason="a bound on when a result appears is a bounded property by nature (BMC to the bound is "
                    "its proof from power-up); small config for the depth.",
             config="small-engine"),
    ]


# ---------------------------------------------------------------------------- all of them


def properties(cfg: EngineConfig, small: EngineConfig | None = None) -> list[Prop]:
    small = small or small_config(cfg)
    return (stream_props(cfg, small) + decoder_props(cfg) + pe_props(cfg, small) + rescale_props(small)
            + engine_props(small))
