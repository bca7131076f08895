"""Results rows -> the paper's Table 3 layout (rows: expressions, columns: models) and a summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_bench.models import family_names
from fer_bench.report import records
from fer_bench.report.stats import mcnemar, seeds_and_faces_interval, wilson

OVERALL = "Overall accuracy"


def mean_cell(mean: float, std: float, seeds: int) -> str:
    """A table cell: the mean over seeds, and its spread where there is more than one seed."""
    return f"{mean:.1f} ± {std:.1f}" if seeds > 1 else f"{mean:.1f}"


def model_order(runs: list[dict]) -> list[str]:
    """Registered families in registry order, then any other names alphabetically."""
    names = {r["model"] for r in runs}
    registered = family_names()
    return [m for m in registered if m in names] + sorted(names - set(registered))


def by_model(runs: list[dict]) -> dict[str, list[dict]]:
    return {m: sorted((r for r in runs if r["model"] == m), key=lambda r: r["seed"])
            for m in model_order(runs)}


def display_names(runs: list[dict]) -> dict[str, str]:
    classes = runs[0]["data"]["classes"]
    labels = runs[0].get("config", {}).get("report", {}).get("labels") or {}
    return {c: labels.get(c, c.capitalize()) for c in classes}


def class_counts(run: dict) -> np.ndarray:
    return np.asarray(run["confusion"]).sum(1)


def recognition_rates(runs: list[dict], key: str = "per_class_recall") -> pd.DataFrame:
    """Mean and std over seeds, in %: one row per expression plus overall accuracy."""
    names = display_names(runs)
    acc_key = "acc_tta" if key.endswith("_tta") else "acc"
    rows = {}
    for model, rs in by_model(runs).items():
        per_seed = np.array([[r[key][c] for c in names] + [r["metrics"][acc_key]] for r in rs])
        rows[model] = 100 * per_seed.mean(0)
        rows[f"{model}_std"] = 100 * (per_seed.std(0, ddof=1) if len(rs) > 1 else 0 * per_seed[0])
    df = pd.DataFrame(rows, index=[*names.values(), OVERALL])
    df.index.name = "expression"
    return df


def rates_with_ci(runs: list[dict]) -> pd.DataFrame:
    """Per expression and overall: mean rate over seeds and its 95% interval, a bootstrap over
    seeds and the expression's test faces (accuracy_interval); Wilson over the faces where the
    per-face predictions are missing."""
    names = list(display_names(runs).values())
    rates = recognition_rates(runs)
    cells = {}
    for model, rs in by_model(runs).items():
        col = []
        for k, row in enumerate([*names, OVERALL]):
            lo, hi = accuracy_interval(rs, None if row == OVERALL else k)
            col.append(f"{rates.at[row, model]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        cells[model.upper()] = col
    return pd.DataFrame(cells, index=pd.Index([*names, OVERALL], name="expression"))


def summary(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for model, rs in by_model(runs).items():
        def stat(f, rs=rs):
            vals = np.array([f(r) for r in rs], dtype=float)
            return vals.mean(), (vals.std(ddof=1) if len(vals) > 1 else 0.0)

        n_test = int(class_counts(rs[0]).sum())
        acc, acc_sd = stat(lambda r: r["metrics"]["acc"])
        lo, hi = accuracy_interval(rs)
        has_tta = all("acc_tta" in r["metrics"] for r in rs)
        # seconds are a mean only over runs on one kind of hardware (else NaN: see ran_on)
        same_hardware = len({records.hardware(r) for r in rs}) == 1
        tta, tta_sd = stat(lambda r: r["metrics"]["acc_tta"]) if has_tta else (np.nan, np.nan)
        rows.append({
            "model": model,
            "seeds": " ".join(str(r["seed"]) for r in rs),
            "acc": 100 * acc, "acc_std": 100 * acc_sd,
            "acc_ci_low": 100 * lo, "acc_ci_high": 100 * hi,
            "acc_tta": 100 * tta, "acc_tta_std": 100 * tta_sd,
            "balanced_acc": 100 * stat(lambda r: r["metrics"]["balanced_acc"])[0],
            "f1_macro": 100 * stat(lambda r: r["metrics"]["f1_macro"])[0],
            "acc_without_duplicates": 100 * stat(accuracy_without_duplicates)[0],
            "test_duplicates": len(rs[0].get("test_duplicates_of_train", [])),
            "test_duplicates_any_class": _count(rs[0].get("test_duplicates_of_any_train")),
            "test_images": n_test,
            "params": int(rs[0]["params"]),
            "train_seconds": stat(lambda r: r["train_seconds"])[0] if same_hardware else np.nan,
            "epochs": stat(lambda r: r.get("epochs_completed", r["epochs"]))[0],
            "eval_images_per_second": (stat(lambda r: r["eval_images_per_second"])[0]
                                       if same_hardware else np.nan),
            "ran_on": records.hardware_counts(rs),
        })
    return pd.DataFrame(rows).set_index("model")


VALIDATION_THRESHOLDS = (0.60, 0.65)  # 65%: human level on FER2013 and the CNN's time target


def by_model_and_hardware(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs per family and hardware: what time figures may be averaged over. Named `CNN` when
    every run fitted on one kind of hardware, else `CNN (NVIDIA H200)` for every group, so that
    no figure is read as comparable with another hardware's."""
    mixed = len({records.hardware(r) for r in runs}) > 1
    groups = {}
    for model, rs in by_model(runs).items():
        for kind in dict.fromkeys(records.hardware(r) for r in rs):
            name = f"{model.upper()} ({kind})" if mixed else model.upper()
            groups[name] = [r for r in rs if records.hardware(r) == kind]
    return groups


def minutes_to_accuracy(runs: list[dict], thresholds=VALIDATION_THRESHOLDS) -> pd.DataFrame:
    """Per family and hardware (by_model_and_hardware) and threshold:
    the fitting minutes after which a run's validation accuracy first reached it (mean over the
    seeds that did; how many did, in brackets), from the runs' histories. Empty without
    histories that carry seconds."""
    cells = {}
    for name, rs in by_model_and_hardware(runs).items():
        rs = [r for r in rs if r.get("history") and all("seconds" in h for h in r["history"])]
        if not rs:
            continue
        row = {}
        for t in thresholds:
            reached = [next((h["seconds"] / 60 for h in r["history"] if h["val_acc"] >= t), None)
                       for r in rs]
            hit = [m for m in reached if m is not None]
            row[f"{100 * t:g}% (min)"] = (f"{_minutes(np.mean(hit))} ({len(hit)}/{len(rs)})" if hit
                                          else f"not reached (0/{len(rs)})")
        cells[name] = row
    table = pd.DataFrame(cells).T
    table.index.name = "family"
    return table


def _minutes(m: float) -> str:
    return f"{m:.0f}" if m >= 10 else f"{m:.1f}"


def accuracy_interval(rs: list[dict], label: int | None = None) -> tuple[float, float]:
    """95% interval of the mean accuracy over seeds and test faces (a bootstrap of both), from
    the per-face predictions; the Wilson interval over the faces where they are missing.
    label: the recognition rate of that expression (its faces only) instead of the accuracy."""
    if all("predictions" in r for r in rs):
        correct = []
        for r in rs:
            target = np.asarray(r["predictions"]["target"])
            hit = np.asarray(r["predictions"]["pred"]) == target
            correct.append(hit if label is None else hit[target == label])
        if len({len(c) for c in correct}) == 1:
            return seeds_and_faces_interval(correct)
    counts = class_counts(rs[0])
    if label is None:
        return wilson(float(np.mean([r["metrics"]["acc"] for r in rs])), int(counts.sum()))
    name = rs[0]["data"]["classes"][label]
    return wilson(float(np.mean([r["per_class_recall"][name] for r in rs])), int(counts[label]))


def _count(indices) -> float:
    return float("nan") if indices is None else len(indices)


def accuracy_without_duplicates(run: dict) -> float:
    """Test accuracy over the test images that do not duplicate a training image."""
    target = np.asarray(run["predictions"]["target"])
    pred = np.asarray(run["predictions"]["pred"])
    keep = np.ones(len(target), dtype=bool)
    keep[np.asarray(run.get("test_duplicates_of_train", []), dtype=int)] = False
    return float((pred[keep] == target[keep]).mean()) if keep.any() else float("nan")


def paired_test(ra: dict, rb: dict, view: str = "pred") -> dict | None:
    """Two runs' accuracy (%) on the same test faces and an exact McNemar test between them
    (only_a, only_b: the faces only one got right); None when they were not tested on the same
    faces or one lacks the view."""
    if view not in ra["predictions"] or view not in rb["predictions"]:
        return None
    t = np.asarray(ra["predictions"]["target"])
    if not np.array_equal(t, rb["predictions"]["target"]):
        return None
    ca = np.asarray(ra["predictions"][view]) == t
    cb = np.asarray(rb["predictions"][view]) == t
    return {"acc_a": 100 * ca.mean(), "acc_b": 100 * cb.mean(), **mcnemar(ca, cb)}


def pairwise_mcnemar(runs: list[dict], view: str = "pred") -> pd.DataFrame:
    """Exact McNemar tests between every two models, on each seed both ran."""
    groups = by_model(runs)
    models, rows = list(groups), []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            runs_b = {r["seed"]: r for r in groups[b]}
            for ra in groups[a]:
                rb = runs_b.get(ra["seed"])
                test = None if rb is None else paired_test(ra, rb, view)
                if test is not None:
                    rows.append({"model_a": a, "model_b": b, "seed": ra["seed"], **test})
    return pd.DataFrame(rows)
