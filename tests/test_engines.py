"""Engines for scale, for real: Hydra's submitit and Optuna plugins, Lightning DDP on two CPU
processes, and sweeps that resume after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from fer_bench.config import compose_config
from fer_bench.progress import hours, progress_table
from fer_bench.report.collect import archive, collect
from fer_bench.train import ConfigMismatch, run, write_results

from .test_cli import REPO, TINY, fer_bench


def results_files(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]


# ------------------------------------------------------------------ launchers
def test_slurm_launcher_config_composes_with_its_documented_settings(tmp_path):
    with initialize_config_module("fer_bench.conf", version_base="1.3"):
        for launcher in ("slurm", "submitit_slurm"):
            cfg = compose("train", [f"paths.root_dir={tmp_path}", "+model=cnn",
                                    "experiment=fer2013", f"hydra/launcher={launcher}",
                                    "hydra.launcher.partition=gpu"], return_hydra_config=True)
            launcher_cfg = cfg.hydra.launcher
            assert launcher_cfg._target_.endswith("SlurmLauncher")
            assert launcher_cfg.partition == "gpu"
        assert launcher_cfg.cpus_per_task is None  # the plugin's own defaults
    with initialize_config_module("fer_bench.conf", version_base="1.3"):
        cfg = compose("train", ["+model=cnn", "hydra/launcher=slurm"], return_hydra_config=True)
        assert (cfg.hydra.launcher.cpus_per_task, cfg.hydra.launcher.array_parallelism) == (4, 32)


@pytest.mark.slow
def test_submitit_local_launcher_runs_and_reports_a_sweep(tmp_path):
    res = fer_bench(tmp_path, "+model=cnn,lstm", *TINY, "hydra/launcher=submitit_local",
                    "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10", "-m")
    assert res.returncode == 0, res.stderr[-3000:]
    runs = results_files(tmp_path / "experiments")
    assert sorted(r["model"] for r in runs) == ["cnn", "lstm"]
    assert all(r["status"] == "ok" and r["test_passes"] == 1 for r in runs)
    # each run was a submitit job of its own, with the threads its job was given
    assert len({r["machine"]["pid"] for r in runs}) == 2
    assert [r["machine"]["threads"] for r in runs] == [1, 1]
    assert list((tmp_path / "experiments").rglob(".submitit"))
    table = pd.read_csv(tmp_path / "reports" / "synthetic" / "recognition_rates.csv", index_col=0)
    assert [c for c in table.columns if not c.endswith("_std")] == ["cnn", "lstm"]


def test_experiments_are_sweeps_run_by_one_command():
    with initialize_config_module("fer_bench.conf", version_base="1.3"):
        for name in ("fer2013", "paper5"):
            cfg = compose("train", [f"experiment={name}", "+model=cnn"],
                          return_hydra_config=True)
            assert dict(cfg.hydra.sweeper.params) == {"+model": "cnn,lstm,gan", "seed": "0,1,2"}
            assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
            assert cfg.report.archive.endswith(f"experiments/results/{name}")
            # long runs: one fixed folder per experiment, resumed by rerunning the command
            assert cfg.resume is True and cfg.hydra.sweep.dir.endswith(f"experiments/runs/{name}")
            # a run's folder is named by what it trains: a sweep of some families or seeds
            # resumes the folders of the full one
            assert cfg.hydra.sweep.subdir == "cnn_seed0"
            part = compose("train", [f"experiment={name}", "+model=lstm", "seed=2"],
                           return_hydra_config=True)
            assert part.hydra.sweep.subdir == "lstm_seed2"
        for name in ("tune", "regression"):
            cfg = compose("train", [f"experiment={name}", "+model=cnn"], return_hydra_config=True)
            assert cfg.resume is False and not cfg.hydra.sweep.dir.endswith(name)
        cfg = compose("train", ["experiment=tune", "+model=cnn"], return_hydra_config=True)
        assert cfg.hydra.sweeper.params is None and cfg.report.archive is None
        # tuning variants share a model and a seed: numbered folders keep them apart
        assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"].startswith("${hydra.job.num}")
    assert not list((REPO / "experiments").rglob("*.sh")), "bash lanes are replaced by sweeps"


# --------------------------------------------------------------------- optuna
@pytest.mark.slow
def test_optuna_search_maximises_validation_and_never_tests(tmp_path):
    res = fer_bench(tmp_path, "hparams_search=cnn", "+model=cnn", *TINY,
                    "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1",
                    "hydra.sweeper.sampler.n_startup_trials=2", "-m")
    assert res.returncode == 0, res.stderr[-3000:]
    runs = results_files(tmp_path / "experiments")
    assert len(runs) == 3
    assert all(r["tested"] is False and r["test_passes"] == 0 and not r["metrics"] for r in runs)
    assert all("predictions" not in r for r in runs)
    best = yaml.safe_load(next((tmp_path / "experiments").rglob("optimization_results.yaml"))
                          .read_text())
    assert best["best_value"] == pytest.approx(max(r["best_val_acc"] for r in runs))
    lrs = {r["config"]["model"]["optimizer"]["lr"] for r in runs}
    assert len(lrs) == 3 and all(1e-4 <= lr <= 3e-3 for lr in lrs)  # sampled, not the default


@pytest.mark.slow
def test_a_search_sweep_refuses_to_test(tmp_path):
    res = fer_bench(tmp_path, "hparams_search=cnn", "+model=cnn", *TINY, "test=true",
                    "hydra.sweeper.n_trials=1", "hydra.sweeper.n_jobs=1", "-m")
    assert res.returncode != 0
    runs = results_files(tmp_path / "experiments")
    assert [r["status"] for r in runs] == ["failed"]
    assert "select on validation only" in runs[0]["error"]


# ------------------------------------------------------------------------ ddp
@pytest.mark.slow
@pytest.mark.parametrize("family", ["cnn", "gan"])  # the GAN: two optimisers, manual steps
def test_ddp_on_two_cpu_processes_tests_once_and_writes_one_results_file(tmp_path, family):
    res = fer_bench(tmp_path, f"+model={family}", "trainer=ddp", "trainer.accelerator=cpu",
                    "data.synthetic_sizes={train:400,val:100,test:120}", "trainer.max_epochs=2",
                    "callbacks.progress_bar.refresh_rate=0", "hydra.run.dir=" + str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr[-3000:]
    (results,) = results_files(tmp_path / "r")
    assert results["devices"]["world_size"] == 2 and results["devices"]["strategy"] == "DDPStrategy"
    # both processes trained: two epochs over 400 faces
    assert results["images_seen"] == 800 and results["epochs_completed"] == 2.0
    assert len(results["history"]) == 2 and results["best_val_acc"] is not None
    assert results["stopped_by"] == "max_epochs"
    # the test split once, whole, on one device: one prediction per test face
    assert results["test_passes"] == 1
    assert len(results["predictions"]["pred"]) == results["data"]["sizes"]["test"] == 120
    assert sum(map(sum, results["confusion"])) == 120


# --------------------------------------------------------------------- resume
def test_resume_refuses_results_of_another_config(compose_cfg, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    earlier = compose_cfg("+model=cnn", "seed=1")
    write_results(out, {"status": "ok", "model": "cnn", "seed": 1,
                        "config": OmegaConf.to_container(earlier, resolve=True)})
    before = (out / "results.json").read_text()
    with pytest.raises(ConfigMismatch, match=r"seed: 1 -> 0") as err:
        run(compose_cfg("+model=cnn", "resume=true"), out)
    assert str(out / "results.json") in str(err.value)
    assert (out / "results.json").read_text() == before  # never overwritten


def test_resume_keeps_a_finished_run_moved_to_another_folder_or_thread_count(compose_cfg,
                                                                               tmp_path):
    """Where a run computes (paths) and with how many threads is not what it trains: a finished
    run carried to another checkout or machine, or rerun with threads=2, is kept; a setting of
    what it trains still refuses it."""
    out = tmp_path / "run"
    out.mkdir()
    recorded = OmegaConf.to_container(compose_cfg("+model=lstm", "threads=1"), resolve=True)
    recorded["paths"] = {k: f"/elsewhere/{k}" for k in recorded["paths"]}
    write_results(out, {"status": "ok", "model": "lstm", "seed": 0, "config": recorded})
    kept = run(compose_cfg("+model=lstm", "threads=2", "resume=true"), out)
    assert kept["config"]["threads"] == 1 and kept["config"]["paths"] == recorded["paths"]
    with pytest.raises(ConfigMismatch, match=r"model.optimizer.lr: "):
        run(compose_cfg("+model=lstm", "threads=2", "model.optimizer.lr=0.5", "resume=true"), out)


MACHINE_CHOSEN = "trainer.precision='${fastest_precision:${trainer.accelerator}}'"


def test_resume_keeps_a_run_finished_in_the_precision_its_machine_chose(compose_cfg, tmp_path):
    """experiment=ferplus leaves the precision to the machine: a run finished in the other
    precision (on a machine with, or without, bfloat16 units) is kept when the sweep is rerun
    here; an explicit precision that differs from the recorded one is another run."""
    out = tmp_path / "run"
    out.mkdir()
    here = compose_cfg("+model=lstm", MACHINE_CHOSEN)
    other = "32-true" if here.trainer.precision == "bf16-mixed" else "bf16-mixed"
    recorded = OmegaConf.to_container(here, resolve=True)
    recorded["trainer"]["precision"] = other
    write_results(out, {"status": "ok", "model": "lstm", "seed": 0, "config": recorded})
    kept = run(compose_cfg("+model=lstm", MACHINE_CHOSEN, "resume=true"), out)
    assert kept["config"]["trainer"]["precision"] == other
    with pytest.raises(ConfigMismatch, match=f"trainer.precision: '{other}' -> "):
        run(compose_cfg("+model=lstm", f"trainer.precision={here.trainer.precision}",
                        "resume=true"), out)


def test_archive_names_runs_by_experiment_model_and_seed_and_replaces(tmp_path):
    for sweep, acc in (("a", 0.5), ("b", 0.6)):
        run_dir = tmp_path / sweep / "3_cnn_seed1"
        run_dir.mkdir(parents=True)
        write_results(run_dir, {"status": "ok", "model": "cnn", "seed": 1, "report_name": "fer2013",
                                "best_val_acc": acc})
        archive(collect(tmp_path / sweep)[0], tmp_path / "archive")
    files = sorted((tmp_path / "archive").iterdir())
    assert [f.name for f in files] == ["fer2013_cnn_seed1.json"]
    assert json.loads(files[0].read_text())["best_val_acc"] == 0.6  # the rerun replaced it


def test_each_run_archives_its_results_as_it_ends(tmp_path):
    """report.archive: a run copies its results there when it ends, so a long sweep cut short
    (a session's end) has its finished runs' results ready to commit."""
    res = fer_bench(tmp_path, "+model=lstm", *TINY, "seed=3",
                    "report.archive=${paths.root_dir}/arch")
    assert res.returncode == 0, res.stderr[-2000:]
    (archived,) = (tmp_path / "arch").iterdir()
    assert archived.name == "synthetic_lstm_seed3.json"
    (produced,) = (tmp_path / "experiments" / "runs").rglob("results.json")
    assert archived.read_bytes() == produced.read_bytes()


def test_a_fresh_clone_keeps_the_archived_results_of_finished_runs(tmp_path):
    """Run folders are not committed, the archive is: resume=true in a folder without results
    keeps a run whose archived results are finished with the same config (not trained or
    tested again), and refuses, naming the archived file, one whose config differs."""
    args = ["+model=lstm", *TINY, "seed=3", "resume=true", "report.archive=${paths.root_dir}/arch"]
    first = fer_bench(tmp_path, *args, f"hydra.run.dir={tmp_path / 'clone1'}")
    assert first.returncode == 0, first.stderr[-2000:]
    archived = tmp_path / "arch" / "synthetic_lstm_seed3.json"
    text, mtime = archived.read_bytes(), archived.stat().st_mtime_ns

    again = fer_bench(tmp_path, *args, f"hydra.run.dir={tmp_path / 'clone2'}")
    assert again.returncode == 0, again.stderr[-2000:]
    assert archived.read_bytes() == text and archived.stat().st_mtime_ns == mtime
    assert (tmp_path / "clone2" / "results.json").read_bytes() == text  # the sweep reads it
    assert not (tmp_path / "clone2" / "checkpoints").exists()  # nothing was fitted

    other = fer_bench(tmp_path, *args, "model.optimizer.lr=0.5",
                      f"hydra.run.dir={tmp_path / 'clone3'}")
    assert other.returncode != 0 and "model.optimizer.lr" in other.stderr
    assert str(archived) in other.stderr and "move the archived file away" in other.stderr
    assert archived.read_bytes() == text and not (tmp_path / "clone3" / "results.json").exists()


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_loses_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["+model=cnn,gan,lstm", "data.synthetic_sizes={train:500,val:100,test:100}",
            "trainer.max_epochs=4", "trainer.max_time=null",
            "callbacks.progress_bar.refresh_rate=0",
            f"hydra.sweep.dir={sweep}", "-m"]
    env = {**os.environ, "FER_BENCH_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "fer_bench", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    second_last = sweep / "1_gan_seed0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not second_last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint's write finish (it is written then renamed)
    os.killpg(proc.pid, signal.SIGKILL)  # the second run is training
    proc.wait()
    first = sweep / "0_cnn_seed0" / "results.json"
    assert first.exists() and not (sweep / "1_gan_seed0" / "results.json").exists()
    assert not (sweep / "2_lstm_seed0").exists()
    first_text, first_mtime = first.read_text(), first.stat().st_mtime_ns
    before_kill = _progress(second_last)["val_history"]
    # fer_bench.progress reads the killed sweep as it lies: one tested, one to continue
    between = progress_table(sweep).set_index("run")
    assert list(between.index) == ["0_cnn_seed0", "1_gan_seed0"]
    assert between.loc["0_cnn_seed0", "state"].startswith("tested ")
    gan_row = between.loc["1_gan_seed0"]
    assert gan_row["state"] == "fitting or interrupted (resume=true continues)"
    assert gan_row["val checks (last epoch)"] == (
        f"{len(before_kill)} ({before_kill[-1]['epoch']})")
    wait, patience = gan_row["checks without improvement / patience"].split(" / ")
    assert int(wait) < len(before_kill) and patience == "5"  # conf/callbacks/default.yaml
    assert gan_row["fitting h:mm / cap"].endswith(" / none")  # trainer.max_time=null
    # time left at the recent pace: the median of the last three intervals between checks,
    # times the checks early stopping still needs (at least) and those to max_epochs=4 (at most)
    times = [0.0] + [h["seconds"] for h in before_kill]
    per_check = statistics.median([b - a for a, b in zip(times, times[1:])][-3:])
    latest = (4 - before_kill[-1]["epoch"] - 1) * per_check
    soonest = min((5 - int(wait)) * per_check, latest)
    assert gan_row["to finish, h:mm"] == f"{hours(soonest)} to {hours(latest)}"
    assert gan_row["min per check"] == f"{per_check / 60:.1f}"

    res = fer_bench(tmp_path, "resume=true", *args)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = {r["model"]: r for r in results_files(sweep)}
    assert sorted(runs) == ["cnn", "gan", "lstm"]
    assert all(r["status"] == "ok" and r["test_passes"] == 1 for r in runs.values())
    assert first.read_text() == first_text and first.stat().st_mtime_ns == first_mtime
    gan = runs["gan"]
    assert gan["resumed_from"]["checkpoint"].endswith("1_gan_seed0/checkpoints/last.ckpt")
    assert len(before_kill) >= 1 and gan["history"][: len(before_kill)] == before_kill
    # its history runs on from the checks made before the kill, to the fourth epoch
    assert [h["epoch"] for h in gan["history"]] == [0, 1, 2, 3]
    assert gan["images_seen"] == 4 * 500 and runs["lstm"]["resumed_from"] is None
    assert runs["cnn"]["resumed_from"] is None
    assert [f["from_epoch"] for f in gan["fit_sessions"]] == [0, gan["resumed_from"]["epoch"]]
    assert len(runs["lstm"]["fit_sessions"]) == 1
    table = pd.read_csv(tmp_path / "reports" / "synthetic" / "recognition_rates.csv", index_col=0)
    assert [c for c in table.columns if not c.endswith("_std")] == ["cnn", "gan", "lstm"]
    after = progress_table(sweep)
    assert len(after) == 3 and after["state"].str.startswith("tested ").all()


def _progress(ckpt: Path) -> dict:
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=True)["fer_bench"]["progress"]


def test_compose_config_knows_every_search_space():
    for family in ("cnn", "gan", "lstm"):
        cfg = compose_config("train", [f"+model={family}", "experiment=tune",
                                       f"hparams_search={family}"])
        assert cfg.test is False


def test_a_finished_single_run_is_kept_by_resume(compose_cfg, tmp_path):
    tiny = ["+model=lstm", "data.synthetic_sizes={train:100,val:50,test:50}",
            "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
    out = tmp_path / "run"
    first = run(compose_cfg(*tiny), out)
    assert (out / "checkpoints" / "last.ckpt").is_file()  # written when fitting ended
    stamp = (out / "results.json").stat().st_mtime_ns
    again = run(compose_cfg(*tiny, "resume=true"), out)
    assert again == json.loads((out / "results.json").read_text())
    assert (out / "results.json").stat().st_mtime_ns == stamp  # kept, not retrained
    assert again["best_val_acc"] == first["best_val_acc"]


@pytest.mark.parametrize("val_check_interval", [1.0, 0.5])
def test_last_checkpoint_follows_every_epoch_not_only_improvements(val_check_interval, tmp_path):
    """Lightning >= 2.6 rewrites ModelCheckpoint's last.ckpt only when the monitored score
    improves; SaveLastAtEnd writes it after every check, carrying the best score, so a resumed
    run continues from its latest epoch and keeps its best."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    from fer_bench.train import SaveLastAtEnd

    class Flat(pl.LightningModule):  # validation accuracy 0.5 at every epoch: never improves
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.w(batch[0]).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val/acc", 0.5)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    seen = []

    class ReadLast(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch:
                state = torch.load(tmp_path / "last.ckpt", weights_only=True)
                best = next(v for k, v in state["callbacks"].items() if "ModelCheckpoint" in k)
                seen.append((state["epoch"], float(best["best_model_score"])))

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)),
                                       batch_size=4)
    trainer = pl.Trainer(max_epochs=4, val_check_interval=val_check_interval, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[
                             ModelCheckpoint(dirpath=tmp_path, monitor="val/acc", mode="max",
                                             filename="best", save_last=True),
                             SaveLastAtEnd(), ReadLast()])
    trainer.fit(Flat(), data, data)
    assert seen == [(0, 0.5), (1, 0.5), (2, 0.5)]


class Pace(pl.Callback):
    """A fixed pause per training step, so that a time cap stops a tiny run at a known point."""

    def on_train_batch_end(self, *args):
        time.sleep(0.1)


def test_a_run_records_the_checkout_it_started_from(compose_cfg, tmp_path, monkeypatch):
    """The git state is read before fitting (what the process composed and imported); a
    checkout edited or committed while the run fitted is recorded beside it, not in its place."""
    from fer_bench import provenance

    calls = []

    def git_state(start=None):
        calls.append(1)
        return {"commit": ("a" if len(calls) == 1 else "b") * 40, "dirty": False,
                "root": "/repo", "changed": []}

    monkeypatch.setattr(provenance, "git_state", git_state)
    res = run(compose_cfg("+model=lstm", "debug=fast", "test=false"), tmp_path / "run")
    assert res["git"]["commit"] == "a" * 40 and res["git_at_end"]["commit"] == "b" * 40
    (session,) = res["fit_sessions"]
    assert session["git"] == res["git"] and session["from_epoch"] == 0
    assert session["threads"] == res["machine"]["threads"]
    # the precision and CPU of each session: a resumed run may continue on another machine
    assert session["precision"] == res["config"]["trainer"]["precision"] == "32-true"
    assert session["cpu"] == res["machine"]["cpu"]
    assert isinstance(res["machine"]["native_bf16"], bool)


@pytest.mark.slow
def test_a_raised_time_cap_continues_the_runs_it_stopped_and_lists_their_first_test(
        compose_cfg, tmp_path):
    """resume=true with trainer.max_time raised: a run the old cap stopped continues from its
    last checkpoint and is tested again, its first test pass kept as replaced (with why)."""
    from fer_bench.report import records

    tiny = ["+model=lstm", "data.synthetic_sizes={train:1000,val:100,test:100}",
            "trainer.max_epochs=3", "+trainer.val_check_interval=0.25",
            "+callbacks.pace._target_=tests.test_engines.Pace",
            "callbacks.early_stopping.patience=99",
            "callbacks.progress_bar.refresh_rate=0", "resume=true"]
    out = tmp_path / "run"
    first = run(compose_cfg(*tiny, "trainer.max_time=00:00:00:03"), out)  # >= 6 s of pauses
    assert first["stopped_by"] == "max_time" and first["epochs_completed"] < 3
    first_file = (out / "results.json").read_text()
    with pytest.raises(ConfigMismatch, match="max_time"):  # a lowered cap is another run
        run(compose_cfg(*tiny, "trainer.max_time=00:00:00:02"), out)

    again = run(compose_cfg(*tiny, "trainer.max_time=00:00:05:00"), out)
    assert again["stopped_by"] == "max_epochs" and again["epochs"] == 3
    assert again["images_seen"] > first["images_seen"]
    assert again["resumed_from"]["checkpoint"].endswith("checkpoints/last.ckpt")
    # each fitting session, from where it started and on what checkout
    assert [(f["from_epoch"], f["from_images"]) for f in again["fit_sessions"]] == [
        (0, 0), (again["resumed_from"]["epoch"], first["images_seen"])]
    assert again["fit_sessions"][0] == first["fit_sessions"][0]
    assert again["history"][: len(first["history"])] == first["history"]
    (earlier,) = again["replaced_tests"]
    assert earlier["metrics"] == first["metrics"] and earlier["stopped_by"] == "max_time"
    assert "max_time: 00:00:00:03 -> 00:00:05:00" in earlier["why"]
    assert earlier["raised"] == {"trainer.max_time": ["00:00:00:03", "00:00:05:00"]}
    assert again["test_passes"] == 2 and records.protocol_problems(again) == []
    assert "tested again" in records.protocol_sentence([again])
    table = "\n".join(records.replaced_tests_lines([again]))
    assert f"| lstm seed 0 | {100 * first['metrics']['acc']:.1f} |" in table
    # raised once more: it is no longer stopped by the cap, so it is kept as it is
    stamp = (out / "results.json").stat().st_mtime_ns
    assert run(compose_cfg(*tiny, "trainer.max_time=00:00:10:00"), out) == again
    assert (out / "results.json").stat().st_mtime_ns == stamp

    # progress reads a continuing run by its last.ckpt: killed after fitting under the raised
    # cap, its folder held the first test's results.json beside a last.ckpt gone past it
    assert progress_table(out).loc[0, "state"] == f"tested {100 * again['metrics']['acc']:.1f}% " \
        "(max_epochs)"
    (out / "results.json").write_text(first_file)
    row = progress_table(out).loc[0]
    assert row["state"] == ("cap raised, fit ended (max_epochs), not tested again; tested "
                            f"{100 * first['metrics']['acc']:.1f}% at the old cap (max_time)")
    assert row["val checks (last epoch)"] == f"{len(again['history'])} (2)"
