"""The shared Lightning base: the network from config, metrics, evaluation, ten views, checkpoint
meta, optimizers and schedules from config."""

from __future__ import annotations

import random
import time

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.trainer.states import TrainerFn
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
                 normalization: str = "none", tta: bool = True, name: str | None = None,
                 channels_last: bool = False, compile: bool = False):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least two classes, got {num_classes}")
        self.save_hyperparameters({
            "name": name, "num_classes": num_classes, "class_names": list(plain(class_names)),
            "crop_size": crop_size, "image_size": image_size, "normalization": normalization,
            "tta": tta, "channels_last": channels_last, "compile": compile, "net": plain(net),
            "optimizer": plain(optimizer), "scheduler": plain(scheduler),
        })
        self.net = self.speed_up(build(net, num_classes=num_classes, input_size=crop_size))
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
        self.seconds_before = 0.0  # fitting seconds of earlier sessions (a resumed run)
        self.resumed_from: dict | None = None  # the progress a resumed run started from
        # what each fitting session ran (git, machine), from the first: set by train.run; a
        # resumed run reads the earlier sessions from its checkpoint
        self.session: dict = {}
        self.earlier_sessions: list[dict] = []
        self.stopped_by: str | None = None  # why fitting ended (set when it ends)

    # True for a family whose loss uses unlabelled training faces (data.labeled_fraction < 1)
    learns_from_unlabelled = False
    training_only: tuple[str, ...] = ()  # submodules prediction never uses: not shipped

    @property
    def family(self) -> str:
        return self.hparams.name

    # ------------------------------------------------------------ speed
    def speed_up(self, network: nn.Module) -> nn.Module:
        """channels_last: NHWC convolutions, x1.15-1.34 for the CNNs here (experiments/bench/);
        compile: torch.compile in place (parameter names, so checkpoints, stay the same)."""
        if self.hparams.channels_last:
            network = network.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            network.compile()
        return network

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the networks' memory format."""
        if self.hparams.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # ------------------------------------------------------------ inference
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """K expression logits for crop-sized views."""
        return self.net(self.layout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    @torch.no_grad()
    def probabilities(self, faces: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Class probabilities of full-size faces: the centre view, or the mean over ten views."""
        crop = self.hparams.crop_size
        if not tta:
            return F.softmax(self.logits(center_view(faces, crop)), -1)
        # View by view: one batch of ten times the faces overflows the caches (x2 slower, bench)
        views = ten_views(faces, crop)
        return torch.stack([F.softmax(self.logits(v), -1) for v in views]).mean(0)

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
        self._fit_start = time.perf_counter()
        if self.resumed_from is None:  # a resumed run keeps its progress (on_load_checkpoint)
            self.images_seen, self.val_history, self.seconds_before = 0, [], 0.0

    def fit_seconds(self) -> float:
        """Seconds of fitting, earlier sessions of a resumed run included."""
        return self.seconds_before + time.perf_counter() - self._fit_start

    def on_train_batch_end(self, outputs, batch, batch_idx):
        faces = batch["faces"] if isinstance(batch, dict) else batch  # an epoch's stream
        self.images_seen += len(faces[1]) * self.trainer.world_size  # every device's batch

    def on_validation_epoch_end(self):
        score = self.trainer.callback_metrics.get("val/acc")
        if score is None or self.trainer.sanity_checking:
            return
        self.val_history.append({
            "epoch": int(self.current_epoch), "images": self.images_seen,
            "seconds": round(self.fit_seconds(), 1),
            "val_acc": round(float(score), 5)})

    # ------------------------------------------------------------- training
    @staticmethod
    def supervised_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over a batch's labelled faces: class ids (-1: unlabelled) or soft
        targets (rows of class probabilities, FER+ votes; an all-zero row: unlabelled). Logits
        beyond the targets' classes (the GAN's "fake") get probability 0."""
        labelled = y.sum(1) > 0 if y.is_floating_point() else y >= 0
        if not labelled.any():
            return logits.sum() * 0  # no labelled face in this batch: no supervised signal
        logits, y = logits[labelled], y[labelled]
        if y.is_floating_point() and logits.shape[1] > y.shape[1]:
            y = F.pad(y, (0, logits.shape[1] - y.shape[1]))
        return F.cross_entropy(logits, y)

    # ----------------------------------------------------------- evaluation
    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.logits(center_view(x, self.hparams.crop_size))
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=False, sync_dist=True)
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
        """All that predict needs, and a resumed run's progress and random state, as plain data
        and tensors (loads with weights_only=True)."""
        checkpoint["fer_bench"] = {
            "family": self.family, "hparams": dict(self.hparams),
            "progress": {"images_seen": self.images_seen, "val_history": list(self.val_history),
                         "fit_seconds": round(self.fit_seconds(), 3),
                         "epoch": int(self.current_epoch), "stopped_by": self.stopped_by,
                         "sessions": self.fit_sessions()},
            "rng": random_state()}

    def fit_sessions(self) -> list[dict]:
        """Each session that fitted this run: where it started (epoch, faces seen) and what
        ran (git state at its start, machine); one unless the run was resumed."""
        start = self.resumed_from or {"epoch": 0, "images_seen": 0}
        return [*self.earlier_sessions, {"from_epoch": start["epoch"],
                                         "from_images": start["images_seen"], **self.session}]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming a fit: carry on counting and drawing from where the checkpoint left off
        (testing the best checkpoint loads its weights only)."""
        if self._trainer is None or self.trainer.state.fn != TrainerFn.FITTING:
            return
        saved = checkpoint.get("fer_bench", {})
        progress = saved.get("progress")
        if progress:
            self.images_seen = int(progress["images_seen"])
            self.val_history = list(progress["val_history"])
            self.seconds_before = float(progress["fit_seconds"])
            self.earlier_sessions = list(progress.get("sessions", []))
            self.resumed_from = {"epoch": progress["epoch"], "images_seen": self.images_seen,
                                 "fit_seconds": self.seconds_before,
                                 "global_step": int(checkpoint.get("global_step", 0))}
        if saved.get("rng"):
            set_random_state(saved["rng"])


def random_state() -> dict:
    """torch's, numpy's and Python's generators, as tensors and plain lists."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": list(random.getstate()[1]), "python_gauss": random.getstate()[2]}


def set_random_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))


def build(config: dict, **sizes) -> nn.Module:
    """A network from its `_target_` config, sized by the data (num_classes, input_size...)."""
    return instantiate(config, **sizes)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
