"""Run a command with the math libraries forced onto other kernels than this machine would choose.

    python tools/forced_kernels.py [--print] [--] COMMAND [ARGS...]

A user on another CPU computes with other kernels: their results agree with the collection's within
margins, never bit for bit. These switches make this machine compute like another one, so that the tests
which compare with shipped or recorded files (``make test-kernels``) take the path a user's machine takes:

- ``ATEN_CPU_CAPABILITY=default``: torch's own vectorised kernels (BatchNorm, pooling, elementwise) without
  AVX2/AVX-512;
- ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN, which runs the convolutions, limited to SSE4.1;
- ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``: MKL's matrix products limited to SSE4.2;
- ``NPY_DISABLE_CPU_FEATURES``: numpy's dispatched kernels above its baseline, those this machine has.

On the developers' machine (Intel Xeon, AVX-512) each of the first three changes the bits of a retrained
lesson model (measured; ``tests/test_machine.py`` checks that they change ``mamlkit.plumbing.machine``'s arithmetic
fingerprint). On a machine that is not x86-64 only the switches that apply there are set.
"""

from __future__ import annotations

import os
import platform
import sys


def numpy_switch() -> str:
    """numpy's dispatched CPU features that this machine has (disabling one it lacks is an error)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # an older numpy
        return ""
    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


def forced_environment() -> dict[str, str]:
    """The switches that apply on this machine."""
    switches = {"ATEN_CPU_CAPABILITY": "default"}
    if platform.machine().lower() in ("x86_64", "amd64"):
        switches |= {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
    disabled = numpy_switch()
    if disabled:
        switches["NPY_DISABLE_CPU_FEATURES"] = disabled
    return switches


def main(argv: list[str]) -> int:
    if argv[:1] == ["--print"]:
        for key, value in forced_environment().items():
            print(f"{key}={value}")
        return 0
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    switches = forced_environment()
    print("forced kernels:", " ".join(f"{k}={v!r}" for k, v in switches.items()), flush=True)
    os.execvpe(argv[0], argv, {**os.environ, **switches})
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
