"""The paired report: two folders' runs matched by family, labelled fraction and seed, compared on
the same test faces; the bf16_check experiment's end-of-sweep report is one."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from fer_bench.report.paired import pairs
from tests.conftest import REPO, regenerate_committed


def _sweep(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, "-m", "fer_bench", "data=synthetic", "debug=fast", "+model=lstm",
         "seed=0,1", f"paths.root_dir={tmp_path}", *overrides, "-m"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "on_multirun_end raised" not in res.stderr, res.stderr[-2000:]
    return res


def test_the_bf16_check_pairs_each_run_with_its_float32_twin(tmp_path):
    _sweep(tmp_path, "experiment=label_efficiency", "data.labeled_fraction=0.1")
    _sweep(tmp_path, "experiment=bf16_check")
    report = tmp_path / "reports" / "bf16_check"
    table = pd.read_csv(report / "paired.csv")
    assert list(zip(table.family, table.labeled_fraction, table.seed)) == [
        ("lstm", 0.1, 0), ("lstm", 0.1, 1)]
    # what the pairs differ in is the precision alone (reports and bookkeeping aside)
    assert set(table.differs) == {"trainer.precision: '32-true' -> 'bf16-mixed'"}
    assert ((table.acc_b - table.acc_a - table.b_minus_a).abs() < 1e-9).all()
    assert (table.p_value > 0).all() and (table.p_value <= 1).all()
    md = (report / "paired.md").read_text()
    assert "python -m fer_bench.report.paired" in md and "| lstm" in md


def test_a_paired_sweep_without_one_baseline_stops_before_training(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "fer_bench", "experiment=bf16_check", "data=synthetic",
         "debug=fast", "+model=lstm", "seed=0", "report.baseline=[]",
         f"paths.root_dir={tmp_path}", "-m"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "set report.baseline=[<folder>]" in res.stderr, res.stderr[-2000:]
    assert not list(tmp_path.rglob("results.json"))  # nothing trained


def _run(seed: int, target: list[int], pred: list[int]) -> dict:
    return {"model": "cnn", "seed": seed, "run_dir": f"run{seed}", "config": {"data": {}},
            "predictions": {"target": target, "pred": pred}}


def test_pairs_count_the_faces_only_one_got_right_and_refuse_other_test_faces():
    a = _run(0, [0, 1, 2, 0], [0, 1, 0, 1])  # right on faces 0, 1
    b = _run(0, [0, 1, 2, 0], [0, 2, 2, 0])  # right on faces 0, 2, 3
    row = pairs([a], [b]).iloc[0]
    assert (row.only_a_right, row.only_b_right) == (1, 2)
    assert (row.acc_a, row.acc_b, row.b_minus_a) == (50.0, 75.0, 25.0)
    assert pairs([a], [_run(1, [0, 1, 2, 0], [0, 1, 2, 0])]).empty  # no twin: no pair
    with pytest.raises(ValueError, match="different faces"):
        pairs([a], [_run(0, [1, 1, 2, 0], [0, 1, 2, 0])])


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (REPO / "reports")
                                        .glob("*/paired.md")))
def test_committed_paired_reports_regenerate_byte_for_byte(name, tmp_path, monkeypatch):
    same = regenerate_committed(REPO / "reports" / name, "paired.md", "fer_bench.report.paired",
                                tmp_path, monkeypatch, files=("paired.csv", "paired.md"))
    assert all(same.values()), same
