"""Carry unfinished runs to the next machine: `python -m fer_bench.snapshot save|restore`.

A run longer than a session continues from its checkpoints/last.ckpt (resume=true), but
experiments/runs/ is not committed, and a session may begin on a fresh machine without it: the
hours fitted so far would be lost. `save` copies what resuming needs of each unfinished run into
experiments/resume/ (committed): last.ckpt whole (weights, optimisers, schedules, callbacks,
random state), the best checkpoint so far without its optimiser state (only its weights are ever
loaded again: by the final test), Hydra's saved config and, for a run continuing under a raised
cap, its earlier results.json; a snapshot.json lists each file's SHA-256. `restore` puts them
back under experiments/runs/, checked, so the run's own command continues it; resume=true does
that itself in a run folder without a last.ckpt. Snapshots of runs that have since finished here
are removed by `save`; restore never replaces a run's newer checkpoint, nor `save` a snapshot
further on than the run (one started again where its snapshot was not restored).

Lightning keeps the best score across a resume only when the checkpoint folder is unchanged,
so restoring into another checkout rewrites the paths ModelCheckpoint recorded."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from fer_bench import provenance
from fer_bench.progress import checkpoint_progress, continues_past, run_folders
from fer_bench.train import LAST_CHECKPOINT, RESULTS_FILE, callback_state

RUNS, SNAPSHOTS = Path("experiments/runs"), Path("experiments/resume")
MANIFEST = "snapshot.json"
BEST = "best.ckpt"
REFUSED = "not saved:"
CONFIG_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml")
# ModelCheckpoint's state entries that hold paths inside the checkpoint folder
PATH_KEYS = ("dirpath", "best_model_path", "last_model_path", "kth_best_model_path")


class SnapshotError(RuntimeError):
    """A snapshot that cannot be taken or restored as it is; the message says what to do."""


def load(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def step_of(last: Path) -> int:
    return int(checkpoint_progress(last)[0].get("global_step", 0))


def finished(run: Path) -> bool:
    """Tested (or selected, for a tuning run) and not fitting on past those results under a
    raised cap: resume=true keeps it as it is."""
    results, last = run / RESULTS_FILE, run / "checkpoints" / LAST_CHECKPOINT
    if not results.is_file():
        return False
    res = json.loads(results.read_text())
    if res.get("status") != "ok":
        return False
    return not last.is_file() or not continues_past(res, checkpoint_progress(last)[1])


def model_checkpoint_state(ckpt: dict, where: str) -> dict:
    state = callback_state(ckpt, "ModelCheckpoint")
    if state is None:
        raise SnapshotError(f"{where} holds no ModelCheckpoint state: not a fer_bench run's "
                            "last.ckpt")
    return state


def take(run: Path) -> tuple[dict[str, bytes], dict]:
    """The files of one run's snapshot, read once each (a checkpoint is written to a temporary
    file and renamed, so a read sees a whole file) and checked to belong together; and its
    last.ckpt, loaded."""
    last_path = run / "checkpoints" / LAST_CHECKPOINT
    last_bytes = last_path.read_bytes()
    last = load(last_bytes)
    state = model_checkpoint_state(last, str(last_path))
    files = {LAST_CHECKPOINT: last_bytes}
    best_path = state.get("best_model_path")
    if best_path:
        best_file = run / "checkpoints" / Path(best_path).name
        if not best_file.is_file():
            raise SnapshotError(f"{last_path} names the best checkpoint {best_path}, which is "
                                "not there: this run cannot be tested after resuming")
        best = load(best_file.read_bytes())
        if best.get("global_step", 0) > last.get("global_step", 0):
            raise SnapshotError(f"{run}: the best checkpoint is newer than last.ckpt (the run "
                                "is writing them now); run save again in a moment")
        # the final test loads the weights only: the optimisers' state would triple its size
        best = {k: v for k, v in best.items() if k not in ("optimizer_states", "lr_schedulers")}
        buf = io.BytesIO()
        torch.save(best, buf)
        files[BEST] = buf.getvalue()
    for name in CONFIG_FILES:
        if (run / name).is_file():
            files[name] = (run / name).read_bytes()
    if (run / RESULTS_FILE).is_file() and json.loads((run / RESULTS_FILE).read_text()).get(
            "status") == "ok":  # the earlier test of a run fitting on under a raised cap
        files[RESULTS_FILE] = (run / RESULTS_FILE).read_bytes()
    return files, last


def describe(last: dict) -> dict:
    progress = last.get("fer_bench", {}).get("progress", {})
    history = progress.get("val_history", [])
    return {"epoch": progress.get("epoch"), "global_step": int(last.get("global_step", 0)),
            "val_checks": len(history),
            "best_val_acc": max((h["val_acc"] for h in history), default=None),
            "fit_seconds": progress.get("fit_seconds")}


def save(runs: Path = RUNS, snapshots: Path = SNAPSHOTS) -> list[str]:
    """Snapshot every unfinished run under `runs`; drop the snapshots of runs finished here."""
    lines = []
    here = provenance.machine()  # once: it asks torch and reads /proc/cpuinfo
    for run in run_folders(runs):
        rel = run.relative_to(runs)
        target = snapshots / rel
        if finished(run):
            if target.is_dir():
                shutil.rmtree(target)
                lines.append(f"{rel}: finished here, snapshot removed ({target})")
            continue
        if not (run / "checkpoints" / LAST_CHECKPOINT).is_file():
            continue  # no validation check yet: nothing to resume from
        files, last = take(run)
        now = describe(last)
        if (target / MANIFEST).is_file():  # before hashing: a refused run is not written
            kept = json.loads((target / MANIFEST).read_text())
            if kept["global_step"] > now["global_step"]:
                lines.append(
                    f"{REFUSED} {rel}: {target} is further on (epoch {kept['epoch']}, step "
                    f"{kept['global_step']}) than this run (epoch {now['epoch']}, step "
                    f"{now['global_step']}), which started again instead of continuing from "
                    "it. Stop the run, then python -m fer_bench.snapshot restore (it replaces "
                    f"a checkpoint less far on) and rerun its command; or delete {target} to "
                    "keep this run")
                continue
        manifest = {
            "run": rel.as_posix(), "taken_in": str(run.resolve()),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {k: here[k] for k in ("hostname", "cpu")},
            **now,
            "files": {name: {"sha256": sha256(data), "bytes": len(data)}
                      for name, data in files.items()}}
        if target.is_dir():
            shutil.rmtree(target)
        for name, data in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)
        (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        mb = sum(len(d) for d in files.values()) / 1e6
        lines.append(f"{rel}: saved epoch {manifest['epoch']} ({manifest['val_checks']} checks, "
                     f"best val {manifest['best_val_acc']}) -> {target} ({mb:.1f} MB)")
    return lines


def relocate(ckpt: dict, checkpoints: Path) -> bool:
    """Point ModelCheckpoint's recorded paths at this checkout's checkpoint folder; whether any
    changed (else Lightning would forget the best score, and select the next check whatever
    it scores)."""
    state = model_checkpoint_state(ckpt, "the snapshot")
    old, new = state.get("dirpath"), str(checkpoints.resolve())
    if not old or old == new:
        return False

    def moved(path):
        return new + path[len(old):] if isinstance(path, str) and path.startswith(old) else path

    for key in PATH_KEYS:
        if key in state:
            state[key] = moved(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    return True


def restore_run(manifest_path: Path, runs: Path) -> str:
    """Put one snapshot back in its run folder, unless the run there is finished or further on."""
    src = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    run = runs / manifest["run"]
    files = {}
    for name, meta in manifest["files"].items():
        path = src / name
        if not path.is_file():
            raise SnapshotError(f"{path} is listed in {manifest_path} but missing: check out "
                                "the commit that saved it whole (git status)")
        data = path.read_bytes()
        if sha256(data) != meta["sha256"]:
            raise SnapshotError(f"{path} does not match its SHA-256 in {manifest_path}: the "
                                "file was changed or cut short; check it out again "
                                f"(git checkout -- {src}) or delete the snapshot")
        files[name] = data
    here = run / "checkpoints" / LAST_CHECKPOINT
    if finished(run):
        return f"{manifest['run']}: finished here, snapshot not restored"
    if here.is_file() and step_of(here) >= manifest["global_step"]:
        return f"{manifest['run']}: {here} is as far or further, kept"
    for name in (LAST_CHECKPOINT, BEST):  # (the best one's state is restored by the test)
        ckpt = load(files[name]) if name in files else None
        if ckpt is not None and relocate(ckpt, run / "checkpoints"):
            buf = io.BytesIO()
            torch.save(ckpt, buf)
            files[name] = buf.getvalue()
    for name, data in files.items():
        dest = run / "checkpoints" / name if name in (LAST_CHECKPOINT, BEST) else run / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return (f"{manifest['run']}: restored epoch {manifest['epoch']} "
            f"({manifest['val_checks']} checks) -> {run}")


def restore(snapshots: Path = SNAPSHOTS, runs: Path = RUNS) -> list[str]:
    """Put every snapshot back in its run folder, unless the run there is finished or further on."""
    return [restore_run(m, runs) for m in sorted(snapshots.rglob(MANIFEST))]


def restore_for(out: Path, experiments_dir: Path) -> str | None:
    """What resume=true does first in a run folder without a last.ckpt (a fresh machine): restore
    the run's committed snapshot, experiments/resume/<sweep>/<run>/, where there is one, so that
    the run's own command continues it rather than starting it again."""
    runs = experiments_dir / "runs"
    try:
        rel = out.resolve().relative_to(runs.resolve())
    except ValueError:  # a run folder elsewhere (hydra.run.dir): no snapshot names it
        return None
    manifest = experiments_dir / "resume" / rel / MANIFEST
    if not manifest.is_file() or (out / "checkpoints" / LAST_CHECKPOINT).is_file():
        return None
    return restore_run(manifest, runs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.snapshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["save", "restore"])
    p.add_argument("--runs", type=Path, default=RUNS, help=f"run folders (default {RUNS})")
    p.add_argument("--snapshots", type=Path, default=SNAPSHOTS,
                   help=f"where snapshots lie (default {SNAPSHOTS}; commit it after save)")
    args = p.parse_args(argv)
    try:
        if args.action == "save":
            if not args.runs.is_dir():
                raise SnapshotError(f"{args.runs} is not a folder: no runs to save")
            lines = save(args.runs, args.snapshots)
        else:
            lines = restore(args.snapshots, args.runs) if args.snapshots.is_dir() else []
    except SnapshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines) if lines else f"nothing to {args.action}")
    return 1 if any(line.startswith(REFUSED) for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
