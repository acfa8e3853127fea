"""Every report is written the same way: ``<stem>.json`` for scripts and ``<stem>.md`` for people,
side by side in one directory (created)."""
from __future__ import annotations

import json
from pathlib import Path


def write_report(out_dir, stem: str, doc, markdown: str) -> tuple[Path, Path]:
    """Write ``doc`` as ``<out_dir>/<stem>.json`` (indented; values JSON cannot hold become strings)
    and ``markdown`` as ``<out_dir>/<stem>.md``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / f"{stem}.json", out / f"{stem}.md"
    js.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md.write_text(markdown)
    return js, md
