"""docs/libraries.md's table of where each MAML library leaves the statistics agrees with a new measurement of
the same loops (tools/library_table.py) on a small synthetic set: the counts depend on the loops' sizes only."""

import re
from pathlib import Path

import pytest
from conftest import load_tool, make_split
from test_libraries import need

import mamlkit as mk
from mamlkit.your_code import libraries

PAGE = Path(__file__).resolve().parents[1] / "docs" / "libraries.md"


def test_the_page_s_table_is_what_the_libraries_do_now():
    need(libraries.learn2learn_unavailable_reason())
    need(libraries.torchopt_unavailable_reason())
    tool = load_tool("library_table")
    page = PAGE.read_text()
    written = page[page.index(tool.BEGIN):page.index(tool.END) + len(tool.END)]
    sampler = mk.TaskSampler(make_split(), n_way=5, k_shot=1, n_query=3, seed=0)
    measured = tool.block(tool.measure(sampler, hidden=8))
    assert written == measured, "docs/libraries.md is out of date: run tools/library_table.py --write docs/libraries.md"


def test_the_page_s_sentences_agree_with_its_table():
    tool = load_tool("library_table")
    page = PAGE.read_text()
    table = page[page.index(tool.BEGIN):page.index(tool.END)]
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "meta_test_stats_saved" in rows["learn2learn 0.2.0"] and "clones' passes" in rows["learn2learn 0.2.0"]
    for quiet in ("higher 0.2.1", "mamlkit"):
        assert rows[quiet].count("mean 0, variance 1 (never written)") == 2 and rows[quiet].endswith("silent |")
    assert "put back after each task" in rows["TorchOpt 0.7.3"]
    assert rows["torch.func, PyTorch's example"].count("| no running statistics |") == 2
    assert len(re.findall(r"^\| ", table, re.M)) == len(tool.LIBRARIES) + 2       # with the header and its rule
    assert "TorchOpt 0.7.3 | installed" not in page and "| installed by `binder/postBuild`" in page


def test_skips_say_why_and_fail_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI the library tests must run"):
        need("learn2learn 0.2.0 is not installed")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        need("learn2learn 0.2.0 is not installed")
    need(None)


def test_the_reports_readings_agree_with_their_tables():
    """docs/libraries.md's sentences under the placement reports, against the reports' own tables."""
    page = PAGE.read_text()
    block = page[page.index("<!-- library_reports"):page.index("<!-- /library_reports -->")]
    sections = {part.split(":")[0].strip(): part for part in block.split("### ")[1:]}
    assert len(sections) == 4, list(sections)

    def rows(name):
        table = {}
        for line in sections[name].splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("|") and len(cells) == 6 and cells[4][:1].isdigit():
                table[cells[0]] = float(cells[4].split(" ± ")[0])
        return table

    tables = {name: rows(name) for name in sections}
    for name, table in tables.items():
        assert max(table, key=table.get) == "transductive", name                 # best in train mode
        assert table["reptile_protocol"] > table["transductive"] - 5, name        # keeps most with Reptile's
        for row in ("eval_held", "eval_untouched", "eval_reestimated"):
            if row in table:
                assert table[row] < 35, (name, row)                                # eval mode near chance (20%)
    assert tables["learn2learn 0.2.0"] == tables["torch.func, the model's own buffers"]
