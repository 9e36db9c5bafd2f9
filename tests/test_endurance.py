"""Endurance in small: memory stays flat over many meta-iterations; no file handles or threads leak.

The long measurement (2,000 meta-iterations of the quick configuration) is
``benchmarks/endurance.py``; these tests check the same properties on a tiny model in seconds.
"""

import threading

import psutil
import torch
from conftest import make_split

import mamlkit as mk
from mamlkit.experiments.cache import cached_path


class RecordingSampler:
    def __init__(self, sampler):
        self.sampler, self.rss = sampler, []
        self.process = psutil.Process()

    def batch(self, start, size):
        self.rss.append(self.process.memory_info().rss)
        return self.sampler.batch(start, size)


def test_memory_is_flat_over_many_meta_iterations():
    sampler = RecordingSampler(mk.TaskSampler(make_split(), 5, 1, 3, seed=0))
    model = mk.build_model(mk.ModelConfig(hidden=8), device="cpu")
    mk.meta_train(model, sampler, mk.TrainConfig(iterations=150, meta_batch=2, inner_steps=2), progress=False)
    warm, end = max(sampler.rss[:30]), max(sampler.rss)
    assert end - warm < 30 * 2**20, f"RSS grew by {(end - warm) / 2**20:.1f} MB after the first 30 iterations"


def one_cycle(tmp_path, root):
    """Everything a lesson does once: load data (from a zip), train, cache, reload, meta-test."""
    data = mk.load_dataset("omniglot", root, split={"train": ["Alpha"], "test": ["Beta"]})
    exp = mk.preset("quick", dataset="omniglot", data_dir=str(root),
                    train={"iterations": 2, "meta_batch": 1, "inner_steps": 1}, test_tasks=2, n_query=2)
    trained = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path / "cache")
    again = mk.get_meta_trained(exp, "standard", data, progress=False, cache_dir=tmp_path / "cache")
    assert cached_path(exp.training_config(data, "standard"), tmp_path / "cache").exists()
    assert all(torch.equal(p, q) for p, q in zip(trained.model.parameters(), again.model.parameters()))
    mk.meta_test(again, exp.test_sampler(data), ["transductive", "eval_collected"], n_tasks=2,
                        inner_steps=1, progress=False)


def test_no_file_handles_or_threads_leak(tmp_path, fake_omniglot):
    process = psutil.Process()
    root = fake_omniglot("images_background", {"Alpha": 6, "Beta": 6}, zipped=True).parent
    one_cycle(tmp_path, root)  # warm-up: imports, torch's thread pool, the first cache file
    fds, threads, py_threads = process.num_fds(), process.num_threads(), threading.active_count()
    for _ in range(3):
        one_cycle(tmp_path, root)
    assert process.num_fds() == fds, [f.path for f in process.open_files()]
    assert process.num_threads() <= threads
    assert threading.active_count() == py_threads
