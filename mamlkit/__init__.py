"""mamlkit: where ``.train()`` and ``.eval()`` belong in MAML, shown by experiment.

``import mamlkit as mk`` gives the public API the notebooks use (``mk.__all__``, 39 names)::

    data = mk.load_dataset("glyphs")
    sampler = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    model = mk.build_model(mk.ModelConfig(norm="bn"))
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=100))
    result = mk.meta_test(trained, mk.TaskSampler(data["test"], seed=1), "transductive", n_tasks=100)

The package is a core and four rooms (``docs/package.md``; ``make lint`` checks that imports go one way).
The core is this folder's modules, in the order the data flows: ``mk.data`` (datasets), ``mk.tasks``,
``mk.norms`` and ``mk.models``, ``mk.modes``, ``mk.placements`` (what a placement means), ``mk.rates`` (inner
learning rates other than one number), ``mk.backends`` (higher or torch.func), ``mk.adapt`` (the two loops) and
``mk.evaluate``; what they lean on apart from what they teach (input checks, threads and lanes, the machine's
signature, safe files) is in ``mamlkit.plumbing``. The rooms import the core, never the other way:
``mamlkit.experiments`` (presets, the cache of meta-trained models, runs over placements and seeds),
``mamlkit.your_code`` (the checker and the placement report for your own loop), ``mamlkit.lessons`` (plots,
widgets, the classroom lab, exercises and predictions: they need matplotlib and ipywidgets,
``from mamlkit.lessons import plots``) and ``mamlkit.cli`` (the command line). A room is imported on first use of
one of its names here (``mk.preset``, ``mk.check_maml``, ...).
"""

from mamlkit.plumbing import startup as _startup  # noqa: I001  (first: a Ctrl-C while starting says one line)
import importlib as _importlib

from mamlkit import (  # noqa: F401  (the core's modules, so that mk.<module>.<name> always works)
    adapt,
    backends,
    data,
    errors,
    evaluate,
    models,
    modes,
    norms,
    placements,
    rates,
    table,
    tasks,
)
from mamlkit.adapt import MetaTrained, TrainConfig, accuracy, adapt_and_predict, meta_train, task_loss
from mamlkit.data import load_dataset
from mamlkit.data import omniglot as _omniglot  # noqa: F401  (mk.data.omniglot)
from mamlkit.data.sinusoid import SinusoidSampler
from mamlkit.errors import ConfigError, DataError
from mamlkit.evaluate import EvalResult, confidence_interval, meta_test, paired_difference
from mamlkit.models import ModelConfig, build_model
from mamlkit.modes import (
    bn_stats_untouched,
    eval_mode,
    get_modes,
    norm_report,
    preserved_bn_stats,
    restore_bn_stats,
    snapshot_bn_stats,
    train_mode,
)
from mamlkit.placements import PLACEMENTS, TRAIN_PLACEMENTS
from mamlkit.table import Table
from mamlkit.tasks import FixedTasks, Task, TaskSampler

#: The public names that live in a room, and the room's module: loaded on first use (``__getattr__`` below).
_ROOM_NAMES = {
    "preset": "mamlkit.experiments", "get_meta_trained": "mamlkit.experiments",
    "run_normalisations": "mamlkit.experiments", "t_interval": "mamlkit.experiments.intervals",
    "check_maml": "mamlkit.your_code.checker", "MISTAKES": "mamlkit.your_code.checker",
    "MAMLMistakeError": "mamlkit.your_code.checker",
    "placement_report": "mamlkit.your_code.diagnosis", "PlacementReport": "mamlkit.your_code.diagnosis",
}
_ROOMS = ("experiments", "your_code", "lessons", "cli")


def __getattr__(name: str) -> object:
    """``mk.preset`` and the other names of ``_ROOM_NAMES``, and ``mk.<room>``: the room is imported now."""
    if name in _ROOM_NAMES:
        return getattr(_importlib.import_module(_ROOM_NAMES[name]), name)
    if name in _ROOMS:
        return _importlib.import_module(f"mamlkit.{name}")
    raise AttributeError(f"module 'mamlkit' has no attribute {name!r}")


__version__ = "0.1.0"

_startup.usual_interrupts()

__all__ = [
    # data and tasks
    "load_dataset", "TaskSampler", "Task", "FixedTasks", "SinusoidSampler",
    # the model
    "ModelConfig", "build_model",
    # modes and running statistics
    "train_mode", "eval_mode", "get_modes", "preserved_bn_stats", "snapshot_bn_stats", "restore_bn_stats",
    "bn_stats_untouched", "norm_report",
    # placements
    "PLACEMENTS", "TRAIN_PLACEMENTS",
    # the two loops
    "TrainConfig", "meta_train", "MetaTrained", "adapt_and_predict", "task_loss", "accuracy",
    # meta-test and its statistics
    "meta_test", "EvalResult", "confidence_interval", "t_interval", "paired_difference",
    # experiments
    "preset", "get_meta_trained", "run_normalisations",
    # checking your own code
    "check_maml", "MISTAKES", "MAMLMistakeError", "placement_report", "PlacementReport",
    # errors and output
    "ConfigError", "DataError", "Table",
]
