"""The accuracy-regression gate: its arithmetic, and a real broken model that it catches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_bench.regression import compare, tolerance
from tests.conftest import FER2013_ROOT

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "experiments" / "baselines" / "regression.json"


def test_tolerance_comes_from_the_spread_over_seeds():
    assert tolerance([40.0, 42.0, 44.0], 2.0) == pytest.approx(6.0)  # 3 x std (2.0)
    assert tolerance([40.0, 40.1], 2.0) == 2.0  # never below the floor


def test_compare_flags_a_regression_and_a_missing_baseline():
    base = {"models": {"cnn": {"mean": 40.0, "std": 1.0, "tolerance": 3.0}}}
    rows, ok = compare({"cnn": [37.5]}, base)
    assert ok and rows[0]["status"] == "ok"
    rows, ok = compare({"cnn": [36.9]}, base)
    assert not ok and rows[0]["status"] == "REGRESSION"
    _, ok = compare({"lstm": [50.0]}, base)
    assert not ok


def test_a_model_at_the_majority_share_fails_even_inside_the_tolerance():
    base = {"models": {"lstm": {"mean": 30.0, "std": 2.0, "tolerance": 6.0}}}
    rows, ok = compare({"lstm": [25.0]}, base, {"lstm": 25.0})
    assert not ok and rows[0]["status"] == "REGRESSION"
    _, ok = compare({"lstm": [25.5]}, base, {"lstm": 25.0})
    assert ok


def test_committed_baselines_are_well_formed():
    b = json.loads(BASELINES.read_text())
    assert b["command"].startswith("python -m fer_bench.regression update_baselines=true")
    assert set(b["models"]) == {"cnn", "gan", "lstm"}
    for m in b["models"].values():
        assert len(m["acc"]) >= 3
        # both are rounded to 2 decimals: 3 x std may exceed the tolerance by up to 0.015
        assert m["tolerance"] >= 3 * m["std"] - 0.02


@pytest.mark.slow
@pytest.mark.skipif(not FER2013_ROOT.is_dir(), reason=f"FER2013 is not at {FER2013_ROOT}")
@pytest.mark.parametrize("broken, expect", [(False, 0), (True, 1)])
def test_gate_passes_the_real_cnn_and_fails_a_broken_one(tmp_path, broken, expect):
    """Real FER2013, the committed baseline; a learning rate of 0 must fail the gate.

    A model that learns nothing scores at most the majority-class share (about 25% here),
    below every model's threshold (the LSTM trains 30 epochs to clear that share).
    """
    args = [sys.executable, "-m", "fer_bench.regression", "models=[cnn]",
            f"paths.experiments_dir={tmp_path}", f"paths.cache_dir={REPO / '.cache/fer_bench'}",
            f"baselines={BASELINES}"]
    if broken:
        args.append("+model_overrides.all.lr=0.0")
    res = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900,
                         env={**os.environ})
    assert res.returncode == expect, res.stdout[-2000:] + res.stderr[-2000:]
    assert ("REGRESSION" in res.stdout) == broken
