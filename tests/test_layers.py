"""The packages import one way (sw <- rtl <- gen <- verif <- bitmix) and no module imports itself
back through others: every import of every module (function-level ones included) is walked."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Layer of each top-level package: a module may import its own layer and the ones below it.
LAYERS = {"sw": 0, "rtl": 1, "gen": 2, "verif": 3, "bitmix": 4}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in LAYERS for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest project module that ``name`` (a dotted import target) names or lies in."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] if base else []
            for t in targets:
                r = _resolve(t, mods)
                if r is not None and r != mod:
                    graph[mod].add(r)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init(a: str, b: str) -> bool:
    """``a`` is a package whose ``__init__`` imports its own submodule ``b`` (not an upward edge)."""
    return b.startswith(a + ".")


def test_no_import_cycles():
    graph = import_graph()
    # a package __init__ importing its own children is how a package exposes them, not a circle
    pruned = {m: {t for t in ts if not _is_package_init(m, t)} for m, ts in graph.items()}
    assert _cycles(pruned) == []


def test_layers_import_one_way():
    upward = sorted(f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
                    if LAYERS[t.split(".")[0]] > LAYERS[m.split(".")[0]])
    assert upward == []


def test_the_walk_finds_what_it_should():
    graph = import_graph()
    assert "sw.group_formats" in graph["sw.mx"] and "sw.scaling" in graph["sw.bitmod"]
    assert "sw.quantize" in graph["sw.eval.fakequant"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
