"""The properties ``bitmix formal`` proves, one small function per component (easy to adapt).

What each proves and how (harness, kind, depth: :mod:`verif.formal` runs them):

* ``stream_<component>``: for every component with ``amaranth.lib.stream`` ports (found through its
  ``wiring.Signature``, :func:`verif.formal.stream_ports`) and for the engine top: once a beat is
  offered (``valid & ~ready``), ``valid`` stays high and ``payload`` stays the same until it moves,
  under any ``ready`` pattern; assumed for the streams it consumes, proven for those it produces,
  under free resets. k-induction.
* ``decoder_table``: the term decoder equals ``sw.terms.term_table`` for every format, code,
  selector and term index (and gives the zero term for an unknown format index or a term past
  ``terms(f)``): the table is a constant word in the harness, indexed by the free inputs, so the
  solver covers every input at once (a combinational proof, not an enumeration).
* ``pe_step_exact``: each enabled cycle adds exactly ``sum_l ±(A_l << shift_l)`` (terms from
  ``sw.terms``) to the PE's group sum, modulo its width (``first`` restarts it; ``en`` low holds
  it). k-induction. With it the group sum is exact iff the exact sum fits its width, which
  ``pe_group_sum_fits`` checks over a whole group.
* ``pe_group_sum_fits``: over a whole group driven as the engine drives it (``G/L`` steps of
  ``terms(fmt)`` cycles, codes held per step), any codes, selector, format and activations: the
  group sum equals the exact ``sum_j w_int_j A_j`` (no overflow of the config's worst case).
  Bounded at one group: the small config (the configured formats and activation width, G = 8).
* ``rescale_no_overflow``: the rescale unit's zero-point correction and scale multiply do not wrap
  for inputs in the engine's ranges (any group sum of the PE's width, zero points of the format's
  width, ``|sum_a| <= G * max|A|``, positive normal fp16 scales, front-end block exponents): the
  fp32 result is zero iff ``Pc = psum - zpc * sum_a`` is, and its sign is ``Pc``'s. Bounded at one
  batch (the pipeline's depth), small config.
* ``engine_no_res_before_cmd``: after a reset (or power-up) no ``res`` beat is offered until a
  ``cmd`` beat has been taken. Small config.
* ``engine_liveness``: with every input valid and ``res`` ready, the first result leaves within the
  cycle model's bound (``sw.cycles``: one tile of one group, plus the front end's fill of one
  group). Bounded at that bound, small config.
"""
from __future__ import annotations

from dataclasses import replace

from amaranth import Array, Cat, Const, Mux, ResetSignal, Signal, Value, signed
from amaranth.hdl import Assert, Assume

from gen.config import EngineConfig
from sw import terms as T

from .formal import Prop, harness, past, stream_ports, stream_rules

# ---------------------------------------------------------------------------- configs


def small_config(cfg: EngineConfig) -> EngineConfig:
    """2 rows x 2 lanes, G = 8, at most two groups: the config's formats, scales and activations."""
    return EngineConfig(rows=2, lanes=2, group_size=8, formats=tuple(cfg.formats),
                        scale_formats=tuple(cfg.scale_formats), act_mode=cfg.act_mode, act_bits=cfg.act_bits,
                        max_groups=2, name="small")


def engine_config(small: EngineConfig) -> EngineConfig:
    """The engine top's config for the whole-engine properties: the small config with at most three
    formats (a Booth INT, a ROM format, an asymmetric INT when configured) to keep the solver quick."""
    pick = []
    for want in (T.is_booth, lambda f: not T.is_booth(f), T.is_asym):
        for f in small.formats:
            if want(f) and f not in pick:
                pick.append(f)
                break
    return replace(small, formats=tuple(pick or small.formats[:1]), scale_formats=small.scale_formats[:1],
                   name="small")


def components(cfg: EngineConfig) -> dict:
    """``gen.elaborate.components``: name -> a freshly built component (the top first)."""
    from gen.elaborate import components as comps
    return comps(cfg)


def component(cfg: EngineConfig, name: str):
    """One freshly built component by its ``gen.elaborate`` name (the others are dropped quietly)."""
    comps = components(cfg)
    for other, c in comps.items():
        if other != name:
            c._MustUse__silence = True          # built only to be dropped: no UnusedElaboratable warning
    return comps[name]


def _top_name() -> str:
    from gen.elaborate import TOP
    return TOP


# ---------------------------------------------------------------------------- stream handshakes


def stream_harness(dut):
    """Every stream port of ``dut`` under the stream rule (assumed in, asserted out)."""
    m, ports = harness(dut)
    for name, role, port in stream_ports(dut):
        stream_rules(m, port, role, name)
    return m, ports


def stream_props(cfg: EngineConfig, small: EngineConfig) -> list[Prop]:
    out = []
    top = _top_name()
    for name, comp in components(cfg).items():
        sp = stream_ports(comp)
        comp._MustUse__silence = True           # only looked at; the job builds its own
        if not any(role == "out" for _, role, _ in sp):
            continue
        on_small = name == top
        c = engine_config(small) if on_small else cfg
        desc = (f"streams {', '.join(f'{n} ({r})' for n, r, _ in sp)}: a source holds valid and payload "
                f"until the beat moves (assumed for in, proven for out), any ready pattern, free resets.")
        out.append(Prop(f"stream_{name}", name, "prove", 24 if on_small else 4,
                        (lambda n=name, c=c: stream_harness(component(c, n))),
                        desc, config="small" if on_small else "default"))
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


def _lane_contribution(m, pe, lane: int, fmt, sel, term, width: int):
    """Exact ``±(A << shift)`` of one lane (``sw.terms`` spec) at ``width`` bits."""
    L, W, B = pe.lanes, pe.act_bits, pe.code_bits
    code = Value.cast(pe.codes)[lane * B:(lane + 1) * B]
    a = Value.cast(pe.mant)[lane * W:(lane + 1) * W].as_signed()
    sign, shift, zero = spec_term(m, pe.formats, pe.shift_bits, fmt, code, sel, term)
    mag = Signal(signed(width), name=f"spec_prod{lane}")
    m.d.comb += mag.eq(Mux(zero, 0, Mux(sign, -(a << shift), a << shift)))
    return mag


def pe_step_harness(pe):
    m, ports = harness(pe)
    width = len(pe.psum) + 16
    contrib = sum(_lane_contribution(m, pe, lane, pe.fmt, pe.sel, pe.term, width) for lane in range(pe.lanes))
    psum = Value.cast(pe.psum)
    want = Signal(len(psum), name="want_psum")
    m.d.sync += want.eq(Mux(pe.en, Mux(pe.first, 0, psum) + contrib, psum))
    checking = past(m, Const(1), "checking")
    with m.If(checking):
        m.d.comb += Assert(psum == want)
    return m, ports


def pe_group_harness(pe, steps: int):
    """Drive one group as the engine does; at its end the group sum must equal the exact sum."""
    m, ports = harness(pe)
    nf = len(pe.formats)
    m.d.comb += Assume(~ResetSignal())
    # format and selector: free but constant; codes held for a step
    for v in (pe.fmt, pe.sel):
        m.d.comb += Assume(Value.cast(v) == past(m, v, f"prev_{v.name}") | ~past(m, Const(1), f"run_{v.name}"))
    m.d.comb += Assume(pe.fmt < nf)
    n_terms = Array(Const(T.terms(f), 3) for f in pe.formats)[pe.fmt]
    t = Signal(range(max(2, pe.max_terms)), name="t")
    s = Signal(range(steps + 1), name="s")
    done = Signal(name="group_done")
    m.d.comb += [pe.term.eq(t), pe.en.eq(~done), pe.first.eq((s == 0) & (t == 0))]
    with m.If(t != 0):
        m.d.comb += Assume(Value.cast(pe.codes) == past(m, pe.codes, "prev_codes"))
    with m.If(~done):
        with m.If(t == n_terms - 1):
            m.d.sync += [t.eq(0), s.eq(s + 1)]
            with m.If(s == steps - 1):
                m.d.sync += done.eq(1)
        with m.Else():
            m.d.sync += t.eq(t + 1)
    width = len(pe.psum) + 16
    contrib = sum(_lane_contribution(m, pe, lane, pe.fmt, pe.sel, t, width) for lane in range(pe.lanes))
    exact = Signal(signed(width), name="exact_sum")
    with m.If(~done):
        m.d.sync += exact.eq(exact + contrib)
    with m.If(done):
        m.d.comb += Assert(Value.cast(pe.psum).as_signed() == exact)
    ports = [p for p in ports if p is not Value.cast(pe.term) and p is not Value.cast(pe.en)
             and p is not Value.cast(pe.first)]
    return m, ports


def pe_props(cfg: EngineConfig, small: EngineConfig) -> list[Prop]:
    steps = small.steps_per_group
    depth = steps * small.max_terms + 2
    return [
        Prop("pe_step_exact", "bitmix_pe", "prove", 2,
             lambda: pe_step_harness(component(cfg, "bitmix_pe")),
             "each enabled cycle adds exactly sum_l ±(A_l << shift_l) (sw.terms) to the group sum modulo its "
             "width; first restarts it, en low holds it; any inputs, free resets."),
        Prop("pe_group_sum_fits", "bitmix_pe", "bmc", depth,
             lambda: pe_group_harness(component(small, "bitmix_pe"), steps),
             f"over a whole group ({steps} steps of terms(fmt) cycles, codes held per step, any codes, format, "
             "selector, activations) the group sum equals the exact sum_j w_int_j A_j: the configured "
             f"psum width ({small.psum_width} bits at G = {small.group_size}) holds the worst case.",
             reason=f"one group is {depth - 2} cycles at G = {small.group_size}, L = {small.lanes}; the default "
                    f"G = {cfg.group_size}, L = {cfg.lanes} group ({cfg.steps_per_group * cfg.max_terms} cycles of "
                    f"{cfg.lanes} lanes) is beyond z3 here, and an inductive bound on the partial sums needs the "
                    "multiplications the PE avoids. The depth covers every group (groups are independent: "
                    "first restarts the sum; stalls hold it, pe_step_exact).",
             config="small"),
    ]


# ---------------------------------------------------------------------------- the rescale unit


def _act_max(cfg: EngineConfig) -> int:
    """Largest |A| the front end produces (fp16: a W-1 bit magnitude; int8: 128)."""
    return (1 << (cfg.act_bits - 1)) - 1 if cfg.act_mode == "fp16" else 128


def _ea_range(cfg: EngineConfig) -> tuple[int, int]:
    if cfg.act_mode == "int8":
        return 0, 0
    return 1 - cfg.act_bits - 13, 30 - cfg.act_bits - 13


def rescale_harness(ru, cfg: EngineConfig):
    """One ``last`` batch with inputs in the engine's ranges; at ``done`` the results' zero-ness and
    sign must be those of the exact ``Pc``; ``done`` must come within ``R + 6`` cycles."""
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
        m.d.comb += Assume((ru.zpc[r] >= zlo) & (ru.zpc[r] <= zhi))
        with m.If(started):   # the scale and zero point stay until the batch has been issued
            m.d.comb += Assume((Value.cast(sc) == past(m, sc, f"prev_scale{r}"))
                               & (ru.zpc[r] == past(m, ru.zpc[r], f"prev_zpc{r}")))
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
            m.d.comb += Assert(((res == 0) == (exact[r] == 0)) & ((res != 0).implies(res[31] == (exact[r] < 0))))
    m.d.comb += Assert(~started | seen | (cnt <= R + 6))
    return m, ports


def rescale_props(small: EngineConfig) -> list[Prop]:
    R = small.rows
    return [Prop("rescale_no_overflow", "bitmix_rescale_unit", "bmc", R + 10,
                 lambda: rescale_harness(component(small, "bitmix_rescale_unit"), small),
                 "Pc = psum - zpc*sum_a and Q = Pc*sig never wrap for the engine's input ranges (any psum of the "
                 "configured width, zero points of the formats' widths, |sum_a| <= G max|A|, front-end block "
                 "exponents, positive normal fp16 scales): the fp32 result is zero iff Pc is and has Pc's sign; "
                 f"done within R + 6 cycles.",
                 reason="one batch is the whole behaviour (R rows through a 5-stage pipeline; later batches "
                        "repeat it from the same captured state); the fp32 converter and adder make an "
                        "induction over the free pipeline state out of reach.",
                 config="small")]


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
    one group (``sw.cycles``) plus the front end's fill of one group (``G/L`` beats + 1)."""
    return cfg.shape.gemv_cycles(cfg.max_terms, cfg.rows, cfg.group_size) + cfg.steps_per_group + 1


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
        Prop("engine_no_res_before_cmd", top, "prove", 24,
             lambda: engine_no_res_harness(component(ec, top), ec),
             "after a reset (or power-up) no res beat is offered until a cmd beat has been taken; legal "
             "commands, inputs under the stream rule, any ready pattern, free resets.", config="small"),
        Prop("engine_liveness", top, "bmc", bound + 2,
             lambda: engine_liveness_harness(component(ec, top), ec, bound),
             f"with every input valid from power-up and res ready, a one-group command's result is offered "
             f"within {bound} cycles (sw.cycles' one-tile figure plus the front end's fill of one group): no "
             "deadlock on the way.",
             reason="a bound on when a result appears is a bounded property by nature (BMC to the bound is "
                    "its proof from power-up); small config for the depth.",
             config="small"),
    ]


# ---------------------------------------------------------------------------- all of them


def properties(cfg: EngineConfig, small: EngineConfig | None = None) -> list[Prop]:
    small = small or small_config(cfg)
    return (stream_props(cfg, small) + decoder_props(cfg) + pe_props(cfg, small) + rescale_props(small)
            + engine_props(small))
