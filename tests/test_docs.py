"""The Python examples in the docs run and print what the docs say (doctest over docs/*.md)."""
import doctest
from pathlib import Path

import pytest

DOCS = sorted(p for p in (Path(__file__).resolve().parents[1] / "docs").glob("*.md") if ">>>" in p.read_text())


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_doc_examples_run(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} failed"
