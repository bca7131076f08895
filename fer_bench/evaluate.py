"""Test a trained model on any data set, without training:

    python -m fer_bench.evaluate [ckpt=<checkpoint or shipped name>] data=<fer2013|folder|...>
        data.root=<dir> [split=test|all] [data.align.enabled=true]

Expressions are matched through the synonym table (a folder `happiness/` is the model's
`happy`); faces of expressions the model does not know are left out and counted, expressions the
model knows but the data set lacks are listed. Writes <out>/results.json (per-face predictions,
per-expression rates, confusion matrix, accuracy with a bootstrap interval, what ran) and a
report beside it (report.md, recognition_rates.csv, confusion.png). Without ckpt= the shipped
FER2013 CNN is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fer_bench.classes import canonical
from fer_bench.config import CONFIG_PATH
from fer_bench.data.errors import DataError
from fer_bench.data.normalize import normalize
from fer_bench.predict import load_model
from fer_bench.provenance import flush_subnormals, record
from fer_bench.report import charts, stats
from fer_bench.ship import resolve

BATCH = 256


def predictions(model, images: np.ndarray, tta: bool) -> dict[str, np.ndarray]:
    """Single-view (and ten-view) class probabilities of uint8 faces, in batches."""
    h = model.hparams
    single, ten = [], []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            x = torch.from_numpy(normalize(images[start:start + BATCH], h.normalization))
            x = x.unsqueeze(1)
            single.append(model.probabilities(x, tta=False).numpy())
            if tta:
                ten.append(model.probabilities(x, tta=True).numpy())
    out = {"single": np.concatenate(single)}
    if tta:
        out["tta"] = np.concatenate(ten)
    return out


def match_classes(data_classes: list[str], model_classes: list[str]) -> dict[int, int]:
    """Data-set label id -> model class id, for the expressions both know (through synonyms)."""
    index = {canonical(c): i for i, c in enumerate(model_classes)}
    return {i: index[canonical(c)] for i, c in enumerate(data_classes) if canonical(c) in index}


def evaluate(cfg: DictConfig, command: str) -> Path:
    flush_subnormals()  # a trained model's near-zero weights would slow every face 10-100x
    ckpt = resolve(cfg.ckpt)
    model = load_model(ckpt)
    h = model.hparams
    known = list(h.class_names)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    # the faces as the model was trained on them: its size, crop and normalisation
    data_cfg |= {"classes": None, "image_size": h.image_size, "crop_size": h.crop_size,
                 "normalization": h.normalization}
    dm = hydra.utils.instantiate(data_cfg)
    faces = dm.faces(cfg.split)
    mapping = match_classes(dm.class_names, known)
    if not mapping:
        raise DataError(f"data set {dm.name!r} ({dm.root}) has none of the model's expressions "
                        f"({', '.join(known)}); it has {', '.join(dm.class_names)}")
    labels = faces["labels"]
    keep = np.isin(labels, list(mapping))
    left_out = {dm.class_names[i]: int((labels == i).sum())
                for i in sorted(set(labels.tolist()) - set(mapping))}
    target = np.array([mapping[int(y)] for y in labels[keep]], dtype=np.int64)
    probs = predictions(model, faces["images"][keep], bool(cfg.tta))
    present = sorted(set(target.tolist()))
    results = {
        "status": "ok", "kind": "evaluation", "command": command,
        "model": h.get("name") or model.family, "family": model.family,
        "checkpoint": {"path": str(ckpt), "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()},
        "model_classes": known,
        "data": {"name": dm.name, "source": dm.source, "root": dm.root, "split": cfg.split,
                 "label_mode": cfg.data.get("label_mode"),  # FER+: which labels were tested
                 "classes": dm.class_names, "align": dm.align,
                 "faces": int(len(labels)), "evaluated": int(keep.sum()),
                 "evaluated_per_class": {known[c]: int((target == c).sum()) for c in present},
                 "left_out_per_class": left_out,
                 "model_classes_absent": [known[c] for c in range(len(known))
                                          if c not in present]},
        "predictions": {"target": target.tolist(),
                        "pred": probs["single"].argmax(1).tolist(),
                        "files": faces["files"][keep].tolist()},
        **record(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    for view, p in probs.items():
        suffix = "" if view == "single" else "_tta"
        results |= scores(target, p.argmax(1), known, present, suffix)
        if suffix:
            results["predictions"]["pred_tta"] = p.argmax(1).tolist()
    out = Path(cfg.out or default_out(cfg, ckpt, dm.name))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_report(results, out)
    print(f"{ckpt.name} on {dm.name} ({cfg.split}): {results['metrics']['acc'] * 100:.1f}% of "
          f"{keep.sum()} faces; left out {sum(left_out.values())} of unknown expressions "
          f"{left_out or ''} -> {out}/report.md")
    return out


def default_out(cfg: DictConfig, ckpt: Path, data_name: str) -> Path:
    """reports/evaluations/<model>_on_<data>[_<label mode>]_<split>: a shipped model by its
    name, a run's checkpoints/<file>.ckpt by the run's folder."""
    model = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else ckpt.stem
    mode = cfg.data.get("label_mode")  # FER+: plurality labels are another test
    if mode and mode != "majority":
        data_name = f"{data_name}_{mode}"
    return Path(cfg.paths.reports_dir) / "evaluations" / f"{model}_on_{data_name}_{cfg.split}"


def scores(target, pred, known, present, suffix: str = "") -> dict:
    correct = (target == pred).astype(int)
    low, high = stats.seeds_and_faces_interval([correct])
    recall = {known[c]: float(correct[target == c].mean()) for c in present}
    confusion = np.zeros((len(present), len(known)), dtype=int)
    for t, p in zip(target, pred):
        confusion[present.index(t), p] += 1
    return {"metrics" + suffix: {"acc": float(correct.mean()), "acc_ci_low": low,
                                 "acc_ci_high": high,
                                 "balanced_acc": float(np.mean(list(recall.values())))},
            "per_class_recall" + suffix: recall, "confusion" + suffix: confusion.tolist()}


def write_report(r: dict, out: Path) -> None:
    d, m = r["data"], r["metrics"]
    present = list(r["per_class_recall"])
    table = pd.DataFrame({"faces": [d["evaluated_per_class"][c] for c in present],
                          "single view (%)": [100 * r["per_class_recall"][c] for c in present]},
                         index=pd.Index([c.capitalize() for c in present], name="expression"))
    if "per_class_recall_tta" in r:
        table["ten views (%)"] = [100 * r["per_class_recall_tta"][c] for c in present]
    table.round(1).to_csv(out / "recognition_rates.csv", float_format="%.1f")
    labels = [c.capitalize() for c in r["model_classes"]]
    cm = np.zeros((len(labels), len(labels)), dtype=int)  # rows of absent classes stay empty
    for i, c in enumerate(present):
        cm[r["model_classes"].index(c)] = r["confusion"][i]
    labelled = f"{d['name']}, {d['label_mode']} labels" if d.get("label_mode") else d["name"]
    charts.confusion_chart(cm, labels, f"{r['model']} on {labelled} ({d['split']})",
                           out / "confusion.png")
    tta = (f"; ten views averaged {100 * r['metrics_tta']['acc']:.1f}%" if "metrics_tta" in r
           else "")
    lines = [
        f"# {r['model'].upper()} ({Path(r['checkpoint']['path']).name}) on {labelled}, "
        f"split {d['split']}",
        "",
        f"Data: `{d['name']}` ({d['source']}, root `{d['root']}`), {d['faces']} faces; "
        f"{d['evaluated']} of expressions the model knows were evaluated.",
        "Left out (expressions the model does not know): "
        + (", ".join(f"{c} {n}" for c, n in d["left_out_per_class"].items()) or "none") + ".",
        "Model expressions absent from this data set: "
        + (", ".join(d["model_classes_absent"]) or "none") + ".",
        "",
        f"Accuracy, single view: **{100 * m['acc']:.1f}%** (95% interval "
        f"{100 * m['acc_ci_low']:.1f}-{100 * m['acc_ci_high']:.1f}, a bootstrap over the faces); "
        f"mean per-expression recall {100 * m['balanced_acc']:.1f}%{tta}.",
        "",
        f"Regenerate: `{r['command']}`",
        "",
        table.to_markdown(floatfmt=("", ".0f", ".1f", ".1f")),
        "",
        "![confusion matrix](confusion.png)",
        "",
        f"Checkpoint sha256 `{r['checkpoint']['sha256']}`; commit "
        f"{(r.get('git') or {}).get('commit', 'not recorded')}.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    command = " ".join(["python -m fer_bench.evaluate",
                        *map(shlex.quote, HydraConfig.get().overrides.task)])
    try:
        evaluate(cfg, command)
    except (FileNotFoundError, ValueError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
