"""The shared datamodule on synthetic data, image folders and fer2013.csv, and bad input."""

from __future__ import annotations

import os

import hydra
import numpy as np
import pytest
import torch

from fer_bench.classes import canonical
from fer_bench.data import DataError, FERDataModule
from fer_bench.data.sources import list_fer2013_folders
from tests.conftest import FER2013_ROOT, write_faces, write_fer_csv


def dm_for(tmp_path, **kw) -> FERDataModule:
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    return FERDataModule(**kw)


def test_synthetic_default_composes_and_loads(compose_cfg):
    cfg = compose_cfg("debug=fast")
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    assert dm.class_names == ["angry", "sad", "happy", "fear", "neutral"]
    assert dm.info["sizes"] == {"train": 200, "val": 100, "test": 100}
    x, y = dm.tensors["train"].tensors
    assert x.shape == (200, 1, 48, 48) and x.dtype == torch.float32
    assert set(y.tolist()) == set(range(5))
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 50  # the paper's batch size


def test_synthetic_is_deterministic_and_cached(tmp_path):
    sizes = {"train": 30, "val": 10, "test": 10}
    a = dm_for(tmp_path, synthetic_sizes=sizes, seed=3)
    a.setup()
    b = dm_for(tmp_path, synthetic_sizes=sizes, seed=3)
    b.setup()
    assert not a.info["cache"]["hit"] and b.info["cache"]["hit"]
    assert np.array_equal(a.splits["train"]["images"], b.splits["train"]["images"])
    c = dm_for(tmp_path / "other", synthetic_sizes=sizes, seed=4)
    c.setup()
    assert not np.array_equal(a.splits["train"]["images"], c.splits["train"]["images"])


def test_folder_with_splits_and_synonyms(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_faces(root / split, ["Anger", "happiness", "calm"], 3)
    dm = dm_for(tmp_path, name="mine", source="folder", root=str(root))
    dm.setup()
    assert dm.class_names == ["angry", "happy", "neutral"]  # canonical names, FER2013 order
    assert dm.info["sizes"] == {"train": 9, "val": 9, "test": 9}


def test_folder_without_splits_is_split_stratified_and_recorded(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ["smirk", "glare"], 20)  # names the harness has never seen
    dm = dm_for(tmp_path, name="mine", source="folder", root=str(root),
                split_ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    dm.setup()
    assert dm.class_names == ["glare", "smirk"]
    assert dm.info["sizes"] == {"train": 24, "val": 8, "test": 8}
    for split in ("train", "val", "test"):
        counts = np.bincount(dm.splits[split]["labels"])
        assert counts[0] == counts[1]
    record = dm.split_record()
    assert len(record) == 40 and len({r["file"] for r in record}) == 40


def test_class_subset_and_order(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_faces(root / split, ["angry", "happy", "sad", "neutral"], 2)
    dm = dm_for(tmp_path, source="folder", root=str(root), classes=["calm", "sadness", "angry"])
    dm.setup()
    assert dm.class_names == ["neutral", "sad", "angry"]
    assert dm.info["sizes"]["train"] == 6


def test_fer2013_csv(tmp_path):
    path = write_fer_csv(tmp_path / "fer2013.csv", rows_per_usage=7)
    dm = dm_for(tmp_path, name="fer2013", source="fer2013", root=str(path))
    dm.setup()
    assert dm.info["sizes"] == {"train": 7, "val": 7, "test": 7}
    assert dm.class_names[0] == "angry" and len(dm.class_names) == 7
    five = dm_for(tmp_path, name="fer5", source="fer2013", root=str(path),
                  classes=["anger", "sadness", "happiness", "afraid", "calm"])
    five.setup()
    assert five.class_names == ["angry", "sad", "happy", "fear", "neutral"]
    assert five.info["sizes"]["train"] == 5  # label ids 1 (disgust) and 5 (surprise) dropped


def test_changed_source_is_never_served_stale(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_faces(root / split, ["happy", "sad"], 2)
    first = dm_for(tmp_path, source="folder", root=str(root))
    first.setup()
    target = root / "train" / "happy" / "img_0.png"
    write_faces(tmp_path / "other", ["happy"], 1, seed=9)
    os.replace(tmp_path / "other" / "happy" / "img_0.png", target)
    second = dm_for(tmp_path, source="folder", root=str(root))
    second.setup()
    assert not second.info["cache"]["hit"]
    again = dm_for(tmp_path, source="folder", root=str(root))
    again.setup()
    assert again.info["cache"]["hit"]
    assert np.array_equal(second.splits["train"]["images"], again.splits["train"]["images"])


def test_leakage_counts_both_definitions(tmp_path):
    """A test face identical to a training face of a class left out of data.classes counts only
    against any training face."""
    root = tmp_path / "faces"
    write_faces(root / "train", ["happy", "sad", "angry"], 3)
    write_faces(root / "val", ["happy", "sad", "angry"], 3, seed=20)
    write_faces(root / "test", ["happy", "sad"], 3, seed=40)
    (root / "test" / "sad" / "img_0.png").write_bytes(
        (root / "train" / "angry" / "img_0.png").read_bytes())
    dm = dm_for(tmp_path, source="folder", root=str(root), classes=["happy", "sad"])
    dm.setup()
    assert dm.test_duplicates().sum() == 0
    assert dm.test_duplicates(any_class=True).sum() == 1


@pytest.mark.parametrize("classes", [["joy"], ["joy", "happiness"], []])
def test_fewer_than_two_classes_is_a_data_error_before_anything_is_built(classes, tmp_path):
    with pytest.raises(DataError, match="at least two|twice"):
        dm_for(tmp_path, classes=classes)


def test_fewer_than_two_classes_from_the_command_line_is_named(compose_cfg):
    from fer_bench.train import build

    cfg = compose_cfg("+model=cnn", "debug=fast", "data.classes=[joy]")
    with pytest.raises(Exception, match="data.classes=\\['joy'\\].*at least two"):
        build(cfg)


def test_duplicates_across_splits_are_counted(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_faces(root / split, ["happy", "sad"], 3)  # same seed: test == train pixels
    dm = dm_for(tmp_path, source="folder", root=str(root))
    dm.setup()
    assert dm.test_duplicates().all() and dm.info["test_duplicates_of_train"] == 6


# ------------------------------------------------------------------ bad input
def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        dm_for(tmp_path, source="folder", root=str(tmp_path / "nope")).setup()


def test_empty_class_folder(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ["happy"], 3)
    (root / "sad").mkdir()
    with pytest.raises(DataError, match=r"sad holds no images"):
        dm_for(tmp_path, source="folder", root=str(root)).setup()


def test_undecodable_image_is_named(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ["happy", "sad"], 5)
    bad = root / "sad" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"broken\.jpg is not a decodable image"):
        dm_for(tmp_path, source="folder", root=str(root)).setup()


def test_csv_row_with_wrong_pixel_count(tmp_path):
    path = write_fer_csv(tmp_path / "fer2013.csv")
    path.write_text(path.read_text() + "3,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"row 20: expected 2304 pixel values"):
        dm_for(tmp_path, source="fer2013", root=str(path)).setup()


def test_csv_unknown_label_id(tmp_path):
    path = write_fer_csv(tmp_path / "fer2013.csv")
    path.write_text(path.read_text() + "9," + " ".join(["0"] * 2304) + ",Training\n")
    with pytest.raises(DataError, match=r"row 20: emotion '9' is not a label id"):
        dm_for(tmp_path, source="fer2013", root=str(path)).setup()


def test_class_the_data_lacks(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ["happy", "sad"], 5)
    with pytest.raises(DataError, match=r"data.classes names \['surprise'\]"):
        dm_for(tmp_path, source="folder", root=str(root), classes=["happy", "surprise"]).setup()


def test_split_with_no_images(tmp_path):
    root = tmp_path / "faces"
    write_faces(root / "train", ["happy", "sad"], 3)
    write_faces(root / "test", ["happy", "sad"], 3)
    with pytest.raises(DataError, match=r"split 'val'.*has no images"):
        dm_for(tmp_path, source="folder", root=str(root)).setup()


def test_unknown_names_keep_their_own_spelling():
    assert canonical("Sadness") == "sad" and canonical("afraid") == "fear"
    assert canonical("Smirk") == "Smirk"


# ------------------------------------------------------------------ real FER2013
needs_fer2013 = pytest.mark.skipif(not FER2013_ROOT.is_dir(),
                                   reason=f"FER2013 is not at {FER2013_ROOT}")


@needs_fer2013
def test_fer2013_official_split_sizes_from_listing():
    entries = list_fer2013_folders(FER2013_ROOT).entries
    counts = {s: sum(1 for e in entries if e[2] == s) for s in ("train", "val", "test")}
    assert counts == {"train": 28709, "val": 3589, "test": 3589}


@pytest.mark.slow
@needs_fer2013
def test_fer2013_decodes_with_official_splits(tmp_path):
    dm = dm_for(tmp_path, name="fer2013", source="fer2013", root=str(FER2013_ROOT))
    dm.setup()
    assert dm.info["sizes"] == {"train": 28709, "val": 3589, "test": 3589}
    assert dm.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert np.bincount(dm.splits["test"]["labels"]).tolist() == [491, 55, 528, 879, 594, 416, 626]
    assert dm.info["test_duplicates_of_train"] == 288  # FER2013's known cross-split duplicates
    assert dm.test_duplicates(any_class=True).sum() == 288  # all classes: the same training set
