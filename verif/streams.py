"""Valid/ready stream driver, sink and monitor for every cocotb testbench (cocotb 2.1).

A stream ``name`` of the DUT is the signal triple ``name__valid``, ``name__ready``,
``name__payload`` (Amaranth's ``lib.stream`` flattened); a beat moves on a rising clock edge
where valid and ready are both 1. Any of the three may be given as explicit handles instead
(``valid=dut.start``), ``ready=None`` for an output without back-pressure, and a payload may be
a dict of several signals (``payload={"psum": dut.psum, ...}``, beats then dicts too).

* :class:`StreamSource` drives beats with seeded random valid gaps (probability ``p_valid`` of
  offering a new beat in a cycle), holds valid and payload until the beat is taken, and drives
  random garbage on the payload (or on the named ``garbage`` fields) while valid is low. With
  ``offer_when_ready=True`` it offers a beat only in a cycle whose ready is already high
  (driving on the falling edge), for a sink that reads some payload fields after taking the
  beat and so needs them unchanged while it is busy (the rescale unit's ``scale``/``zpc``).
* :class:`StreamSink` drives ready with seeded random gaps (probability ``p_ready``).
* :class:`StreamMonitor` watches a stream every cycle (after the edge, in the read-only phase)
  and records, never drives:
  - protocol violations: valid or payload changing while valid & ~ready (the beat offered must
    stay until taken), valid or ready not 0/1;
  - every accepted beat, compared in order with the expected beat sequence (optionally under a
    per-beat bit mask): a beat equal to the previous expected beat is reported as a
    *duplicated* beat, one equal to the one after the next expected beat as a *lost* beat
    (the comparison then resynchronises), any other difference as a *mismatch*, a beat after
    the expected sequence as an *extra* beat, and expected beats never seen as *missing*.

  ``beats`` (accepted), ``violations`` and ``errors`` (all messages) are what a testbench
  reports; :meth:`StreamMonitor.check` raises with the first messages.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink", "StreamMonitor", "stream_handles"]


def stream_handles(dut, name: str, *, valid=..., ready=..., payload=...):
    """``(valid, ready, payload)`` handles of stream ``name`` (explicit ones win)."""
    return (getattr(dut, f"{name}__valid") if valid is ... else valid,
            getattr(dut, f"{name}__ready") if ready is ... else ready,
            getattr(dut, f"{name}__payload") if payload is ... else payload)


async def reset_idle(dut, inputs, outputs, *, cycles: int = 2, **held) -> None:
    """Synchronous reset with every stream idle: ``<in>__valid`` low for ``inputs``, ``<out>__ready``
    low for ``outputs``, the other signals in ``held`` set (e.g. ``fmt=0``), ``rst`` high for
    ``cycles`` rising edges of ``dut.clk``, then low."""
    for name in inputs:
        getattr(dut, f"{name}__valid").value = 0
    for name in outputs:
        getattr(dut, f"{name}__ready").value = 0
    for name, value in held.items():
        getattr(dut, name).value = value
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


def _bit(handle, what: str) -> int:
    v = handle.value
    if not v.is_resolvable:
        raise ValueError(f"{what} is {v}")
    return int(v)


def _read(payload):
    if isinstance(payload, dict):
        return {k: (int(h.value) if h.value.is_resolvable else str(h.value)) for k, h in payload.items()}
    v = payload.value
    return int(v) if v.is_resolvable else str(v)


class StreamSource:
    """Drive beats into the DUT's input stream ``name`` with random valid gaps.

    ``sent`` counts accepted beats. :meth:`send` returns when every beat was taken;
    :meth:`stop` (from another coroutine) makes it drop valid and return at the next edge.
    """

    def __init__(self, dut, name: str, *, clk, rng: random.Random, p_valid: float = 1.0,
                 garbage=True, valid=..., ready=..., payload=..., offer_when_ready: bool = False):
        if not 0.0 < p_valid <= 1.0:
            raise ValueError(f"p_valid must be in (0, 1], not {p_valid}")
        self.name, self.clk, self.rng, self.p_valid = name, clk, rng, p_valid
        self.valid, self.ready, self.payload = stream_handles(dut, name, valid=valid, ready=ready, payload=payload)
        if isinstance(self.payload, dict):
            self.garbage = tuple(self.payload) if garbage is True else tuple(garbage or ())
        else:
            self.garbage = bool(garbage)
        self.sent = 0
        self.offer_when_ready = offer_when_ready
        self._stop = False

    def idle(self) -> None:
        self.valid.value = 0

    def stop(self) -> None:
        self._stop = True

    def _drive(self, beat) -> None:
        if isinstance(self.payload, dict):
            for k, v in beat.items():
                self.payload[k].value = v
        else:
            self.payload.value = beat

    def _scramble(self) -> None:
        if isinstance(self.payload, dict):
            for k in self.garbage:
                self.payload[k].value = self.rng.getrandbits(len(self.payload[k]))
        elif self.garbage:
            self.payload.value = self.rng.getrandbits(len(self.payload))

    async def send(self, beats) -> None:
        if self.offer_when_ready:
            return await self._send_when_ready(beats)
        i, holding = 0, False
        while i < len(beats):
            await RisingEdge(self.clk)
            if self._stop:
                self.valid.value = 0
                return
            if holding or self.rng.random() < self.p_valid:
                self.valid.value = 1
                self._drive(beats[i])
                holding = True
            else:
                self.valid.value = 0
                self._scramble()
            await ReadOnly()
            if holding and _bit(self.ready, f"{self.name}: ready"):
                i += 1
                self.sent += 1
                holding = False
        await RisingEdge(self.clk)
        self.valid.value = 0
        self._scramble()


    async def _send_when_ready(self, beats) -> None:
        i = 0
        while i < len(beats):
            await ReadOnly()
            ready = _bit(self.ready, f"{self.name}: ready")
            await FallingEdge(self.clk)
            if self._stop:
                self.valid.value = 0
                return
            if ready and self.rng.random() < self.p_valid:
                self.valid.value = 1
                self._drive(beats[i])
                await RisingEdge(self.clk)     # ready was high all cycle: taken on this edge
                i += 1
                self.sent += 1
                await FallingEdge(self.clk)
                self.valid.value = 0
                self._scramble()
            else:
                await RisingEdge(self.clk)


class StreamSink:
    """Drive ready of the DUT's output stream ``name`` with random gaps, until :meth:`stop`."""

    def __init__(self, dut, name: str, *, clk, rng: random.Random, p_ready: float = 1.0, ready=...):
        if not 0.0 < p_ready <= 1.0:
            raise ValueError(f"p_ready must be in (0, 1], not {p_ready}")
        self.clk, self.rng, self.p_ready = clk, rng, p_ready
        self.ready = getattr(dut, f"{name}__ready") if ready is ... else ready
        self._task = None

    def start(self) -> StreamSink:
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self, ready: int = 0) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.ready.value = ready

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clk)
            self.ready.value = 1 if self.rng.random() < self.p_ready else 0


class StreamMonitor:
    """Check the stream rules and the beat sequence of output stream ``name``; never drives.

    ``expect(beats, masks=None)`` appends expected beats (ints, or dicts for a dict payload);
    a mask keeps only the compared bits of a beat. ``beats`` counts accepted beats,
    ``accept_cycles`` holds the monitor's cycle count at each, ``violations`` the protocol
    violations and ``errors`` every message (violations and sequence errors).
    """

    def __init__(self, dut, name: str, *, clk, valid=..., ready=..., payload=..., max_errors: int = 50):
        self.name, self.clk, self.max_errors = name, clk, max_errors
        self.valid, self.ready, self.payload = stream_handles(dut, name, valid=valid, ready=ready, payload=payload)
        self.expected: list = []
        self.masks: list = []
        self.got: list = []
        self.pos = 0                      # index of the next expected beat
        self.accept_cycles: list[int] = []
        self.violations = 0
        self.errors: list[str] = []
        self.cycle = 0
        self._task = None

    # ------------------------------------------------------------------ control
    def expect(self, beats, masks=None) -> None:
        beats = list(beats)
        self.expected += beats
        self.masks += list(masks) if masks is not None else [None] * len(beats)

    @property
    def beats(self) -> int:
        return len(self.got)

    def done(self) -> bool:
        return self.pos >= len(self.expected)

    def start(self) -> StreamMonitor:
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def finish(self) -> list[str]:
        """Stop watching; report expected beats that never came. Returns ``errors``."""
        self.stop()
        if self.pos < len(self.expected):
            self._error(f"{self.name}: {len(self.expected) - self.pos} expected beat(s) missing "
                        f"(beats {self.pos}..{len(self.expected) - 1})")
        return self.errors

    def summary(self) -> dict:
        return {"stream": self.name, "beats": self.beats, "violations": self.violations,
                "errors": len(self.errors)}

    def check(self) -> None:
        assert not self.errors, (f"{self.name}: {len(self.errors)} error(s) ({self.violations} protocol "
                                 f"violation(s)); first: " + "; ".join(self.errors[:6]))

    # ------------------------------------------------------------------ internals
    def _error(self, msg: str) -> None:
        if len(self.errors) < self.max_errors:
            self.errors.append(msg)

    def _violation(self, msg: str) -> None:
        self.violations += 1
        self._error(f"{self.name}: protocol violation at monitor cycle {self.cycle}: {msg}")

    def _same(self, got, i: int) -> bool:
        if not 0 <= i < len(self.expected) or isinstance(got, str):
            return False
        exp, mask = self.expected[i], self.masks[i]
        if isinstance(exp, dict):
            return all(got.get(k) == v for k, v in exp.items())
        return got == exp if mask is None else (got & mask) == (exp & mask)

    def _accept(self, beat) -> None:
        i = self.pos
        self.got.append(beat)
        self.accept_cycles.append(self.cycle)
        shown = beat if isinstance(beat, (str, dict)) else hex(beat)
        if i >= len(self.expected):
            if self._same(beat, i - 1):
                self._error(f"{self.name}: beat {i - 1} duplicated")
            else:
                self._error(f"{self.name}: extra beat ({shown}) after the {len(self.expected)} expected")
        elif self._same(beat, i):
            self.pos += 1
        elif self._same(beat, i - 1):
            self._error(f"{self.name}: beat {i - 1} duplicated")
        elif self._same(beat, i + 1):
            self._error(f"{self.name}: beat {i} lost")
            self.pos += 2
        else:
            exp = self.expected[i]
            self._error(f"{self.name}: beat {i} mismatch: got {shown}, expected "
                        f"{exp if isinstance(exp, dict) else hex(exp)}")
            self.pos += 1

    async def _run(self) -> None:
        pending = None                    # the payload offered while valid & ~ready
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            await ReadOnly()
            try:
                v = _bit(self.valid, "valid")
                r = 1 if self.ready is None else _bit(self.ready, "ready")
            except ValueError as e:
                self._violation(str(e))
                pending = None
                continue
            p = _read(self.payload) if v else None
            if pending is not None:
                if not v:
                    self._violation("valid dropped before the beat was taken")
                elif p != pending:
                    self._violation(f"payload changed while valid and not ready ({pending} -> {p})")
            if v and r:
                self._accept(p)
                pending = None
            else:
                pending = p if v else None
