"""Data sources: list a data set's images by split and class, then decode them to uint8 faces.

Splits are always named train / val / test. FER2013: Training trains, PublicTest validates,
PrivateTest tests (from the file-name prefixes, or the CSV's Usage column).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from fer_bench.classes import FER2013_CLASSES, canonical
from fer_bench.data.align import FaceAligner
from fer_bench.data.errors import DataError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val",
              "validation": "val", "test": "test", "testing": "test"}
log = logging.getLogger(__name__)
FER2013_PREFIXES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


@dataclass
class Listing:
    """Image files found under a root: (relative path, canonical class, split or None)."""

    root: Path
    entries: list[tuple[str, str, str | None]] = field(default_factory=list)

    def classes(self) -> list[str]:
        return order_classes({c for _, c, _ in self.entries})

    def stamp(self) -> list:
        """What the cache fingerprint sees: every file's path, size and mtime."""
        out = []
        for rel, cls, split in self.entries:
            st = (self.root / rel).stat()
            out.append([rel, cls, split, st.st_size, st.st_mtime_ns])
        return out


def order_classes(names) -> list[str]:
    """FER2013's label order for the known expressions, then the others alphabetically."""
    known = [c for c in FER2013_CLASSES if c in names]
    return known + sorted(set(names) - set(known))


def _class_dirs(folder: Path) -> list[Path]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"{folder} has no class sub-folders; expected <class>/<image> files")
    return dirs


def _images_in(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "add images or remove the folder"
        )
    return files


def list_fer2013_folders(root: Path) -> Listing:
    listing = Listing(root)
    for top in ("train", "test"):
        if not (root / top).is_dir():
            raise DataError(f"{root} lacks {top}/: expected FER2013's train/ and test/ folders")
        for cdir in _class_dirs(root / top):
            for f in _images_in(cdir):
                prefix = f.name.split("_", 1)[0]
                split = FER2013_PREFIXES.get(prefix)
                if split is None or (top == "train") != (split == "train"):
                    raise DataError(
                        f"{f}: cannot tell its FER2013 split; files under {top}/ must be named "
                        + ("Training_*" if top == "train" else "PublicTest_* or PrivateTest_*")
                    )
                listing.entries.append((str(f.relative_to(root)), canonical(cdir.name), split))
    return listing


def list_folder(root: Path) -> Listing:
    """<root>/<class>/<img> or <root>/<split>/<class>/<img> (split: train, val, test)."""
    listing = Listing(root)
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    split_dirs = {SPLIT_DIRS[p.name.lower()]: p for p in subdirs if p.name.lower() in SPLIT_DIRS}
    if split_dirs and len(split_dirs) != len(subdirs):
        others = sorted(p.name for p in subdirs if p.name.lower() not in SPLIT_DIRS)
        raise DataError(f"{root} mixes split folders with other folders {others}; use one layout")
    for split, folder in split_dirs.items() or [(None, root)]:
        for cdir in _class_dirs(folder):
            for f in _images_in(cdir):
                listing.entries.append((str(f.relative_to(root)), canonical(cdir.name), split))
    return listing


def load_gray(path: Path) -> np.ndarray:
    """An image file, EXIF-rotated, as a uint8 grayscale array."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path} is not a decodable image ({e}); fix or remove the file") from e


def decode_image(path: Path, size: int, aligner: FaceAligner | None) -> np.ndarray | None:
    """One image file -> a size x size uint8 face (None: aligning found no face)."""
    gray = load_gray(path)
    if aligner is not None:
        face, _ = aligner.align(gray, size)
        return face
    if gray.shape == (size, size):
        return gray
    return FaceAligner().center_crop(gray, size)


def decode_listing(listing: Listing, class_index: dict[str, int], size: int,
                   aligner: FaceAligner | None) -> dict[str, dict[str, np.ndarray]]:
    """Decode the listed files of the selected classes, grouped by split (None = unsplit)."""
    chosen = [e for e in listing.entries if e[1] in class_index]
    images = np.empty((len(chosen), size, size), dtype=np.uint8)
    found = np.ones(len(chosen), dtype=bool)
    for i, (rel, _, _) in enumerate(tqdm(chosen, desc="decoding images", unit="img",
                                         mininterval=1.0, leave=False)):
        face = decode_image(listing.root / rel, size, aligner)
        if face is None:  # no face and no fallback: leave the photo out, never stop
            found[i] = False
            continue
        images[i] = face
    if not found.all():
        log.warning("%d of %d photos had no face and were left out (data.align.fallback=none)",
                    int((~found).sum()), len(chosen))
        images = images[found]
        chosen = [e for e, keep in zip(chosen, found) if keep]
    splits = np.array([s or "all" for _, _, s in chosen])
    labels = np.array([class_index[c] for _, c, _ in chosen], dtype=np.int64)
    files = np.array([rel for rel, _, _ in chosen])
    return {s: {"images": images[splits == s], "labels": labels[splits == s],
                "files": files[splits == s]} for s in map(str, sorted(set(splits)))}


def read_fer2013_csv(path: Path, class_index: dict[str, int], size: int
                     ) -> dict[str, dict[str, np.ndarray]]:
    """The original Kaggle fer2013.csv: columns emotion, pixels, Usage."""
    usage = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    out = {s: {"images": [], "labels": [], "files": []} for s in SPLITS}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path} lacks the column(s) {sorted(missing)} (need emotion, pixels, "
                            "Usage)")
        for row_no, row in enumerate(reader, start=2):
            where = f"{path}, row {row_no}"
            try:
                label_id = int(row["emotion"])
                name = FER2013_CLASSES[label_id]
            except (ValueError, IndexError):
                raise DataError(f"{where}: emotion {row['emotion']!r} is not a label id 0-6 "
                                f"({', '.join(FER2013_CLASSES)})") from None
            split = usage.get(row["Usage"])
            if split is None:
                raise DataError(f"{where}: Usage {row['Usage']!r} is not one of {sorted(usage)}")
            try:
                pixels = np.array(row["pixels"].split(), dtype=np.int64)
            except ValueError:
                raise DataError(f"{where}: pixels must be space-separated integers") from None
            if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{where}: expected 2304 pixel values 0-255 (48x48), got "
                                f"{pixels.size}; fix or drop the row")
            if name not in class_index:
                continue
            face = pixels.astype(np.uint8).reshape(48, 48)
            if size != 48:
                face = np.asarray(Image.fromarray(face).resize((size, size), Image.BILINEAR))
            out[split]["images"].append(face)
            out[split]["labels"].append(class_index[name])
            out[split]["files"].append(f"row{row_no}")
    return {
        s: {"images": np.array(d["images"], dtype=np.uint8).reshape(-1, size, size),
            "labels": np.array(d["labels"], dtype=np.int64), "files": np.array(d["files"])}
        for s, d in out.items()
    }


def stat_stamp(path: Path) -> list:
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]
