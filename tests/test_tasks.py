"""Task sampling: shapes, labels, reproducibility by (seed, index), and clear errors."""

import pytest
import torch
from conftest import make_split
from hypothesis import given, settings
from hypothesis import strategies as st

from mamlkit import DataError, TaskSampler


def test_task_shapes_and_labels(tiny_split):
    task = TaskSampler(tiny_split, n_way=5, k_shot=2, n_query=3, seed=0).task(0)
    assert task.support_x.shape == (10, 1, 28, 28)
    assert task.query_x.shape == (15, 1, 28, 28)
    assert task.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert task.query_y.tolist() == [c for c in range(5) for _ in range(3)]
    assert len(set(task.classes)) == 5
    assert task.n_way == 5


def test_same_seed_and_index_give_the_same_task_whatever_came_before(tiny_split):
    a = TaskSampler(tiny_split, n_query=3, seed=3)
    b = TaskSampler(tiny_split, n_query=3, seed=3)
    _ = [b.task(i) for i in range(10)]  # drawing other tasks first must not matter
    ta, tb = a.task(7), b.task(7)
    assert torch.equal(ta.support_x, tb.support_x) and torch.equal(ta.query_x, tb.query_x)
    assert ta.classes == tb.classes


def test_different_seeds_or_indices_differ(tiny_split):
    s = TaskSampler(tiny_split, n_query=3, seed=0)
    assert not torch.equal(s.task(0).query_x, s.task(1).query_x)
    assert not torch.equal(s.task(0).query_x, TaskSampler(tiny_split, n_query=3, seed=1).task(0).query_x)


def test_rotations_make_new_classes(tiny_split):
    s = TaskSampler(tiny_split, n_way=20, k_shot=1, n_query=1, seed=0, rotations=True)
    task = s.task(0)
    assert len(set(zip(task.classes, task.rotations))) == 20  # 20 > 12 classes: needs rotations
    k = task.rotations[0]
    original = tiny_split.images[task.classes[0]]
    assert any(torch.equal(torch.rot90(original[i], k, dims=(-2, -1)), task.support_x[0]) for i in range(8))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n_way": 13}, ["n_way=13", "12 classes", "rotations=True"]),
        ({"k_shot": 5, "n_query": 4}, ["9 examples per class", "only 8", "n_query to at most 3"]),
        ({"n_way": 1}, ["at least 2"]),
        ({"k_shot": 0}, ["k_shot must be a positive"]),
    ],
)
def test_bad_settings_say_what_to_do(tiny_split, kwargs, words):
    with pytest.raises(DataError) as info:
        TaskSampler(tiny_split, **kwargs)
    for w in words:
        assert w in str(info.value)


@settings(max_examples=40, deadline=None)
@given(
    n_classes=st.integers(2, 10),
    n_examples=st.integers(2, 9),
    data=st.data(),
)
def test_sampler_properties(n_classes, n_examples, data):
    split = make_split(n_classes=n_classes, n_examples=n_examples, size=8)
    rotations = data.draw(st.booleans())
    n_way = data.draw(st.integers(2, n_classes * (4 if rotations else 1)))
    k_shot = data.draw(st.integers(1, n_examples - 1))
    n_query = data.draw(st.integers(1, n_examples - k_shot))
    seed, index = data.draw(st.integers(0, 2**31)), data.draw(st.integers(0, 10**6))
    task = TaskSampler(split, n_way, k_shot, n_query, seed, rotations).task(index)
    assert task.support_x.shape == (n_way * k_shot, 1, 8, 8)
    assert task.query_x.shape == (n_way * n_query, 1, 8, 8)
    assert sorted(set(task.support_y.tolist())) == list(range(n_way))
    assert sorted(set(task.query_y.tolist())) == list(range(n_way))
    assert len(set(zip(task.classes, task.rotations))) == n_way  # distinct classes
    # support and query never share an example: every image of a class is distinct here
    for label in range(n_way):
        s = task.support_x[task.support_y == label].flatten(1)
        q = task.query_x[task.query_y == label].flatten(1)
        assert torch.cdist(s, q).min() > 0
