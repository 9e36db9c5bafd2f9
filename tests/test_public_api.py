"""The public API is written out (about 35 names) and every ``mk.<name>`` the notebooks use exists."""

import json
import re
from pathlib import Path

import mamlkit as mk

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "load_dataset", "TaskSampler", "Task", "FixedTasks", "SinusoidSampler",
    "ModelConfig", "build_model",
    "train_mode", "eval_mode", "get_modes", "preserved_bn_stats", "snapshot_bn_stats", "restore_bn_stats",
    "bn_stats_untouched", "norm_report",
    "PLACEMENTS", "TRAIN_PLACEMENTS",
    "TrainConfig", "meta_train", "MetaTrained", "adapt_and_predict", "task_loss", "accuracy",
    "meta_test", "EvalResult", "confidence_interval", "t_interval", "paired_difference",
    "preset", "get_meta_trained", "run_normalisations",
    "check_maml", "MISTAKES", "MAMLMistakeError", "placement_report", "PlacementReport",
    "ConfigError", "DataError", "Table",
}


def test_the_public_api_is_the_written_list():
    assert sorted(mk.__all__) == sorted(PUBLIC)
    assert len(mk.__all__) == len(set(mk.__all__))
    for name in mk.__all__:
        assert getattr(mk, name) is not None
    from_star: dict = {}
    exec("from mamlkit import *", from_star)
    assert set(from_star) - {"__builtins__"} == PUBLIC
    package_page = ROOT / "docs" / "package.md"
    assert package_page.is_file(), "docs/package.md (the package map) is gone"
    assert f"gives {len(PUBLIC)} names" in package_page.read_text(), "docs/package.md states another count"
    assert f"``mk.__all__``, {len(PUBLIC)} names" in mk.__doc__


def test_the_package_imports_have_no_cycle():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "tools" / "import_graph.py")], capture_output=True, text=True)
    assert done.returncode == 0 and "no cycle" in done.stdout, done.stdout


def test_every_mk_name_in_the_notebooks_and_docs_exists():
    """``mk.X`` is public or a module; ``mk.module.X`` exists (a renamed or moved name fails here)."""
    sources = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        sources[path.name] = "\n".join("".join(c["source"]) for c in cells)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "mamlkit").rglob("*.py"))]:
        sources[str(path.relative_to(ROOT))] = path.read_text()
    import mamlkit.lessons.lab
    import mamlkit.lessons.plots
    import mamlkit.lessons.widgets  # noqa: F401  (imported on their own, as the notebooks do)

    missing = []
    for where, text in sources.items():
        for dotted in set(re.findall(r"\bmk((?:\.[A-Za-z_]\w*)+)", text)):
            obj = mk
            parts = dotted.strip(".").split(".")
            if parts[0].startswith("__"):
                continue
            for i, part in enumerate(parts):
                if not hasattr(obj, part):
                    if i > 0 and not isinstance(getattr(obj, "__file__", None), str):
                        break  # an attribute of a value (e.g. mk.PLACEMENTS.values): not a name of mamlkit
                    missing.append(f"{where}: mk{dotted}")
                    break
                obj = getattr(obj, part)
                if i == 0 and part not in PUBLIC and not hasattr(obj, "__path__") and not hasattr(obj, "__file__"):
                    missing.append(f"{where}: mk.{part} is not public")
                    break
    assert not missing, missing
