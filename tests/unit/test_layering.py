"""The shape of ``core/``: packages by pipeline stage, which may import which, no cycles.

Every import counts, at module level or inside a function, under ``TYPE_CHECKING`` or
not: a lazy import is still a dependency, and a cycle through one still means the two
modules cannot be understood (or moved) apart.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"

# Package -> the packages it may import (besides itself). Read top to bottom: the flow of
# a call, then what sits on top of it. ``config`` is everyone's; ``services`` is the one
# composition root; ``eval`` and ``bench`` are commands over the whole engine.
BASE = {"config"}
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "language": set(),
    "privacy": set(),
    "ops": BASE | {"privacy"},
    "store": BASE | {"privacy", "ops"},
    "kb": BASE | {"language", "privacy", "ops", "store"},
    "speech": BASE | {"language", "privacy", "ops", "kb"},
    "pipeline": BASE | {"language", "privacy", "ops", "store", "speech"},
    "copilot": BASE | {"language", "privacy", "ops", "store", "kb"},
    "conversation": BASE | {"language", "privacy", "ops", "store", "kb", "speech", "pipeline", "copilot"},
    "resilience": BASE | {"language", "privacy", "ops", "store", "kb", "speech", "copilot", "conversation"},
    "providers": BASE | {"language", "privacy", "ops", "store", "kb", "speech", "copilot", "conversation",
                         "resilience"},
    "services": BASE | {"language", "privacy", "ops", "store", "kb", "speech", "pipeline", "copilot",
                        "conversation", "resilience", "providers"},
    "insights": BASE | {"language", "privacy", "ops", "store", "kb", "speech", "pipeline", "copilot",
                        "services"},
    "eval": set(),  # filled below: everything except bench
    "bench": set(),  # everything
    # old command names kept as thin entry points (`python -m core.demo`, `core.intent_tuning`)
    "demo": {"insights"},
    "intent_tuning": {"copilot"},
}
ALLOWED["eval"] = set(ALLOWED) - {"eval", "bench", "demo", "intent_tuning"}
ALLOWED["bench"] = set(ALLOWED) - {"bench", "demo", "intent_tuning"}
TOP_LEVEL_MODULES = {"config", "services", "demo", "intent_tuning"}
OUTSIDE_CORE = ("streamlit", "streamlit_webrtc", "views", "components", "app")  # and streamlit_*


def _modules() -> dict[str, Path]:
    mods = {}
    for path in CORE.rglob("*.py"):
        parts = ["core", *path.relative_to(CORE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> core modules it imports, module -> outside names it imports)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    outside: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for name in targets:
                if name == "core" or name.startswith("core."):
                    found = resolve(name)
                    if found and found != mod:
                        graph[mod].add(found)
                else:
                    outside[mod].add(name.split(".")[0])
    return graph, outside


def _package(mod: str) -> str:
    return mod.split(".")[1] if "." in mod else "core"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {m for targets in graph.values() for m in targets}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


MODULES = _modules()
GRAPH, OUTSIDE = _imports(MODULES)


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_packages_import_only_what_their_layer_allows() -> None:
    wrong = sorted(
        f"{mod} imports {target}"
        for mod, targets in GRAPH.items()
        for target in targets
        if _package(mod) != _package(target) and _package(target) not in ALLOWED.get(_package(mod), set())
    )
    assert wrong == [], "imports across layers that ALLOWED does not permit:\n" + "\n".join(wrong)


def test_package_graph_has_no_cycles() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for mod, targets in GRAPH.items():
        for target in targets:
            if _package(mod) != _package(target):
                packages[_package(mod)].add(_package(target))
    assert _cycles(packages) == []


def test_every_module_lives_in_a_known_package() -> None:
    top = {mod.split(".")[1] for mod, path in MODULES.items() if mod.count(".") == 1 and path.name != "__init__.py"}
    assert top <= TOP_LEVEL_MODULES, f"new top-level modules in core/: {sorted(top - TOP_LEVEL_MODULES)}"
    packages = {mod.split(".")[1] for mod, path in MODULES.items() if path.name == "__init__.py" and "." in mod}
    assert packages <= set(ALLOWED), f"packages without a layering rule: {sorted(packages - set(ALLOWED))}"


def test_core_never_imports_the_ui() -> None:
    wrong = sorted(f"{mod} imports {name}" for mod, names in OUTSIDE.items() for name in names
                   if name in OUTSIDE_CORE or name.startswith("streamlit"))
    assert wrong == []


def test_every_package_says_what_it_owns() -> None:
    for mod, path in MODULES.items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and len(doc.split()) >= 8, f"{mod} has no docstring saying what it owns"


def test_old_command_names_still_run() -> None:
    """``python -m core.demo`` and ``python -m core.intent_tuning`` stay (users' scripts call them)."""
    for name in ("demo", "intent_tuning"):
        tree = ast.parse((CORE / f"{name}.py").read_text(encoding="utf-8"))
        source = ast.unparse(tree)
        assert "def main" not in source and "__main__" in source, name


def test_importing_all_of_core_does_not_load_streamlit() -> None:
    """Not even indirectly, through a third-party package."""
    modules = sorted(m.replace(".__init__", "") for m, p in MODULES.items() if p.name != "__main__.py")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.startswith('streamlit')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=CORE.parent, check=True)
