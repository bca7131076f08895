"""Find the runs' results.json files under one or more folders."""

from __future__ import annotations

import json
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
