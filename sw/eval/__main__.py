"""``bitmix eval`` (alias ``python -m sw.eval``): the whole-model accuracy report (see ``--help``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sw.jobs import SCHEDULER_ENV, scheduler_from

from .context import PRESETS
from .report import DEFAULT_SECTIONS, OPTIONAL, parse_sections, run_report

EPILOG = f"""
presets (perplexity on the start of the gensim Wikipedia text, non-overlapping 2048-token windows):
  smoke  {PRESETS['smoke'].eval_windows} windows x {PRESETS['smoke'].window} tokens, calibration {PRESETS['smoke'].calib_tokens}: a wiring check of
         every section (with --tiny: a random tiny Llama, ~20 s)
  quick  {PRESETS['quick'].eval_windows} window = {PRESETS['quick'].eval_tokens} tokens, calibration {PRESETS['quick'].calib_tokens}; ExMy at 4 and 6
         bits, g128 only; AdaQuant on int4 sequential, GPTQ act-order on bitmod4, one
         calibration slice; a smaller QAT and IP run
  full   {PRESETS['full'].eval_windows} windows = {PRESETS['full'].eval_tokens} tokens, calibration {PRESETS['full'].calib_tokens}; act/KV on 4 windows, ExMy
         PPL on 1 window for both layouts, AdaQuant on int4 and bitmod3 over {PRESETS['full'].slices} calibration slices,
         GPTQ act-order on int4_asym, bitmod4, bitmod3 over {PRESETS['full'].slices} slices, an 8-format IP, 60 QAT steps on
         {PRESETS['full'].slices} generated data sets

sections, in report order: {', '.join(DEFAULT_SECTIONS)}
optional, only when named (or with --sections all): {', '.join(sorted(OPTIONAL))} (AdaQuant's settings grid,
         chosen on the validation slice)
Measured run times of each preset are in the README.
The first run converts the SmolLM2 GGUF (~25 s) and the Wikipedia dump (~25 s) and caches both
under --cache-dir; later runs load in a few seconds. Writes OUT/eval.json, OUT/eval.md, OUT/*.png.
Exit status 1 if any section failed (its error is recorded in the report), 2 for bad arguments.
"""


def build_parser(prog: str = "bitmix eval") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="bitmix whole-model accuracy evaluation: "
                                "SmolLM2-135M perplexity on real Wikipedia text, MiniLM embeddings, per format "
                                "and algorithm.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=list(PRESETS), default="quick", help="run size (default: quick)")
    p.add_argument("--sections", default=None,
                   help="comma-separated sections, or 'all' (default: every section but the optional ones)")
    p.add_argument("--out", type=Path, default=Path("build/reports"), help="report directory (default: build/reports)")
    p.add_argument("--cache-dir", type=Path, default=Path("build/eval/cache"),
                   help="model/text/token cache (default: build/eval/cache)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="disable the progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's, one per core; on a machine shared with other jobs "
                        "--threads 1 is faster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the sections as jobs: 'local' (a Dask LocalCluster, one worker per core, the "
                        "torch threads shared out), 'serial', or a Dask scheduler address such as tcp://host:8786 "
                        f"whose workers share this file system (default: ${SCHEDULER_ENV} if set, else one section "
                        "after the other in this process)")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                   help="override one parameter of a section's preset, e.g. --set 'gptq.formats=[\"int4\"]' or "
                        "--set gptq.slices=1 (VALUE is JSON, else a string; repeatable)")
    p.add_argument("--tiny", action="store_true", help="use the tiny random Llama stand-in (for tests; seconds)")
    return p


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """``["gptq.slices=1", ...]`` -> ``{"gptq": {"slices": 1}}`` (values JSON, else strings)."""
    import json

    from .report import SECTIONS
    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not eq or not dot or not name:
            raise ValueError(f"{item!r} is not SECTION.KEY=VALUE")
        if section not in SECTIONS:
            raise ValueError(f"{item!r}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        out.setdefault(section, {})[name] = v
    return out


def main(argv: list[str] | None = None, prog: str = "bitmix eval") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        keys = parse_sections(args.sections)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as e:
        print(f"error: --set: {e}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers={args.workers} must be >= 1", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"error: --threads={args.threads} must be >= 1", file=sys.stderr)
        return 2
    import torch
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.tiny:
        from .context import tiny_context
        ctx = tiny_context(args.out, args.seed)
        ctx.progress = not args.no_progress
    else:
        from .context import build_context
        ctx = build_context(args.preset, args.out, args.seed, progress=not args.no_progress, cache_dir=args.cache_dir)
    ctx.params = overrides
    scheduler = args.scheduler or os.environ.get(SCHEDULER_ENV) or None
    if scheduler is not None:
        try:
            scheduler_from(scheduler)
        except ValueError as e:
            print(f"error: --scheduler: {e}", file=sys.stderr)
            return 2
    if scheduler is None:
        doc, ok = run_report(ctx, keys, setup_seconds=time.perf_counter() - t0)
    else:
        from .section_jobs import run_report_jobs
        doc, ok = run_report_jobs(ctx, keys, setup_seconds=time.perf_counter() - t0, scheduler=scheduler,
                                  workers=args.workers, cache_dir=args.cache_dir, threads=args.threads)
    print(f"wrote {args.out / 'eval.json'} and {args.out / 'eval.md'} ({doc['total_seconds']:.0f} s)"
          + ("" if ok else f"; failed sections: {', '.join(doc['errors'])}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
