"""One real (tiny) run in-process, its results file and checkpoint, and the report built from it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fer_bench.report import collect, write_report
from fer_bench.report.stats import mcnemar, wilson
from fer_bench.report.tables import recognition_rates
from fer_bench.train import run


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two models trained for two batches on synthetic faces; their run folders."""
    from hydra import compose, initialize_config_dir

    from fer_bench.__main__ import CONF_DIR

    root = tmp_path_factory.mktemp("runs")
    outs = []
    for model in ("cnn", "lstm"):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"+model={model}", "debug=fast",
                                              f"paths.root_dir={root}"])
        outs.append(root / "sweep" / model)
        run(cfg, outs[-1])
    return root / "sweep", outs


def test_results_file_has_what_the_report_needs(tiny_runs):
    _, outs = tiny_runs
    res = json.loads((outs[0] / "results.json").read_text())
    assert res["status"] == "ok" and res["model"] == "cnn" and res["seed"] == 0
    assert set(res["per_class_recall"]) == {"angry", "sad", "happy", "fear", "neutral"}
    assert {"acc", "acc_tta", "f1_macro", "balanced_acc"} <= set(res["metrics"])
    cm = np.asarray(res["confusion"])
    assert cm.shape == (5, 5) and cm.sum() == 100
    pred, target = np.asarray(res["predictions"]["pred"]), np.asarray(res["predictions"]["target"])
    assert res["metrics"]["acc"] == pytest.approx((pred == target).mean(), abs=1e-6)
    assert res["params"] > 0 and res["train_seconds"] >= 0 and res["eval_images_per_second"] > 0
    assert res["config"]["data"]["batch_size"] == 50
    # debug=fast: one epoch of two batches, validated once at its end
    assert [(h["epoch"], h["images"]) for h in res["history"]] == [(0, 100)]
    assert res["history"][0]["val_acc"] == pytest.approx(res["best_val_acc"], abs=1e-4)


def test_checkpoint_loads_with_weights_only(tiny_runs):
    _, outs = tiny_runs
    ckpt = torch.load(outs[0] / "checkpoints" / "best.ckpt", weights_only=True)
    meta = ckpt["fer_bench"]
    assert meta["family"] == "cnn"
    assert meta["hparams"]["class_names"] == ["angry", "sad", "happy", "fear", "neutral"]
    assert meta["hparams"]["crop_size"] == 44 and meta["hparams"]["normalization"] == "none"


def test_report_from_runs(tiny_runs, tmp_path):
    sweep, _ = tiny_runs
    runs, failed = collect(sweep)
    assert [r["model"] for r in runs] == ["cnn", "lstm"] and not failed
    out = write_report(runs, failed, tmp_path / "synthetic")
    for name in ("recognition_rates.csv", "recognition_rates.md", "recognition_rates.png",
                 "recognition_rates.svg", "summary.csv", "confusion_cnn.png",
                 "confusion_lstm.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "recognition_rates.csv", index_col=0)
    assert list(table.index) == ["Angry", "Sad", "Happy", "Fear", "Neutral", "Overall accuracy"]
    cnn = runs[0]
    assert table.at["Happy", "cnn"] == pytest.approx(100 * cnn["per_class_recall"]["happy"],
                                                     abs=0.051)
    assert table.at["Overall accuracy", "cnn"] == pytest.approx(100 * cnn["metrics"]["acc"],
                                                                abs=0.051)
    md = (out / "recognition_rates.md").read_text()
    assert "| Overall accuracy |" in md and "ten views" in md


def test_failed_runs_are_named_not_fatal(tiny_runs, tmp_path):
    sweep, _ = tiny_runs
    bad = tmp_path / "sweep_with_failure"
    bad.mkdir()
    for f in sweep.rglob("results.json"):
        (bad / f.parent.name).mkdir()
        (bad / f.parent.name / "results.json").write_text(f.read_text())
    (bad / "gan").mkdir()
    (bad / "gan" / "results.json").write_text(json.dumps(
        {"status": "failed", "model": "gan", "seed": 0, "report_name": "synthetic",
         "error": "RuntimeError: boom"}))
    runs, failed = collect(bad)
    assert len(runs) == 2 and [f["model"] for f in failed] == ["gan"]
    md = (write_report(runs, failed, tmp_path / "r") / "recognition_rates.md").read_text()
    assert "Failed runs" in md and "RuntimeError: boom" in md


def test_mean_and_std_over_seeds():
    def fake(seed, happy, acc):
        return {"model": "cnn", "seed": seed, "data": {"classes": ["happy", "sad"]},
                "per_class_recall": {"happy": happy, "sad": 0.5}, "metrics": {"acc": acc}}

    rates = recognition_rates([fake(0, 0.8, 0.6), fake(1, 0.6, 0.7)])
    assert rates.at["Happy", "cnn"] == pytest.approx(70.0)
    assert rates.at["Happy", "cnn_std"] == pytest.approx(100 * np.std([0.8, 0.6], ddof=1))
    assert rates.at["Overall accuracy", "cnn"] == pytest.approx(65.0)


def test_wilson_and_mcnemar_known_values():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    # 10 discordant pairs all one way: p = 2 * 0.5**10
    res = mcnemar([True] * 10 + [False] * 5, [False] * 10 + [False] * 5)
    assert res["only_a"] == 10 and res["only_b"] == 0
    assert res["p_value"] == pytest.approx(2 * 0.5**10)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0
