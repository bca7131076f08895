"""FER+ (Barsoum et al. 2016): FER2013's faces with ten raters' votes each, in the FER+ authors'
layout: FER2013Train|Valid|Test/ with PNGs and a header-less label.csv per folder
(file, face box, votes for neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF). Train trains, Valid selects, Test is tested.

Votes become one label per face by data.label_mode:
- majority (the FER+ authors' rule, the published accuracies'): single votes dropped, then the
  emotion with more than half of the remaining votes; no such emotion, or unknown / not-a-face
  winning, leaves the face out (25,045 / 3,191 / 3,137 faces kept);
- plurality: the emotion with the most votes, unless unknown or not-a-face has as many
  (28,150 / 3,526 / 3,522).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fer_bench.classes import canonical
from fer_bench.data.errors import DataError
from fer_bench.data.sources import Listing

FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
EMOTIONS = 8  # the first eight vote columns are expressions
LABEL_MODES = ("majority", "plurality")


def label(votes: np.ndarray, mode: str) -> int | None:
    """The face's expression (index into VOTE_COLUMNS[:8]) by the rule, or None (left out)."""
    if mode == "majority":
        kept = np.where(votes > 1, votes, 0)  # a single vote is an outlier
        winner = int(kept.argmax())
        if kept[winner] <= 0.5 * kept.sum():
            return None
    elif mode == "plurality":
        winner = int(votes.argmax())
        if votes[EMOTIONS:].max() >= votes[winner]:
            return None
    else:
        raise DataError(f"data.label_mode={mode!r} is unknown; choose one of {LABEL_MODES}")
    return winner if winner < EMOTIONS else None


def read_votes(label_csv: Path) -> list[tuple[str, np.ndarray]]:
    """(file name, ten vote counts) per row, with a named error for a row that does not parse."""
    if not label_csv.is_file():
        raise DataError(f"{label_csv} is missing: each FER+ folder needs the authors' label.csv")
    rows = []
    with open(label_csv, newline="") as fh:
        for n, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            try:
                votes = np.array([float(v) for v in row[2:]])
            except ValueError:
                votes = np.array([])
            if len(votes) != len(VOTE_COLUMNS) or votes.min() < 0 or votes.sum() <= 0:
                raise DataError(f"{label_csv}, row {n}: expected a file name, a face box and "
                                f"{len(VOTE_COLUMNS)} vote counts ({', '.join(VOTE_COLUMNS)}) "
                                "summing to a positive count; fix or remove the row")
            rows.append((row[0].strip(), votes))
    return rows


def list_ferplus(root: Path, mode: str = "majority") -> tuple[Listing, dict]:
    """The faces kept by the rule, and a record of counts: kept per split and class, left out
    per split, PNGs listed but absent (an error) and present but unlisted (counted)."""
    listing = Listing(root)
    counts: dict = {"label_mode": mode, "kept": {}, "left_out": {}, "unlisted_png": {}}
    for folder, split in FOLDERS.items():
        d = root / folder
        if not d.is_dir():
            raise DataError(f"{root} lacks {folder}/: expected the FER+ authors' layout "
                            f"({', '.join(FOLDERS)}, each with PNGs and label.csv)")
        rows = read_votes(d / "label.csv")
        listed = {name for name, _ in rows}
        missing = sorted(name for name in listed if not (d / name).is_file())
        if missing:
            raise DataError(f"{d / 'label.csv'} lists {len(missing)} image(s) absent from {d} "
                            f"(first: {missing[0]}); restore them or remove their rows")
        counts["unlisted_png"][split] = sum(1 for p in d.glob("*.png") if p.name not in listed)
        kept: dict[str, int] = {}
        for name, votes in rows:
            k = label(votes, mode)
            if k is None:
                continue
            cls = canonical(VOTE_COLUMNS[k])
            kept[cls] = kept.get(cls, 0) + 1
            listing.entries.append((f"{folder}/{name}", cls, split))
        counts["kept"][split] = kept
        counts["left_out"][split] = len(rows) - sum(kept.values())
    return listing, counts
