"""`python -m fer_bench.predict input=<image or folder> [ckpt=] [out=] [annotate=true]`.

Without ckpt= the shipped FER2013 CNN classifies (fer_bench/shipped/, its model card beside it);
ckpt= takes any fer_bench checkpoint or a shipped model's name.

Ordinary photographs in (JPEG/PNG, colour or gray, any size, several faces, EXIF-rotated);
`<out>/predictions.csv` out, one row per face: file, face index, box, label, p_<class>.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageOps
from tqdm.auto import tqdm

from fer_bench.config import CONFIG_PATH
from fer_bench.data.align import FaceAligner
from fer_bench.data.errors import DataError
from fer_bench.data.normalize import normalize
from fer_bench.data.sources import IMAGE_SUFFIXES, load_gray
from fer_bench.models import families, family
from fer_bench.models.base import FERModule
from fer_bench.models.registry import Family
from fer_bench.provenance import flush_subnormals
from fer_bench.ship import resolve


def load_model(path: str | Path) -> FERModule:
    """A fer_bench checkpoint, loaded with weights_only=True (nothing is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={path} does not exist; pass a run's checkpoints/best.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"ckpt={path} cannot be loaded safely (weights_only=True): {e}") from e
    meta = ckpt.get("fer_bench") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("family") not in families():
        raise ValueError(f"ckpt={path} is not a fer_bench checkpoint of a registered family "
                         f"({', '.join(families())}): no model metadata")
    fam = family(meta["family"])
    hparams = meta.get("hparams") or {}
    _check_targets(path, fam, hparams)
    model = fam.module_class()(**{**hparams, "compile": False})  # a few photos: no compiling
    # a shipped model may leave out submodules only training uses (the GAN's generator)
    prefixes = tuple(f"{name}." for name in meta.get("left_out") or ())
    keys = model.load_state_dict(ckpt["state_dict"], strict=False)
    missing = [k for k in keys.missing_keys if not (prefixes and k.startswith(prefixes))]
    if missing or keys.unexpected_keys:
        raise ValueError(f"ckpt={path} does not fit its family's {fam.name} network: missing "
                         f"{missing[:5]}, unexpected {keys.unexpected_keys[:5]}")
    return model.eval()


def _check_targets(path: Path, fam: Family, hparams: dict) -> None:
    """The checkpoint's configs name what gets built: only its family's registered network and
    fer_bench's or torch.optim's parts, never an arbitrary callable (no code runs from a
    checkpoint)."""
    net = hparams.get("net") if isinstance(hparams.get("net"), dict) else {}
    if net.get("_target_") != fam.network_target:
        raise ValueError(f"ckpt={path}: its network ({net.get('_target_')!r}) is not the "
                         f"registered network of family {fam.name!r}; refusing to build it")
    for where, target in _targets(hparams, "hparams"):
        if not isinstance(target, str) or not target.startswith(TRUSTED_PREFIXES):
            raise ValueError(f"ckpt={path}: {where} names {target!r}, which is neither "
                             "fer_bench's nor torch.optim's; refusing to load it")


TRUSTED_PREFIXES = ("fer_bench.models.components.", "torch.optim.")


def _targets(node, where: str):
    """(location, value) of every `_target_` in nested dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield where, value
            else:
                yield from _targets(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}[{i}]")


def image_files(input_path: str | Path) -> list[Path]:
    p = Path(input_path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"input={p} is neither an image file nor a folder")
    return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


class Predictor:
    def __init__(self, model: FERModule, aligner: FaceAligner, tta: bool = True):
        self.model, self.aligner, self.tta = model, aligner, tta
        h = model.hparams
        self.classes, self.size, self.normalization = h.class_names, h.image_size, h.normalization

    def faces(self, gray: np.ndarray) -> list[tuple[tuple | None, np.ndarray]]:
        """(box, size x size face) for every detected face; the centre as fallback if asked."""
        boxes = self.aligner.detect(gray)
        if boxes:
            return [(b, self.aligner.crop(gray, b, self.size)) for b in boxes]
        if self.aligner.fallback == "center":
            return [(None, self.aligner.center_crop(gray, self.size))]
        return []

    def probabilities(self, faces: list[np.ndarray]) -> np.ndarray:
        """The same normalisation as in training, then the model's class probabilities."""
        x = torch.from_numpy(normalize(np.stack(faces), self.normalization)).unsqueeze(1)
        return self.model.probabilities(x, tta=self.tta).numpy()

    def predict_file(self, path: Path) -> list[dict]:
        try:
            gray = load_gray(path)
        except DataError as e:
            return [{"file": str(path), "face": "", "label": "error", "error": str(e)}]
        found = self.faces(gray)
        if not found:
            return [{"file": str(path), "face": "", "label": "no_face", "error": ""}]
        probs = self.probabilities([f for _, f in found])
        rows = []
        for i, ((box, _), p) in enumerate(zip(found, probs)):
            x, y, w, h = box if box is not None else ("", "", "", "")
            rows.append({"file": str(path), "face": i, "x": x, "y": y, "w": w, "h": h,
                         "label": self.classes[int(p.argmax())], "error": "",
                         **{f"p_{c}": round(float(v), 6) for c, v in zip(self.classes, p)}})
        return rows


def annotate(path: Path, rows: list[dict], classes: list[str], out: Path) -> None:
    """A copy of the image with each face's box, label and a small probability bar chart."""
    with Image.open(path) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    d = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 300))
    for r in rows:
        if r.get("x", "") == "":
            continue
        x, y, w, h = r["x"], r["y"], r["w"], r["h"]
        d.rectangle([x, y, x + w, y + h], outline=(255, 60, 60), width=line)
        d.text((x, max(0, y - 12)), f"{r['label']} {r['p_' + r['label']]:.2f}", fill=(255, 60, 60))
        bar_h = max(3, h // (2 * len(classes)))
        for k, c in enumerate(classes):
            top = y + k * (bar_h + 1)
            d.rectangle([x + w + 3, top, x + w + 3 + int(w * 0.6 * r[f"p_{c}"]), top + bar_h],
                        fill=(60, 160, 255))
            if bar_h >= 8:
                d.text((x + w + 5, top - 1), c[:3], fill=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def predict(cfg: DictConfig) -> Path:
    flush_subnormals()  # a trained model's near-zero weights would slow every face 10-100x
    model = load_model(resolve(cfg.ckpt))
    predictor = Predictor(model, FaceAligner(**cfg.align), tta=cfg.tta)
    files = image_files(cfg.input)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(cfg.input) if Path(cfg.input).is_dir() else Path(cfg.input).parent
    fields = ["file", "face", "x", "y", "w", "h", "label",
              *(f"p_{c}" for c in predictor.classes), "error"]
    counts = {"faces": 0, "no_face": 0, "error": 0}
    with open(out / "predictions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        for f in tqdm(files, desc="predicting", unit="img"):
            rows = predictor.predict_file(f)
            writer.writerows(rows)
            fh.flush()
            label = rows[0]["label"]
            counts[label if label in ("no_face", "error") else "faces"] += (
                1 if label in ("no_face", "error") else len(rows))
            if cfg.annotate and label != "error":
                annotate(f, rows, predictor.classes,
                         out / "annotated" / f.relative_to(base).with_suffix(".png"))
    print(f"{len(files)} image(s): {counts['faces']} face(s), {counts['no_face']} without a "
          f"face, {counts['error']} unreadable -> {out / 'predictions.csv'}")
    return out / "predictions.csv"


@hydra.main(config_path=CONFIG_PATH, config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
