"""Every public function and method of the documented packages has Parameters / Returns sections
(numpy style; ``Yields`` for generators; functions without arguments need only Returns)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnmem"
PACKAGES = ["cells", "probes", "tasks", "train", "studies", "report", "store"]
MODULES = ["__init__.py", "devices.py", "errors.py", "fractional.py", "model_io.py"]  # top-level modules


def _public(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield item


def _complete(fn) -> bool:
    doc = ast.get_docstring(fn) or ""
    args = [a for a in fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
    has_returns = "Returns" in doc or "Yields" in doc
    return has_returns and ("Parameters" in doc or not args)


@pytest.mark.parametrize("package", PACKAGES)
def test_public_functions_have_parameters_and_returns(package):
    missing = []
    for path in sorted((SRC / package).rglob("*.py")):
        for fn in _public(ast.parse(path.read_text(encoding="utf-8"))):
            if not _complete(fn):
                missing.append(f"{path.relative_to(SRC)}:{fn.lineno} {fn.name}")
    assert not missing, "public functions without Parameters/Returns sections:\n" + "\n".join(missing)


@pytest.mark.parametrize("module", MODULES)
def test_top_level_module_functions_have_parameters_and_returns(module):
    path = SRC / module
    missing = [f"{module}:{fn.lineno} {fn.name}" for fn in _public(ast.parse(path.read_text(encoding="utf-8")))
               if not _complete(fn)]
    assert not missing, "public functions without Parameters/Returns sections:\n" + "\n".join(missing)


def test_the_check_can_fail():
    tree = ast.parse('def f(a):\n    """Only a summary."""\n\ndef g():\n    """Summary.\n\n    Returns\n    -------\n    1\n    """\n')
    fns = {fn.name: _complete(fn) for fn in _public(tree)}
    assert fns == {"f": False, "g": True}
