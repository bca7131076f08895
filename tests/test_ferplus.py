"""FER+ votes to labels: the authors' majority rule and plurality, against the counts the data
set's README states, and named errors for bad label files."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from fer_bench.classes import canonical
from fer_bench.data.errors import DataError
from fer_bench.data.ferplus import label, list_ferplus
from tests.conftest import REPO

FERPLUS_ROOT = REPO.parent / "shared" / "datasets" / "ferplus"
needs_ferplus = pytest.mark.skipif(not (FERPLUS_ROOT / "README.md").is_file(),
                                   reason="FER+ is not beside the repository")


def readme_majority_table() -> dict[str, dict[str, int]]:
    """{split: {class: count}} from the README's majority table."""
    text = (FERPLUS_ROOT / "README.md").read_text()
    out = {"train": {}, "val": {}, "test": {}}
    for m in re.finditer(r"^\| (\w+)\s*\|\s*([\d,]+) \|\s*([\d,]+) \|\s*([\d,]+) \|$", text, re.M):
        for split, n in zip(out, m.groups()[1:]):
            out[split][canonical(m.group(1))] = int(n.replace(",", ""))
    return out


@needs_ferplus
def test_majority_rule_keeps_the_faces_and_classes_the_readme_states():
    listing, counts, soft = list_ferplus(FERPLUS_ROOT, "majority")
    assert soft == {}
    expected = readme_majority_table()
    assert len(expected["train"]) == 8  # the eight expressions, contempt included
    assert counts["kept"] == expected
    assert {s: sum(v.values()) for s, v in counts["kept"].items()} == {
        "train": 25045, "val": 3191, "test": 3137}
    assert len(listing.entries) == 25045 + 3191 + 3137
    assert counts["unlisted_png"] == {"train": 0, "val": 0, "test": 0}


@needs_ferplus
def test_plurality_rule_keeps_what_the_readme_states():
    _, counts, _ = list_ferplus(FERPLUS_ROOT, "plurality")
    text = (FERPLUS_ROOT / "README.md").read_text()
    stated = re.search(r"keeps\s+([\d,]+) / ([\d,]+) / ([\d,]+)\.\)", text).groups()
    assert [sum(counts["kept"][s].values()) for s in ("train", "val", "test")] == [
        int(n.replace(",", "")) for n in stated]


def test_the_rules_on_single_rows():
    votes = np.array  # neutral happiness surprise sadness anger disgust fear contempt unknown NF
    assert label(votes([0, 0, 0, 0, 2, 1, 0, 7, 0, 0]), "majority") == 7  # contempt
    assert label(votes([2, 0, 0, 6, 0, 0, 0, 0, 2, 0]), "majority") == 3  # 6 of 10 > half
    assert label(votes([3, 0, 0, 5, 0, 0, 0, 0, 2, 0]), "majority") is None  # 5 of 10 is not
    assert label(votes([4, 0, 0, 4, 0, 0, 0, 0, 2, 0]), "majority") is None  # no majority
    assert label(votes([5, 1, 1, 1, 1, 1, 0, 0, 0, 0]), "majority") == 0  # single votes dropped
    assert label(votes([0, 0, 0, 0, 0, 0, 0, 0, 9, 1]), "majority") is None  # unknown wins
    assert label(votes([4, 0, 0, 3, 0, 0, 0, 0, 3, 0]), "plurality") == 0
    assert label(votes([3, 0, 0, 3, 0, 0, 0, 0, 4, 0]), "plurality") is None
    assert label(votes([3, 0, 0, 0, 0, 0, 0, 0, 3, 4]), "plurality") is None
    with pytest.raises(DataError, match="label_mode"):
        label(votes([1] * 10), "votes")


def tiny_ferplus(root, rows=None):
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        (root / folder).mkdir(parents=True)
        lines = rows or ['a.png,"(0, 0, 48, 48)",6,2,0,0,0,0,0,0,2,0',
                         'b.png,"(0, 0, 48, 48)",0,9,1,0,0,0,0,0,0,0']
        for line in lines:
            name = line.split(",")[0]
            Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / folder / name)
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_bad_label_files_get_named_errors(tmp_path):
    root = tiny_ferplus(tmp_path / "ok")
    _, counts, _ = list_ferplus(root)
    assert counts["kept"]["train"] == {"neutral": 1, "happy": 1}
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "FER2013Test" / "stray.png")
    assert list_ferplus(root)[1]["unlisted_png"]["test"] == 1  # counted, not dropped silently

    (root / "FER2013Valid" / "b.png").unlink()
    with pytest.raises(DataError, match=r"FER2013Valid/label.csv lists 1 image\(s\) absent"):
        list_ferplus(root)
    (root / "FER2013Valid" / "label.csv").unlink()
    with pytest.raises(DataError, match="FER2013Valid/label.csv is missing"):
        list_ferplus(root)
    bad = tiny_ferplus(tmp_path / "bad", ['a.png,"(0, 0, 48, 48)",6,2,x,0,0,0,0,0,2,0'])
    with pytest.raises(DataError, match="label.csv, row 1: expected"):
        list_ferplus(bad)
    zero = tiny_ferplus(tmp_path / "zero", ['a.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,0,0'])
    with pytest.raises(DataError, match="summing to a positive count"):
        list_ferplus(zero)
    with pytest.raises(DataError, match="lacks FER2013Train/"):
        list_ferplus(tmp_path)


@needs_ferplus
def test_probability_mode_trains_on_votes_and_evaluates_on_majority_labels():
    listing, counts, soft = list_ferplus(FERPLUS_ROOT, "probability")
    kept = {s: sum(v.values()) for s, v in counts["kept"].items()}
    assert kept == {"train": 28150, "val": 3191, "test": 3137}  # plurality / majority / majority
    assert len(soft) == 28150 and all(rel.startswith("FER2013Train/") for rel in soft)
    target = next(iter(soft.values()))
    assert target.shape == (8,) and abs(target.sum() - 1) < 1e-6
    # the README: "a single vote agrees with the plurality label 74.4% of the time on average"
    _, plurality, _ = list_ferplus(FERPLUS_ROOT, "plurality")
    assert round(100 * plurality["single_rater_agreement"]["test"], 1) == 74.4


def test_supervised_loss_takes_ids_soft_targets_and_unlabelled_rows():
    import torch
    import torch.nn.functional as F

    from fer_bench.models.base import FERModule

    logits = torch.randn(4, 3, requires_grad=True)
    ids = torch.tensor([0, 2, -1, 1])
    assert torch.allclose(FERModule.supervised_loss(logits, ids),
                          F.cross_entropy(logits[[0, 1, 3]], ids[[0, 1, 3]]))
    soft = torch.tensor([[1, 0, 0], [0.2, 0.3, 0.5], [0, 0, 0], [0, 1, 0]], dtype=torch.float32)
    expected = -(soft[[0, 1, 3]] * F.log_softmax(logits[[0, 1, 3]], 1)).sum(1).mean()
    assert torch.allclose(FERModule.supervised_loss(logits, soft), expected)
    # the GAN's K + 1 logits: the soft target puts nothing on "fake"
    gan_logits = torch.randn(4, 4)
    expected = -(soft[[0, 1, 3]] * F.log_softmax(gan_logits[[0, 1, 3]], 1)[:, :3]).sum(1).mean()
    assert torch.allclose(FERModule.supervised_loss(gan_logits, soft), expected)
    assert FERModule.supervised_loss(logits, torch.full((4,), -1)) == 0


def voted_ferplus(root, per_split=15):
    """A small FER+ folder: synthetic faces of three expressions, votes split 7/3 between the
    face's expression and another, so every rule keeps them and soft targets differ."""
    from fer_bench.data.synthetic import generate

    columns = {"neutral": 0, "happy": 1, "sad": 3}
    for f, folder in enumerate(("FER2013Train", "FER2013Valid", "FER2013Test")):
        (root / folder).mkdir(parents=True)
        images, labels = generate(list(columns), per_split, seed=f)
        lines = []
        for i, (im, y) in enumerate(zip(images, labels)):
            votes = [0] * 10
            votes[list(columns.values())[y]] = 7
            votes[list(columns.values())[(y + 1) % 3]] = 3
            Image.fromarray(im).save(root / folder / f"fer{i:07d}.png")
            lines.append(f'fer{i:07d}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_the_datamodule_gives_soft_training_targets_and_hard_evaluation_labels(tmp_path):
    from fer_bench.data import FERDataModule

    dm = FERDataModule(name="ferplus", source="ferplus", root=str(voted_ferplus(tmp_path / "fp")),
                       label_mode="probability", cache_dir=str(tmp_path / "cache"))
    dm.setup()
    assert dm.class_names == ["happy", "sad", "neutral"] and dm.soft_targets
    y_train = dm.tensors["train"].tensors[1]
    assert y_train.shape == (15, 3) and np.allclose(y_train.sum(1), 1)
    assert sorted(set(np.round(y_train.max(1).values.numpy(), 2))) == [0.7]
    assert dm.tensors["val"].tensors[1].dtype.is_floating_point is False
    assert dm.info["label_counts"]["label_mode"] == "probability"
    assert dm.info["label_counts"]["single_rater_agreement"]["test"] == 0.7


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cnn", "gan", "lstm", "resnet"])
def test_every_family_trains_on_soft_targets(tmp_path, family):
    import json

    from tests.test_cli import TINY, fer_bench

    root = voted_ferplus(tmp_path / "fp", per_split=60)
    res = fer_bench(tmp_path, f"+model={family}", *TINY, "data=ferplus", f"data.root={root}",
                    "data.label_mode=probability")
    assert res.returncode == 0, res.stderr[-2000:]
    (path,) = (tmp_path / "experiments" / "runs").rglob("results.json")
    r = json.loads(path.read_text())
    assert r["data"]["label_counts"]["label_mode"] == "probability"
    assert r["config"]["data"]["label_mode"] == "probability" and r["status"] == "ok"
    assert len(r["predictions"]["target"]) == 60  # evaluated on hard (majority) labels


def voted_run(model: str, seed: int, mode: str, agreement: float) -> dict:
    return {"model": model, "seed": seed, "data": {"label_counts": {
        "label_mode": mode, "single_rater_agreement": {"test": agreement}}}}


def test_reports_quote_how_often_one_rater_agrees_with_the_tested_label():
    from fer_bench.report.records import rater_sentence

    (text, _) = rater_sentence([voted_run("cnn", 0, "majority", 0.8123)])
    assert "`data.label_mode=majority`" in text and "81.2% of the time" in text
    assert rater_sentence([{"model": "cnn", "seed": 0, "data": {}}]) == []


def test_reports_name_the_label_mode_of_each_column():
    from fer_bench.report.records import rater_sentence

    runs = [voted_run("cnn", 0, "majority", 0.786), voted_run("gan", 0, "probability", 0.786)]
    (text, _) = rater_sentence(runs)
    assert "CNN `majority`, GAN `probability`" in text and "78.6% of the time" in text
    # plurality labels more test faces, so one rater's agreement differs: both are quoted
    (text, _) = rater_sentence([*runs, voted_run("lstm", 0, "plurality", 0.744)])
    assert "78.6% (`majority` test labels)" in text and "74.4% (`plurality` test labels)" in text


def test_a_family_trained_under_two_label_modes_is_not_pooled(tmp_path, capsys):
    import json

    from fer_bench.report.__main__ import main
    from fer_bench.report.records import MixedRunsError, label_modes
    from tests.conftest import REPO

    with pytest.raises(MixedRunsError, match="'majority': \\[0, 2\\], 'probability': \\[1\\]"):
        label_modes([voted_run("cnn", 0, "majority", 0.8), voted_run("cnn", 1, "probability", 0.8),
                     voted_run("cnn", 2, "majority", 0.8)])
    # the command line names the field and what to do, on real records
    record = json.loads((REPO / "experiments/results/ferplus/ferplus_lstm_seed0.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(record))
    record["seed"], record["data"]["label_counts"]["label_mode"] = 1, "probability"
    (tmp_path / "b.json").write_text(json.dumps(record))
    assert main([str(tmp_path), "--out", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err
    assert "data.label_mode" in err and "report.name=ferplus_probability" in err
