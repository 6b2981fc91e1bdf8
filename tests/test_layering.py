"""Import layering (issue 12, point 4): a lower layer never imports a higher one, and the subpackages
import each other at module level without a cycle.

Lower layers: cells/, tasks/, probes/, train/, store/ (and the top-level modules errors, devices,
fractional); higher layers: studies/, report/, commands/ and cli. The rules checked:

1. No module under cells/, tasks/, probes/, store/, train/ imports from studies/, commands/ or
   report/: not at module level, not inside a function, not relative, not absolute, and not by a
   module name in a string (``importlib.import_module("rnnmem.studies...")``).
2. tasks/ does not import train/ (data sets are below training).
3. The graph of module-level imports between the top-level units of ``rnnmem`` (each subpackage and
   each top-level module) has no cycle, except the edges listed in ``ALLOWED_EDGES`` with a reason.
   Imports inside functions are not edges: a lazy import is how a lower layer may use a higher one
   at run time where the rules allow it (e.g. ``probes/card.py`` lazily importing ``train``).

The walk is over the source with :mod:`ast` (``grimp`` installs, but does not tell module-level
imports from those inside functions, which rule 3 needs). Each failure names the module and line.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

import rnnmem

SRC = Path(rnnmem.__file__).parent
LOWER = ("cells", "tasks", "probes", "store", "train")
HIGHER = ("studies", "commands", "report")
#: (importing unit, imported unit) -> reason, for module-level edges allowed to close a cycle. None now.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}
_HIGHER_NAME = re.compile(r"^rnnmem\.(%s)(\.\w+)*(:\w+)?$" % "|".join(HIGHER))


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, e.g. rnnmem.store.runner
    line: int
    target: str        # the imported module, e.g. rnnmem.studies.registry
    module_level: bool

    def __str__(self) -> str:
        path = self.module.replace(".", "/")
        return f"{path}.py:{self.line} imports {self.target}"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _sources() -> dict[str, tuple[Path, bool]]:
    return {_module_name(p)[0]: (p, _module_name(p)[1]) for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _walk(nodes, module_level: bool):
    """(import node, module_level) for every import under ``nodes``; function bodies are not module
    level, ``if TYPE_CHECKING:`` blocks are skipped (they never run)."""
    for node in nodes:
        if _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, module_level
            continue
        inner = module_level and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(ast.iter_child_nodes(node), inner)


def _targets(node, module: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The rnnmem modules an import statement imports (a name that is a submodule counts as one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "rnnmem"]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_pkg else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    if base.split(".")[0] != "rnnmem":
        return []
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return subs + ([base] if len(subs) < len(node.names) else [])


def collect_imports() -> list[Import]:
    """Every import of an rnnmem module by an rnnmem module, with its line and whether it runs at import time."""
    sources = _sources()
    known = set(sources)
    found = []
    for module, (path, is_pkg) in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _walk(tree.body, True):
            for target in _targets(node, module, is_pkg, known):
                found.append(Import(module, node.lineno, target, module_level))
    return found


def higher_layer_strings() -> list[str]:
    """``path:line "rnnmem.studies..."`` for every string constant in a lower layer that names a
    higher-layer module in full (an import by name); docstrings are not counted."""
    found = []
    for module, (path, _) in _sources().items():
        if _unit(module) not in LOWER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and _HIGHER_NAME.match(node.value)):
                found.append(f"{module.replace('.', '/')}.py:{node.lineno} names {node.value!r}")
    return found


def _unit(module: str) -> str:
    """The top-level unit of a module: ``rnnmem.store.db`` -> ``store``; the root package -> ``rnnmem``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_violations(imports, lower=LOWER, higher=HIGHER) -> list[str]:
    return sorted({str(i) for i in imports if _unit(i.module) in lower and _unit(i.target) in higher})


def unit_cycles(imports, allowed=ALLOWED_EDGES) -> list[str]:
    """One line per module-level import that closes a cycle between top-level units: the cycle, and
    for each of its edges one module and line that makes it."""
    edges: dict[tuple[str, str], Import] = {}
    for i in imports:
        a, b = _unit(i.module), _unit(i.target)
        if i.module_level and a != b and (a, b) not in allowed:
            edges.setdefault((a, b), i)
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    cycles = set()
    for (a, b) in sorted(edges):
        # shortest path b -> a; with the edge a -> b it closes a cycle
        prev, todo = {b: None}, deque([b])
        while todo and a not in prev:
            u = todo.popleft()
            for v in sorted(graph.get(u, ())):
                if v not in prev:
                    prev[v] = u
                    todo.append(v)
        if a not in prev:
            continue
        path = [a]
        while path[-1] != b:
            path.append(prev[path[-1]])
        path = [a] + path[::-1]           # a -> b -> ... -> a
        ring = path[:-1]
        start = ring.index(min(ring))     # one spelling per cycle
        ring = ring[start:] + ring[:start]
        hops = list(zip(ring, ring[1:] + ring[:1]))
        cycles.add(" -> ".join(ring + ring[:1]) + ": " + "; ".join(str(edges[h]) for h in hops))
    return sorted(cycles)


# ----------------------------------------------------------------------------- the rules, on rnnmem
@pytest.fixture(scope="module")
def imports():
    found = collect_imports()
    assert len({i.module for i in found}) > 50, "the walk found too few modules; is rnnmem's source readable?"
    return found


def test_lower_layers_never_import_studies_commands_or_report(imports):
    bad = layer_violations(imports)
    assert not bad, "lower layers import higher ones:\n" + "\n".join(bad)


def test_lower_layers_never_name_a_higher_module_to_import_it():
    bad = higher_layer_strings()
    assert not bad, "lower layers name higher-layer modules (an import by name):\n" + "\n".join(bad)


def test_tasks_never_import_train(imports):
    bad = layer_violations(imports, lower=("tasks",), higher=("train",))
    assert not bad, "tasks/ imports train/:\n" + "\n".join(bad)


def test_no_module_level_import_cycle_between_subpackages(imports):
    bad = unit_cycles(imports)
    assert not bad, "module-level import cycles between subpackages:\n" + "\n".join(bad)


def test_allowed_edges_are_still_needed(imports):
    """An allowance that no longer matches a module-level import is stale: remove it."""
    present = {(_unit(i.module), _unit(i.target)) for i in imports if i.module_level}
    stale = [f"{a} -> {b}" for (a, b) in ALLOWED_EDGES if (a, b) not in present]
    assert not stale, f"ALLOWED_EDGES lists edges no module makes any more: {stale}"


# ----------------------------------------------------------------------------- the checker itself
def _parse(module: str, source: str, is_pkg: bool = False, known=()) -> list[Import]:
    out = []
    for node, level in _walk(ast.parse(source).body, True):
        out += [Import(module, node.lineno, t, level) for t in _targets(node, module, is_pkg, set(known))]
    return out


def test_checker_sees_relative_absolute_lazy_and_string_imports():
    src = ("from ..studies.registry import get_study\n"
           "import rnnmem.commands.options\n"
           "from .. import report\n"
           "def f():\n    from ..studies import zhao\n"
           "from typing import TYPE_CHECKING\n"
           "if TYPE_CHECKING:\n    from ..report import document\n")
    found = _parse("rnnmem.store.runner", src, known={"rnnmem.report", "rnnmem.studies.zhao"})
    assert [(i.line, i.target, i.module_level) for i in found] == [
        (1, "rnnmem.studies.registry", True), (2, "rnnmem.commands.options", True), (3, "rnnmem.report", True),
        (5, "rnnmem.studies.zhao", False)]
    bad = layer_violations(found)
    assert len(bad) == 4 and bad[0].startswith("rnnmem/store/runner.py:1 imports rnnmem.studies.registry")
    assert _HIGHER_NAME.match("rnnmem.studies.muccino:run_cell") and _HIGHER_NAME.match("rnnmem.studies")
    assert not _HIGHER_NAME.match("import rnnmem.studies first") and not _HIGHER_NAME.match("rnnmem.store.testing")


def test_checker_resolves_names_that_are_attributes_not_modules():
    found = _parse("rnnmem.store.db", "from .. import __version__\n")
    assert [i.target for i in found] == ["rnnmem"]
    found = _parse("rnnmem.cells", "from . import base, build\n", is_pkg=True, known={"rnnmem.cells.base"})
    assert [i.target for i in found] == ["rnnmem.cells.base", "rnnmem.cells"]


def test_checker_finds_a_cycle_and_names_module_and_line():
    found = (_parse("rnnmem.probes.card", "from ..store.db import ResultStore\n")
             + _parse("rnnmem.store.db", "from ..probes.common import as_unit\n")
             + _parse("rnnmem.store.runner", "def f():\n    from ..cells import build\n")
             + _parse("rnnmem.cells.base", "from ..store import db\n"))
    cycles = unit_cycles(found, allowed={})
    assert cycles == ["probes -> store -> probes: rnnmem/probes/card.py:1 imports rnnmem.store.db; "
                      "rnnmem/store/db.py:1 imports rnnmem.probes.common"]  # store -> cells is lazy: no cycle
    assert unit_cycles(found, allowed={("store", "probes"): "test"}) == []
