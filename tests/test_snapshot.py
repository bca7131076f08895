"""Snapshots carry an unfinished run to another checkout, where its own command finishes it."""

from __future__ import annotations

import json
import shutil

import pytest
import pytorch_lightning as pl
import torch

from fer_bench.snapshot import MANIFEST, SnapshotError, main, restore, save
from fer_bench.train import callback_state, run


class SessionEnds(pl.Callback):
    """Ends fitting as a session's end would, after two epochs were checkpointed."""

    epochs = 2

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epochs:
            raise RuntimeError("session ended")


class SessionEndsSooner(SessionEnds):
    epochs = 1


TINY = ["+model=gan", "data.synthetic_sizes={train:200,val:60,test:60}", "trainer.max_epochs=4",
        "trainer.max_time=null", "callbacks.early_stopping.patience=99",
        "callbacks.progress_bar.refresh_rate=0", "resume=true"]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_a_snapshot_carries_an_unfinished_run_to_another_checkout(compose_cfg, tmp_path, caplog):
    # "there" is the checkout the composed config's paths point at
    here, there = tmp_path / "here" / "experiments", tmp_path / "experiments"
    run_here = here / "runs" / "sweep" / "gan_seed0"
    with pytest.raises(RuntimeError, match="session ended"):
        run(compose_cfg(*TINY, "+callbacks.stop._target_=tests.test_snapshot.SessionEnds"),
            run_here)
    assert not (run_here / "results.json").exists()
    last_here = _load(run_here / "checkpoints" / "last.ckpt")
    history = last_here["fer_bench"]["progress"]["val_history"]
    assert [h["epoch"] for h in history] == [0, 1]

    (line,) = save(here / "runs", here / "resume")
    snap = here / "resume" / "sweep" / "gan_seed0"
    assert line.startswith("sweep/gan_seed0: saved epoch 1 (2 checks")
    manifest = json.loads((snap / MANIFEST).read_text())
    assert manifest["global_step"] == last_here["global_step"] and manifest["val_checks"] == 2
    assert manifest["best_val_acc"] == max(h["val_acc"] for h in history)
    # last.ckpt whole; the best checkpoint with its weights, without the optimisers' state
    last_bytes = (run_here / "checkpoints" / "last.ckpt").read_bytes()
    assert (snap / "last.ckpt").read_bytes() == last_bytes
    best = _load(snap / "best.ckpt")
    assert "optimizer_states" not in best and "optimizer_states" in last_here
    original_best = _load(run_here / "checkpoints" / "best.ckpt")
    assert best["state_dict"].keys() == original_best["state_dict"].keys()
    assert all(torch.equal(best["state_dict"][k], v)
               for k, v in original_best["state_dict"].items())

    # another checkout (a fresh machine): the committed snapshot, no run folder; the run's own
    # command (resume=true) restores it first
    shutil.copytree(here / "resume", there / "resume")
    run_there = there / "runs" / "sweep" / "gan_seed0"
    with caplog.at_level("INFO", logger="fer_bench.train"):
        res = run(compose_cfg(*TINY), run_there)
    assert f"sweep/gan_seed0: restored epoch 1 (2 checks) -> {run_there}" in caplog.text
    assert res["resumed_from"]["epoch"] == 1 and res["history"][:2] == history
    assert [h["epoch"] for h in res["history"]] == [0, 1, 2, 3]
    # the best score survived the move: selection covers the checks made before it
    assert res["best_val_acc"] == pytest.approx(max(h["val_acc"] for h in res["history"]),
                                                abs=1e-5)  # (history: 5 digits)
    assert res["selection"]["checkpoint"].startswith(str(run_there.resolve()))
    assert res["tested"] and res["test_passes"] == 1

    # finished there: restore leaves it, save drops its snapshot
    assert restore(there / "resume", there / "runs") == [
        "sweep/gan_seed0: finished here, snapshot not restored"]
    dropped = there / "resume" / "sweep" / "gan_seed0"
    assert save(there / "runs", there / "resume") == [
        f"sweep/gan_seed0: finished here, snapshot removed ({dropped})"]
    assert not dropped.exists()

    # a damaged snapshot is refused, naming the file
    last_bytes = bytearray((snap / "last.ckpt").read_bytes())
    last_bytes[len(last_bytes) // 2] ^= 0xFF
    (snap / "last.ckpt").write_bytes(bytes(last_bytes))
    with pytest.raises(SnapshotError, match=r"last\.ckpt does not match its SHA-256"):
        restore(here / "resume", tmp_path / "third" / "runs")


@pytest.mark.slow
def test_restore_and_save_keep_what_is_further_on(compose_cfg, tmp_path, capsys):
    runs, snaps = tmp_path / "experiments" / "runs", tmp_path / "experiments" / "resume"
    out = runs / "sweep" / "gan_seed0"
    with pytest.raises(RuntimeError, match="session ended"):
        run(compose_cfg(*TINY, "+callbacks.stop._target_=tests.test_snapshot.SessionEnds"), out)
    assert main(["save", "--runs", str(runs), "--snapshots", str(snaps)]) == 0
    stamp = (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert main(["restore", "--runs", str(runs), "--snapshots", str(snaps)]) == 0
    assert "is as far or further, kept" in capsys.readouterr().out
    assert (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp
    assert main(["save", "--runs", str(tmp_path / "nowhere")]) == 1
    assert "nowhere is not a folder" in capsys.readouterr().err

    # restored into another checkout's runs: ModelCheckpoint's paths point there, its score kept
    elsewhere = tmp_path / "elsewhere" / "runs"
    assert restore(snaps, elsewhere) == [
        f"sweep/gan_seed0: restored epoch 1 (2 checks) -> {elsewhere / 'sweep' / 'gan_seed0'}"]
    checkpoints = elsewhere / "sweep" / "gan_seed0" / "checkpoints"
    moved = callback_state(_load(checkpoints / "last.ckpt"), "ModelCheckpoint")
    kept = callback_state(_load(out / "checkpoints" / "last.ckpt"), "ModelCheckpoint")
    assert moved["dirpath"] == str(checkpoints.resolve()) != kept["dirpath"]
    assert moved["best_model_path"] == str((checkpoints / "best.ckpt").resolve())
    assert moved["best_model_score"] == kept["best_model_score"]

    # the run started again (resume=false: its snapshot not restored) and ended sooner: save
    # keeps the snapshot that is further on, and says so
    shutil.rmtree(out)
    afresh = [o for o in TINY if o != "resume=true"]
    with pytest.raises(RuntimeError, match="session ended"):
        run(compose_cfg(*afresh, "+callbacks.stop._target_=tests.test_snapshot.SessionEndsSooner"),
            out)
    manifest = (snaps / "sweep" / "gan_seed0" / MANIFEST).read_text()
    assert main(["save", "--runs", str(runs), "--snapshots", str(snaps)]) == 1
    said = capsys.readouterr().out
    assert "not saved: sweep/gan_seed0:" in said and "is further on (epoch 1, step" in said
    assert "than this run (epoch 0, step" in said
    assert (snaps / "sweep" / "gan_seed0" / MANIFEST).read_text() == manifest
