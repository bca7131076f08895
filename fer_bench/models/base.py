"""The shared Lightning base: metrics, the evaluation step, ten-view averaging, checkpoint meta."""

from __future__ import annotations

import math
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
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
    """Subclasses build `self.net` and may override `logits` and `training_step`."""

    family = "base"

    def __init__(self, num_classes: int, class_names: list[str], crop_size: int = 44,
                 image_size: int = 48, normalization: str = "none", lr: float = 1e-3,
                 weight_decay: float = 0.0, betas=(0.9, 0.999), tta: bool = True,
                 plateau: dict | None = None, cosine: bool = False, net: dict | None = None):
        super().__init__()
        self.save_hyperparameters({
            "num_classes": num_classes, "class_names": list(plain(class_names)),
            "crop_size": crop_size, "image_size": image_size, "normalization": normalization,
            "lr": lr, "weight_decay": weight_decay, "betas": list(plain(betas)), "tta": tta,
            "plateau": plain(plateau), "cosine": cosine, "net": plain(net) or {},
        })
        if plateau and cosine:
            raise ValueError("model.plateau and model.cosine both set: choose one schedule")
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
        self._plateaus: list = []
        self._cosines: list = []

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
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.logits(x), y)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr,
                                betas=tuple(self.hparams.betas),
                                weight_decay=self.hparams.weight_decay)

    def on_fit_start(self):
        self.images_seen, self._fit_start, self.val_history = 0, time.perf_counter(), []
        # Optional schedules, stepped by hand so that automatic (CNN, LSTM) and manual (GAN)
        # optimisation share them: `plateau` lowers every learning rate when val/acc stops
        # improving; `cosine` anneals them to zero over trainer.max_epochs (set max_epochs to
        # what fits the wall-time budget, or the run stops before the rate reaches zero).
        opts = self.optimizers()
        opts = [o.optimizer for o in (opts if isinstance(opts, list) else [opts])]
        p = self.hparams.plateau
        self._plateaus = [] if not p else [
            torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode="max", **p) for o in opts
        ]
        self._cosines = []
        if self.hparams.get("cosine"):
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ValueError("model.cosine needs a finite trainer.max_epochs or max_steps")
            self._cosines = [torch.optim.lr_scheduler.LambdaLR(
                o, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0))))
                for o in opts]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.images_seen += len(batch[1])
        for sched in self._cosines:
            sched.step()

    def on_validation_epoch_end(self):
        score = self.trainer.callback_metrics.get("val/acc")
        if score is None or self.trainer.sanity_checking:
            return
        self.val_history.append({
            "epoch": int(self.current_epoch), "images": self.images_seen,
            "seconds": round(time.perf_counter() - self._fit_start, 1),
            "val_acc": round(float(score), 5)})
        for sched in self._plateaus:
            sched.step(float(score))

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


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
