"""Where a sweep's runs stand, finished or still fitting: `python -m fer_bench.progress <sweep
or run folder>...`.

A run that spans sessions (resume=true) is between them most of its life; this reads what its
folder holds, without building any model: results.json when it ended, else (or when a raised cap
took it past its results) checkpoints/last.ckpt (its fitting time, validation history, early
stopping's count and patience; loaded with weights_only=True) and the composed config Hydra saved
beside it (the caps)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer

from fer_bench.train import LAST_CHECKPOINT, RESULTS_FILE, callback_state

COLUMNS = ["run", "state", "val checks (last epoch)", "best val acc (epoch)",
           "checks without improvement / patience", "fitting h:mm / cap", "min per check",
           "to finish, h:mm"]


def run_folders(folder: Path, depth: int = 2) -> list[Path]:
    """The run itself, or the runs of a sweep folder (those Hydra or a run wrote into), or of
    the sweeps in a folder of sweeps (experiments/runs)."""
    if any((folder / name).exists() for name in (RESULTS_FILE, "checkpoints", ".hydra")):
        return [folder]
    if depth == 0:
        return []
    return [run for p in sorted(folder.iterdir()) if p.is_dir()
            for run in run_folders(p, depth - 1)]


def hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def best_check(history: list[dict]) -> str:
    if not history:
        return "-"
    best = max(history, key=lambda h: h["val_acc"])  # the first of equals, as ModelCheckpoint
    return f"{100 * best['val_acc']:.1f} ({best['epoch']})"


def checks_and_epoch(history: list[dict]) -> str:
    return f"{len(history)} ({history[-1]['epoch']})" if history else "0"


def run_caps(run: Path) -> dict:
    """trainer.max_time (seconds) and max_epochs from the config Hydra saved for the run; each
    node resolved alone (the rest may use resolvers this process has not registered)."""
    path = run / ".hydra" / "config.yaml"
    caps = {"max_time": None, "max_epochs": None}
    if not path.is_file():
        return caps
    cfg = OmegaConf.load(path)
    for key in caps:
        try:
            value = OmegaConf.select(cfg, f"trainer.{key}")
        except Exception:  # an interpolation that cannot resolve here: no cap shown
            continue
        caps[key] = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
    if caps["max_time"]:
        caps["max_time"] = Timer(duration=caps["max_time"])._duration  # Lightning's parsing
    return caps


def finished_row(name: str, res: dict) -> dict:
    history = res.get("history") or []
    if res.get("status") != "ok":
        state = f"failed (resume=true runs it again): {str(res.get('error', ''))[:80]}"
    elif res.get("tested", True):
        state = f"tested {100 * res['metrics']['acc']:.1f}% ({res.get('stopped_by')})"
    else:
        state = f"selected on val, not tested ({res.get('stopped_by')})"
    return {"run": name, "state": state, "val checks (last epoch)": checks_and_epoch(history),
            "best val acc (epoch)": best_check(history),
            "fitting h:mm / cap": hours(res.get("train_seconds")), "to finish, h:mm": "0:00"}


def checkpoint_progress(ckpt_path: Path) -> tuple[dict, dict]:
    """The checkpoint (memory-mapped, weights_only) and fer_bench's progress record in it."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return ckpt, ckpt.get("fer_bench", {}).get("progress", {})


def continues_past(res: dict, progress: dict) -> bool:
    """A tested run whose last.ckpt holds more validation checks than its results: its cap was
    raised and it fits again (or was killed doing so); the old results.json stays in its folder
    until the new test pass replaces it."""
    return (res.get("status") == "ok"
            and len(progress.get("val_history", [])) > len(res.get("history") or []))


def fitting_row(name: str, run: Path, ckpt: dict, progress: dict,
                earlier: dict | None = None) -> dict:
    """A run with a last.ckpt and no results (fitting now, killed, or between sessions), or a
    tested one continuing under a raised cap (`earlier`: its results so far)."""
    history = progress.get("val_history", [])
    stopping, timer = callback_state(ckpt, "EarlyStopping"), callback_state(ckpt, "Timer")
    elapsed = timer["time_elapsed"]["train"] if timer else progress.get("fit_seconds")
    caps = run_caps(run)
    cap = caps["max_time"]

    # Recent pace (the median of the last three intervals between checks: one slowed by a
    # busy machine does not set it), then the two bounds: the fewest checks early stopping
    # could still take, and the caps.
    times = [0.0] + [h["seconds"] for h in history]
    intervals = [b - a for a, b in zip(times, times[1:])][-3:]
    per_check = statistics.median(intervals) if intervals else None
    soonest = latest = None
    if per_check and stopping:
        soonest = (stopping["patience"] - stopping["wait_count"]) * per_check
    if per_check and history and caps["max_epochs"]:
        per_epoch = per_check * sum(h["epoch"] == history[0]["epoch"] for h in history)
        latest = (caps["max_epochs"] - history[-1]["epoch"] - 1) * per_epoch
    if cap is not None and elapsed is not None:
        latest = max(cap - elapsed, 0) if latest is None else min(latest, max(cap - elapsed, 0))
    if soonest is not None and latest is not None:
        soonest = min(soonest, latest)
    stopped = progress.get("stopped_by")
    state = (f"fit ended ({stopped}), not tested{' again' if earlier else ''}" if stopped else
             "fitting or interrupted (resume=true continues)")
    if earlier is not None:
        state = (f"cap raised, {state}; tested {100 * earlier['metrics']['acc']:.1f}% at the "
                 f"old cap ({earlier.get('stopped_by')})")
    return {
        "run": name, "state": state, "val checks (last epoch)": checks_and_epoch(history),
        "best val acc (epoch)": best_check(history),
        "checks without improvement / patience":
            f"{stopping['wait_count']} / {stopping['patience']}" if stopping else "-",
        "fitting h:mm / cap": f"{hours(elapsed)} / {hours(cap) if cap else 'none'}",
        "min per check": f"{per_check / 60:.1f}" if per_check else "-",
        "to finish, h:mm": "0:00" if stopped else f"{hours(soonest)} to {hours(latest)}",
    }


def progress_table(*folders) -> pd.DataFrame:
    rows = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; pass a sweep folder "
                                    "(experiments/runs/<experiment>) or a run folder")
        for run in run_folders(folder):
            name = run.relative_to(folder).as_posix() if run != folder else run.name
            results, last = run / RESULTS_FILE, run / "checkpoints" / LAST_CHECKPOINT
            res = json.loads(results.read_text()) if results.is_file() else None
            ckpt, progress = checkpoint_progress(last) if last.is_file() else (None, {})
            if res is not None and not continues_past(res, progress):
                rows.append(finished_row(name, res))
            elif ckpt is not None:
                rows.append(fitting_row(name, run, ckpt, progress, earlier=res))
            else:
                rows.append({"run": name, "state": "started, no validation check yet"})
    return pd.DataFrame(rows, columns=COLUMNS).fillna("-")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.progress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="sweep folders (experiments/runs/<experiment>) "
                                              "or run folders")
    args = p.parse_args(argv)
    try:
        table = progress_table(*args.folders)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if table.empty:
        print(f"error: no run folders under {args.folders}", file=sys.stderr)
        return 1
    print(table.to_markdown(index=False))
    print("\nto finish: the fewest checks early stopping can still take at the recent pace, "
          "and the caps (trainer.max_time, max_epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
