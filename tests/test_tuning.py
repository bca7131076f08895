"""Tuning runs (test=false) never touch the test split; experiments compose their tuned settings
through Hydra alone; schedules come from config, stepped and checkpointed by Lightning."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from omegaconf import OmegaConf

from fer_bench.config import compose_config
from fer_bench.models import family_names
from fer_bench.report import collect
from fer_bench.report.tuning import main as tuning_main
from fer_bench.report.tuning import tried, tuning_table
from fer_bench.train import build, run
from tests.conftest import REPO, make_module

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def test_untested_run_records_validation_only(compose_cfg, tmp_path, monkeypatch):
    import pytorch_lightning as pl

    def no_test(*args, **kwargs):
        raise AssertionError("a tuning run called trainer.test")

    monkeypatch.setattr(pl.Trainer, "test", no_test)
    for lr in ("1e-3", "3e-3"):
        cfg = compose_cfg("+model=lstm", "debug=fast", "test=false", f"model.optimizer.lr={lr}")
        res = run(cfg, tmp_path / "sweep" / f"lstm_{lr}",
                  overrides=["+model=lstm", "test=false", f"model.optimizer.lr={lr}"])
        assert res["tested"] is False and res["metrics"] == {} and res["test_passes"] == 0
        assert 0.0 <= res["best_val_acc"] <= 1.0
    # Reports take tested runs only; the tuning table takes the others.
    assert collect(tmp_path / "sweep") == ([], [])
    runs, _ = collect(tmp_path / "sweep", tested=False)
    table = tuning_table(runs)
    assert set(table["variant"]) == {"model.optimizer.lr=1e-3", "model.optimizer.lr=3e-3"}
    assert table["best"].sum() == 1 and table.loc[table["best"], "val_acc"].item() == max(
        table["val_acc"])
    out = tmp_path / "tuning" / "README.md"
    assert tuning_main([str(tmp_path / "sweep"), "--archive", str(tmp_path / "arch"),
                        "--out", str(out)]) == 0
    assert "Every run: `test=false`" in out.read_text()
    assert len(list((tmp_path / "arch").glob("*.json"))) == 2
    assert json.loads(next((tmp_path / "arch").glob("*.json")).read_text())["tested"] is False


def test_tried_drops_model_seed_and_experiment():
    run_ = {"overrides": ["experiment=tune", "+model=gan", "seed=1", "model.lr=0.001"]}
    assert tried(run_) == "model.lr=0.001"
    assert tried({"overrides": ["+model=gan"]}) == "(defaults)"
    assert tried(run_, shared=["model.lr=0.001"]) == "(defaults)"


@pytest.mark.parametrize("family", ["cnn", "gan"])  # automatic and manual optimisation
def test_cosine_schedule_is_stepped_by_lightning_and_checkpointed(compose_cfg, tmp_path, family):
    import pytorch_lightning as pl
    import torch

    cfg = compose_cfg(f"+model={family}", "debug=fast", "model/scheduler=cosine",
                      "model.optimizer.lr=0.01", "trainer.max_epochs=4")
    assert cfg.model.scheduler.T_max == 4  # planned over the run's epochs, recorded as such
    dm, model = build(cfg)
    seen = []

    class Rates(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            opts = module.optimizers()
            seen.append([o.optimizer.param_groups[0]["lr"]
                         for o in (opts if isinstance(opts, list) else [opts])])

    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = pl.Trainer(max_epochs=4, limit_train_batches=2, limit_val_batches=1, logger=False,
                         enable_progress_bar=False, callbacks=[Rates(), ckpt])
    trainer.fit(model, datamodule=dm)
    # 0.01 x (1 + cos(pi e / 4)) / 2 at the start of epochs 0..3, every optimiser alike
    expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [r[0] for r in seen] == pytest.approx(expected)
    if family == "gan":  # the generator's optimiser follows the same schedule from its 2e-4
        assert [r[1] for r in seen] == pytest.approx([2e-4 / 0.01 * e for e in expected])
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["lr_schedulers"]
    assert len(state) == (2 if family == "gan" else 1) and state[0]["last_epoch"] == 4


def test_plateau_schedule_watches_validation(compose_cfg):
    cfg = compose_cfg("+model=lstm", "debug=fast", "model/scheduler=plateau")
    _, model = build(cfg)
    config = model.configure_optimizers()["lr_scheduler"]
    assert config["monitor"] == "val/acc" and config["scheduler"].mode == "max"


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_every_family(experiment, family):
    """No training: the composed config builds the family's module."""
    cfg = compose_config("train", [f"experiment={experiment}", f"+model={family}"])
    assert cfg.model.name == family
    make_module(family, list("abcdefg"), f"experiment={experiment}")


# one family each, every family somewhere; label efficiency where the GAN's two streams matter
STEP_FAMILY = {"label_efficiency": ("gan", "data.labeled_fraction=0.25"), "paper5": ("lstm",),
               "ferplus": ("resnet",),
               "tune": ("cnn", "trainer.val_check_interval=1")}  # its 60 batches: not in two


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_for_a_step(experiment, compose_cfg, tmp_path):
    """Each experiment's own trainer, callbacks, schedule and report settings, for two batches
    on synthetic faces: a results file that records the experiment's settings."""
    family, *extra = STEP_FAMILY.get(experiment, ("cnn",))
    cfg = compose_cfg(f"experiment={experiment}", f"+model={family}", "data=synthetic",
                      "debug=fast", *extra)
    res = run(cfg, tmp_path / "run")
    assert res["status"] == "ok" and res["model"] == family and res["images_seen"] > 0
    assert res["config"]["report"]["name"] == cfg.report.name
    assert res["tested"] is cfg.get("test", True)
    if cfg.report.archive:  # the long experiments keep each finished run as it ends
        assert list((tmp_path / "experiments" / "results").rglob("*.json"))


def test_experiments_compose_their_tuned_settings(compose_cfg):
    fer = compose_cfg("experiment=fer2013", "+model=gan").model
    # the GAN's best Optuna trial (experiments/tuning/optuna/gan_optimization_results.yaml)
    assert fer.feature_matching and fer.generator.width == 64 and fer.unsupervised_weight == 0.106
    assert fer.optimizer.lr == 1.07e-4 and fer.optimizer_g.lr == 7.28e-4
    assert list(fer.net.channels) == [64, 128, 256]  # the family's discriminator
    assert fer.scheduler.factor == 0.5
    assert compose_cfg("experiment=paper5", "+model=gan").model == fer  # inherited
    lstm = compose_cfg("experiment=fer2013", "+model=lstm").model
    cnn = compose_cfg("experiment=fer2013", "+model=cnn").model
    assert lstm.net.bidirectional is False and lstm.net.hidden == 256 and lstm.net.layers == 1
    assert list(cnn.net.channels) == [32, 64, 128, 256] and cnn.net.convs_per_block == 2
    assert cnn.optimizer.lr == 1e-3 and cnn.optimizer.weight_decay == 1e-4
    tune = compose_cfg("experiment=tune", "+model=gan", "model.optimizer.lr=1e-3").model
    assert tune.feature_matching and list(tune.net.channels) == [64, 128, 256]
    assert tune.optimizer.lr == 1e-3 and tune.scheduler.factor == 0.5
    # label efficiency: the CNN and the LSTM as in fer2013, the GAN tuned at 5% labels (its
    # settings are the recorded best trial's, to three significant figures)
    for family, model in {"cnn": cnn, "lstm": lstm}.items():
        assert compose_cfg("experiment=label_efficiency", f"+model={family}").model == model
    best = yaml.safe_load((REPO / "experiments/tuning/optuna_labels5/"
                           "gan_optimization_results.yaml").read_text())["best_params"]
    low = compose_cfg("experiment=label_efficiency", "+model=gan")
    for key, value in best.items():
        got = OmegaConf.select(low, key)
        assert got == (pytest.approx(value, rel=5e-3) if isinstance(value, float) else value), key
    cnn60 = compose_cfg("experiment=fer2013_cnn60", "+model=cnn").model
    assert cnn60.scheduler._target_.endswith("CosineAnnealingLR") and cnn60.scheduler.T_max == 18
    assert list(cnn60.net.channels) == [32, 64, 128, 256] and cnn60.optimizer.lr == 1e-3
