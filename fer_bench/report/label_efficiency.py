"""Accuracy against the share of labelled training faces:

    python -m fer_bench.report.label_efficiency <results folders>... [--out reports]

Groups finished runs by family and `data.labeled_fraction` (runs recorded without it: 1.0, so
the converged FER2013 runs are the 100% points), and writes reports/label_efficiency/: a chart of
PrivateTest accuracy (mean over seeds, band from the lowest to the highest seed) against the
number of labelled faces on a log axis, one line per family, the majority-class share marked; a
table (label_efficiency.csv/.md), each cell saying how many of its seeds a cap (epochs or wall
time) stopped before early stopping did; exact McNemar tests between the GAN and the CNN at each
fraction and seed (mcnemar.csv); the protocol checked against the records, with the earlier
test figures of runs that continued under a raised time cap; a row per run (what stopped it, its
best PublicTest accuracy, where it ran).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer_bench.report import records, tables  # noqa: E402
from fer_bench.report.collect import collect_for_cli  # noqa: E402

NAME = "label_efficiency"
CAPS = ("max_epochs", "max_time")  # stop reasons other than convergence (early stopping)


def fraction(run: dict) -> float:
    return float(run.get("config", {}).get("data", {}).get("labeled_fraction", 1.0))


def labelled_faces(run: dict) -> int:
    labeled = run["data"].get("labeled")
    return int(labeled["faces"]) if labeled else int(run["data"]["sizes"]["train"])


def table(runs: list[dict]) -> pd.DataFrame:
    """One row per family and fraction: labelled faces, seeds, PrivateTest accuracy (mean, std,
    lowest, highest, %), runs stopped by early stopping, runs stopped by a cap."""
    rows = []
    for model, rs in tables.by_model(runs).items():
        for f in sorted({fraction(r) for r in rs}):
            group = [r for r in rs if fraction(r) == f]
            acc = 100 * np.array([r["metrics"]["acc"] for r in group])
            rows.append({
                "family": model, "fraction": f, "labelled_faces": labelled_faces(group[0]),
                "seeds": " ".join(str(r["seed"]) for r in group),
                "acc": acc.mean(), "acc_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                "acc_low": acc.min(), "acc_high": acc.max(),
                "converged": sum(r.get("stopped_by") == "early_stopping" for r in group),
                "capped": sum(r.get("stopped_by") in CAPS for r in group)})
    return pd.DataFrame(rows)


def planned() -> tuple[list[float], list[str], list[int]]:
    """The experiment's sweep (conf/experiment/label_efficiency.yaml): fractions (with the 100%
    points it reuses), families, seeds."""
    from fer_bench.config import compose_config

    cfg = compose_config("train", ["experiment=label_efficiency", "+model=cnn"],
                         return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    fractions = sorted({float(f) for f in str(params["data.labeled_fraction"]).split(",")} | {1.0})
    return (fractions, str(params["+model"]).split(","),
            [int(x) for x in str(params["seed"]).split(",")])


def remaining(runs: list[dict]) -> list[str]:
    """`gan at 5%: seeds 0, 1, 2` for every planned point without a finished run."""
    fractions, families, seeds = planned()
    done = {(r["model"], fraction(r), r["seed"]) for r in runs}
    out = []
    for model in families:
        for f in fractions:
            missing = [s for s in seeds if (model, f, s) not in done]
            if missing:
                out.append(f"{model} at {100 * f:g}%: seed{'s' if len(missing) > 1 else ''} "
                           + ", ".join(map(str, missing)))
    return out


def majority_share(runs: list[dict]) -> float:
    counts = tables.class_counts(runs[0])
    return float(counts.max() / counts.sum())


def gan_vs_cnn(runs: list[dict]) -> pd.DataFrame:
    """Exact McNemar between the GAN and the CNN on each fraction's seeds (same test faces)."""
    rows = []
    by_key = {(r["model"], fraction(r), r["seed"]): r for r in runs}
    for (model, f, seed), gan in sorted(by_key.items()):
        cnn = by_key.get(("cnn", f, seed))
        test = None if model != "gan" or cnn is None else tables.paired_test(gan, cnn)
        if test is not None:
            rows.append({"fraction": f, "seed": seed, **test})
    return pd.DataFrame(rows, columns=["fraction", "seed", "acc_a", "acc_b", "only_a",
                                       "only_b", "p_value"]).rename(
        columns={"acc_a": "acc_gan", "acc_b": "acc_cnn", "only_a": "only_gan_right",
                 "only_b": "only_cnn_right"})


def chart(t: pd.DataFrame, majority: float, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (model, g) in enumerate(t.groupby("family", sort=False)):
        g = g.sort_values("labelled_faces")
        ax.plot(g["labelled_faces"], g["acc"], marker="o", color=f"C{i}",
                label=f"{model.upper()} ({g['seeds'].str.split().str.len().max()} seeds)")
        ax.fill_between(g["labelled_faces"], g["acc_low"], g["acc_high"], color=f"C{i}",
                        alpha=0.2, lw=0)
        capped = g[g["capped"] > 0]  # what a cap stopped: hollow, as it may not have converged
        ax.plot(capped["labelled_faces"], capped["acc"], ls="none", marker="o", ms=7,
                markerfacecolor="white", markeredgecolor=f"C{i}", markeredgewidth=1.5)
    ax.axhline(100 * majority, color="gray", ls="--", lw=1,
               label=f"majority class ({100 * majority:.1f}%)")
    if t["capped"].any():
        ax.plot([], [], ls="none", marker="o", markerfacecolor="white", markeredgecolor="gray",
                label="hollow: a cap stopped a seed")
    ax.set_xscale("log")
    ax.set_xlabel("Labelled training faces (log scale)")
    ax.set_ylabel("PrivateTest accuracy (%), single view")
    ax.set_title("Accuracy against labelled faces: mean over seeds, band lowest-highest",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = out / f"{NAME}.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def write(runs: list[dict], out: Path, command: str) -> Path:
    # everything computed before anything is written: a failure leaves the earlier report whole
    t, mcn, majority, todo = table(runs), gan_vs_cnn(runs), majority_share(runs), remaining(runs)
    out.mkdir(parents=True, exist_ok=True)
    t.to_csv(out / f"{NAME}.csv", index=False, float_format="%.2f")
    mcn.to_csv(out / "mcnemar.csv", index=False, float_format="%.4g")
    png = chart(t, majority, out)
    n_seeds = [len(seeds.split()) for seeds in t["seeds"]]
    cells = t.assign(cell=[tables.mean_cell(a, s, n) + f" ({n}"
                           + (f"; {capped} capped)" if capped else ")")
                           for a, s, n, capped
                           in zip(t["acc"], t["acc_std"], n_seeds, t["capped"])])
    cells["labels"] = [f"{100 * f:g}% ({n:,} faces)"
                       for f, n in zip(cells["fraction"], cells["labelled_faces"])]
    wide = cells.pivot(index="labels", columns="family", values="cell")
    wide = wide.loc[sorted(wide.index, key=lambda i: float(i.split("%")[0]))]
    wide.index.name = "labelled training faces"
    wide.columns = [c.upper() for c in wide.columns]
    lines = [
        "# Accuracy against the share of labelled training faces", "",
        f"PrivateTest accuracy (%, single view, mean ± std over seeds, the figure alone where one "
        "seed ran; in brackets the seeds, "
        "and how many of them a cap (epochs or wall time) stopped before early stopping did: "
        "their figure is what they had reached by then, see Runs) of "
        f"models selected on PublicTest; the majority class is {100 * majority:.1f}% of the "
        "test faces. The fully supervised families trained on the labelled faces only; the GAN "
        "also on every unlabelled training face (its real/fake loss), each of its steps "
        "classifying a batch of labelled faces beside a batch of all faces. Below 100%, the GAN "
        "runs with the settings of an Optuna round at 5% labels "
        "(`experiments/tuning/optuna_labels5/`); the 100% points are the `experiment=fer2013` "
        "runs (each record's `config` says what ran).", "",
        f"Regenerate: `{command}`", "",
        wide.fillna("-").to_markdown(disable_numparse=True), "",
        records.protocol_sentence(runs), "",
        ("**Not run yet** (planned by `experiment=label_efficiency`; rerun it to continue): "
         + "; ".join(todo) + "." if todo else "Every planned point has all its seeds."), "",
        f"![accuracy against labelled faces]({png.name})", "",
        "## GAN against CNN (exact McNemar, same test faces, per fraction and seed)", "",
        (mcn.to_markdown(index=False, floatfmt=".4g") if len(mcn) else "No fraction has both."),
        "",
        "Converged runs (stopped by early stopping) per family and fraction: "
        + "; ".join(f"{m} {f:g}: {c}/{len(s.split())}" for m, f, c, s in
                    zip(t["family"], t["fraction"], t["converged"], t["seeds"])) + ".", "",
        *records.replaced_tests_lines(runs, name=run_name), *runs_lines(runs)]
    (out / f"{NAME}.md").write_text("\n".join(lines))
    return out


def run_name(run: dict) -> str:
    """`gan 5% seed 0`: a family's runs differ by labelled share as well as seed."""
    return f"{run['model']} {100 * fraction(run):g}% seed {run['seed']}"


def runs_lines(runs: list[dict]) -> list[str]:
    """A row per run, by family, fraction and seed: its labelled share and best PublicTest
    accuracy beside what stopped it and where it ran."""
    return records.runs_lines(
        runs, {"labelled": lambda r: f"{100 * fraction(r):g}%",
               "best PublicTest": lambda r: (f"{100 * r['best_val_acc']:.1f}"
                                             if r.get("best_val_acc") is not None else "-")},
        order=lambda r: (r["model"], fraction(r), r["seed"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.report.label_efficiency",
                                description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="results folders (the 100%% points included)")
    p.add_argument("--out", default="reports", help="reports folder (default: reports)")
    args = p.parse_args(argv)
    runs, _, code = collect_for_cli(args.folders)
    if code:
        return code
    command = "python -m fer_bench.report.label_efficiency " + " ".join(
        map(shlex.quote, args.folders)) + (f" --out {args.out}" if args.out != "reports" else "")
    out = write(runs, Path(args.out) / NAME, command)
    print(f"report: {out}/{NAME}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
