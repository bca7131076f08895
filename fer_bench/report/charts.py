"""The paper's Figure 2 (grouped bars) and row-normalised confusion matrices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "fer_bench"  # the same ids in every regenerated SVG
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer_bench.report import records, tables  # noqa: E402
from fer_bench.report.tables import OVERALL  # noqa: E402


def bar_chart(rates: pd.DataFrame, title: str, out: Path) -> list[Path]:
    """One group per expression, one bar per model (error bars: std over seeds)."""
    models = [c for c in rates.columns if not c.endswith("_std")]
    rows = [r for r in rates.index if r != OVERALL]
    x = np.arange(len(rows))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) + 2), 4.2))
    for i, m in enumerate(models):
        std = rates.loc[rows, f"{m}_std"].to_numpy()
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, rates.loc[rows, m], width,
                      yerr=std if std.any() else None, capsize=2, label=m.upper())
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(x, rows)
    ax.set_xlabel("Expression")
    ax.set_ylabel("Recognition rate (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=10)
    ax.legend(ncols=len(models), loc="upper center", fontsize=8, frameon=False,
              bbox_to_anchor=(0.5, -0.15))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for p in paths:  # no date in the SVG: a regenerated report differs only where numbers do
        fig.savefig(p, dpi=150, metadata={"Date": None} if p.suffix == ".svg" else None)
    plt.close(fig)
    return paths


def confusion_chart(confusion: np.ndarray, labels: list[str], title: str, out: Path) -> Path:
    """Rows: true expression, normalised to 1; columns: predicted."""
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 0.9 * len(labels) + 1.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def learning_curves(runs: list[dict], title: str, out: Path) -> Path | None:
    """Validation accuracy at every check against epochs of training images seen, per run."""
    runs = [r for r in runs if r.get("history")]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = {}
    for r in sorted(runs, key=lambda r: (r["model"], r["seed"])):
        label = None if r["model"] in colors else r["model"].upper()  # once per model
        color = colors.setdefault(r["model"], f"C{len(colors)}")
        images = np.array([h["images"] for h in r["history"]]) / r["data"]["sizes"]["train"]
        acc = 100 * np.array([h["val_acc"] for h in r["history"]])
        ax.plot(images, acc, marker=".", color=color, label=label, lw=1)
    ax.set_xlabel("Epochs of training images seen")
    ax.set_ylabel("Validation accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = out.with_suffix(".png")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def time_to_accuracy(runs: list[dict], title: str, out: Path) -> Path | None:
    """Best validation accuracy reached so far against training minutes and against epochs of
    training images seen: per family the mean over seeds (line) and their range (band), up to
    where every seed still has checks. Minutes are averaged only over runs on one kind of
    hardware (a family's CPU and GPU runs are separate lines; log axis when they are minutes
    apart by orders of magnitude); images seen pool every seed of a family."""
    runs = [r for r in runs if r.get("history")]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    models = sorted({r["model"] for r in runs}, key=[r["model"] for r in runs].index)
    color = {m: f"C{i}" for i, m in enumerate(models)}
    by_time = tables.by_model_and_hardware(runs)
    by_images = {m.upper(): [r for r in runs if r["model"] == m] for m in models}
    styles = {}
    ends = []
    for ax, key, groups in ((axes[0], "seconds", by_time), (axes[1], "images", by_images)):
        for name, rs in groups.items():
            rs = [r for r in rs if all(key in h for h in r["history"])]
            if not rs:
                continue
            curves = []
            for r in rs:
                x = np.array([h[key] for h in r["history"]], dtype=float)
                x *= 1 / 60 if key == "seconds" else 1 / r["data"]["sizes"]["train"]
                acc = [h["val_acc"] for h in r["history"]]
                curves.append((x, 100 * np.maximum.accumulate(acc)))
            end = min(x[-1] for x, _ in curves)
            start = max(x[0] for x, _ in curves)
            if key == "seconds":
                ends.append(end)
            grid = np.linspace(start, end, 200) if end > start else np.array([end])
            # the best accuracy a run had reached by each grid point (its last check before it)
            ys = np.array([y[np.searchsorted(x, grid, side="right") - 1] for x, y in curves])
            c = color[rs[0]["model"]]
            kind = records.hardware(rs[0]) if key == "seconds" else None
            style = styles.setdefault(kind, ["-", "--", ":", "-."][len(styles) % 4])
            ax.plot(grid, ys.mean(0), color=c, lw=1.5, ls=style if kind else "-",
                    label=f"{name} ({len(rs)} seed{'s' if len(rs) > 1 else ''})")
            if len(rs) > 1:
                ax.fill_between(grid, ys.min(0), ys.max(0), color=c, alpha=0.2, lw=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    if ends and max(ends) > 20 * min(ends):
        axes[0].set_xscale("log")
        axes[0].set_xlabel("Training minutes (log scale)")
    else:
        axes[0].set_xlabel("Training minutes")
    axes[1].set_xlabel("Epochs of training images seen")
    axes[0].set_ylabel("Best validation accuracy so far (%)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out.with_suffix(".png")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
