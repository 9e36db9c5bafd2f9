"""The layout: a core and rooms, imports one way (tools/import_graph.py), sizes that may only shrink
(tools/sizes.py), and the map in docs/package.md in step with both."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_contracts_catch_an_import_that_goes_the_wrong_way():
    graph_tool = _tool("import_graph")
    kept = {"mamlkit.adapt": {"mamlkit.modes"}, "mamlkit.lessons.plots": {"mamlkit.experiments", "mamlkit.evaluate"},
            "mamlkit": {"mamlkit.lessons.plots"}, "mamlkit.cli": {"mamlkit.lessons.why_eval"}}
    assert graph_tool.broken_contracts(kept) == []
    wrong = {"mamlkit.plumbing.checks": {"mamlkit.your_code.checker"},          # the core reaching into a room
             "mamlkit.experiments": {"mamlkit.lessons.plots"},         # a room reaching into one above it
             "mamlkit.your_code.diagnosis": {"mamlkit.experiments"},   # a room reaching sideways
             "mamlkit.data.omniglot": {"mamlkit.cli"}}                 # the datasets are the core's
    broken = graph_tool.broken_contracts(wrong)
    assert len(broken) == 4, broken
    assert any("mamlkit.plumbing.checks (the core) imports mamlkit.your_code.checker" in b for b in broken)


def test_the_package_keeps_its_contracts():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "import_graph.py"), "--checks"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "contracts kept" in done.stdout and "no cycle" in done.stdout


def test_the_map_names_every_room_and_its_contract():
    contracts = _tool("import_graph").CONTRACTS
    rooms_on_disk = {p.parent.name for p in (ROOT / "mamlkit").glob("*/__init__.py")} - {"data", "plumbing"}
    assert rooms_on_disk == set(contracts), "a subpackage of mamlkit/ without a contract, or a contract without one"
    page = (ROOT / "docs" / "package.md").read_text()
    rows = re.findall(r"^\| `(mamlkit(?:\.\w+)?)`[^|]* \| [^|]+ \| ([^|]+) \|$", page, flags=re.M)
    table = {name: allowed.strip() for name, allowed in rows if name == "mamlkit" or name.count(".") == 1}
    assert table.pop("mamlkit") == "the core only"
    assert set(table) == {f"mamlkit.{room}" for room in contracts}
    for room, others in contracts.items():
        words = "the core only" if not others else ", ".join(["the core", *(f"`mamlkit.{o}`" for o in sorted(others))])
        assert table[f"mamlkit.{room}"] == words, (room, table[f"mamlkit.{room}"])
        assert f"mamlkit.{room}" in page.split("```text")[1].split("```")[0], f"the diagram lacks {room}"


def test_sizes_count_code_not_explanation():
    sizes = _tool("sizes")
    source = '"""A module docstring\nover two lines."""\n\n# a comment\nimport os\n\n\ndef f(x):\n' \
             '    """What f does."""\n    return (x +\n            1)  # a trailing comment\n'
    assert sorted(sizes.code_lines(source)) == [5, 8, 10, 11]


def test_sizes_never_grow_and_new_giants_are_refused(monkeypatch):
    sizes = _tool("sizes")
    modules, functions = sizes.measure()
    assert sizes.check(modules, functions)[1] == [], "tools/sizes.py: a size grew past its limit or its OVER entry"
    monkeypatch.setattr(sizes, "OVER", {})
    grown = dict(modules, **{"mamlkit/new_giant.py": 401})
    problems = sizes.check(grown, {"mamlkit/new_giant.py:f": 61})[1]
    assert any("module mamlkit/new_giant.py: 401" in p for p in problems)
    assert any("function mamlkit/new_giant.py:f: 61" in p for p in problems)
