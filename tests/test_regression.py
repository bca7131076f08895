"""The accuracy-regression gate: its arithmetic, its committed baselines, and real runs: it fails
every broken family and a gate that measured nothing, and passes the real families."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from fer_bench.config import compose_config
from fer_bench.models import family_names
from fer_bench.regression import budget, compare, main, tolerance
from tests.conftest import FER2013_ROOT, REPO

BASELINES = REPO / "experiments" / "baselines" / "regression.json"
COMMITTED = json.loads(BASELINES.read_text())
needs_fer2013 = pytest.mark.skipif(not FER2013_ROOT.is_dir(),
                                   reason=f"FER2013 is not at {FER2013_ROOT}")


def test_tolerance_combines_seed_spread_and_binomial_error():
    t = tolerance([40.0, 42.0, 44.0], 1000, z=2.0)
    se = 100 * math.sqrt(0.42 * 0.58 / 1000)
    assert t["std"] == 2.0 and t["binomial_se"] == pytest.approx(se, abs=0.005)
    assert t["tolerance"] == pytest.approx(2 * math.hypot(2.0, se), abs=0.005)
    assert tolerance([40.0], 1000)["std"] == 0.0  # one seed: the binomial error alone


def _base(threshold=37.0, budget_=None):
    return {"models": {"cnn": {"mean": 40.0, "std": 1.0, "tolerance": 3.0,
                               "threshold": threshold, "budget": budget_ or {"epochs": 2}}}}


def test_compare_flags_a_regression_a_missing_baseline_and_another_budget():
    row = {"acc": [37.5], "majority": 24.5, "budget": {"epochs": 2}}
    rows, ok = compare({"cnn": row}, _base())
    assert ok and rows[0]["status"] == "ok"
    rows, ok = compare({"cnn": row | {"acc": [36.9]}}, _base())
    assert not ok and rows[0]["status"] == "REGRESSION"
    rows, ok = compare({"lstm": row}, _base())
    assert not ok and rows[0]["status"] == "NO BASELINE"
    rows, ok = compare({"cnn": row | {"budget": {"epochs": 3}}}, _base())
    assert not ok and rows[0]["status"] == "BUDGET DIFFERS"
    rows, ok = compare({"cnn": {"acc": [], "error": "ValueError: boom", "budget": {}}}, _base())
    assert not ok and rows[0]["status"] == "ERROR"


def test_committed_baselines_say_how_they_were_measured():
    assert COMMITTED["command"].startswith("python -m fer_bench.regression update_baselines=true")
    assert len(COMMITTED["commit"]) == 40 and COMMITTED["dirty"] is False
    assert COMMITTED["machine"]["threads"] >= 1 and COMMITTED["machine"]["cpu"]
    # the four families are guarded; a baseline never names an unregistered family
    assert {"cnn", "gan", "lstm", "resnet"} <= set(COMMITTED["models"]) <= set(family_names())


@pytest.mark.parametrize("name", sorted(COMMITTED["models"]))
def test_committed_thresholds_come_from_the_measurements_and_clear_the_majority(name):
    m = COMMITTED["models"][name]
    assert len(m["acc"]) >= 3
    again = tolerance(m["acc"], m["n_test"], m["z"])
    assert again["mean"] == m["mean"] and again["tolerance"] == m["tolerance"]
    assert m["threshold"] == pytest.approx(m["mean"] - m["tolerance"], abs=0.011)
    assert m["threshold"] >= m["majority"] + 3.0  # a model that learned nothing fails


@pytest.mark.parametrize("name", sorted(COMMITTED["models"]))
def test_committed_budget_is_the_configured_one(name):
    cfg = compose_config("train", ["experiment=regression", f"+model={name}"])
    assert COMMITTED["models"][name]["budget"] == budget(cfg)


@pytest.mark.parametrize("args", [["models=[]"], ["seeds=[]"], ["models=[nosuchfamily]"]])
def test_the_gate_fails_when_it_would_measure_nothing_or_has_no_baseline(args, capsys):
    assert main([*args, f"baselines={BASELINES}"]) == 1  # before any training
    assert "FAILED" in capsys.readouterr().err


def gate(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "fer_bench.regression", f"paths.experiments_dir={tmp_path}",
         f"paths.cache_dir={REPO / '.cache/fer_bench'}", f"baselines={BASELINES}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=1800, env={**os.environ})


@pytest.mark.slow
@needs_fer2013
def test_gate_fails_every_broken_family(tmp_path):
    """Real FER2013, the committed baselines, the gate's budget; a learning rate of 0 breaks each
    family (the GAN's classifier is its discriminator, whose rate this is)."""
    res = gate(tmp_path, "model.optimizer.lr=0.0")
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads(next(tmp_path.rglob("gate.json")).read_text())
            ["rows"]}
    assert set(rows) == set(COMMITTED["models"])
    assert all(r["status"] == "REGRESSION" for r in rows.values()), rows


@pytest.mark.slow
@needs_fer2013
def test_gate_passes_the_real_families(tmp_path):
    res = gate(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "regression gate: passed" in res.stdout
    print(res.stdout)  # the table, in CI's log (-rA / -s)


def test_update_keeps_what_was_measured_well_and_refuses_a_useless_threshold():
    from omegaconf import OmegaConf

    from fer_bench.regression import GATE, baselines_from, merge

    gate = OmegaConf.create(GATE)
    good = {"acc": [38.0, 39.0, 40.0], "seeds": [0, 1, 2], "n_test": 2000, "majority": 24.5,
            "budget": {"epochs": 2}, "seconds": 300}
    shaky = good | {"acc": [33.1, 19.0, 28.6]}
    new, refused = baselines_from({"cnn": good, "resnet": shaky}, gate, "cmd", 600.0)
    assert list(new["models"]) == ["cnn"] and new["models"]["cnn"]["threshold"] >= 27.5
    assert len(refused) == 1 and refused[0].startswith("resnet: threshold")
    old = {"command": "old cmd", "commit": "abc", "models": {"lstm": {"mean": 35.0}}}
    merged = merge(old, new)
    assert set(merged["models"]) == {"cnn", "lstm"} and merged["command"] == "cmd"
    assert merged["models"]["lstm"]["measured_by"]["command"] == "old cmd"
