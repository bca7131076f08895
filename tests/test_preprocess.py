"""Face alignment, normalisation, the ten views, and predict on ordinary photographs."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fer_bench.data.align import FaceAligner
from fer_bench.data.normalize import METHODS, normalize
from fer_bench.data.synthetic import generate
from fer_bench.data.views import center_view, crop_offsets, random_views, ten_views
from tests.conftest import FER2013_ROOT, make_module

# A FER2013 face the frontal-face cascade finds when pasted into a scene.
FER_FACE = FER2013_ROOT / "test" / "angry" / "PrivateTest_4129990.jpg"


def a_face() -> np.ndarray:
    if FER_FACE.is_file():
        return np.asarray(Image.open(FER_FACE).convert("L"))
    images, _ = generate(["happy", "neutral", "sad"], 30, 0)
    return images[0]  # this synthetic face is detected too


def scene(face: np.ndarray, at=(200, 100), side=160, size=(480, 360), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 190, size[0])[None, :] + rng.normal(0, 4, (size[1], size[0]))
    bg = Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8))  # a lit wall, sensor noise
    bg.paste(Image.fromarray(face).resize((side, side), Image.BICUBIC), at)
    return bg


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_face_pasted_into_a_scene_is_found():
    boxes = FaceAligner().detect(np.asarray(scene(a_face())))
    assert boxes, "no face found"
    assert iou(boxes[0], (200, 100, 160, 160)) >= 0.5


def test_no_face_gives_none_or_the_centre():
    blank = np.full((200, 300), 127, np.uint8)
    assert FaceAligner(fallback="none").align(blank, 48) == (None, None)
    face, box = FaceAligner(fallback="center").align(blank, 48)
    assert face.shape == (48, 48) and box is None


@pytest.mark.parametrize("method", METHODS)
def test_predict_normalises_as_the_checkpoint_says(method, tmp_path):
    """The predictor, built from a checkpoint, feeds the model the tensor training fed it."""
    from fer_bench.data import FERDataModule
    from fer_bench.predict import Predictor, load_model

    dm = FERDataModule(synthetic_sizes={"train": 10, "val": 5, "test": 5}, normalization=method,
                       cache_dir=str(tmp_path))
    dm.setup()
    model = make_module("cnn", dm.class_names, normalization=method).eval()
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "fer_bench": {
        "family": "cnn", "hparams": dict(model.hparams)}}, path)
    predictor = Predictor(load_model(path), FaceAligner(), tta=False)
    face = dm.splits["test"]["images"][0]
    trained_on = dm.tensors["test"].tensors[0][:1]
    assert np.allclose(predictor.probabilities([face]),
                       model.probabilities(trained_on).numpy(), atol=1e-6)
    if method != "none":  # another normalisation would give other probabilities
        predictor.normalization = "none"
        assert not np.allclose(predictor.probabilities([face]),
                               model.probabilities(trained_on).numpy(), atol=1e-6)
    out = normalize(face, method)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_ten_views_are_five_crops_and_their_mirrors():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).view(2, 1, 48, 48)
    views = ten_views(x, 44)
    assert views.shape == (10, 2, 1, 44, 44)
    assert torch.equal(views[4], center_view(x, 44))
    assert torch.equal(views[5:], views[:5].flip(-1))
    assert crop_offsets(48, 44) == [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
    assert random_views(x, 44).shape == (2, 1, 44, 44)


def test_ten_view_average_is_the_mean_of_the_ten_softmaxes():
    torch.manual_seed(0)
    model = make_module("cnn", list("abcde")).eval()
    x = torch.randn(3, 1, 48, 48)
    expected = torch.stack([F.softmax(model(v), -1) for v in ten_views(x, 44)]).mean(0)
    assert torch.allclose(model.probabilities(x, tta=True), expected, atol=1e-6)
    assert torch.allclose(model.probabilities(x, tta=False), F.softmax(model(x[..., 2:46, 2:46]),
                                                                      -1))


def test_predict_end_to_end_on_photographs(trained_ckpt, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    scene(a_face()).convert("RGB").save(photos / "one_face.jpg")
    two = scene(a_face(), at=(20, 100))
    two.paste(scene(a_face(), seed=1).crop((200, 100, 360, 260)), (300, 100))
    two.save(photos / "two_faces.png")
    rotated = scene(a_face()).convert("RGB").rotate(90, expand=True)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to view
    rotated.save(photos / "sideways.jpg", exif=exif)
    Image.new("L", (320, 240), 128).save(photos / "wall.png")
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "fer_bench.predict", f"ckpt={trained_ckpt}", f"input={photos}",
         f"out={out}", "annotate=true"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    by_file = {}
    for r in rows:
        by_file.setdefault(r["file"].rsplit("/", 1)[-1], []).append(r)
    classes = ["angry", "sad", "happy", "fear", "neutral"]
    faces = [r for r in rows if r["label"] in classes]
    for r in faces:
        assert sum(float(r[f"p_{c}"]) for c in classes) == pytest.approx(1.0, abs=1e-4)
        assert r["label"] == max(classes, key=lambda c: float(r[f"p_{c}"]))
    assert len(by_file["one_face.jpg"]) == 1 and by_file["one_face.jpg"][0]["x"] != ""
    assert len(by_file["two_faces.png"]) == 2
    assert by_file["sideways.jpg"][0]["label"] in classes  # EXIF-rotated upright, then found
    assert [r["label"] for r in by_file["wall.png"]] == ["no_face"]
    assert by_file["wall.png"][0]["x"] == ""
    assert by_file["corrupt.jpg"][0]["label"] == "error"
    assert "not a decodable image" in by_file["corrupt.jpg"][0]["error"]
    assert (out / "annotated" / "two_faces.png").stat().st_size > 0


def test_predict_refuses_what_is_not_a_fer_bench_checkpoint(tmp_path):
    from fer_bench.predict import load_model

    bogus = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, bogus)
    with pytest.raises(ValueError, match="not a fer_bench checkpoint"):
        load_model(bogus)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"fer_bench": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_model(tmp_path / "evil.ckpt")


@pytest.mark.parametrize("where", ["net", "optimizer", "nested"])
def test_predict_builds_nothing_a_checkpoint_names_but_fer_bench_parts(tmp_path, where):
    """Plain data can still name a callable (`_target_`): only registered parts are built."""
    from fer_bench.predict import load_model

    model = make_module("cnn", list("abcde"))
    hparams = dict(model.hparams)
    if where == "net":
        hparams["net"] = {**hparams["net"], "_target_": "os.system"}
    elif where == "optimizer":
        hparams["optimizer"] = {"_target_": "os.system", "command": "echo pwned"}
    else:
        hparams["net"] = {**hparams["net"], "fc": {"_target_": "os.system", "command": "x"}}
    path = tmp_path / f"{where}.ckpt"
    torch.save({"state_dict": model.state_dict(),
                "fer_bench": {"family": "cnn", "hparams": hparams}}, path)
    with pytest.raises(ValueError, match="refusing"):
        load_model(path)


def test_aligned_data_set_leaves_out_photos_without_a_face(tmp_path):
    """data.align: faces are found and cropped in photographs; a faceless photo never stops it."""
    from fer_bench.data import FERDataModule

    root = tmp_path / "photos"
    for split in ("train", "val", "test"):
        for cls in ("happy", "sad"):
            (root / split / cls).mkdir(parents=True)
            scene(a_face()).save(root / split / cls / "face.png")
    Image.new("L", (320, 240), 128).save(root / "train" / "sad" / "wall.png")
    dm = FERDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "c"),
                       align={"enabled": True, "fallback": "none"})
    dm.setup()
    assert dm.info["sizes"] == {"train": 2, "val": 2, "test": 2}
    expected = FaceAligner().crop(np.asarray(scene(a_face())), FaceAligner().detect(
        np.asarray(scene(a_face())))[0], 48)
    assert np.array_equal(dm.splits["test"]["images"][0], expected)
