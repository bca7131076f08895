"""One LightningDataModule for every model: sources, decode cache, normalisation, views."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from fer_bench.classes import FER2013_CLASSES, canonical, canonical_list
from fer_bench.data import cache, ferplus, sources, synthetic
from fer_bench.data.align import FaceAligner
from fer_bench.data.errors import DataError
from fer_bench.data.normalize import normalize
from fer_bench.data.views import center_view, random_views

SOURCES = ("synthetic", "fer2013", "ferplus", "folder")


class FERDataModule(pl.LightningDataModule):
    def __init__(
        self,
        name: str = "synthetic",
        source: str = "synthetic",
        root: str | None = None,
        classes: list[str] | None = None,
        image_size: int = 48,
        crop_size: int = 44,
        normalization: str = "none",
        augment: dict | None = None,
        align: dict | None = None,
        batch_size: int = 50,
        num_workers: int = 0,
        cache_dir: str = ".cache/fer_bench",
        split_ratios: dict | None = None,
        synthetic_sizes: dict | None = None,
        limit: dict | None = None,
        seed: int = 0,
        label_mode: str = "majority",
        labeled_fraction: float = 1.0,
    ):
        super().__init__()
        if source not in SOURCES:
            raise DataError(f"data.source={source!r} is unknown; choose one of {SOURCES}")
        self.name, self.source, self.root = name, source, root
        self.requested = canonical_list(classes) if classes is not None else None
        if self.requested is not None and len(self.requested) < 2:
            raise DataError(f"data.classes={list(classes)} names {len(self.requested)} "
                            f"expression(s) after synonyms ({self.requested}); a classifier "
                            "needs at least two: name two or more, or null for all")
        self.image_size, self.crop_size = image_size, crop_size
        self.normalization = normalization
        self.augment = {"enabled": True, "mirror": True, "max_rotation": 10.0, **(augment or {})}
        self.align = {"enabled": False, **(align or {})}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_dir = Path(cache_dir)
        self.split_ratios = {"train": 0.8, "val": 0.1, "test": 0.1, **(split_ratios or {})}
        self.synthetic_sizes = {"train": 3000, "val": 600, "test": 1200, **(synthetic_sizes or {})}
        self.limit = dict(limit or {})
        self.seed = seed
        self.label_mode = label_mode  # FER+: how ten votes become a label (data/ferplus.py)
        self.label_counts: dict | None = None  # FER+: kept / left out per split and class
        if not 0 < float(labeled_fraction) <= 1:
            raise DataError(f"data.labeled_fraction={labeled_fraction} must be in (0, 1]: the "
                            "share of training faces that keep their labels")
        self.labeled_fraction = float(labeled_fraction)
        self.labelled: np.ndarray | None = None  # training faces that keep their labels
        # A family that learns from unlabelled faces (the GAN) gets all training faces, the
        # unlabelled ones with label -1; the others train on the labelled ones only.
        self.include_unlabelled = False
        self.class_names: list[str] = []
        self.splits: dict[str, dict[str, np.ndarray]] = {}
        self.tensors: dict[str, TensorDataset] = {}
        self.info: dict = {}
        self._test_duplicates: dict[bool, np.ndarray] = {}
        # The training order's generator: one per fit, its state in every checkpoint, so that a
        # resumed run draws the orders it had not drawn yet.
        self.shuffle_generator = torch.Generator().manual_seed(seed)

    # ---------------------------------------------------------------- loading
    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        t0 = time.perf_counter()
        raw, cache_hit, cache_path = self._decoded()
        if "all" in raw:
            raw = self._stratified_split(raw.pop("all"))
        for split in sources.SPLITS:
            if split not in raw or len(raw[split]["labels"]) == 0:
                raise DataError(f"split {split!r} of data set {self.name!r} ({self.root}) has no "
                                "images of the selected classes; check data.root and data.classes")
            if self.limit.get(split):
                raw[split] = _stratified_subset(raw[split], int(self.limit[split]), self.seed)
        self.splits = raw
        self.labelled = self._labelled_subset(raw["train"]["labels"])
        for split, d in raw.items():
            x = torch.from_numpy(normalize(d["images"], self.normalization)).unsqueeze(1)
            y = d.get("targets", d["labels"])  # FER+ probability: soft training targets
            self.tensors[split] = TensorDataset(x, torch.from_numpy(y))
        self.info = {
            "name": self.name, "source": self.source, "root": self.root,
            "classes": self.class_names, "normalization": self.normalization,
            "image_size": self.image_size, "crop_size": self.crop_size,
            "align": self.align, "augment": self.augment,
            "sizes": {s: int(len(d["labels"])) for s, d in raw.items()},
            "cache": {"hit": cache_hit, "path": str(cache_path)},
            "load_seconds": round(time.perf_counter() - t0, 2),
            "test_duplicates_of_train": int(self.test_duplicates().sum()),
        }
        if self.label_counts is not None:
            self.info["label_counts"] = self.label_counts
        if self.labeled_fraction < 1:
            labels = raw["train"]["labels"][self.labelled]
            self.info["labeled"] = {
                "fraction": self.labeled_fraction, "faces": int(self.labelled.sum()),
                "per_class": {c: int((labels == i).sum()) for i, c in enumerate(self.class_names)},
                "unlabelled_faces": int((~self.labelled).sum())}

    def _labelled_subset(self, labels: np.ndarray) -> np.ndarray:
        """A seeded, stratified share of the training faces that keeps its labels: round(n x
        fraction) of each class's n faces (all of them at 1.0)."""
        keep = np.ones(len(labels), dtype=bool)
        if self.labeled_fraction >= 1:
            return keep
        keep[:] = False
        rng = np.random.default_rng([self.seed, 1])  # not the split's or the order's stream
        for i, name in enumerate(self.class_names):
            idx = np.flatnonzero(labels == i)
            k = int(round(len(idx) * self.labeled_fraction))
            if k == 0:
                raise DataError(
                    f"data.labeled_fraction={self.labeled_fraction} leaves expression {name!r} "
                    f"without a label ({len(idx)} training faces); raise it to at least "
                    f"{0.5 / max(len(idx), 1):.4g} or leave the class out (data.classes)")
            keep[rng.choice(idx, size=k, replace=False)] = True
        return keep

    def train_set(self) -> TensorDataset:
        """What a training epoch iterates: every face (labels of the unlabelled ones -1) for a
        family that learns from unlabelled faces, else the labelled faces."""
        x, y = self.tensors["train"].tensors
        if self.labeled_fraction >= 1:
            return self.tensors["train"]
        mask = torch.from_numpy(self.labelled)
        if self.include_unlabelled:  # unlabelled: -1, or an all-zero row of soft targets
            if y.is_floating_point():
                return TensorDataset(x, y * mask[:, None])
            return TensorDataset(x, torch.where(mask, y, torch.full_like(y, -1)))
        return self.labelled_set()

    def faces(self, split: str) -> dict[str, np.ndarray]:
        """Decoded faces (images, labels into class_names, files) of one split, or of every
        split ("all"), without the checks a training run needs: what evaluating a trained model
        on a data set reads. A folder without split sub-folders is split as for training (seeded)
        unless split="all"."""
        raw, _, _ = self._decoded()
        if "all" in raw and split != "all":
            raw = self._stratified_split(raw.pop("all"))
        if split == "all":
            parts = [raw[s] for s in (*sources.SPLITS, "all") if s in raw]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if split not in raw:
            raise DataError(f"data set {self.name!r} ({self.root}) has no {split!r} split; "
                            "pass split=all to use every face")
        return raw[split]

    def _decoded(self):
        """The decoded splits, from the cache when the fingerprint matches."""
        listing, soft = None, {}
        spec = {"source": self.source, "size": self.image_size,
                               "align": self.align if self.align["enabled"] else False}
        if self.source == "synthetic":
            available = list(synthetic.EXPRESSIONS)
            spec |= {"sizes": self.synthetic_sizes, "seed": self.seed}
        else:
            root = self._root()
            if self.source == "fer2013" and root.is_file():
                available = list(FER2013_CLASSES)  # the CSV's label ids
                spec |= {"stamp": sources.stat_stamp(root)}
            else:
                if self.source == "ferplus":
                    listing, self.label_counts, soft = ferplus.list_ferplus(root, self.label_mode)
                    spec |= {"label_mode": self.label_mode}
                elif self.source == "fer2013":
                    listing = sources.list_fer2013_folders(root)
                else:
                    listing = sources.list_folder(root)
                available = listing.classes()
                spec |= {"root": str(root), "stamp": listing.stamp()}
        self.class_names = self._select(available)
        spec["classes"] = self.class_names
        path = self.cache_dir / f"{self.name}-{cache.fingerprint(spec)}.npz"
        raw = cache.load(path)
        if raw is not None:
            return raw, True, path
        index = {c: i for i, c in enumerate(self.class_names)}
        if self.source == "synthetic":
            raw = {}
            for i, split in enumerate(sources.SPLITS):
                images, labels = synthetic.generate(self.class_names, self.synthetic_sizes[split],
                                                    self.seed * 1000 + i, self.image_size)
                files = np.array([f"{split}_{j}" for j in range(len(labels))])
                raw[split] = {"images": images, "labels": labels, "files": files}
        elif listing is None:
            raw = sources.read_fer2013_csv(self._root(), index, self.image_size)
        else:
            aligner = None
            if self.align["enabled"]:
                aligner = FaceAligner(**{k: v for k, v in self.align.items() if k != "enabled"})
            raw = sources.decode_listing(listing, index, self.image_size, aligner)
        if soft:
            raw["train"]["targets"] = self._soft_targets(raw["train"]["files"], soft)
        cache.save(path, raw)
        return raw, False, path

    def _soft_targets(self, files: np.ndarray, soft: dict) -> np.ndarray:
        """FER+ vote distributions (over ferplus.VOTE_COLUMNS[:8]) in class_names order,
        restricted to the selected classes and renormalised."""
        columns = [self.class_names.index(canonical(c)) if canonical(c) in self.class_names
                   else None for c in ferplus.VOTE_COLUMNS[: ferplus.EMOTIONS]]
        out = np.zeros((len(files), len(self.class_names)), dtype=np.float32)
        for row, f in enumerate(files):
            for col, share in zip(columns, soft[str(f)]):
                if col is not None:
                    out[row, col] += share
        return out / out.sum(1, keepdims=True)

    @property
    def soft_targets(self) -> bool:
        """Training targets are distributions over the classes (data.label_mode=probability)."""
        return "targets" in self.splits.get("train", {})

    def _root(self) -> Path:
        if not self.root:
            raise DataError(f"data.root is not set for data={self.name}; pass data.root=<path>")
        root = Path(self.root).expanduser()
        if not root.exists():
            raise DataError(f"data.root={self.root} does not exist; point it at the data set "
                            "(a folder of class sub-folders, or fer2013.csv)")
        return root

    def _select(self, available: list[str]) -> list[str]:
        if self.requested is None:
            if len(available) < 2:
                raise DataError(f"data set {self.name!r} ({self.root}) has {len(available)} "
                                f"class(es) {available}; a classifier needs at least two")
            return list(available)
        missing = [c for c in self.requested if c not in available]
        if missing:
            raise DataError(f"data.classes names {missing}, which data set {self.name!r} lacks; "
                            f"it has {available}")
        return list(self.requested)

    def _stratified_split(self, d: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """A seeded per-class split by data.split_ratios (recorded in split_record())."""
        rng = np.random.default_rng(self.seed)
        total = sum(self.split_ratios[s] for s in sources.SPLITS)
        assign = np.empty(len(d["labels"]), dtype=object)
        for c in np.unique(d["labels"]):
            idx = rng.permutation(np.flatnonzero(d["labels"] == c))
            n_train = int(round(len(idx) * self.split_ratios["train"] / total))
            n_val = int(round(len(idx) * self.split_ratios["val"] / total))
            assign[idx[:n_train]] = "train"
            assign[idx[n_train : n_train + n_val]] = "val"
            assign[idx[n_train + n_val :]] = "test"
        return {s: {k: v[assign == s] for k, v in d.items()} for s in sources.SPLITS}

    # ---------------------------------------------------------------- outputs
    def split_record(self) -> list[dict]:
        """Which file went to which split (recorded in each run's folder)."""
        return [{"split": s, "file": f, "label": self.class_names[y]}
                for s, d in self.splits.items() for f, y in zip(d["files"], d["labels"])]

    def test_duplicates(self, any_class: bool = False) -> np.ndarray | None:
        """True for each test face that is pixel-identical to a training face (leakage audit).

        any_class=False: a face of the training faces this run uses (its classes, its limit);
        True: any face of the data set's training split, whatever its class (differs from the
        first only when data.classes selects a subset or data.limit.train is set); None where
        the data set has no training split of its own (a folder split per class selection).
        """
        if any_class and self.requested is None and not self.limit.get("train"):
            any_class = False  # the same set of training faces
        if any_class and self.source == "folder" and not (Path(self.root) / "train").is_dir():
            return None
        if any_class not in self._test_duplicates:
            train = self._all_training_faces() if any_class else self.splits["train"]["images"]
            seen = {im.tobytes() for im in train}
            self._test_duplicates[any_class] = np.array(
                [im.tobytes() in seen for im in self.splits["test"]["images"]], dtype=bool)
        return self._test_duplicates[any_class]

    def _all_training_faces(self) -> np.ndarray:
        """Every class's training faces (decoded once, cached like any selection)."""
        full = FERDataModule(
            name=self.name, source=self.source, root=self.root, classes=None,
            image_size=self.image_size, crop_size=self.crop_size, align=self.align,
            cache_dir=str(self.cache_dir), synthetic_sizes=self.synthetic_sizes, seed=self.seed,
            label_mode=self.label_mode)
        raw, _, _ = full._decoded()
        return raw["train"]["images"]

    def labelled_set(self) -> TensorDataset:
        """The training faces that keep their labels."""
        x, y = self.tensors["train"].tensors
        mask = torch.from_numpy(self.labelled)
        return TensorDataset(x[mask], y[mask])

    def _loader(self, split: str, shuffle: bool, data=None) -> DataLoader:
        self.setup()
        if data is None:
            data = self.train_set() if split == "train" else self.tensors[split]
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers,
                          generator=self.shuffle_generator if shuffle else None)

    def state_dict(self) -> dict:
        """Saved in checkpoints by Lightning."""
        return {"shuffle_generator": self.shuffle_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.shuffle_generator.set_state(state["shuffle_generator"])

    def train_dataloader(self) -> DataLoader | dict[str, DataLoader]:
        """A batch of training faces a step; below 100% labels, a family that learns from
        unlabelled faces gets two streams a step (as in Salimans et al. 2016): `faces`, every
        training face (an epoch is one pass over them), and `labelled`, a batch of the labelled
        faces, drawn again and again (Lightning's max_size_cycle), so that its supervised loss
        has a full batch at every step, not the fraction's share of one."""
        if self.include_unlabelled and self.labeled_fraction < 1:
            return {"faces": self._loader("train", shuffle=True),
                    "labelled": self._loader("train", shuffle=True, data=self.labelled_set())}
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training batches get one random view per face; evaluation keeps full faces."""
        if isinstance(batch, dict):  # the streams of a semi-supervised step
            return {k: self.on_after_batch_transfer(b, dataloader_idx) for k, b in batch.items()}
        x, y = batch
        if self.trainer is not None and self.trainer.training:
            if self.augment["enabled"]:
                x = random_views(x, self.crop_size, self.augment["mirror"],
                                 self.augment["max_rotation"])
            else:
                x = center_view(x, self.crop_size)
        return x, y


def _stratified_subset(d: dict[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    """At most n faces, keeping the class proportions (seeded)."""
    if n >= len(d["labels"]):
        return d
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(d["labels"]):
        idx = np.flatnonzero(d["labels"] == c)
        k = max(1, int(round(n * len(idx) / len(d["labels"]))))
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    keep = np.sort(np.concatenate(keep))
    return {k: v[keep] for k, v in d.items()}
