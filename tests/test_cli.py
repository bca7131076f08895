"""The real command line: Hydra multirun sweeps into temporary folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from fer_bench.models import family_names

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic_sizes={train:200,val:100,test:100}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=3", "callbacks.progress_bar.refresh_rate=0"]


def fer_bench(tmp_path, *args, module="fer_bench"):
    env = {**os.environ, "FER_BENCH_ROOT": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_without_a_model_it_says_how_to_choose(tmp_path):
    res = fer_bench(tmp_path)
    assert res.returncode == 2
    assert f"+model={'|'.join(family_names())}" in res.stderr
    assert "+model=cnn,gan,lstm -m" in res.stderr


def test_the_recorded_config_is_the_composed_one_and_what_ran(tmp_path, monkeypatch):
    """A tuned setting (fer2013's unidirectional LSTM, on synthetic faces) reaches results.json,
    .hydra/config.yaml and the network in the checkpoint alike; the job returns the best
    validation accuracy (what a sweeper would optimise), never a test metric."""
    import torch
    import yaml

    from fer_bench.config import compose_config
    from fer_bench.predict import load_model

    args = ["+model=lstm", "tuning=fer2013", "model/scheduler=plateau", *TINY]
    res = fer_bench(tmp_path, *args, "+hydra.callbacks.probe._target_=tests.hydra_probe.JobReturn")
    assert res.returncode == 0, res.stderr[-3000:]
    out = next(tmp_path.rglob("results.json")).parent
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "job_return.json").read_text()) == results["best_val_acc"]
    recorded = results["config"]
    monkeypatch.setenv("FER_BENCH_ROOT", str(tmp_path))
    composed = OmegaConf.to_container(compose_config("train", args), resolve=True)
    assert recorded == composed
    assert yaml.safe_load((out / ".hydra" / "config.yaml").read_text())["model"] == (
        composed["model"])
    assert recorded["model"]["net"]["bidirectional"] is False
    model = load_model(out / "checkpoints" / "best.ckpt")
    assert model.net.lstm.bidirectional is False
    assert isinstance(model.configure_optimizers()["lr_scheduler"]["scheduler"],
                      torch.optim.lr_scheduler.ReduceLROnPlateau)


@pytest.mark.slow
def test_sweep_writes_table_chart_summary_and_confusions(tmp_path):
    res = fer_bench(tmp_path, "+model=cnn,gan,lstm,resnet", *TINY, "-m")
    assert res.returncode == 0, res.stderr[-3000:]
    report = tmp_path / "reports" / "synthetic"
    table = pd.read_csv(report / "recognition_rates.csv", index_col=0)
    assert [c for c in table.columns if not c.endswith("_std")] == ["cnn", "gan", "lstm", "resnet"]
    assert list(table.index)[-1] == "Overall accuracy" and len(table) == 6
    assert ((table >= 0) & (table <= 100)).all().all()
    summary = pd.read_csv(report / "summary.csv", index_col=0)
    assert list(summary.index) == ["cnn", "gan", "lstm", "resnet"]
    assert (summary["params"] > 0).all() and summary["acc_tta"].notna().all()
    for name in ("recognition_rates.png", "recognition_rates.svg", "recognition_rates.md",
                 *(f"confusion_{m}.png" for m in ("cnn", "gan", "lstm", "resnet"))):
        assert (report / name).stat().st_size > 1000, name
    assert "Overall accuracy" in res.stdout and str(report) in res.stdout
    runs = sorted((tmp_path / "experiments" / "runs").glob("*/*/results.json"))
    assert len(runs) == 4
    # On demand, from the sweep folder alone:
    again = fer_bench(tmp_path, str(runs[0].parents[1]), "--out", str(tmp_path / "again"),
                      module="fer_bench.report")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "synthetic" / "recognition_rates.csv").read_text() == (
        report / "recognition_rates.csv").read_text()


@pytest.mark.slow
def test_a_failed_run_does_not_take_the_others_with_it(tmp_path):
    res = fer_bench(tmp_path, "+model=lstm", *TINY, "model.net.pooling=mean,bogus", "-m")
    assert res.returncode == 1  # partial sweeps say so
    md = (tmp_path / "reports" / "synthetic" / "recognition_rates.md").read_text()
    assert "| LSTM" in md and "Failed runs" in md
    assert "model.net.pooling='bogus'" in md
    failed = [json.loads(p.read_text()) for p in tmp_path.rglob("results.json")]
    assert sorted(r["status"] for r in failed) == ["failed", "ok"]


@pytest.mark.slow
def test_folder_of_unseen_classes_without_splits(tmp_path):
    from tests.conftest import write_faces

    write_faces(tmp_path / "mine", ["smirk", "glare", "pout"], 30)
    res = fer_bench(tmp_path, "+model=cnn", "data=folder", f"data.root={tmp_path / 'mine'}",
                    *TINY[1:], "-m")
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "reports" / "folder" / "recognition_rates.csv", index_col=0)
    assert list(table.index) == ["Glare", "Pout", "Smirk", "Overall accuracy"]
    split = pd.read_csv(next(tmp_path.rglob("split.csv")))
    assert split["split"].value_counts().to_dict() == {"train": 72, "val": 9, "test": 9}


@pytest.mark.slow
def test_joblib_launcher_runs_the_sweep_side_by_side_without_oversubscription(tmp_path):
    res = fer_bench(tmp_path, "+model=cnn,lstm", *TINY, "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", "-m")
    assert res.returncode == 0, res.stderr[-3000:]
    table = pd.read_csv(tmp_path / "reports" / "synthetic" / "recognition_rates.csv", index_col=0)
    assert [c for c in table.columns if not c.endswith("_std")] == ["cnn", "lstm"]
    runs = [json.loads(p.read_text()) for p in tmp_path.rglob("results.json")]
    assert len(runs) == 2
    assert len({r["machine"]["pid"] for r in runs}) == 2  # two worker processes, not one
    # two jobs share the cores: threads = cores // 2 each, recorded in every results file
    assert [r["machine"]["threads"] for r in runs] == [max(1, os.cpu_count() // 2)] * 2
    assert all(r["config"]["threads"] == "auto" for r in runs)
