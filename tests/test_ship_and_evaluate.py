"""Shipped models (fer_bench.ship, predict without ckpt=) and evaluating a checkpoint on another
data set (fer_bench.evaluate), through the real command lines."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from fer_bench.classes import FER2013_CLASSES
from fer_bench.predict import load_model
from fer_bench.ship import DEFAULT_MODEL, MAX_BYTES, SHIPPED_DIR, choose, resolve, shipped_names
from fer_bench.ship import main as ship_main
from tests.conftest import FER2013_ROOT, REPO, write_faces


def run(module: str, *args: str, ok: bool = True, cwd=None) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         timeout=900, cwd=cwd)
    if ok:
        assert res.returncode == 0, res.stderr[-2000:]
    return res


def test_ship_exports_the_best_validation_run_with_its_model_card(trained_ckpt, tmp_path):
    results = trained_ckpt.parents[1] / "results.json"
    record = json.loads(results.read_text())
    out = tmp_path / "shipped"
    assert ship_main([str(results.parent), "--family", "cnn", "--out", str(out),
                      "--any-stop"]) == 0
    ckpt = out / f"{record['report_name']}_cnn.ckpt"
    assert 0 < ckpt.stat().st_size <= MAX_BYTES
    slim = torch.load(ckpt, weights_only=True)
    assert set(slim) == {"fer_bench", "state_dict"}  # no optimiser state, no progress
    model = load_model(resolve(ckpt.stem, folder=out))
    original = load_model(trained_ckpt)
    for k, v in original.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    card = ckpt.with_suffix(".md").read_text()
    assert f"**{100 * record['metrics']['acc']:.1f}%**" in card
    assert record["command"] in card and "--family cnn" in card
    assert f"among 1 finished run(s): seed {record['seed']}" in card
    for c in record["data"]["classes"]:
        assert c.capitalize() in card


def test_a_shipped_gan_leaves_its_generator_out_and_classifies_as_trained(tmp_path):
    """The GAN's generator is used in training only: the shipped file leaves it out (and says
    so), and the loaded discriminator is the trained one, weight for weight."""
    res = subprocess.run([sys.executable, "-m", "fer_bench", "+model=gan", "debug=fast",
                          f"paths.root_dir={tmp_path}"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    trained = next(tmp_path.rglob("best.ckpt"))
    out = tmp_path / "shipped"
    assert ship_main([str(trained.parents[1]), "--family", "gan", "--out", str(out),
                      "--any-stop"]) == 0
    ckpt = next(out.glob("*_gan.ckpt"))
    slim = torch.load(ckpt, weights_only=True)
    assert slim["fer_bench"]["left_out"] == ["generator"]
    assert not [k for k in slim["state_dict"] if k.startswith("generator.")]
    model, original = load_model(ckpt), load_model(trained)
    for k, v in original.state_dict().items():
        if not k.startswith("generator."):
            assert torch.equal(model.state_dict()[k], v), k
    assert "without the generator" in ckpt.with_suffix(".md").read_text()
    # a file missing anything else is refused with a message, not loaded half-empty
    del slim["state_dict"][next(k for k in slim["state_dict"] if k.startswith("net."))]
    torch.save(slim, tmp_path / "broken.ckpt")
    with pytest.raises(ValueError, match="does not fit"):
        load_model(tmp_path / "broken.ckpt")


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_model_loads_safely_with_its_card(name):
    """Each committed model: at most 10 MB, weights_only, FER2013's seven classes, and a card
    whose PrivateTest figure is its training record's."""
    path = SHIPPED_DIR / f"{name}.ckpt"
    assert path.stat().st_size <= MAX_BYTES
    model = load_model(path)
    assert model.hparams.class_names == list(FER2013_CLASSES)
    card = path.with_suffix(".md").read_text()
    family = name.split("_", 1)[1]
    assert card.startswith(f"# Model card: {name}") and f"ckpt={name}" in card
    record = re.search(r"Trained by: `python -m fer_bench \+model=(\w+) seed=(\d+) "
                       r"experiment=(\w+)[^`]*`", card)  # other overrides may follow
    assert record and record.group(1) == family
    results = json.loads((REPO / "experiments" / "results" / record.group(3) /
                          f"{record.group(3)}_{family}_seed{record.group(2)}.json").read_text())
    assert f"**{100 * results['metrics']['acc']:.1f}%**" in card


def test_ship_takes_converged_runs_only_and_chooses_on_validation():
    runs = [{"model": "cnn", "seed": 0, "best_val_acc": 0.70, "stopped_by": "max_time"},
            {"model": "cnn", "seed": 1, "best_val_acc": 0.65, "stopped_by": "early_stopping",
             "metrics": {"acc": 0.99}},
            {"model": "cnn", "seed": 2, "best_val_acc": 0.66, "stopped_by": "early_stopping",
             "metrics": {"acc": 0.10}}]
    assert choose(runs, "cnn")["seed"] == 2  # best PublicTest, whatever the test said
    assert choose(runs, "cnn", converged_only=False)["seed"] == 0
    with pytest.raises(ValueError, match="early stopping"):
        choose(runs[:1], "cnn")
    with pytest.raises(FileNotFoundError, match="shipped model"):
        resolve("no_such_model")


def test_without_ckpt_predict_uses_the_shipped_cnn_and_it_recognises_real_faces(tmp_path):
    """The shipped FER2013 CNN, as a fresh clone has it: loads with weights_only=True, is what
    predict uses without ckpt= (and ckpt=cnn names), and recognises real PrivateTest faces of
    the two expressions FER2013 models recognise best far above chance (1/7)."""
    shipped = resolve(None)
    assert shipped == resolve("cnn") == SHIPPED_DIR / f"{DEFAULT_MODEL}.ckpt"
    assert shipped.stat().st_size <= MAX_BYTES
    assert shipped.with_suffix(".md").read_text().startswith(f"# Model card: {DEFAULT_MODEL}")
    assert load_model(shipped).hparams.class_names == list(FER2013_CLASSES)
    photos = tmp_path / "photos"
    photos.mkdir()
    for expression in ("happy", "surprise"):
        for face in sorted((FER2013_ROOT / "test" / expression).glob("*.jpg"))[:20]:
            shutil.copy(face, photos / f"{expression}_{face.name}")
    run("fer_bench.predict", f"input={photos}", f"out={tmp_path / 'out'}", "align.fallback=center")
    rows = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert rows["file"].nunique() == 40 and set(rows["label"]) <= set(FER2013_CLASSES)
    probabilities = rows[[f"p_{c}" for c in FER2013_CLASSES]].sum(axis=1)
    assert probabilities.round(4).eq(1).all()
    truth = rows["file"].map(lambda f: Path(f).name.split("_")[0])
    assert (rows["label"] == truth).mean() >= 0.6


def test_evaluate_matches_synonyms_and_counts_what_it_leaves_out(trained_ckpt, tmp_path):
    """A folder data set in other words (anger, happiness), one expression the model does not
    know (contempt) and three it knows missing (sad, fear, neutral)."""
    photos = tmp_path / "other_set"
    write_faces(photos, ["happiness", "anger", "contempt"], per_class=6)
    out = tmp_path / "eval"
    run("fer_bench.evaluate", f"ckpt={trained_ckpt}", "data=folder", f"data.root={photos}",
        "split=all", f"out={out}", f"paths.root_dir={tmp_path}")
    r = json.loads((out / "results.json").read_text())
    d = r["data"]
    assert d["faces"] == 18 and d["evaluated"] == 12
    assert d["left_out_per_class"] == {"contempt": 6}
    assert d["evaluated_per_class"] == {"angry": 6, "happy": 6}
    assert d["model_classes_absent"] == ["sad", "fear", "neutral"]
    classes = r["model_classes"]
    assert [classes[t] for t in r["predictions"]["target"]].count("happy") == 6
    assert all(f.split("/")[0] in ("happiness", "anger") for f in r["predictions"]["files"])
    correct = [p == t for p, t in zip(r["predictions"]["pred"], r["predictions"]["target"])]
    assert r["metrics"]["acc"] == pytest.approx(sum(correct) / 12)
    assert r["metrics"]["acc_ci_low"] <= r["metrics"]["acc"] <= r["metrics"]["acc_ci_high"]
    assert sum(map(sum, r["confusion"])) == 12 and "metrics_tta" in r
    report = (out / "report.md").read_text()
    assert "contempt 6" in report and r["command"] in report
    assert (out / "confusion.png").stat().st_size > 0


def test_evaluate_says_when_the_data_set_shares_no_expression(trained_ckpt, tmp_path):
    photos = tmp_path / "odd"
    write_faces(photos, ["contempt", "boredom"], per_class=2)
    res = run("fer_bench.evaluate", f"ckpt={trained_ckpt}", "data=folder", f"data.root={photos}",
              "split=all", f"out={tmp_path / 'e'}", f"paths.root_dir={tmp_path}", ok=False)
    assert res.returncode == 2 and "none of the model's expressions" in res.stderr


def test_a_photo_folder_without_faces_cut_out_is_aligned_first(trained_ckpt, tmp_path):
    """data.align.enabled=true: uncropped photographs go through face detection first."""
    from tests.test_preprocess import a_face, scene

    for cls, n in (("happy", 2), ("sad", 1)):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(n):
            scene(a_face(), seed=i).save(tmp_path / "photos" / cls / f"{i}.png")
    Image.new("L", (64, 64), 0).save(tmp_path / "photos" / "sad" / "blank.png")
    out = tmp_path / "eval"
    run("fer_bench.evaluate", f"ckpt={trained_ckpt}", "data=folder",
        f"data.root={tmp_path / 'photos'}", "split=all", "data.align.enabled=true",
        "data.align.fallback=none", f"out={out}", f"paths.root_dir={tmp_path}")
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["evaluated"] == 3  # the blank photo has no face: left out by alignment
    assert r["data"]["align"]["enabled"] is True


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.parent.name for p in (REPO / "reports" / "evaluations")
                                        .glob("*/results.json")))
def test_committed_evaluations_regenerate(name, tmp_path):
    """reports/evaluations/<name>/ is what the command written in its report.md produces."""
    folder = REPO / "reports" / "evaluations" / name
    md = (folder / "report.md").read_text()
    command = re.search(r"^Regenerate: `python -m fer_bench\.evaluate(.*)`$", md, re.M).group(1)
    args = [a for a in shlex.split(command) if not a.startswith("out=")]
    run("fer_bench.evaluate", *args, f"out={tmp_path}", cwd=REPO)
    for csv_name in ("recognition_rates.csv",):
        assert (tmp_path / csv_name).read_bytes() == (folder / csv_name).read_bytes()
    old, new = (json.loads((f / "results.json").read_text()) for f in (folder, tmp_path))
    assert new["predictions"] == old["predictions"] and new["metrics"] == old["metrics"]
    assert new["checkpoint"]["sha256"] == old["checkpoint"]["sha256"]
