"""mamlkit.plumbing.machine: which machine computed a result, and whether two runs can agree bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mamlkit.plumbing.machine import FIELDS, KERNEL_SWITCHES, describe, differences, same_machine, signature

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from forced_kernels import forced_environment  # noqa: E402

SIGNATURE_JSON = "import json, mamlkit.plumbing.machine as m; print(json.dumps(m.signature()))"


def _signature_in_a_process(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_SWITCHES}
    out = subprocess.run([sys.executable, "-c", SIGNATURE_JSON], capture_output=True, text=True, check=True,
                         env={**clean, **env}, cwd=ROOT, timeout=300)
    return json.loads(out.stdout.splitlines()[-1])


def test_a_signature_names_what_decides_the_bits():
    sig = signature()
    assert set(FIELDS) <= set(sig) and "cpu" in sig
    assert sig == signature()                                     # the same in one process
    assert same_machine(sig, dict(sig)) and differences(sig, sig) == []
    assert str(sig["torch"]) in describe(sig) and str(sig["cpu_capability"]) in describe(sig)


def test_a_missing_or_different_signature_is_another_machine():
    sig = signature()
    assert not same_machine(None, sig) and differences(None, sig) == ["no machine recorded"]
    for field in FIELDS:
        other = {**sig, field: "something else"}
        assert not same_machine(other, sig)
        assert [d for d in differences(other, sig) if d.startswith(field + ":")]
    assert same_machine({**sig, "cpu": "another name", "note": "x"}, sig)     # a name alone is not compared


@pytest.mark.slow
def test_the_forced_kernels_compute_differently_and_say_so():
    """Another process here computes the same bits; with ``make test-kernels``' switches it does not (on the
    developers' machine each of those switches also changes a retrained lesson model)."""
    switches = forced_environment()
    ours = {k: os.environ[k] for k in KERNEL_SWITCHES if os.environ.get(k)}  # a user may have set one
    here = _signature_in_a_process(**ours)
    assert same_machine(here, signature())
    forced = _signature_in_a_process(**switches)
    assert forced["kernel_switches"] == switches
    assert forced["arithmetic"] != here["arithmetic"], "the forced kernels compute the same bits on this machine"
    assert not same_machine(forced, here)


def test_every_record_names_the_machine_that_made_it():
    records = sorted((ROOT / "data" / "records").glob("*.json"))
    assert records
    for path in records:
        machine = json.loads(path.read_text()).get("machine")
        assert isinstance(machine, dict) and set(FIELDS) <= set(machine), path.name
