"""One run: build data and model, fit (selecting on validation), test once, write results.json."""

from __future__ import annotations

import csv
import json
import logging
import platform
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from fer_bench.models.base import count

log = logging.getLogger(__name__)
RESULTS_FILE = "results.json"


def model_config(cfg: DictConfig) -> DictConfig:
    """cfg.model with the experiment's model_overrides (`all`, then the model's own) applied."""
    overrides = cfg.get("model_overrides") or {}
    return OmegaConf.merge(OmegaConf.to_container(cfg.model, resolve=True),
                           overrides.get("all") or {}, overrides.get(cfg.model.name) or {})


def build(cfg: DictConfig):
    """The datamodule (loaded and checked) and the model sized to its classes."""
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()  # bad data fails here, before any training
    model_cfg = {k: v for k, v in model_config(cfg).items() if k != "name"}
    model = hydra.utils.instantiate(
        model_cfg, num_classes=len(dm.class_names), class_names=dm.class_names,
        crop_size=dm.crop_size, image_size=dm.image_size, normalization=dm.normalization,
    )
    return dm, model


def run(cfg: DictConfig, output_dir: str | Path, command: str | None = None,
        overrides: list[str] | None = None) -> dict:
    """Fit, then test once (unless cfg.test is false: tuning runs select on validation only)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, model = build(cfg)
    if dm.source == "folder" and dm.root and not (Path(dm.root) / "train").is_dir():
        _write_split_record(dm, out / "split.csv")

    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values()]
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(out / "checkpoints")
    logger = hydra.utils.instantiate(cfg.logger, save_dir=str(out)) if cfg.get("logger") else False
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=logger)

    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    train_seconds = time.perf_counter() - t0
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    results = {  # what every run records, tested or not
        "status": "ok", "command": command, "overrides": overrides,
        "model": cfg.model.name, "family": model.family, "seed": int(cfg.seed),
        "report_name": cfg.report.name,
        "best_val_acc": float(ckpt.best_model_score) if best else None,
        "epochs": int(trainer.current_epoch), "images_seen": model.images_seen,
        "history": model.val_history,
        "params": model.classifier_parameters(), "params_total": count(model),
        "train_seconds": round(train_seconds, 1),
        "data": dm.info,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(),
                    "accelerator": str(trainer.strategy.root_device)},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if not cfg.get("test", True):  # a tuning run: selected on validation, never tested
        results |= {"tested": False, "metrics": {}}
        write_results(out, results)
        log.info("%s: best val acc %s after %.0f s (not tested: tuning run) -> %s",
                 cfg.model.name, results["best_val_acc"], train_seconds, out / RESULTS_FILE)
        return results

    tested = trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)[0]  # once
    results |= {
        "tested": True,
        "metrics": {k.removeprefix("test/"): float(v) for k, v in tested.items()},
        **model.test_summary(),
        "eval_images_per_second": round(_throughput(model, dm), 1),
        "test_duplicates_of_train": dm.test_duplicates().nonzero()[0].tolist(),
        "checkpoint": best,
    }
    write_results(out, results)
    m = results["metrics"]
    tta = f"{100 * m['acc_tta']:.1f}%" if "acc_tta" in m else "-"
    log.info("%s: test acc %.1f%% (ten views %s), macro-F1 %.3f, %d epochs, %.0f s -> %s",
             cfg.model.name, 100 * m["acc"], tta, m["f1_macro"], results["epochs"],
             train_seconds, out / RESULTS_FILE)
    return results


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
