"""Which machine computed a result: what decides whether another run can match it bit for bit.

Floating-point results are reproducible bit for bit only where the same kernels run: the same CPU
features, the same torch build (its oneDNN, which runs mamlkit's convolutions, and its BLAS), the same
thread layout, and no switch that makes a library pick other kernels. On another machine a long
second-order optimisation drifts by rounding at first and then by chaos (Adam turns rounding noise in a
gradient that should be 0 into a full step of either sign), so its results agree only within margins.

``signature()`` describes this machine: the CPU's name, torch's version, build, CPU capability, BLAS
and oneDNN, the environment switches that change kernels, and ``arithmetic``: a hash of a fixed small
computation made of the operations meta-training uses (convolution, BatchNorm, pooling, a linear layer,
cross-entropy, their gradients, one Adam step) at one thread. Two signatures that are equal describe
machines that compute mamlkit's training the same way; ``same_machine`` compares them. Every meta-trained
model that ``mamlkit.experiments.cache`` saves, and every record under ``data/records``, carries the signature of
the machine that made it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from functools import lru_cache

import torch

from mamlkit.plumbing import checks

#: Environment variables that make torch, oneDNN, MKL, OpenBLAS or numpy choose other kernels. Set on a
#: machine, they make it compute like another one (``make test`` runs the artefact tests under some of them).
KERNEL_SWITCHES = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
)

#: The fields of a signature that must agree for two runs to be compared bit for bit. The CPU's name is
#: recorded for people but not compared: one kind of cloud machine reports its CPU under more than one name,
#: and machines whose builds, switches and arithmetic agree compute mamlkit's training alike.
FIELDS = ("torch", "torch_commit", "cpu_capability", "blas", "onednn", "kernel_switches", "arithmetic")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _build_line(pattern: str) -> str:
    """The first line of torch's build description that matches ``pattern``, stripped ("" if none)."""
    for line in torch.__config__.show().splitlines():
        if re.search(pattern, line):
            return line.strip(" -")
    return ""


def arithmetic_fingerprint() -> str:
    """A hash of the bits of a fixed computation made of meta-training's operations, at one torch thread.

    The computation is a Conv4-shaped network (four blocks of a 3x3 convolution, BatchNorm in train mode,
    ReLU and 2x2 max-pooling on five 28x28 images, then a linear head), its cross-entropy, first- and
    second-order gradients, and one Adam step: the shapes and operations of the lesson models' training.
    Kernels chosen for another CPU, another build or under a kernel switch round differently, and the hash
    changes (``tests/test_machine.py`` checks that it does under each switch ``make test`` forces).
    """
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(1234)

        def random(*shape: int) -> torch.Tensor:
            return (torch.randn(*shape, generator=generator) * 0.1).requires_grad_(True)

        convs = [(random(32, c, 3, 3), random(32)) for c in (1, 32, 32, 32)]
        norms = [(1 + random(32).detach()).requires_grad_(True) for _ in convs]
        head = (random(5, 32), random(5))
        params = [t for pair in convs for t in pair] + norms + list(head)
        hidden = torch.randn(5, 1, 28, 28, generator=generator)
        for (weight, bias), scale in zip(convs, norms):
            hidden = torch.nn.functional.conv2d(hidden, weight, bias, padding=1)
            hidden = torch.nn.functional.batch_norm(hidden, None, None, scale, None, training=True)
            hidden = torch.nn.functional.max_pool2d(torch.relu(hidden), 2)
        loss = torch.nn.functional.cross_entropy(hidden.flatten(1) @ head[0].T + head[1], torch.arange(5))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        second = torch.autograd.grad(sum(g.square().sum() for g in grads), params)       # MAML's second order
        optimiser = torch.optim.Adam(params, lr=1e-3)
        for p, g in zip(params, second):
            p.grad = g.detach().clone()
        optimiser.step()
        digest = hashlib.sha256()
        for t in (hidden, loss, *grads, *second, *params):
            digest.update(t.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
    finally:
        torch.set_num_threads(threads)
        torch.random.set_rng_state(state)


@lru_cache(maxsize=1)
def _signature(switches: tuple[tuple[str, str], ...]) -> tuple[tuple[str, object], ...]:
    fields: dict[str, object] = {
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "torch_commit": getattr(torch.version, "git_version", "") or "",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": _build_line(r"Math Kernel Library|OpenBLAS|BLAS_INFO"),
        "onednn": _build_line(r"MKL-DNN|oneDNN"),
        "kernel_switches": dict(switches),
        "arithmetic": arithmetic_fingerprint(),
    }
    return tuple(fields.items())


def signature() -> dict[str, object]:
    """This machine, as far as it decides the bits of mamlkit's results (see the module's docstring)."""
    switches = tuple((k, os.environ[k]) for k in KERNEL_SWITCHES if os.environ.get(k))
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in _signature(switches)}


def same_machine(a: dict | None, b: dict | None) -> bool:
    """Whether two signatures describe machines whose results can be compared bit for bit.

    A missing signature (``None``, a file made before signatures were recorded) is never the same machine.
    """
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return all(k in a and k in b and a[k] == b[k] for k in FIELDS)


def differences(recorded: dict | None, here: dict) -> list[str]:
    """The fields in which ``here`` differs from ``recorded``, for a message (all of them if none was recorded)."""
    if not isinstance(recorded, dict):
        return ["no machine recorded"]
    return [f"{k}: {recorded.get(k)!r} there, {here.get(k)!r} here" for k in FIELDS if recorded.get(k) != here.get(k)]


def describe(sig: dict | None = None) -> str:
    """One line for a record or a benchmark: CPU, torch and its CPU capability, BLAS, oneDNN, switches."""
    sig = signature() if sig is None else sig
    switches = sig.get("kernel_switches") or {}
    forced = f"; forced: {', '.join(f'{k}={v}' for k, v in switches.items())}" if switches else ""
    return (f"{sig.get('cpu')}; torch {sig.get('torch')} (CPU capability {sig.get('cpu_capability')}); "
            f"{sig.get('blas')}; {sig.get('onednn')}{forced}")


def default_device() -> torch.device:
    """CUDA when available, else CPU; the ``MAMLKIT_DEVICE`` environment variable overrides."""
    wanted = checks.env_device("MAMLKIT_DEVICE")  # refused in one line where it names no device of this machine
    if wanted is not None:
        return wanted
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
