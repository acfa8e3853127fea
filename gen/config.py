"""Engine configuration: a TOML file (or the embedded default), validated before elaboration.

```toml
[engine]
rows = 4                 # R: output rows computed in parallel (one PE each)
lanes = 8                # L: weights per row per step (one term per lane per cycle)
group_size = 128         # G: inputs per scale group; a multiple of L
formats = ["int4", ...]  # weight formats the decoders are built with (sw.terms.HW_FORMATS)
scale_formats = ["fp16", "bf16", "e8m0"]
act_mode = "fp16"        # "fp16" (block floating point) or "int8"
act_bits = 16            # W: signed width of an aligned activation mantissa (>= 12 in fp16 mode)
max_groups = 64          # largest K/G a command may ask for (sizes the group counter)
psum_bits = 0            # group partial-sum width; 0 = the worst-case minimum (computed)
interface = "stream"     # top-level ports: "stream" (valid/ready) or "axis" (AXI4-Stream, rtl/axis.py)
```

Every error names the parameter. Unknown keys are errors, not ignored.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sw import terms as T
from sw.cycles import EngineShape
from sw.datapath import ACT_MODES, HW_SCALE_FORMATS

DEFAULT_TOML = """\
# bitmix default engine: 4 rows x 8 lanes, groups of 128, every decodable format.
[engine]
rows = 4
lanes = 8
group_size = 128
formats = ["int3", "int4", "int6", "int8", "int3_asym", "int4_asym", "fp3", "fp4_e2m1",
           "bitmod3", "bitmod4", "fp6_e3m2", "fp6_e2m3"]
scale_formats = ["fp16", "bf16", "e8m0"]
act_mode = "fp16"
act_bits = 16
max_groups = 64
psum_bits = 0
"""


INTERFACES = ("stream", "axis")


class ConfigError(ValueError):
    """A bad configuration; the message names the parameter."""


@dataclass(frozen=True)
class EngineConfig:
    rows: int = 4
    lanes: int = 8
    group_size: int = 128
    formats: tuple[str, ...] = ("int4",)
    scale_formats: tuple[str, ...] = ("fp16",)
    act_mode: str = "fp16"
    act_bits: int = 16
    max_groups: int = 64
    psum_bits: int = 0
    interface: str = "stream"
    name: str = field(default="default", compare=False)

    def __post_init__(self):
        def pos_int(key, lo=1, hi=1 << 16):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"engine.{key} = {v!r}: must be an integer in {lo}..{hi}")
        pos_int("rows", 1, 256)
        pos_int("lanes", 1, 256)
        pos_int("group_size", 1, 1 << 14)
        pos_int("act_bits", 8, 32)
        pos_int("max_groups", 1, 1 << 16)
        pos_int("psum_bits", 0, 64)
        if self.group_size % self.lanes:
            raise ConfigError(f"engine.group_size = {self.group_size} is not a multiple of engine.lanes = "
                              f"{self.lanes}")
        if not self.formats:
            raise ConfigError("engine.formats is empty: the decoder needs at least one format")
        for f in self.formats:
            if f not in T.HW_FORMATS:
                raise ConfigError(f"engine.formats: {f!r} has no hardware decoder; choose from "
                                  f"{', '.join(T.HW_FORMATS)}")
        if len(set(self.formats)) != len(self.formats):
            raise ConfigError("engine.formats lists a format twice")
        if not self.scale_formats:
            raise ConfigError("engine.scale_formats is empty")
        for s in self.scale_formats:
            if s not in HW_SCALE_FORMATS:
                raise ConfigError(f"engine.scale_formats: {s!r} is not supported; choose from "
                                  f"{', '.join(HW_SCALE_FORMATS)}")
        if self.act_mode not in ACT_MODES:
            raise ConfigError(f"engine.act_mode = {self.act_mode!r}; choose one of {', '.join(ACT_MODES)}")
        if self.act_mode == "fp16" and self.act_bits < 12:
            raise ConfigError(f"engine.act_bits = {self.act_bits} is too narrow for fp16 activations "
                              f"(an 11-bit significand and a sign need 12)")
        if self.act_mode == "int8" and self.act_bits < 8:
            raise ConfigError(f"engine.act_bits = {self.act_bits} is too narrow for int8 activations")
        if self.interface not in INTERFACES:
            raise ConfigError(f"engine.interface = {self.interface!r}; choose one of {', '.join(INTERFACES)}")
        if self.psum_bits and self.psum_bits < self.min_psum_bits:
            raise ConfigError(f"engine.psum_bits = {self.psum_bits} is too narrow for the worst case of "
                              f"{', '.join(self.formats)} with G={self.group_size}, act_bits={self.act_bits}: "
                              f"needs >= {self.min_psum_bits}")

    # ------------------------------------------------------------------ derived widths
    @property
    def min_psum_bits(self) -> int:
        """Bits for the worst-case signed group partial sum (zero-point correction included)."""
        a = 1 << (self.act_bits - 1)
        worst = 0
        for f in self.formats:
            w = T.max_abs_int(f)
            bound = self.group_size * w * a
            if T.is_asym(f):   # sum (c - z) A with |c - z| <= 2^b - 1
                bound = self.group_size * ((1 << T.code_bits(f)) - 1) * a
                bound = max(bound, self.group_size * w * a * 2)
            worst = max(worst, bound)
        return worst.bit_length() + 1

    @property
    def psum_width(self) -> int:
        return self.psum_bits or self.min_psum_bits

    @property
    def code_bits(self) -> int:
        """Width of one weight code slot on the weight stream (widest format)."""
        return max(T.code_bits(f) for f in self.formats)

    @property
    def word_bits(self) -> int:
        """Bits per row of one beat of the packed weight stream (``wgt``): ``8 * lanes``, one INT8
        beat, two 4-bit beats (:class:`rtl.weight_port.WeightPort`)."""
        return 8 * self.lanes

    def check_weight_stream(self) -> None:
        """Raise :class:`ConfigError` unless every format's packed weight stream suits the geometry
        (:func:`sw.weight_stream.check_geometry`: beats of whole bytes, tiles starting on a word)."""
        from sw.weight_stream import check_geometry
        try:
            check_geometry(self.formats, self.lanes, self.group_size, self.word_bits)
        except ValueError as e:
            raise ConfigError(f"engine: {e}") from None

    @property
    def max_terms(self) -> int:
        return max(T.terms(f) for f in self.formats)

    @property
    def shift_bits(self) -> int:
        return max(1, max(T.max_shift(f) for f in self.formats).bit_length())

    @property
    def scale_bits(self) -> int:
        return 16 if any(s in ("fp16", "bf16") for s in self.scale_formats) else 8

    @property
    def shape(self) -> EngineShape:
        """Rows, lanes and group size: what the cycle model (:mod:`sw.cycles`) needs."""
        return EngineShape(self.rows, self.lanes, self.group_size)

    @property
    def steps_per_group(self) -> int:
        return self.shape.steps_per_group

    @property
    def rescale_cycles(self) -> int:
        """:attr:`sw.cycles.EngineShape.rescale_cycles`: a group shorter than this stalls the PEs."""
        return self.shape.rescale_cycles

    @property
    def min_group_cycles(self) -> int:
        return self.steps_per_group * min(T.terms(f) for f in self.formats)

    def warnings(self) -> list[str]:
        out = []
        if self.rescale_cycles > self.min_group_cycles:
            out.append(f"the shared rescale unit takes {self.rescale_cycles} cycles per group but a group of the "
                       f"fastest format takes {self.min_group_cycles}: the PEs will stall at group ends "
                       f"(raise group_size, or lower lanes or rows)")
        return out

    def ideal_cycles(self, fmt: str, outputs: int, k: int) -> int:
        return self.shape.ideal_cycles(T.terms(fmt), outputs, k)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["formats"], d["scale_formats"] = list(self.formats), list(self.scale_formats)
        return d


_KEYS = {f.name for f in fields(EngineConfig)} - {"name"}


def from_toml_text(text: str, name: str = "config") -> EngineConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: not valid TOML: {e}") from None
    extra = set(doc) - {"engine"}
    if extra:
        raise ConfigError(f"{name}: unknown table(s) {', '.join(sorted(extra))}; only [engine] is read")
    eng = doc.get("engine")
    if not isinstance(eng, dict):
        raise ConfigError(f"{name}: missing the [engine] table")
    unknown = set(eng) - _KEYS
    if unknown:
        raise ConfigError(f"{name}: unknown key(s) engine.{', engine.'.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_KEYS))}")
    kw = dict(eng)
    for key in ("formats", "scale_formats"):
        if key in kw:
            if not isinstance(kw[key], list) or not all(isinstance(s, str) for s in kw[key]):
                raise ConfigError(f"engine.{key} must be a list of strings")
            kw[key] = tuple(kw[key])
    return EngineConfig(name=name, **kw)


def load(path: str | Path | None = None) -> EngineConfig:
    """The config at ``path``, or the embedded default."""
    if path is None:
        return from_toml_text(DEFAULT_TOML, "default")
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    return from_toml_text(p.read_text(), p.stem)
