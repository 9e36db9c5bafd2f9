"""Every lesson notebook has the form the collection promises (static checks; nbval runs them)."""

import json
import re
from pathlib import Path

import pytest
from conftest import load_tool

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path):
    return json.loads(path.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def lesson_code(nb_cells):
    """The code cells, less the Colab set-up cell ``tools/reach.py`` adds to a published copy (never run here)."""
    return [c for c in nb_cells if c["cell_type"] == "code" and "colab-setup" not in c["metadata"].get("tags", [])]


def test_the_sequence_is_numbered_without_duplicates():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(NOTEBOOKS) >= 8 and len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_form(path):
    nb = cells(path)
    markdown = "\n".join(text(c) for c in nb if c["cell_type"] == "markdown")
    code = [text(c) for c in lesson_code(nb)]
    assert text(nb[0]).startswith("# "), "starts with a title"
    for heading in ("Time needed", "Takeaways"):
        assert heading in markdown, f"missing '{heading}'"
    assert "What you will learn" in markdown or "What you get" in markdown
    assert "import mamlkit as mk" in code[0] and "manual_seed" in code[0], "first code cell sets seeds visibly"
    assert any("assert " in c for c in code), "every notebook checks its claims"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_with_outputs_from_a_clean_run(path):
    code = lesson_code(cells(path))
    counts = [c["execution_count"] for c in code]
    assert all(n is not None for n in counts), "stored without outputs: run `make notebooks`"
    assert counts == list(range(1, len(code) + 1)), "outputs not from one clean top-to-bottom run"
    for c in code:
        for out in c.get("outputs", []):
            assert out.get("output_type") != "error", "a stored output is an error"


# ---------------------------------------------------------------------------------------------------------
# Numbers quoted in prose must come from the computation: every percentage, interval or "N points" quoted in
# a markdown cell must be shown by an output, or written in a code cell (an assert's margin, a setting), of
# the same notebook. Sentences that cite a publication ("et al.", "published") quote other people's numbers
# and are exempt, and so is the level of an interval ("95% interval").

QUOTED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(?:%|±|points\b)")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?")
CITES = ("et al", "published")


def backing_numbers(nb_cells) -> set[float]:
    """Every number in the notebook's code cells and stored outputs."""
    texts = []
    for cell in nb_cells:
        if cell["cell_type"] != "code":
            continue
        texts.append(text(cell))
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            texts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return {float(m.group()) for t in texts for m in NUMBER.finditer(t)}


def unbacked_numbers(nb_cells) -> list[str]:
    """Quoted numbers of the markdown cells that no output or code cell shows (as a value or a percentage)."""
    values = backing_numbers(nb_cells)
    missing = []
    for cell in nb_cells:
        if cell["cell_type"] != "markdown":
            continue
        for sentence in re.split(r"(?<=[.:;])\s|\n\n", text(cell)):
            if any(c in sentence for c in CITES):
                continue
            for m in QUOTED.finditer(sentence):
                if re.match(r"\s*(confidence|interval)", sentence[m.end():]):
                    continue                                    # "95% interval": a level, not a result
                quoted = m.group(1)
                digits = len(quoted.split(".")[1]) if "." in quoted else 0
                target = float(quoted)
                if not any(round(v, digits) == target or round(100 * v, digits) == target for v in values):
                    missing.append(f"{quoted!r} in: {sentence.strip()[:100]}")
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_in_prose_come_from_the_computation(path):
    missing = unbacked_numbers(cells(path))
    assert not missing, "quoted in markdown but shown by no output or code cell:\n" + "\n".join(missing)


def test_the_number_guard_catches_a_stale_number():
    nb = cells(NOTEBOOKS[3])                                    # 04: the placement table
    assert not unbacked_numbers(nb)
    planted = json.loads(json.dumps(nb))
    planted.append({"cell_type": "markdown", "metadata": {}, "source": ["Train mode reaches 91.3 ± 1.2 here."]})
    assert any("91.3" in m for m in unbacked_numbers(planted)), "a planted stale number must be caught"


def test_the_seed_check_changes_every_presets_meta_training_seed_and_nothing_else():
    import importlib.util

    import mamlkit.experiments as experiment

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("execute_notebooks", root / "tools" / "execute_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    before = dict(experiment.PRESETS)
    try:
        exec(tool.SEED_PATCH.format(seed=7), {})              # what --train-seed 7 runs before the first cell
        for name, exp in experiment.PRESETS.items():
            assert exp.train.seed == 7
            assert exp.with_changes(train={"seed": before[name].train.seed}) == before[name]
        import mamlkit as mk
        assert mk.preset("lesson").train.seed == 7
    finally:
        experiment.PRESETS = before
    assert mk.preset("lesson").train.seed == 0


def test_the_readmes_tables_across_seeds_are_the_packed_records():
    """Every cell of the README's tables across meta-training seeds is computed from data/records/."""
    from mamlkit.evaluate import t_interval

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    checked = 0
    for name in ("seeds-glyphs.json", "seeds-omniglot.json"):
        record = json.loads((root / "data" / "records" / name).read_text())
        cells = [(record["placements"], row, col) for row in record["placements"]["results"]
                 for col in record["placements"]["results"][row]]
        cells += [(record["norms"], row, "batch") for row in record["norms"]["results"]]
        for section, row, col in cells:
            means = [sum(v) / len(v) for v in section["results"][row][col]]
            mean, half = t_interval(means)
            shown = f"{mean:.1f} ± {half:.1f} ({' / '.join(f'{m:.1f}' for m in means)})"
            assert shown in readme, f"{name} [{row}][{col}]: {shown} is not in the README"
            checked += 1
    assert checked == 2 * (2 * 8 + 5)


def test_the_playground_timing_quoted_in_the_docs_is_that_of_the_stored_lab_runs():
    """README and guide say "under 150 ms per task in notebook 08's stored runs": the stored outputs must agree.
    (Re-executed on 2026-12-07 on an idle machine: 127-131 ms for the first run, which includes the warm-up, and
    65-72 ms for the second; mk.meta_test at that commit and at 4b0c236 both took 72-75 ms a task on that machine,
    where the earlier stored runs had 97 and 48 ms: the machine was slower, not the code.)"""
    lab = next(p for p in NOTEBOOKS if p.name.startswith("08_"))
    stored = json.dumps(cells(lab))
    per_task = [int(ms) for ms in re.findall(r"(\d+) ms per task", stored)]
    assert len(per_task) >= 2 and max(per_task) < 150, per_task
    root = lab.parents[1]
    for doc in (root / "README.md", root / "docs" / "instructor_guide.md"):
        assert "under 150 ms per task" in doc.read_text(), doc


def test_the_readmes_table_of_other_settings_is_the_packed_record():
    """Every cell of the README's shots-and-ways table is computed from data/records/settings.json (and the
    5-way 1-shot columns from seed 0 of the seeds records)."""
    from mamlkit.evaluate import confidence_interval
    from mamlkit.placements import PLACEMENTS

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    records = root / "data" / "records"
    settings = json.loads((records / "settings.json").read_text())
    sections = [settings[f"{d}-{s}"] for d in ("omniglot", "glyphs") for s in ("5w5s", "20w1s")]
    sections += [json.loads((records / f"seeds-{d}.json").read_text())["placements"] for d in ("omniglot", "glyphs")]
    for placement in PLACEMENTS:
        shown = []
        for section in sections:
            mean, half = confidence_interval([v / 100 for v in section["results"]["standard"][placement][0]])
            shown.append(f"{100 * mean:.1f} ± {100 * half:.1f}")
        row = next(line for line in readme.splitlines() if line.startswith(f"| {placement} | ") and "5-shot" not in line
                   and line.count("|") == 8)
        assert all(cell in row for cell in shown), (placement, shown, row)
    one = settings["omniglot-20w1s"]["results"]["standard"]["one_at_a_time"][0]
    assert f"{sum(one) / len(one):.1f}% at Omniglot 20-way" in readme          # the number quoted in the prose


def test_the_readmes_training_length_and_one_at_a_time_tables_are_the_records():
    """The README's tables on one example at a time are tools/alone_table.py's output on the records, the
    claims beside them hold in the records, and the numbers quoted in its prose are theirs."""
    tool = load_tool("alone_table")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for table in (tool.length_table(), tool.settings_table(), tool.layers_table()):
        assert table in readme
    length, alone, layers = tool.load("length"), tool.load("alone"), tool.load("alone_layers")
    here = tool.load("seeds-omniglot")["placements"]
    runs = [length["it100"], here, length["it1000"], length["it3000"]]
    assert [r["experiment"]["train"]["iterations"] for r in runs] == [100, 300, 1000, 3000]
    sections = {name: v for name, v in alone.items() if isinstance(v, dict) and "experiment" in v}
    assert set(sections) == {"hidden64", "firstorder", "stride", "stride-firstorder", "stride-20w", "glyphs-stride"}
    for name, section in sections.items():
        # one change at a time: each run differs from the Conv4 here in the setting it is named for only
        ours, theirs = here["experiment"], section["experiment"]
        changed = {key for key in ours if key not in ("data_dir", "dataset", "model", "train")
                   and ours[key] != theirs[key]}
        defaults = {"downsample": "pool", "norm_steps": 5}          # fields older records do not have
        changed |= {f"model.{k}" for k, v in theirs["model"].items() if ours["model"].get(k, defaults.get(k)) != v}
        changed |= {f"train.{k}" for k in ours["train"] if ours["train"][k] != theirs["train"][k]}
        # settings the older record predates are at their defaults in the newer one
        assert {k: v for k, v in theirs.items() if k not in ours} == {"test_lr_scale": 1.0}, name
        assert {k: v for k, v in theirs["train"].items() if k not in ours["train"]} == {"inner_rates": "fixed",
                                                                                     "adapt": "all"}, name
        expected = {"hidden64": {"model.hidden"}, "firstorder": {"train.first_order"},
                    "stride": {"model.downsample"}, "stride-20w": {"model.downsample", "n_way"},
                    "stride-firstorder": {"model.downsample", "train.first_order"},
                    "glyphs-stride": {"model.downsample"}}[name]
        assert changed == expected, (name, changed)
    alone_at = [tool.mean_of(r, "one_at_a_time") for r in runs]
    whole = [tool.mean_of(r, "transductive") for r in runs]
    assert alone_at[0] < alone_at[1] < alone_at[2] and abs(alone_at[3] - alone_at[2]) < 3   # rises, levels off
    gaps = [w - a for w, a in zip(whole, alone_at)]
    assert gaps == sorted(gaps)                                                 # the cost of being alone grows
    assert tool.mean_of(alone["stride"], "one_at_a_time") < 20 + 3                # chance at 5-way ...
    assert tool.mean_of(alone["stride-20w"], "one_at_a_time") < 5 + 2             # ... and at 20-way
    assert tool.mean_of(alone["stride-firstorder"], "one_at_a_time") < 20 + 3     # ... and first-order
    for name in ("hidden64", "firstorder"):
        assert tool.mean_of(alone[name], "one_at_a_time") > 20 + 20, name      # far above chance
    # the layer experiment's ends are the placements of the records, task for task
    for key, section in [("omniglot-pool", here), ("omniglot-stride", alone["stride"]),
                         ("glyphs-pool", tool.load("seeds-glyphs")["placements"]),
                         ("glyphs-stride", alone["glyphs-stride"])]:
        assert layers[key]["results"]["whole batch"] == section["results"]["standard"]["transductive"][0], key
        assert layers[key]["results"]["every layer alone"] == section["results"]["standard"]["one_at_a_time"][0]
    assert tool.layer_mean("omniglot-stride", "layer 4 alone") < 20 + 3
    assert tool.layer_mean("glyphs-stride", "layer 4 alone") < 20 + 3
    assert tool.layer_mean("omniglot-stride", "all but layer 4 alone") > 60
    assert min(tool.layer_mean(k, f"layer {n} alone") for k in ("omniglot-pool", "glyphs-pool")
               for n in (1, 2, 3, 4)) > 30                                  # no single layer: chance
    quoted = [tool.mean_of(runs[1], "one_at_a_time"), tool.mean_of(runs[2], "one_at_a_time"),
              tool.mean_of(runs[3], "one_at_a_time"), tool.mean_of(alone["stride"], "one_at_a_time"),
              tool.mean_of(alone["stride-20w"], "one_at_a_time"),
              tool.mean_of(alone["glyphs-stride"], "one_at_a_time"),
              tool.mean_of(alone["stride-firstorder"], "one_at_a_time"),
              tool.layer_mean("omniglot-stride", "layer 4 alone"), tool.layer_mean("glyphs-stride", "layer 4 alone"),
              tool.layer_mean("omniglot-stride", "all but layer 4 alone"),
              tool.layer_mean("glyphs-pool", "layer 1 alone"), tool.layer_mean("glyphs-stride", "layer 1 alone")]
    for value in quoted:
        assert f"{value:.1f}%" in readme, value
    for section in (runs[0], runs[2], runs[3], *sections.values()):
        assert f"{tool.seconds(section):,} s" in readme
    assert f"{tool.layers_seconds()} s" in readme


def test_the_readmes_query_batch_table_is_the_record():
    """tools/query_batches.py's table is in the README; the record's ends are the seeds records' transductive and
    one_at_a_time tasks, and the claims and numbers of the prose hold."""
    tool = load_tool("query_batches")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert tool.table() in readme
    record = tool.load("query_batches")

    def mean(dataset, key):
        return sum(record[dataset]["results"][key]) / len(record[dataset]["results"][key])

    for dataset in ("glyphs", "omniglot"):
        seeds = tool.load(f"seeds-{dataset}")["placements"]["results"]["standard"]
        for balanced in (True, False):
            assert record[dataset]["results"][tool.key(25, balanced)] == seeds["transductive"][0]
            assert record[dataset]["results"][tool.key(1, balanced)] == seeds["one_at_a_time"][0]
        assert abs(mean(dataset, "5-balanced") - mean(dataset, "25-balanced")) < 3     # as good as the whole set
        assert mean(dataset, "5-one-class") < mean(dataset, "5-balanced") - 20          # one class: much lower
        for key in ("5-balanced", "25-balanced", "5-one-class"):
            assert f"{mean(dataset, key):.1f}%" in readme, (dataset, key)


def test_the_readmes_dropout_table_is_the_record():
    """tools/dropout_table.py's table on data/records/dropout.json is in the README, with the differences quoted."""
    tool = load_tool("dropout_table")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert tool.table() in readme
    record = tool.load("dropout")
    for dataset in ("glyphs", "omniglot"):
        on, off = (record[f"{dataset}-{run}"] for run in ("on", "off"))
        assert off["experiment"]["test_dropout_off"] is True and "test_dropout_off" not in on["experiment"]
        assert on["experiment"]["model"]["dropout"] == off["experiment"]["model"]["dropout"] == 0.3
        # eval mode turns Dropout off anyway: the two runs agree there, task for task
        assert on["results"]["standard"]["eval_collected"] == off["results"]["standard"]["eval_collected"]
        mean, half = tool.difference(dataset)
        assert mean > half > 0                                  # Dropout off helps, beyond the paired interval
    quoted = " and ".join(f"{tool.difference(d)[0]:+.1f}" for d in ("glyphs", "omniglot"))
    assert f"({quoted} points on the same tasks)" in readme


def test_the_readmes_remedies_tables_are_the_packed_record():
    """The README's tables of the inner-loop remedies are tools/remedies_table.py's output on
    data/records/remedies.json, and that record's plain-MAML runs are the seeds records' tasks, bit for bit."""
    root = Path(__file__).resolve().parents[1]
    tool = load_tool("remedies_table")
    record = json.loads((root / "data" / "records" / "remedies.json").read_text())
    readme = (root / "README.md").read_text()
    assert tool.tables(record) in readme

    def both(variant, placement):  # the prose's "glyphs / Omniglot" pairs
        means = [sum(tool.seed_means(record, d, variant, placement)) / 3 for d in ("glyphs", "omniglot")]
        return f"{means[0]:.1f} / {means[1]:.1f}"

    for variant, placement in [("perstep", "eval_collected"), ("perstep", "transductive"), ("bn", "transductive"),
                               ("lslr", "eval_collected"), ("lslr-x0.1", "eval_collected"),
                               ("bn-x0.1", "eval_collected"), ("anil", "eval_collected"), ("anil", "transductive"),
                               ("anil", "one_at_a_time"), ("bn", "one_at_a_time")]:
        assert both(variant, placement) in readme, (variant, placement)
    for dataset in ("glyphs", "omniglot"):
        seeds = json.loads((root / "data" / "records" / f"seeds-{dataset}.json").read_text())["placements"]
        plain = record[f"{dataset}-bn-10"]
        assert plain["seeds"] == seeds["seeds"]
        for placement, runs in plain["results"]["standard"].items():
            assert runs == seeds["results"]["standard"][placement], (dataset, placement)
        for section in (s for s in record if s.startswith(dataset)):
            experiment = record[section]["experiment"]
            assert experiment["test_tasks"] == 600 and experiment["train"]["iterations"] == 300, section
