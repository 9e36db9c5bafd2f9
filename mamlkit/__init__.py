"""mamlkit: where ``.train()`` and ``.eval()`` belong in MAML, shown by experiment.

``import mamlkit as mk`` gives the public API the notebooks use (``mk.__all__``, 39 names)::

    data = mk.load_dataset("glyphs")
    sampler = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    model = mk.build_model(mk.ModelConfig(norm="bn"))
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=100))
    result = mk.meta_test(trained, mk.TaskSampler(data["test"], seed=1), "transductive", n_tasks=100)

Everything else is reached through its module, in the order the data flows: ``mk.data`` (datasets),
``mk.tasks``, ``mk.norms`` and ``mk.models``, ``mk.modes``, ``mk.placements`` (what a placement means),
``mk.rates`` (inner learning rates other than one number), ``mk.backends`` (higher or torch.func),
``mk.adapt`` (the two loops), ``mk.evaluate``, ``mk.cache`` and
``mk.experiments``; then ``mk.checker`` and ``mk.diagnosis`` (your own model's placements). Plots, widgets and
the classroom lab are imported on their own (``from mamlkit import plots, widgets, lab``): they need
matplotlib and ipywidgets.
"""

from mamlkit import startup as _startup  # noqa: I001  (first: a Ctrl-C while starting says one line)
from mamlkit import (  # noqa: F401  (the modules, so that mk.<module>.<name> always works)
    adapt,
    backends,
    cache,
    checker,
    data,
    diagnosis,
    errors,
    evaluate,
    experiments,
    models,
    modes,
    norms,
    placements,
    predictions,
    rates,
    table,
    tasks,
)
from mamlkit.adapt import MetaTrained, TrainConfig, accuracy, adapt_and_predict, meta_train, task_loss
from mamlkit.checker import MISTAKES, MAMLMistakeError, check_maml
from mamlkit.data import load_dataset
from mamlkit.data import omniglot as _omniglot  # noqa: F401  (mk.data.omniglot)
from mamlkit.data.sinusoid import SinusoidSampler
from mamlkit.diagnosis import PlacementReport, placement_report
from mamlkit.errors import ConfigError, DataError
from mamlkit.evaluate import EvalResult, confidence_interval, meta_test, paired_difference, t_interval
from mamlkit.experiments import get_meta_trained, preset, run_normalisations
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
