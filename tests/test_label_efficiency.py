"""data.labeled_fraction: a seeded, stratified share of the training faces keeps its labels; the
GAN also learns from the unlabelled rest, the other families train on the labelled faces only;
validation and test are never reduced."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fer_bench.data import DataError, FERDataModule
from fer_bench.train import config_differences
from tests.test_cli import TINY, fer_bench

SIZES = {"train": 1000, "val": 100, "test": 200}


def dm(tmp_path, fraction, seed=0, **kw) -> FERDataModule:
    d = FERDataModule(synthetic_sizes=SIZES, labeled_fraction=fraction, seed=seed,
                      cache_dir=str(tmp_path / "cache"), **kw)
    d.setup()
    return d


def test_a_seeded_stratified_share_keeps_its_labels(tmp_path):
    d = dm(tmp_path, 0.05)
    y = d.tensors["train"].tensors[1].numpy()
    per_class = {c: int(round((y == i).sum() * 0.05)) for i, c in enumerate(d.class_names)}
    assert d.info["labeled"]["per_class"] == per_class  # stratified: 5% of every class
    assert d.info["labeled"]["faces"] == sum(per_class.values()) == d.labelled.sum()
    assert d.info["labeled"]["unlabelled_faces"] == 1000 - d.labelled.sum()
    assert d.info["sizes"] == SIZES  # validation and test are never reduced
    assert np.array_equal(dm(tmp_path, 0.05).labelled, d.labelled)  # seeded
    assert not np.array_equal(dm(tmp_path, 0.05, seed=1).labelled, d.labelled)
    assert dm(tmp_path, 1.0).labelled.all() and "labeled" not in dm(tmp_path, 1.0).info


def test_the_gan_sees_every_face_the_others_the_labelled_ones(tmp_path):
    d = dm(tmp_path, 0.1)
    x_all, y_all = d.tensors["train"].tensors
    supervised = d.train_set()
    assert len(supervised) == d.labelled.sum() and (supervised.tensors[1] >= 0).all()
    assert torch.equal(supervised.tensors[1], y_all[torch.from_numpy(d.labelled)])
    d.include_unlabelled = True
    semi = d.train_set()
    assert len(semi) == 1000 and torch.equal(semi.tensors[0], x_all)
    assert (semi.tensors[1] == -1).sum() == (~d.labelled).sum()
    assert torch.equal(semi.tensors[1][torch.from_numpy(d.labelled)],
                       y_all[torch.from_numpy(d.labelled)])
    # its steps: a batch of every face (an epoch's pass) and a full batch of labelled faces
    streams = d.train_dataloader()
    assert set(streams) == {"faces", "labelled"}
    assert len(streams["faces"].dataset) == 1000
    xl, yl = next(iter(streams["labelled"]))
    assert len(yl) == d.batch_size and (yl >= 0).all()
    labelled_faces = {t.numpy().tobytes() for t in x_all[torch.from_numpy(d.labelled)]}
    assert all(t.numpy().tobytes() in labelled_faces for t in xl)
    d.include_unlabelled = False
    assert len(next(iter(d.train_dataloader()))[1]) == d.batch_size
    assert isinstance(dm(tmp_path, 1.0).train_dataloader(), torch.utils.data.DataLoader)


def test_the_gans_supervised_loss_gets_a_full_labelled_batch_at_every_step(
        compose_cfg, tmp_path, monkeypatch):
    """At 5% labels of 1,000 faces (50 labelled, one batch), every GAN step classifies a batch
    of 50 labelled faces, not the two or three a batch of all faces would hold."""
    from fer_bench.models.gan import GANModule
    from fer_bench.train import run

    seen = []
    loss = GANModule.supervised_loss
    monkeypatch.setattr(GANModule, "supervised_loss",
                        staticmethod(lambda logits, y: seen.append(y.clone()) or loss(logits, y)))
    res = run(compose_cfg("+model=gan", "data.synthetic_sizes={train:1000,val:100,test:100}",
                          "data.labeled_fraction=0.05", "trainer.max_epochs=1",
                          "trainer.limit_train_batches=4", "test=false",
                          "callbacks.progress_bar.refresh_rate=0"), tmp_path / "run")
    assert len(seen) == 4 and all(len(y) == 50 and (y >= 0).all() for y in seen)
    assert res["images_seen"] == 4 * 50  # an epoch counts the faces stream only


def test_a_fraction_that_leaves_a_class_without_labels_names_it(tmp_path):
    with pytest.raises(DataError, match=r"leaves expression 'neutral' without a label \(143 "):
        dm(tmp_path, 0.002)
    with pytest.raises(DataError, match=r"labeled_fraction=0 must be in \(0, 1\]"):
        FERDataModule(labeled_fraction=0)


@pytest.mark.parametrize("family", ["gan", "cnn"])
def test_runs_at_a_low_fraction_record_their_labels(tmp_path, family):
    res = fer_bench(tmp_path, f"+model={family}", *TINY, "data.labeled_fraction=0.1")
    assert res.returncode == 0, res.stderr[-2000:]
    (path,) = (tmp_path / "experiments" / "runs").rglob("results.json")
    r = json.loads(path.read_text())
    labeled = r["data"]["labeled"]
    assert labeled["fraction"] == 0.1 and labeled["faces"] == 20  # 10% of 200, per class
    assert r["config"]["data"]["labeled_fraction"] == 0.1
    batches = 3  # TINY: three training batches of 50
    if family == "gan":  # every face, labelled or not
        assert r["images_seen"] == batches * 50
    else:  # the 20 labelled faces: one short batch an epoch
        assert r["images_seen"] == 20 and r["epochs_completed"] == 1.0


def test_runs_recorded_before_labeled_fraction_existed_still_resume():
    recorded = {"data": {"name": "fer2013"}, "seed": 0}
    assert config_differences(recorded, {"data": {"name": "fer2013", "labeled_fraction": 1.0},
                                         "seed": 0}) == []
    assert config_differences(recorded, {"data": {"name": "fer2013", "labeled_fraction": 0.05},
                                         "seed": 0}) == [
        "data.labeled_fraction: 1.0 -> 0.05"]
