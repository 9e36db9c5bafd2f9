"""mamlkit: where ``.train()`` and ``.eval()`` belong in MAML, shown by experiment.

``import mamlkit as mk`` gives the public API used by the notebooks::

    data = mk.load_dataset("glyphs")
    sampler = mk.TaskSampler(data["train"], n_way=5, k_shot=1, n_query=5, seed=0)
    model = mk.build_model(mk.ModelConfig(norm="bn"))
    trained = mk.meta_train(model, sampler, mk.TrainConfig(iterations=100))
    result = mk.meta_test(trained.model, mk.TaskSampler(data["test"], seed=1), "transductive", n_tasks=100)

Plots and widgets are modules of their own (``mamlkit.plots``, ``mamlkit.widgets``).
"""

from mamlkit import lab  # the classroom lab's check functions: mk.lab.check_exercise_1(...)
from mamlkit.adapt import (
    History,
    MetaTrained,
    TrainConfig,
    accuracy,
    adapt_and_predict,
    adapt_and_predict_many,
    meta_train,
    task_loss,
)
from mamlkit.backends import BACKENDS
from mamlkit.cache import default_cache_dir
from mamlkit.checker import MISTAKES, MAMLMistakeError, Report, check_maml
from mamlkit.data import DATASETS, ClassSplit, FewShotDataset, load_dataset
from mamlkit.data.omniglot import OneShotRun, load_one_shot_runs, locate_omniglot
from mamlkit.data.sinusoid import SinusoidSampler
from mamlkit.errors import ConfigError, DataError
from mamlkit.evaluate import (
    EvalResult,
    PairedDifference,
    confidence_interval,
    meta_test,
    paired_difference,
    placement_table,
    t_interval,
    tasks_needed,
)
from mamlkit.experiments import (
    NORM_METHODS,
    PRESETS,
    PROTOCOLS,
    Experiment,
    NormMethod,
    NormResults,
    PlacementResults,
    get_meta_trained,
    preset,
    run_normalisations,
    run_placements,
)
from mamlkit.models import MLP, Conv4, ModelConfig, build_model, default_device
from mamlkit.modes import (
    batch_statistics,
    bn_stats_untouched,
    eval_mode,
    get_modes,
    mode,
    norm_report,
    preserved_bn_stats,
    reset_bn_stats,
    restore_bn_stats,
    restore_modes,
    snapshot_bn_stats,
    train_mode,
)
from mamlkit.norms import CONTEXT_NORMS, NORMS, make_norm, uses_context
from mamlkit.placements import (
    PLACEMENTS,
    TRAIN_PLACEMENTS,
    Placement,
    TrainPlacement,
    custom_placement,
    describe_placements,
    get_placement,
    get_train_placement,
    predict_query,
)
from mamlkit.table import Table
from mamlkit.tasks import FixedTasks, Task, TaskSampler

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
