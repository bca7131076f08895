"""Find the runs' results.json files under one or more folders."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from fer_bench.train import RESULTS_FILE


def collect(*folders, tested: bool = True) -> tuple[list[dict], list[dict]]:
    """(finished runs, failed runs); each dict gains `run_dir`.

    tested=True: runs that were tested (reports); False: tuning runs (validation only)."""
    ok, failed = [], []
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"{folder} does not exist; pass a sweep or results folder")
        files = [folder] if folder.is_file() else sorted(folder.rglob("*.json"))
        for f in files:
            if f.name != RESULTS_FILE and f.parent.name == "checkpoints":
                continue
            try:
                res = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(res, dict) or "status" not in res or "model" not in res:
                continue
            if res["status"] == "ok" and res.get("tested", True) != tested:
                continue
            res["run_dir"] = str(f.parent if f.name == RESULTS_FILE else f)
            (ok if res["status"] == "ok" else failed).append(res)
    return ok, failed


def archive(runs: list[dict], folder, with_sweep: bool = False) -> Path:
    """Copy each run's results.json to folder/<experiment>_<model>_seed<seed>.json, replacing
    an earlier file of the same run (a rerun, a resumed sweep); with_sweep (tuning variants of
    one model and seed): folder/<sweep>_<run>.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for r in runs:
        src = Path(r["run_dir"])
        if not src.is_dir():
            continue
        name = f"{src.parent.name}_{src.name}" if with_sweep else archive_name(r)
        if name in names:
            raise ValueError(f"two runs would be archived as {name}.json: {names[name]} and "
                             f"{src}; archive them in separate commands or folders")
        names[name] = str(src)
        shutil.copyfile(src / RESULTS_FILE, folder / f"{name}.json")
    print(f"archived {len(names)} results file(s) in {folder}/")
    return folder


def archive_name(run: dict) -> str:
    """One name per run of an experiment: <experiment>_<model>_seed<seed>, with
    _labels<fraction> before the seed for runs on a share of the labels."""
    fraction = float(run.get("config", {}).get("data", {}).get("labeled_fraction", 1.0))
    labels = f"_labels{fraction:g}" if fraction < 1 else ""
    return f"{run.get('report_name') or 'run'}_{run['model']}{labels}_seed{run['seed']}"


def collect_for_cli(folders, tested: bool = True) -> tuple[list[dict], list[dict], int]:
    """collect() for the command lines: (runs, failed, exit code), the error printed."""
    try:
        runs, failed = collect(*folders, tested=tested)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return [], [], 2
    if not runs:
        kind = "finished run (results.json)" if tested else "tuning run (test=false)"
        print(f"error: no {kind} under {list(map(str, folders))}", file=sys.stderr)
        return [], [], 1
    return runs, failed, 0
