"""Every lesson notebook has the form the collection promises (static checks; nbval runs them)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def test_the_sequence_is_numbered_without_duplicates():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(NOTEBOOKS) >= 8 and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_form(path):
    nb = cells(path)
    markdown = "\n".join(text(c) for c in nb if c["cell_type"] == "markdown")
    code = [text(c) for c in nb if c["cell_type"] == "code"]
    assert text(nb[0]).startswith("# "), "starts with a title"
    for heading in ("Time needed", "Takeaways"):
        assert heading in markdown, f"missing '{heading}'"
    assert "What you will learn" in markdown or "What you get" in markdown
    assert "import mamlkit as mk" in code[0] and "manual_seed" in code[0], "first code cell sets seeds visibly"
    assert any("assert " in c for c in code), "every notebook checks its claims"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_with_outputs_from_a_clean_run(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert all(n is not None for n in counts), "stored without outputs: run `make notebooks`"
    assert counts == list(range(1, len(code) + 1)), "outputs not from one clean top-to-bottom run"
    for c in code:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", "a stored output is an error"
