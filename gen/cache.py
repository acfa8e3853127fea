"""Tool results cached by what determines them: the Verilog text, the top, the flow, its options and
the tool versions (:func:`gen.area.flow_key`). One JSON file per result, written atomically, so
workers sharing a file system share the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import area as A


class Cache:
    """Results keyed by the SHA-256 of (Verilog text, top, flow, options, :func:`gen.area.flow_key`).
    One JSON file per result under ``directory``."""

    def __init__(self, directory):
        self.dir = Path(directory)

    def key(self, verilog_path, top: str, flow: str, options: dict) -> str:
        h = hashlib.sha256()
        h.update(Path(verilog_path).read_bytes())
        h.update(json.dumps({"top": top, "flow": flow, "options": options, "tools": A.flow_key()},
                            sort_keys=True).encode())
        return h.hexdigest()

    def get(self, key: str):
        p = self.dir / f"{key}.json"
        if p.exists():
            try:
                return json.loads(p.read_text())
            except json.JSONDecodeError:
                return None
        return None

    def put(self, key: str, value) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self.dir / f"{key}.json"
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, indent=1))
        os.replace(tmp, p)


def cached(cache: Cache | None, verilog_path, top: str, flow: str, options: dict, fn, *,
           timeout: float | None = None) -> dict:
    """``fn()`` (a dict), or its cached value; the result gets ``"cached": True/False``.

    A tool that runs out of time (:class:`gen.area.ToolTimeout`) gives ``{"error", "timeout": True,
    "timeout_s"}``, cached too: a rerun with the same ``timeout`` skips it at once, a longer one
    tries again. Any other failure gives ``{"error": "<type>: <message>"}`` and is not cached.
    """
    key = cache.key(verilog_path, top, flow, options) if cache is not None else None
    hit = cache.get(key) if cache is not None else None
    if hit is not None and hit.get("timeout") and (timeout is None or (hit.get("timeout_s") or 0) < timeout):
        hit = None          # timed out before, but now it may have longer
    if hit is not None:
        return {**hit, "cached": True}
    keep = True
    try:
        out = fn()
    except A.ToolTimeout as e:
        out = {"error": str(e), "timeout": True, "timeout_s": timeout}
    except Exception as e:         # a tool failure is a result to report, not a crash of the report
        out = {"error": f"{type(e).__name__}: {e}"}
        keep = False
    if cache is not None and keep:
        cache.put(key, out)
    return {**out, "cached": False}
