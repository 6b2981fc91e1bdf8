"""docs/api.md's code blocks run as written (the page promises it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_code_block_runs(index):
    from rnnmem import cells
    from rnnmem.probes import PROBES

    before_units, before_probes = set(cells.UNITS), set(PROBES)
    try:
        exec(compile(BLOCKS[index], f"docs/api.md block {index}", "exec"), {"__name__": "docs_api"})
    finally:  # the examples register a unit and a probe: leave the registries as they were
        for name in set(cells.UNITS) - before_units:
            cells.UNITS.pop(name)
            cells.UNIT_DOCS.pop(name, None)
        for name in set(PROBES) - before_probes:
            PROBES.pop(name)
