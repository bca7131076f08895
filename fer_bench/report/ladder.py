"""Results an experiment replaced, and the budget ladder they make with the current ones.

An experiment's earlier committed results move to experiments/superseded/<folder>/ (with a
README.md saying why they were replaced) when new runs replace them; the report names them
(`--superseded <folder>`): their figures, why they went, and a ladder of test accuracy per family
at each budget beside the validation accuracy the current runs had reached at 15 and 60 minutes
(from their histories), so a reader sees whether the ranking changes with compute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_bench.report import records, tables
from fer_bench.report.collect import collect
from fer_bench.train import time_cap_seconds

CHECKPOINTS_MINUTES = (15, 60)


def budget_label(runs: list[dict]) -> str:
    """`15-min budget` from the runs' trainer.max_time (DD:HH:MM:SS), else their epoch cap."""
    trainer = runs[0].get("config", {}).get("trainer", {})
    budget = trainer.get("max_time")
    if budget:
        return f"{time_cap_seconds(budget) / 60:g}-min budget"
    return f"{trainer.get('max_epochs', '?')}-epoch cap"


def why(folder: Path) -> str:
    """The first paragraph after the title of folder/README.md."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} is missing: a superseded folder says why its results "
                                "were replaced (a README.md, first paragraph after the title)")
    paragraphs = [p.strip() for p in readme.read_text().split("\n\n") if p.strip()]
    text = [p for p in paragraphs if not p.startswith("#")]
    return " ".join(text[0].split()) if text else ""


def load(folders) -> list[tuple[str, Path, list[dict]]]:
    """(budget label, folder, runs) per superseded folder."""
    out = []
    for folder in folders or []:
        runs, _ = collect(folder)
        if not runs:
            raise FileNotFoundError(f"no results under {folder}")
        out.append((budget_label(runs), Path(folder), runs))
    return out


def best_by(history: list[dict], seconds: float) -> float | None:
    """The best validation accuracy a run had reached after `seconds` of fitting; None when its
    first check came later. A run that stopped before `seconds` keeps its final best."""
    reached = [h["val_acc"] for h in history if h["seconds"] <= seconds]
    return max(reached) if reached else None


def _mean(values) -> str:
    values = [v for v in values if v is not None]
    return f"{100 * np.mean(values):.1f}" if values else "-"


def fitting_minutes(runs: list[dict]) -> str:
    """Mean fitting minutes, per hardware when the runs fitted on more than one kind."""
    kinds = {}
    for r in runs:
        kinds.setdefault(records.hardware(r), []).append(r["train_seconds"] / 60)
    if len(kinds) == 1:
        return f"{np.mean(next(iter(kinds.values()))):.0f}"
    return "; ".join(f"{np.mean(v):.0f} ({k}, {len(v)})" for k, v in kinds.items()) or "-"


def budget_ladder(runs: list[dict], earlier: list[tuple[str, Path, list[dict]]]) -> pd.DataFrame:
    """Per family: mean PrivateTest accuracy (single view) at each earlier budget and now, the
    mean best PublicTest accuracy the current runs had reached at 15 and 60 minutes (runs on the
    earlier budgets' hardware only: minutes elsewhere buy other amounts of training), their mean
    fitting time per hardware and how many converged (stopped by early stopping)."""
    current = tables.by_model(runs)
    budget_hardware = {records.hardware(r) for _, _, rs in earlier for r in rs}
    rows = {}
    for model in tables.model_order(runs + [r for _, _, rs in earlier for r in rs]):
        row = {}
        for label, _, rs in earlier:
            mine = [r["metrics"]["acc"] for r in rs if r["model"] == model]
            row[f"PrivateTest, {label}"] = f"{_mean(mine)} ({len(mine)})" if mine else "-"
        now = current.get(model, [])
        row["PrivateTest, now"] = (f"{_mean([r['metrics']['acc'] for r in now])} ({len(now)})"
                                   if now else "-")
        comparable = [r for r in now if records.hardware(r) in budget_hardware]
        for minutes in CHECKPOINTS_MINUTES:
            row[f"PublicTest at {minutes} min"] = _mean(
                [best_by(r.get("history") or [], 60 * minutes) for r in comparable])
        row["fitting minutes"] = fitting_minutes(now)
        row["converged"] = (f"{sum(r.get('stopped_by') == 'early_stopping' for r in now)}"
                            f"/{len(now)}" if now else "-")
        rows[model.upper()] = row
    df = pd.DataFrame(rows).T
    df.index.name = "family"
    return df


def markdown(runs: list[dict], earlier: list[tuple[str, Path, list[dict]]]) -> list[str]:
    if not earlier:
        return []
    lines = ["## Budget ladder", "",
             "Accuracy (%) per family: PrivateTest (single view, mean over seeds; seeds in "
             "brackets) at each committed budget and now; the best PublicTest accuracy the "
             "current runs had reached after 15 and 60 minutes of fitting (mean over the seeds "
             "that fitted on the hardware the earlier budgets ran on; a run that stopped earlier "
             "counts with its final best); mean fitting minutes (per hardware where it "
             "differed); runs stopped by early stopping.", "",
             budget_ladder(runs, earlier).to_markdown(disable_numparse=True), "",
             "## Replaced results", ""]
    for label, folder, rs in earlier:
        rates = tables.recognition_rates(rs)
        cells = {m.upper(): [f"{rates.at[i, m]:.1f}" for i in rates.index]
                 for m in tables.by_model(rs)}
        lines += [f"Earlier committed results ({label}, {len(rs)} runs, in `{folder}`), "
                  f"replaced: {why(folder)}", "",
                  pd.DataFrame(cells, index=rates.index).to_markdown(disable_numparse=True), ""]
    return lines
