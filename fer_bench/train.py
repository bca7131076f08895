"""One run: build data and model, fit (selecting on validation), test once, write results.json."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint, Timer
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from fer_bench import precision, provenance
from fer_bench.models.base import count

log = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
SELECTION_METRIC = "val/acc"  # checkpoints, early stopping and schedules watch validation only


class NoBestCheckpoint(RuntimeError):
    """Fitting ended without a checkpoint chosen on validation: nothing honest to test."""


class ConfigMismatch(RuntimeError):
    """resume=true found a results file written by another config: never mix the two."""


LAST_CHECKPOINT = "last.ckpt"  # every validation check and the end of fitting: what resumes


class SaveLastAtEnd(Checkpoint):
    """checkpoints/last.ckpt after every validation check, and when fitting ends between checks
    (the time budget, Lightning's Timer, stops mid-epoch): its state, with the optimiser's, the
    schedules' and the random generators', lets resume=true continue (and count the time already
    spent). Needed because Lightning >= 2.6 writes ModelCheckpoint's save_last file only when the
    monitored score improves: a resumed run would redo every epoch since its last improvement.
    A Checkpoint subclass, so Lightning runs it after ModelCheckpoint, whose updated best score
    this file must carry."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._model_checkpoint_saves_at(trainer, epoch_end=True):
            self._save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._model_checkpoint_saves_at(trainer, False):
            self._save(trainer)

    @staticmethod
    def _model_checkpoint_saves_at(trainer: pl.Trainer, epoch_end: bool) -> bool:
        """Save in the hook where ModelCheckpoint saves: at the training epoch's end when
        validation ends each epoch, else after each validation check (Lightning's own rule)."""
        ckpt = model_checkpoint(trainer)
        return ckpt is not None and ckpt._should_save_on_train_epoch_end(trainer) == epoch_end

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        module.stopped_by = stop_reason(trainer)  # recorded in the checkpoint (ddp_spawn)
        self._save(trainer)

    @staticmethod
    def _save(trainer: pl.Trainer) -> None:
        ckpt = model_checkpoint(trainer)
        if ckpt is not None and ckpt.dirpath:
            # the whole state (weights_only=False here means "not weights only": callbacks'
            # and loops' state too); loading it back uses weights_only=True
            trainer.save_checkpoint(str(Path(ckpt.dirpath) / LAST_CHECKPOINT), weights_only=False)


def model_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def build(cfg: DictConfig):
    """The datamodule (loaded and checked) and the model sized to its classes."""
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()  # bad data fails here, before any training
    model = build_model(cfg, dm.class_names, crop_size=dm.crop_size, image_size=dm.image_size,
                        normalization=dm.normalization)
    dm.include_unlabelled = model.learns_from_unlabelled
    return dm, model


def build_model(cfg: DictConfig, class_names: list[str], **data) -> pl.LightningModule:
    """The family's LightningModule as cfg.model configures it, for these classes (and crop
    size, image size, normalisation: `data`)."""
    return hydra.utils.instantiate(
        cfg.model, _recursive_=False,  # the module builds its network from `net` itself
        num_classes=len(class_names), class_names=list(class_names), **data)


def run(cfg: DictConfig, output_dir: str | Path, command: str | None = None,
        overrides: list[str] | None = None) -> dict:
    """Fit, then test once (unless cfg.test is false: tuning runs select on validation only)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "checkpoints" / LAST_CHECKPOINT
    earlier_tests = []
    if cfg.get("resume") and not last.is_file():
        from fer_bench import snapshot  # (it imports this module)

        restored = snapshot.restore_for(out, Path(cfg.paths.experiments_dir))
        if restored:
            log.info("%s", restored)
    if cfg.get("resume"):
        finished, earlier_tests = finished_results(out, cfg)
        if finished is not None:
            log.info("%s: kept (finished with the same config): %s", cfg.model.name,
                     out / RESULTS_FILE)
            return finished
    resume_from = str(last) if cfg.get("resume") and last.is_file() else None
    provenance.flush_subnormals()  # before torch starts its threads: they inherit it
    threads = threads_for(cfg.get("threads"))
    if threads:
        torch.set_num_threads(threads)  # no oversubscription when jobs run side by side
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, model = build(cfg)
    # What this process composed and imported: the checkout may change while a long run fits.
    git_at_start = provenance.git_state()
    machine = provenance.machine()
    model.session = {"git": git_at_start, "hostname": machine["hostname"], "cpu": machine["cpu"],
                     "threads": machine["threads"], "gpu": machine.get("gpu"),
                     "precision": cfg.trainer.precision}
    if dm.source == "folder" and dm.root and not (Path(dm.root) / "train").is_dir():
        _write_split_record(dm, out / "split.csv")

    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values()]
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(out / "checkpoints")
    logger = hydra.utils.instantiate(cfg.logger, save_dir=str(out)) if cfg.get("logger") else False
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    precision.warn_if_emulated(cfg.trainer.precision, cfg.trainer.accelerator)

    if trainer.world_size > 1:
        # ddp_spawn sends the model and data to its processes through shared memory; file
        # descriptors (torch's default) fail to map in the workers here, files do not
        torch.multiprocessing.set_sharing_strategy("file_system")
    if resume_from:
        log.info("%s: resuming from %s", cfg.model.name, resume_from)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=resume_from, weights_only=True)
    fit = fit_outcome(trainer, model, last, time.perf_counter() - t0)
    best = fit["best"]
    n_train = len(dm.train_set())  # the faces an epoch iterates
    results = {  # what every run records, tested or not
        "status": "ok", "command": command, "overrides": overrides,
        "model": cfg.model.name, "family": model.family, "seed": int(cfg.seed),
        "report_name": cfg.report.name,
        "best_val_acc": fit["best_score"],
        "selection": {"metric": SELECTION_METRIC, "split": "val", "checkpoint": best},
        "epochs": fit["epochs"], "images_seen": model.images_seen,
        "epochs_completed": round(model.images_seen / n_train, 4) if n_train else None,
        "stopped_by": fit["stopped_by"],
        "resumed_from": None if model.resumed_from is None else {
            "checkpoint": resume_from, **model.resumed_from},
        "history": model.val_history,
        "params": model.classifier_parameters(), "params_total": count(model),
        "train_seconds": round(fit["seconds"], 1),
        "devices": {"strategy": type(trainer.strategy).__name__, "world_size": trainer.world_size,
                    "accelerator": type(trainer.accelerator).__name__},
        "data": dm.info,
        **(ended := provenance.record(str(trainer.strategy.root_device))),
        "git": git_at_start,
        "fit_sessions": model.fit_sessions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if ended["git"] != git_at_start:  # the checkout was edited or committed meanwhile
        results["git_at_end"] = ended["git"]
    train_seconds = fit["seconds"]
    if trainer.global_rank != 0:  # a `ddp` worker process: rank 0 tests and writes
        return results
    if best is None:  # never test the last weights in its place
        raise NoBestCheckpoint(_no_best_message(cfg))
    if not cfg.get("test", True):  # a tuning run: selected on validation, never tested
        results |= {"tested": False, "test_passes": 0, "metrics": {}}
        write_results(out, results)
        log.info("%s: best val acc %.4f after %.0f s (not tested: tuning run) -> %s",
                 cfg.model.name, results["best_val_acc"], train_seconds, out / RESULTS_FILE)
        return results

    tested = test_trainer(trainer, cfg).test(model, datamodule=dm, ckpt_path=best,
                                             weights_only=True, verbose=False)[0]  # once
    results |= {
        "tested": True, "test_passes": 1 + len(earlier_tests), "tested_checkpoint": best,
        "replaced_tests": earlier_tests,
        "metrics": {k.removeprefix("test/"): float(v) for k, v in tested.items()},
        **model.test_summary(),
        "eval_images_per_second": round(_throughput(model, dm), 1),
        "test_duplicates_of_train": _indices(dm.test_duplicates()),
        "test_duplicates_of_any_train": _indices(dm.test_duplicates(any_class=True)),
        "checkpoint": best,
    }
    write_results(out, results)
    if cfg.report.get("archive"):  # committed as each run ends: a sweep cut short keeps them
        from fer_bench.report.collect import archive  # (collect imports this module)

        archive([results | {"run_dir": str(out)}], cfg.report.archive)
    m = results["metrics"]
    tta = f"{100 * m['acc_tta']:.1f}%" if "acc_tta" in m else "-"
    log.info("%s: test acc %.1f%% (ten views %s), macro-F1 %.3f, %.2f epochs (%s), %.0f s -> %s",
             cfg.model.name, 100 * m["acc"], tta, m["f1_macro"], results["epochs_completed"],
             results["stopped_by"], train_seconds, out / RESULTS_FILE)
    return results


def fit_outcome(trainer: pl.Trainer, model, last: Path, seconds: float) -> dict:
    """Best checkpoint and score, epochs, why fitting stopped, seconds (earlier sessions of a
    resumed run included). Several devices (ddp_spawn): the workers' state is gone, so it is
    read back from the last checkpoint rank 0 wrote when fitting ended."""
    ckpt = model_checkpoint(trainer)
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    if trainer.world_size > 1 and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        progress = state["fer_bench"]["progress"]
        model.images_seen, model.val_history = progress["images_seen"], progress["val_history"]
        score = (callback_state(state, "ModelCheckpoint") or {}).get("best_model_score")
        return {"best": best, "best_score": None if score is None else float(score),
                "epochs": int(state["epoch"]), "stopped_by": progress.get("stopped_by"),
                "seconds": float(progress["fit_seconds"])}
    return {"best": best, "best_score": float(ckpt.best_model_score) if best else None,
            "epochs": int(trainer.current_epoch), "stopped_by": stop_reason(trainer),
            "seconds": model.seconds_before + seconds}


def callback_state(checkpoint: dict, name: str) -> dict | None:
    """A callback's state in a Lightning checkpoint, found by its class name (Lightning keys it
    by the name and the callback's settings)."""
    return next((v for k, v in checkpoint.get("callbacks", {}).items() if k.startswith(name)),
                None)


def test_trainer(trainer: pl.Trainer, cfg: DictConfig) -> pl.Trainer:
    """The trainer that tests: the fitting one on one device; after fitting on several, a
    one-device trainer, so that the test split is run once, whole (no distributed sampler
    padding or splitting it) and every face's prediction is kept."""
    if trainer.world_size == 1:
        return trainer
    return pl.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                      precision=cfg.trainer.precision, enable_checkpointing=False,
                      enable_model_summary=False, enable_progress_bar=False)


def archived_results(cfg: DictConfig) -> Path | None:
    """This run's results file in the experiment's archive (report.archive), if there is one."""
    if not cfg.report.get("archive"):
        return None
    from fer_bench.report.collect import archive_name  # (collect imports this module)

    this = {"report_name": cfg.report.name, "model": cfg.model.name, "seed": cfg.seed,
            "config": {"data": {"labeled_fraction": cfg.data.get("labeled_fraction", 1.0)}}}
    path = Path(cfg.report.archive) / f"{archive_name(this)}.json"
    return path if path.is_file() else None


def finished_results(out: Path, cfg: DictConfig) -> tuple[dict | None, list[dict]]:
    """(results, tests to replace) for resume=true. results: the run folder's results when they
    are complete for this config (kept); None when there are none, the run failed (it runs
    again) or a raised time cap lets the run its old cap stopped continue, and then the tests
    to replace are its earlier test passes. ConfigMismatch when they come from another config.
    A folder without results (a fresh clone: run folders are not committed) is judged by the
    run's archived results; kept, they are copied into it for the sweep's report."""
    path = out / RESULTS_FILE
    if not path.is_file():
        path = archived_results(cfg)
        if path is None:
            return None, []
    results, replaced = _judged(path, out, cfg)
    if results is not None and path.parent != out:
        shutil.copyfile(path, out / RESULTS_FILE)
    return results, replaced


def _judged(path: Path, out: Path, cfg: DictConfig) -> tuple[dict | None, list[dict]]:
    """finished_results for the results file at path (the run folder's or the archive's)."""
    results = json.loads(path.read_text())
    ok = results.get("status") == "ok"
    now = OmegaConf.to_container(cfg, resolve=ok)  # failed runs record their config unresolved
    recorded = results.get("config") or {}
    # a setting the machine chooses (fastest_precision): a finished run keeps the one it ran with
    differences = config_differences(recorded, now, ignore=machine_chosen_keys(cfg))
    raised = raised_caps(recorded, now) if ok else {}
    if differences and len(raised) == len(differences):  # raised caps are all that differ
        if results.get("stopped_by") not in {reason for reason, _, _ in raised.values()}:
            return results, []  # it ended before its cap: the same run under the higher one
        if (out / "checkpoints" / LAST_CHECKPOINT).is_file():  # it continues from there
            return None, replaced_tests(results, raised) if results.get("tested") else []
        log.warning("%s: the cap that stopped it was raised, but it has no %s to continue "
                    "from: kept as it ran", path, LAST_CHECKPOINT)
        return results, []
    if differences:
        raise ConfigMismatch(
            f"resume=true: {path} was written by another config than this run's; differences "
            f"(recorded -> now): {'; '.join(differences[:12])}. Resume with the sweep's own "
            "overrides, or give this run another folder (hydra.sweep.dir / hydra.run.dir)"
            + ("" if path.parent == out else "; to train it again, move the archived file "
               "away (a finished run replaces it), or archive this variant under another "
               "name (report.name=...)"))
    return (results if ok else None), []


# Caps a finished run may be given more of (resume=true): a run its old cap did not stop is the
# same run under the higher cap (kept); one it stopped continues from its last checkpoint and is
# tested again, its earlier test listed as replaced. The cap's name as stop_reason says it.
# (Not max_epochs: schedules may be planned over it, so raising it changes the run.)
RAISABLE_CAPS = {"trainer.max_time": "max_time"}


def raised_caps(recorded: dict, now: dict) -> dict[str, tuple[str, object, object]]:
    """{config key: (stop reason, recorded value, value now)} of the caps `now` raises above
    what `recorded` ran with."""
    a, b = _flatten(recorded), _flatten(now)
    return {key: (reason, a[key], b[key]) for key, reason in RAISABLE_CAPS.items()
            if a.get(key) is not None and key in b
            and cap_raised(a[key], b[key])}


def cap_raised(before: str, after: str | None) -> bool:
    """A time cap set higher, or removed (None)."""
    return after is None or time_cap_seconds(after) > time_cap_seconds(before)


def time_cap_seconds(duration: str) -> float:
    """Seconds in a DD:HH:MM:SS time cap (Lightning's max_time string)."""
    d, h, m, s = (float(x) for x in str(duration).split(":"))
    return ((d * 24 + h) * 60 + m) * 60 + s


def replaced_tests(earlier: dict, raised: dict) -> list[dict]:
    """A tested run that continues under raised caps: its earlier test passes (kept in its new
    record as `replaced_tests`, with why)."""
    this = {"metrics": earlier["metrics"], "tested_checkpoint": earlier.get("tested_checkpoint"),
            "best_val_acc": earlier.get("best_val_acc"), "epochs": earlier.get("epochs"),
            "epochs_completed": earlier.get("epochs_completed"),
            "stopped_by": earlier.get("stopped_by"), "train_seconds": earlier.get("train_seconds"),
            "git": earlier.get("git"),
            "raised": {k: [a, b] for k, (_, a, b) in raised.items()},
            "why": "stopped by its cap, which was then raised ("
                   + "; ".join(f"{k}: {a} -> {b}" for k, (_, a, b) in raised.items())
                   + "): the run continued from its last checkpoint and was tested again"}
    return [*earlier.get("replaced_tests", []), this]


# Settings added after runs were recorded, at the value that does what those runs did: a record
# without the key matches a config with it at this value (resume keeps such runs).
NEUTRAL_ADDITIONS = {"data.labeled_fraction": 1.0, "trainer.precision": "32-true"}


# Settings that say what is done with a run, or where and how fast it computes, not what it
# trains: a run moved to another checkout or machine (paths), or continued with another thread
# count, is the same run (each fitting session records its threads and machine).
NOT_WHAT_IT_TRAINS = ("resume", "report.", "paths.", "data.cache_dir", "threads")


def config_differences(recorded: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """`key: recorded -> now` for every leaf that differs, a setting added after a run was
    recorded read at its neutral value; NOT_WHAT_IT_TRAINS and the `ignore` prefixes aside."""
    flat_a = NEUTRAL_ADDITIONS | _flatten(recorded)
    flat_b = NEUTRAL_ADDITIONS | _flatten(now)
    skipped = (*NOT_WHAT_IT_TRAINS, *ignore)
    return [f"{k}: {flat_a.get(k, '<absent>')!r} -> {flat_b.get(k, '<absent>')!r}"
            for k in sorted(set(flat_a) | set(flat_b))
            if not k.startswith(skipped) and flat_a.get(k, "<absent>") != flat_b.get(k, "<absent>")]


def machine_chosen_keys(cfg: DictConfig) -> tuple[str, ...]:
    """The settings this config leaves to the machine a run lands on (`${fastest_precision:..}`)."""
    flat = _flatten(OmegaConf.to_container(cfg, resolve=False))
    return tuple(k for k, v in flat.items() if isinstance(v, str) and "${fastest_precision" in v)


def _flatten(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


def threads_for(setting) -> int | None:
    """Threads for this run: a number, or `auto` (the CPUs a submitit job was given; cores /
    the launcher's parallel jobs when it runs several at once; else None: torch's default)."""
    if setting is None or setting == "default":
        return None
    if setting != "auto":
        return int(setting)
    cpus = launcher_setting("cpus_per_task")
    if cpus:
        return int(cpus)
    jobs = parallel_jobs()
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


def parallel_jobs() -> int:
    """How many runs the Hydra launcher runs side by side (joblib's n_jobs; 1 otherwise)."""
    n_jobs = launcher_setting("n_jobs")
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return (os.cpu_count() or 1) + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = all


def launcher_setting(key: str):
    """A setting of the Hydra launcher running this job; None outside a Hydra job (the gate,
    tests) or where the launcher has no such setting."""
    try:
        return HydraConfig.get().launcher.get(key)
    except ValueError:
        return None


def stop_reason(trainer: pl.Trainer) -> str:
    """Why fitting ended: early_stopping, max_time, max_steps, max_epochs, or interrupted."""
    for cb in trainer.callbacks:
        if isinstance(cb, EarlyStopping) and cb.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            return "early_stopping"
    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb._duration is not None and (
                cb.time_elapsed("train") >= cb._duration):
            return "max_time"
    if trainer.max_steps and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    return "interrupted"


def _no_best_message(cfg: DictConfig) -> str:
    return (f"{cfg.model.name}: fitting ended without a best-validation checkpoint (no "
            f"validation check ran, or {SELECTION_METRIC} was never logged), so there is no "
            "model selected on validation to test; give the run more batches or validate more "
            "often (trainer.val_check_interval)")


def root_cause(e: BaseException) -> BaseException:
    """The innermost exception: Hydra's instantiate wraps the one that names the bad value."""
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _indices(mask) -> list[int] | None:
    return None if mask is None else mask.nonzero()[0].tolist()


def write_results(out: Path, results: dict) -> None:
    tmp = out / f".{RESULTS_FILE}.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out / RESULTS_FILE)


@torch.no_grad()
def _throughput(model, dm) -> float:
    """Single-view evaluation images per second over (up to 1,000) test faces."""
    model.eval()
    x = dm.tensors["test"].tensors[0][:1000].to(model.device)
    t0 = time.perf_counter()
    for i in range(0, len(x), dm.batch_size):
        model.probabilities(x[i : i + dm.batch_size])
    return len(x) / max(time.perf_counter() - t0, 1e-9)


def _write_split_record(dm, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["split", "file", "label"])
        writer.writeheader()
        writer.writerows(dm.split_record())
