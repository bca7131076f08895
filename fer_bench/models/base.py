"""The shared Lightning base: the network from config, metrics, evaluation, ten views, checkpoint
meta, optimizers and schedules from config."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from fer_bench.data.views import center_view, ten_views


def plain(value):
    """OmegaConf containers -> plain Python, so checkpoints load with weights_only=True."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _metrics(k: int) -> MetricCollection:
    return MetricCollection({
        "acc": MulticlassAccuracy(k, average="micro"),
        "balanced_acc": MulticlassAccuracy(k, average="macro"),
        "f1_macro": MulticlassF1Score(k, average="macro"),
    })


class FERModule(pl.LightningModule):
    """The shared base. `net`, `optimizer` and `scheduler` are Hydra configs (`_target_`, the
    last two `_partial_`): the network is built here, once the data's class count and crop size
    are known; the optimizer and the schedule in `configure_optimizers`, returned to Lightning,
    which steps them and keeps their state in every checkpoint. Subclasses set the training step.
    """

    def __init__(self, net: dict, optimizer: dict, num_classes: int, class_names: list[str],
                 scheduler: dict | None = None, crop_size: int = 44, image_size: int = 48,
                 normalization: str = "none", tta: bool = True, name: str | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least two classes, got {num_classes}")
        self.save_hyperparameters({
            "name": name, "num_classes": num_classes, "class_names": list(plain(class_names)),
            "crop_size": crop_size, "image_size": image_size, "normalization": normalization,
            "tta": tta, "net": plain(net), "optimizer": plain(optimizer),
            "scheduler": plain(scheduler),
        })
        self.net = build(net, num_classes=num_classes, input_size=crop_size)
        k = num_classes
        self.val_metrics = _metrics(k).clone(prefix="val/")
        self.test_metrics = _metrics(k).clone(prefix="test/")
        self.test_tta_metrics = _metrics(k).clone(prefix="test/", postfix="_tta")
        self.test_recall = MulticlassRecall(k, average=None)
        self.test_recall_tta = MulticlassRecall(k, average=None)
        self.test_confusion = MulticlassConfusionMatrix(k)
        self.test_records: dict[str, list[torch.Tensor]] = {}
        self.val_history: list[dict] = []  # every validation check: images seen, seconds, acc
        self.images_seen, self._fit_start = 0, 0.0  # training faces seen in this fit

    @property
    def family(self) -> str:
        return self.hparams.name

    # ------------------------------------------------------------ inference
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """K expression logits for crop-sized views."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.no_grad()
    def probabilities(self, faces: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Class probabilities of full-size faces: the centre view, or the mean over ten views."""
        crop = self.hparams.crop_size
        if not tta:
            return F.softmax(self.logits(center_view(faces, crop)), -1)
        views = ten_views(faces, crop)
        probs = F.softmax(self.logits(views.flatten(0, 1)), -1)
        return probs.view(views.shape[0], faces.shape[0], -1).mean(0)

    # ------------------------------------------------------------- training
    def optimizer_with_schedule(self, optimizer: dict, params) -> tuple:
        """(optimizer, Lightning scheduler dict or None) from `_partial_` configs."""
        opt = instantiate(optimizer)(params=params)
        if not self.hparams.scheduler:
            return opt, None
        sched = instantiate(self.hparams.scheduler)(opt)
        config = {"scheduler": sched, "interval": "epoch"}
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/acc"  # selection metric of the validation split only
        return opt, config

    def on_fit_start(self):
        self.images_seen, self._fit_start, self.val_history = 0, time.perf_counter(), []

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.images_seen += len(batch[1])

    def on_validation_epoch_end(self):
        score = self.trainer.callback_metrics.get("val/acc")
        if score is None or self.trainer.sanity_checking:
            return
        self.val_history.append({
            "epoch": int(self.current_epoch), "images": self.images_seen,
            "seconds": round(time.perf_counter() - self._fit_start, 1),
            "val_acc": round(float(score), 5)})

    # ----------------------------------------------------------- evaluation
    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.logits(center_view(x, self.hparams.crop_size))
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=False)
        self.val_metrics.update(logits, y)
        self.log_dict(self.val_metrics, prog_bar=True)

    def on_test_epoch_start(self):
        self.test_records = {"target": [], "pred": [], "pred_tta": []}

    def test_step(self, batch, batch_idx):
        x, y = batch
        probs = self.probabilities(x, tta=False)
        self.test_metrics.update(probs, y)
        self.test_recall.update(probs, y)
        self.test_confusion.update(probs, y)
        self.log_dict(self.test_metrics)
        self.test_records["target"].append(y.cpu())
        self.test_records["pred"].append(probs.argmax(-1).cpu())
        if self.hparams.tta:
            probs_tta = self.probabilities(x, tta=True)
            self.test_tta_metrics.update(probs_tta, y)
            self.test_recall_tta.update(probs_tta, y)
            self.log_dict(self.test_tta_metrics)
            self.test_records["pred_tta"].append(probs_tta.argmax(-1).cpu())

    def test_summary(self) -> dict:
        """Everything the results file needs from the (single) test run."""
        out = {
            "per_class_recall": self._named(self.test_recall.compute()),
            "confusion": self.test_confusion.compute().tolist(),
            "predictions": {k: torch.cat(v).tolist() for k, v in self.test_records.items() if v},
        }
        if self.hparams.tta:
            out["per_class_recall_tta"] = self._named(self.test_recall_tta.compute())
        return out

    def _named(self, values: torch.Tensor) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.hparams.class_names, values)}

    # ------------------------------------------------------------- metadata
    def classifier_parameters(self) -> int:
        return count(self.net)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """All that predict needs, as plain data (loads with weights_only=True)."""
        checkpoint["fer_bench"] = {"family": self.family, "hparams": dict(self.hparams)}


def build(config: dict, **sizes) -> nn.Module:
    """A network from its `_target_` config, sized by the data (num_classes, input_size...)."""
    return instantiate(config, **sizes)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
