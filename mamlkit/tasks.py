"""Few-shot tasks and the seeded N-way K-shot sampler.

A *task* is a small classification problem: N classes, K labelled support examples of each (what
the learner adapts on) and Q query examples of each (what it is judged on). Labels are 0..N-1 in the
order the classes were drawn. The sampler knows nothing of models.

Reproducibility: task ``i`` of a sampler with seed ``s`` is always the same task, whatever tasks
were drawn before it, because each task has its own random generator seeded by ``(s, i)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mamlkit.data.base import ClassSplit
from mamlkit.errors import DataError
from mamlkit.plumbing import checks


@dataclass
class Task:
    """One N-way K-shot task.

    Attributes:
        support_x: ``[n_way * k_shot, C, H, W]`` (or ``[n, features]``), grouped by class.
        support_y: ``[n_way * k_shot]`` labels in ``0..n_way-1``.
        query_x: ``[n_way * n_query, ...]``, grouped by class.
        query_y: ``[n_way * n_query]`` labels.
        classes: for each label, the index of the class in the split it was drawn from.
        rotations: for each label, the number of quarter turns applied (0 without augmentation).
        index: the task's index in its sampler (``-1`` when built by hand).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: tuple[int, ...] = ()
    rotations: tuple[int, ...] = ()
    index: int = -1

    @property
    def n_way(self) -> int:
        return int(self.support_y.max().item()) + 1

    def to(self, device: torch.device | str) -> Task:
        """The same task with its tensors on ``device``."""
        return Task(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.classes,
            self.rotations,
            self.index,
        )

class TaskSampler:
    """Draws N-way K-shot tasks from one split of a few-shot dataset, reproducibly.

    Args:
        split: the classes to draw from (e.g. ``dataset["test"]``).
        n_way: classes per task.
        k_shot: support examples per class.
        n_query: query examples per class.
        seed: task ``i`` depends only on ``(seed, i)``.
        rotations: if True, each class may be rotated by 0/90/180/270 degrees, and a rotated
            character counts as a new class (the usual Omniglot augmentation: 4x the classes).

    Raises:
        DataError: when the split cannot supply such tasks (too few classes or examples).
    """

    def __init__(
        self,
        split: ClassSplit,
        n_way: int = 5,
        k_shot: int = 1,
        n_query: int = 15,
        seed: int = 0,
        rotations: bool = False,
    ) -> None:
        if not isinstance(split, ClassSplit):
            hint = (" (a whole dataset: pick one of its splits, e.g. data['train'])"
                    if isinstance(split, Mapping) or hasattr(split, "splits") else "")
            raise DataError(f"split must be one split of a dataset, such as data['train'], got "
                            f"{type(split).__name__}{hint}")
        checks.task_sizes(split.name, split.n_classes, split.n_examples, n_way, k_shot, n_query, seed, rotations)
        self.split = split
        self.n_way = int(n_way)
        self.k_shot = int(k_shot)
        self.n_query = int(n_query)
        self.seed = int(seed)
        self.rotations = bool(rotations)

    def __repr__(self) -> str:
        return (
            f"TaskSampler({self.split.name!r}, {self.n_way}-way {self.k_shot}-shot, "
            f"{self.n_query} query/class, seed={self.seed}, rotations={self.rotations})"
        )

    def task(self, index: int) -> Task:
        """Task number ``index`` (always the same task for the same seed and index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        n_classes = self.split.n_classes
        if self.rotations:
            picks = rng.choice(4 * n_classes, size=self.n_way, replace=False)
            classes = [int(p % n_classes) for p in picks]
            turns = [int(p // n_classes) for p in picks]
        else:
            classes = [int(c) for c in rng.choice(n_classes, size=self.n_way, replace=False)]
            turns = [0] * self.n_way
        per_class = self.k_shot + self.n_query
        support, query = [], []
        for cls, k in zip(classes, turns):
            chosen = rng.choice(self.split.n_examples, size=per_class, replace=False)
            images = self.split.images[cls, torch.as_tensor(chosen)]
            if k:
                images = torch.rot90(images, k, dims=(-2, -1))
            support.append(images[: self.k_shot])
            query.append(images[self.k_shot :])
        labels = torch.arange(self.n_way)
        return Task(
            support_x=torch.cat(support).contiguous(),
            support_y=labels.repeat_interleave(self.k_shot),
            query_x=torch.cat(query).contiguous(),
            query_y=labels.repeat_interleave(self.n_query),
            classes=tuple(classes),
            rotations=tuple(turns),
            index=int(index),
        )

    def tasks(self, count: int, start: int = 0) -> Iterator[Task]:
        """Tasks ``start .. start + count - 1``, in order."""
        for i in range(start, start + count):
            yield self.task(i)

    def batch(self, start: int, size: int) -> list[Task]:
        """A meta-batch: tasks ``start .. start + size - 1``."""
        return list(self.tasks(size, start))


class FixedTasks:
    """A fixed list of tasks behind the sampler interface (``task(i)``), for ``meta_test``.

    Use it for tasks that are given rather than sampled, such as the 20 official Omniglot one-shot
    runs: ``mk.meta_test(model, FixedTasks([run.as_task() for run in runs]), n_tasks=len(runs))``.
    """

    regression = False

    def __init__(self, tasks: list[Task], name: str = "fixed tasks") -> None:
        if not tasks:
            raise DataError(f"{name}: no tasks given")
        self.tasks_list = list(tasks)
        self.name = name

    def __len__(self) -> int:
        return len(self.tasks_list)

    def __repr__(self) -> str:
        return f"FixedTasks({self.name!r}, {len(self)} tasks)"

    def task(self, index: int) -> Task:
        """Task number ``index`` of the list."""
        if not 0 <= index < len(self.tasks_list):
            raise DataError(f"{self.name}: there are {len(self)} tasks, so index {index} does not exist")
        return self.tasks_list[index]
