"""Write reports/<name>/: the table (csv, md), the bar chart (png, svg), summary, confusions."""

from __future__ import annotations

import shlex
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from fer_bench.report import charts, ladder, records, tables

GENERATED = ("recognition_rates.*", "summary.csv", "mcnemar.csv", "budget_ladder.csv",
             "confusion_*.png", "learning_curves.png", "time_to_accuracy.png")
SPLIT_NAMES = {"fer2013": "PrivateTest", "ferplus": "FER2013Test (FER+ labels)"}


def write_reports(runs: list[dict], failed: list[dict], reports_dir: Path,
                  command: str | None = None, superseded=None) -> dict[str, Path]:
    """One report per report name found in the runs; returns {name: folder}. superseded:
    folders of earlier results these runs replaced (report.ladder)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        groups[r["report_name"]].append(r)
    written = {}
    for name, rs in groups.items():
        fails = [f for f in failed if f.get("report_name") == name]
        earlier = [e for e in ladder.load(superseded) if e[2][0]["report_name"] == name]
        written[name] = write_report(rs, fails, Path(reports_dir) / name, command, earlier)
    return written


def write_report(runs: list[dict], failed: list[dict], out: Path,
                 command: str | None = None, earlier=()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for pattern in GENERATED:  # a model or a table an earlier report had does not linger
        for stale in out.glob(pattern):
            stale.unlink()
    data = runs[0]["data"]
    split = SPLIT_NAMES.get(data["source"], "test split")
    name = runs[0]["report_name"]
    source = data["name"] if name == data["name"] else f"{name} ({data['name']})"
    title = f"Recognition rate per expression: {source}, {split}"
    rates = tables.recognition_rates(runs)
    rates.round(1).to_csv(out / "recognition_rates.csv", float_format="%.1f")
    summary = tables.summary(runs)
    summary.to_csv(out / "summary.csv", float_format="%.2f")
    if earlier:
        ladder.budget_ladder(runs, earlier).to_csv(out / "budget_ladder.csv")
    mcn = tables.pairwise_mcnemar(runs)
    if len(mcn):
        mcn.to_csv(out / "mcnemar.csv", index=False, float_format="%.4g")
    charts.bar_chart(rates, title, out / "recognition_rates")
    curves = charts.learning_curves(runs, f"Validation accuracy during fitting: {source}",
                                    out / "learning_curves")
    speed = charts.time_to_accuracy(runs, f"Time to accuracy (PublicTest): {source}",
                                    out / "time_to_accuracy")
    names = list(tables.display_names(runs).values())
    for model, rs in tables.by_model(runs).items():
        cm = np.sum([np.asarray(r["confusion"]) for r in rs], axis=0)
        charts.confusion_chart(cm, names, f"{model.upper()}: {data['name']}, {split}, "
                               f"{len(rs)} run(s)", out / f"confusion_{model}.png")
    command = command or "python -m fer_bench.report " + " ".join(
        sorted({shlex.quote(str(Path(r["run_dir"]).parent)) for r in runs}))
    (out / "recognition_rates.md").write_text(
        _markdown(runs, failed, rates, summary, mcn, title, command, curves, speed, earlier))
    return out


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.1f} ± {std:.1f}" if seeds > 1 else f"{mean:.1f}"


def table3(rates: pd.DataFrame, runs: list[dict]) -> pd.DataFrame:
    """The paper's Table 3 as text: mean (± std over seeds) per expression and model."""
    seeds = {m: len(rs) for m, rs in tables.by_model(runs).items()}
    return pd.DataFrame({m.upper(): [_cell(rates.at[i, m], rates.at[i, f"{m}_std"], seeds[m])
                                     for i in rates.index] for m in seeds},
                        index=rates.index)


def paper_vs_measured(paper: dict, rates: pd.DataFrame, runs: list[dict]) -> pd.DataFrame:
    """The paper's figures beside the measured ones. A model's claim given per expression
    (report.paper.<model>: {<expression>: rate, ...}, Table 3's cells) is shown cell by cell
    beside the measured mean; given as one range ("95-97"), beside the measured range."""
    rows = [r for r in rates.index if r != tables.OVERALL]
    models = [m for m in rates.columns if not m.endswith("_std")]
    if any(isinstance(paper.get(m), dict) for m in models):
        names = tables.display_names(runs)  # expression -> row label
        out = {}
        for model in models:
            claim = paper.get(model) or {}
            if not isinstance(claim, dict):
                claim = {}
            cells = {names.get(e, e): v for e, v in claim.items()}
            out[f"{model.upper()} paper"] = [str(cells.get(r, "-")) for r in rates.index]
            out[f"{model.upper()} measured"] = [f"{rates.at[r, model]:.1f}" for r in rates.index]
        return pd.DataFrame(out, index=rates.index)
    out = {}
    for model in models:
        col = rates.loc[rows, model]
        out[model.upper()] = {
            "paper: rate per expression (%)": paper.get(model, "-"),
            "measured: lowest-highest expression (%)": f"{col.min():.1f}-{col.max():.1f}",
            "measured: overall accuracy (%)": f"{rates.at[tables.OVERALL, model]:.1f}",
        }
    return pd.DataFrame(out).T


def _markdown(runs, failed, rates, summary, mcn, title, command, curves=None,
              speed=None, earlier=()) -> str:
    data = runs[0]["data"]
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        f"# {title}",
        "",
        f"Data: `{data['name']}` ({data['source']}, root `{data['root']}`), classes "
        f"{', '.join(data['classes'])}; train/val/test = {data['sizes']['train']}/"
        f"{data['sizes']['val']}/{data['sizes']['test']} faces. Seeds: {seeds}.",
        "",
        records.protocol_sentence(runs),
        "",
        records.leakage_sentence(runs),
        "",
        *records.rater_sentence(runs),
        f"Regenerate: `{command}`",
        "",
        "## Recognition rate (%), single view" + (" (mean ± std over seeds)" if len(seeds) > 1
                                                  else ""),
        "",
        table3(rates, runs).to_markdown(disable_numparse=True),
        "",
    ]
    if all("per_class_recall_tta" in r for r in runs):
        tta = tables.recognition_rates(runs, "per_class_recall_tta")
        lines += ["## Recognition rate (%), ten views averaged (test-time augmentation)", "",
                  table3(tta, runs).to_markdown(disable_numparse=True), ""]
    lines += ["## 95% intervals (a bootstrap over seeds and test faces)", "",
              "Mean rate over seeds [95% interval]: each replicate draws the seeds and the "
              "expression's test faces with replacement (Wilson over the faces for records "
              "without per-face predictions).", "",
              tables.rates_with_ci(runs).to_markdown(disable_numparse=True), "",
              "## Summary", "", summary.to_markdown(floatfmt=".1f"), ""]
    paper = runs[0].get("config", {}).get("report", {}).get("paper")
    if paper:
        lines += ["## Paper vs measured", "",
                  "The paper's claims are per-expression recognition rates on its own data set, "
                  "not FER2013; measured values are this report's single-view rates on "
                  "FER2013's PrivateTest.", "",
                  paper_vs_measured(paper, rates, runs).to_markdown(disable_numparse=True), ""]
    if len(mcn):
        lines += ["## Pairwise McNemar tests (exact, single view)", "",
                  mcn.to_markdown(index=False, floatfmt=".4g"), ""]
    if curves:
        lines += ["## Validation accuracy during fitting", "",
                  f"![learning curves]({curves.name})", ""]
    if speed:
        lines += ["## Time to accuracy", "",
                  "The best PublicTest accuracy each family had reached, against training "
                  "minutes and against images seen: mean over seeds, band from the lowest to the "
                  "highest seed.", "", f"![time to accuracy]({speed.name})", ""]
    lines += ladder.markdown(runs, list(earlier))
    lines += ["## Runs", "",
              "| model | seed | epochs | stopped by | train seconds | machine | commit | run |",
              "|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["model"], r["seed"])):
        m = r.get("machine", {})
        git = r.get("git") or {}
        commit = (git["commit"][:9] + (" (dirty)" if git.get("dirty") else "")
                  if git.get("commit") else "not recorded")
        epochs = r.get("epochs_completed", r["epochs"])
        lines.append(f"| {r['model']} | {r['seed']} | {epochs} | "
                     f"{r.get('stopped_by', 'not recorded')} | {r['train_seconds']:.0f} "
                     f"| {m.get('cpu', '?')}, {m.get('threads', '?')} thread(s) | {commit} | "
                     f"`{r.get('command') or Path(r['run_dir']).name}` |")
    lines.append("")
    legacy = records.legacy_model_configs(runs)
    if legacy:
        lines += ["## What these records' configs do not show", "",
                  "These results files were written before the configs were composed by Hydra "
                  "alone: their `config.model` is the family's defaults, recorded before the "
                  "experiment's `model_overrides` (also in the record) were merged in. What "
                  "really ran:", "", *legacy, ""]
    if failed:
        lines += ["## Failed runs (not in the tables)", ""]
        lines += [f"- `{f['run_dir']}`: {f.get('error', 'unknown error')}" for f in failed]
        lines.append("")
    lines += [
        "Columns: `acc` accuracy over all test faces; `balanced_acc` mean per-class recall; "
        "`f1_macro` macro-F1; `acc_ci_low`, `acc_ci_high` 95% interval of the mean accuracy "
        "covering seed-to-seed and test-sampling variation (a bootstrap drawing seeds and test "
        "faces; the Wilson interval where per-face predictions were not recorded); "
        "`acc_tta` accuracy with the softmax averaged over ten views; "
        "`acc_without_duplicates` accuracy on the test faces that are not pixel-identical to a "
        "training face of the selected classes (`test_duplicates` of them are; "
        "`test_duplicates_any_class` are identical to a training face of any class); "
        "`epochs` epochs of training faces seen; `params` classifier parameters; "
        "`train_seconds` wall time of fitting; `eval_images_per_second` single-view inference.",
        "",
    ]
    return "\n".join(lines)


def print_screen(runs: list[dict], failed: list[dict], written: dict[str, Path]) -> None:
    for name, folder in written.items():
        rs = [r for r in runs if r["report_name"] == name]
        print(f"\n== {name}: recognition rate (%) per expression ==", file=sys.stdout)
        print(table3(tables.recognition_rates(rs), rs).to_string())
        print(f"\nreport: {folder}/ (recognition_rates.md/.csv/.png/.svg, summary.csv, "
              "confusion_<model>.png, learning_curves.png)")
    for f in failed:
        print(f"FAILED run {f['run_dir']}: {f.get('error')}")
