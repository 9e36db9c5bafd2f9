"""Predict, then measure: committing guesses and comparing them with measurements."""

import numpy as np
import pytest

import mamlkit as mk
from mamlkit.lessons import predictions


def result(name, values):
    return mk.EvalResult(name, np.asarray(values, dtype=float))


def test_an_unwritten_guess_stops_the_notebook_with_what_to_do():
    with pytest.raises(predictions.GuessMissing, match=r"replace the \.\.\. for eval_collected"):
        predictions.commit({"transductive": 70, "eval_collected": ...})
    with pytest.raises(mk.ConfigError, match="between 0 and 100"):
        predictions.commit({"transductive": 170})
    with pytest.raises(mk.ConfigError, match="write a number"):
        predictions.commit({"transductive": "high"})


def test_committed_guesses_are_numbers():
    assert predictions.commit({"a": 70, "b": 20.5}) == {"a": 70.0, "b": 20.5}


def test_compare_puts_each_guess_beside_its_measurement():
    measured = {"transductive": result("transductive", [0.7, 0.8] * 50), "eval": result("eval", [0.2] * 100)}
    report = predictions.compare({"transductive": 75, "eval": 70}, measured)
    by_name = {r.name: r for r in report.rows}
    assert by_name["transductive"].measured == pytest.approx(75.0)
    assert by_name["transductive"].inside
    assert by_name["eval"].off_by == pytest.approx(-50.0)
    assert not by_name["eval"].inside
    assert report.furthest.name == "eval"
    assert "1 of 2 guesses inside" in report.summary()
    assert "eval" in repr(report) and "<table>" in report._repr_html_()


def test_compare_names_an_unknown_placement():
    with pytest.raises(mk.ConfigError, match="no measurement named nope"):
        predictions.compare({"nope": 50}, {"transductive": result("transductive", [0.5])})


def test_compare_takes_plain_numbers_too():
    report = predictions.compare({"half-width at 25 tasks": 5, "at 300": 2},
                                 {"half-width at 25 tasks": 7.5, "at 300": 2.1})
    assert report.furthest.name == "half-width at 25 tasks" and report.furthest.off_by == pytest.approx(2.5)
    assert "inside" not in report.summary() and "7.5" in repr(report)


def test_numpy_numbers_are_guesses_too():
    assert predictions.commit({"a": np.int64(70), "b": np.float32(20.5)}) == {"a": 70.0, "b": 20.5}
    with pytest.raises(mk.ConfigError, match="between 0 and 100"):
        predictions.commit({"a": np.int64(170)})


def test_a_mixed_report_counts_only_the_guesses_with_an_interval():
    measured = {"transductive": result("transductive", [0.7, 0.8] * 50), "ratio": 2.0}
    report = predictions.compare({"transductive": 75, "ratio": 2.0}, measured)
    assert "1 of 1 guesses of a measurement with an interval inside" in report.summary()
    assert not {r.name: r for r in report.rows}["ratio"].inside      # a plain number has no interval to be inside
    constant = predictions.compare({"eval": 20}, {"eval": result("eval", [0.2] * 10)})
    assert "1 of 1 guesses inside" in constant.summary()              # an interval of width 0 is still an interval
