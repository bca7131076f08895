"""Trained models that ship with fer_bench: fer_bench/shipped/<name>.ckpt, a model card beside it.

    python -m fer_bench.ship experiments/results/fer2013 --family cnn

picks the family's run with the best PublicTest accuracy (validation: never the test split)
among the converged ones (stopped by early stopping), copies its best checkpoint's weights and
model metadata (no optimiser state: it loads with weights_only=True) to
fer_bench/shipped/<experiment>_<family>.ckpt and writes <experiment>_<family>.md from its record.
`predict` and `evaluate` take a shipped model by name (`ckpt=cnn`, `ckpt=fer2013_gan`) or any
checkpoint path; without `ckpt=` they use the shipped CNN.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from pathlib import Path

import torch

from fer_bench.models import family as family_spec
from fer_bench.report import records, stats, tables
from fer_bench.report.collect import collect_for_cli

SHIPPED_DIR = Path(__file__).parent / "shipped"
DEFAULT_MODEL = "fer2013_cnn"
MAX_BYTES = 10 * 1024 * 1024


def shipped_names(folder: Path = SHIPPED_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.ckpt"))


def resolve(ckpt: str | Path | None, folder: Path = SHIPPED_DIR) -> Path:
    """A checkpoint path as given, or a shipped model by name (`fer2013_cnn`, or `cnn` for the
    FER2013 one); None or empty: the shipped CNN."""
    name = str(ckpt) if ckpt not in (None, "") else DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (folder / f"{name}.ckpt", folder / f"fer2013_{name}.ckpt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"ckpt={name} is neither a checkpoint file nor a shipped model "
        f"(shipped: {', '.join(shipped_names(folder)) or 'none'}); pass a run's "
        "checkpoints/best.ckpt or one of those names (models ship with `python -m "
        "fer_bench.ship <results folder> --family <family>`)")


def candidates(runs: list[dict], family: str, converged_only: bool = True) -> list[dict]:
    """The family's runs a shipped model is chosen among (converged ones only by default)."""
    mine = [r for r in runs if r["model"] == family]
    if not mine:
        raise ValueError(f"no finished {family} run in these results")
    if converged_only:
        mine = [r for r in mine if r.get("stopped_by") == "early_stopping"]
        if not mine:
            raise ValueError(f"no {family} run stopped by early stopping (converged); wait for "
                             "the sweep, or pass --any-stop to ship the best unconverged run")
    return mine


def best_on_validation(runs: list[dict]) -> dict:
    """The run with the best PublicTest accuracy (never a test figure); ties: the lower seed."""
    return max(runs, key=lambda r: (r["best_val_acc"], -r["seed"]))


def choose(runs: list[dict], family: str, converged_only: bool = True) -> dict:
    return best_on_validation(candidates(runs, family, converged_only))


def export(run: dict, out: Path) -> Path:
    """The run's best checkpoint, weights and metadata only, as fp32 tensors and plain data;
    without the submodules only training uses (`left_out`: the GAN's generator)."""
    src = Path(run["checkpoint"])
    if not src.is_file():
        raise FileNotFoundError(f"{src} (the checkpoint of {run['model']} seed {run['seed']}) "
                                "is not on this machine: ship from the machine that trained it")
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    meta = ckpt["fer_bench"]
    left_out = family_spec(meta["family"]).module_class().training_only  # the GAN's generator
    prefixes = tuple(f"{name}." for name in left_out)
    slim = {"fer_bench": {"family": meta["family"], "hparams": meta["hparams"],
                          **({"left_out": list(left_out)} if left_out else {})},
            "state_dict": {k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt["state_dict"].items()
                           if not (prefixes and k.startswith(prefixes))}}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise ValueError(f"{out.name} would be {size / 2**20:.1f} MB, over the 10 MB a shipped "
                         "model may take")
    return out


def model_card(run: dict, ckpt: Path, command: str, among: list[dict]) -> str:
    data = run["data"]
    acc = run["metrics"]["acc"]
    correct = [int(p == t) for p, t in zip(run["predictions"]["pred"],
                                            run["predictions"]["target"])]
    low, high = stats.seeds_and_faces_interval([correct])
    rates = tables.recognition_rates([run]).round(1)
    tta = tables.recognition_rates([run], "per_class_recall_tta").round(1)
    table = rates.rename(columns={run["model"]: "single view (%)"})[["single view (%)"]]
    table["ten views (%)"] = tta[run["model"]]
    git = run.get("git") or {}
    machine = run.get("machine", {})
    left_out = torch.load(ckpt, map_location="cpu", weights_only=True)["fer_bench"].get(
        "left_out") or []
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    converged = all(r.get("stopped_by") == "early_stopping" for r in among)
    kind = "converged" if converged else "finished"
    stop = run.get("stopped_by", "not recorded")
    if stop != "early_stopping":  # shipped with --any-stop
        stop += " (a cap: PublicTest had not stopped improving, so not converged)"
    return "\n".join([
        f"# Model card: {ckpt.stem}",
        "",
        f"A {run['family']} ({run['model']}) trained by fer_bench on `{data['name']}` "
        f"({', '.join(data['classes'])}); {run['params']:,} classifier parameters.",
        "",
        f"- Data: {data['name']}, root `{data['root']}`: trained on Training "
        f"({data['sizes']['train']} faces), selected on PublicTest ({data['sizes']['val']}), "
        f"tested once on PrivateTest ({data['sizes']['test']}).",
        f"- Protocol: the checkpoint of the best PublicTest accuracy "
        f"({100 * run['best_val_acc']:.2f}%) of seed {run['seed']}, chosen by that PublicTest "
        f"accuracy (never by a test figure) among {len(among)} {kind} run(s): "
        + ", ".join(f"seed {r['seed']} {100 * r['best_val_acc']:.2f}% (stopped by "
                    f"{r.get('stopped_by', '?')})" for r in sorted(among, key=lambda r: r["seed"]))
        + ".",
        f"- Training: {run.get('epochs_completed', run['epochs']):.1f} epochs, stopped by "
        f"{stop}, {run['train_seconds'] / 60:.0f} minutes on {records.hardware(run)} "
        f"({machine.get('cpu', '?')}); commit "
        f"{git.get('commit', 'not recorded')}"
        + (" (with uncommitted changes: " + ", ".join(git.get("changed") or []) + ")"
           if git.get("dirty") else "") + ".",
        *[f"- Tested before: {100 * t['metrics']['acc']:.1f}% on PrivateTest after "
          f"{float(t.get('epochs_completed') or t.get('epochs')):.1f} epochs, {t.get('why')}; that "
          "figure is replaced by the one below." for t in run.get("replaced_tests") or []],
        f"- Trained by: `{run.get('command')}`",
        f"- PrivateTest accuracy, single view: **{100 * acc:.1f}%** (95% interval "
        f"{100 * low:.1f}-{100 * high:.1f}, a bootstrap over the test faces); ten views "
        f"averaged: {100 * run['metrics']['acc_tta']:.1f}%.",
        f"- File: `{ckpt.name}`, {ckpt.stat().st_size / 2**20:.1f} MB, sha256 `{digest}`; "
        "weights and model metadata only, loads with `torch.load(..., weights_only=True)`"
        + (f"; without the {', '.join(left_out)} (used in training only: the classifier's "
           "predictions are the same)" if left_out else "") + ".",
        f"- Exported by: `{command}`",
        "",
        "## Recognition rate per expression, PrivateTest",
        "",
        table.to_markdown(floatfmt=".1f"),
        "",
        "## Use",
        "",
        f"`python -m fer_bench.predict input=<photo or folder> ckpt={ckpt.stem}` (faces found by "
        "OpenCV, aligned, classified; `predictions.csv`), or "
        f"`python -m fer_bench.evaluate ckpt={ckpt.stem} data=folder data.root=<dir>` to test it "
        "on another data set.",
        "",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.ship", description=__doc__.split("\n")[0])
    p.add_argument("results", help="an experiment's results folder (or its sweep folder)")
    p.add_argument("--family", action="append", required=True,
                   help="family to ship (repeatable): its best-PublicTest converged run")
    p.add_argument("--out", default=str(SHIPPED_DIR), help="folder (default: fer_bench/shipped)")
    p.add_argument("--any-stop", action="store_true",
                   help="also consider runs that stopped by a cap, not by early stopping")
    args = p.parse_args(argv)
    runs, _, code = collect_for_cli([args.results])
    if code:
        return code
    command = "python -m fer_bench.ship " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    for fam in args.family:
        try:
            among = candidates(runs, fam, converged_only=not args.any_stop)
            run = best_on_validation(among)
            ckpt = export(run, Path(args.out) / f"{run['report_name']}_{fam}.ckpt")
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        ckpt.with_suffix(".md").write_text(model_card(run, ckpt, command, among))
        print(f"{fam}: seed {run['seed']} (PublicTest {100 * run['best_val_acc']:.1f}%) -> {ckpt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
