"""Tuning runs (test=false) never touch the test split; experiments apply their tuned choices;
the cosine schedule anneals to zero."""

from __future__ import annotations

import json

import pytest

from fer_bench.report import collect
from fer_bench.report.tuning import main as tuning_main
from fer_bench.report.tuning import tried, tuning_table
from fer_bench.train import build, model_config, run


def test_untested_run_records_validation_only(compose_cfg, tmp_path, monkeypatch):
    import pytorch_lightning as pl

    def no_test(*args, **kwargs):
        raise AssertionError("a tuning run called trainer.test")

    monkeypatch.setattr(pl.Trainer, "test", no_test)
    for lr in ("1e-3", "3e-3"):
        cfg = compose_cfg("+model=lstm", "debug=fast", "test=false", f"model.lr={lr}")
        res = run(cfg, tmp_path / "sweep" / f"lstm_{lr}",
                  overrides=["+model=lstm", "test=false", f"model.lr={lr}"])
        assert res["tested"] is False and res["metrics"] == {}
        assert 0.0 <= res["best_val_acc"] <= 1.0
    # Reports take tested runs only; the tuning table takes the others.
    assert collect(tmp_path / "sweep") == ([], [])
    runs, _ = collect(tmp_path / "sweep", tested=False)
    table = tuning_table(runs)
    assert set(table["variant"]) == {"model.lr=1e-3", "model.lr=3e-3"}  # test=false: shared
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


def test_cosine_schedule_reaches_zero(compose_cfg):
    import pytorch_lightning as pl

    cfg = compose_cfg("+model=gan", "debug=fast", "+model.cosine=true", "model.lr=0.01")
    dm, model = build(cfg)
    seen = []

    class Rates(pl.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            seen.append([o.optimizer.param_groups[0]["lr"] for o in module.optimizers()])

    trainer = pl.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[Rates()])
    trainer.fit(model, datamodule=dm)
    # The rate each of the six steps used (callbacks run before the module's hook steps it):
    d_rates = [r[0] for r in seen]  # both GAN optimisers follow it (manual optimisation)
    assert len(seen) == 6 and d_rates[0] == 0.01 and d_rates == sorted(d_rates, reverse=True)
    assert d_rates[3] == pytest.approx(0.005)  # half-way: cos(pi/2)
    final = [o.optimizer.param_groups[0]["lr"] for o in model.optimizers()]
    assert final == pytest.approx([0.0, 0.0], abs=1e-12)


def test_cosine_and_plateau_are_exclusive(compose_cfg):
    cfg = compose_cfg("+model=cnn", "debug=fast", "+model.cosine=true",
                      "+model.plateau={factor: 0.5, patience: 1}")
    with pytest.raises(Exception, match="choose one schedule"):  # via hydra.instantiate
        build(cfg)


def test_experiments_apply_their_tuned_choices_and_tuning_starts_from_defaults(compose_cfg):
    fer = model_config(compose_cfg("experiment=fer2013", "+model=gan"))
    assert not fer.feature_matching and list(fer.net.channels) == [32, 64, 128]
    paper5 = model_config(compose_cfg("experiment=paper5", "+model=gan"))
    assert paper5 == fer  # paper5 inherits fer2013's choices
    tune = model_config(compose_cfg("experiment=tune", "+model=gan", "model.lr=1e-3"))
    assert tune.feature_matching and list(tune.net.channels) == [64, 128, 256]
    assert tune.lr == 1e-3 and tune.plateau.factor == 0.5
