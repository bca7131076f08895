"""FER+ (Barsoum et al. 2016): FER2013's faces with ten raters' votes each, in the FER+ authors'
layout: FER2013Train|Valid|Test/ with PNGs and a header-less label.csv per folder
(file, face box, votes for neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF). Train trains, Valid selects, Test is tested.

Votes become one label per face by data.label_mode:
- majority (the FER+ authors' rule, the published accuracies'): single votes dropped, then the
  emotion with more than half of the remaining votes; no such emotion, or unknown / not-a-face
  winning, leaves the face out (25,045 / 3,191 / 3,137 faces kept);
- plurality: the emotion with the most votes, unless unknown or not-a-face has as many
  (28,150 / 3,526 / 3,522);
- probability: training faces (those plurality keeps) are learnt from their vote distribution
  over the eight expressions (single votes dropped, as the authors' outlier rule), a soft target;
  validation and test faces keep the majority label (28,150 soft / 3,191 / 3,137).
Each split also records how often a single rater agrees with the label a face is evaluated on
(the mean share of its ten votes that the label got): what one person scores against the crowd.
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
LABEL_MODES = ("majority", "plurality", "probability")


def label(votes: np.ndarray, mode: str) -> int | None:
    """The face's expression (index into VOTE_COLUMNS[:8]) by the rule, or None (left out)."""
    if mode == "probability":
        raise DataError("data.label_mode=probability labels each split by its own rule "
                        "(plurality faces with soft targets for training, majority labels for "
                        "validation and test): use split_rule()")
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


def split_rule(mode: str, split: str) -> str:
    """The hard-label rule a split's faces are kept (and evaluated) by."""
    if mode not in LABEL_MODES:
        raise DataError(f"data.label_mode={mode!r} is unknown; choose one of {LABEL_MODES}")
    if mode == "probability":
        return "plurality" if split == "train" else "majority"
    return mode


def soft_target(votes: np.ndarray) -> np.ndarray:
    """The eight expressions' share of the votes, single votes dropped (the authors' outlier
    rule; every face plurality keeps has an expression with two votes or more)."""
    emotions = np.where(votes[:EMOTIONS] > 1, votes[:EMOTIONS], 0).astype(np.float32)
    return emotions / emotions.sum()


def list_ferplus(root: Path, mode: str = "majority") -> tuple[Listing, dict, dict]:
    """The faces kept by the rule; a record of counts (kept per split and class, left out per
    split, PNGs listed but absent: an error, present but unlisted: counted) and single-rater
    agreement per split; and {file: soft target over VOTE_COLUMNS[:8]} for the training faces
    when mode is probability (else empty)."""
    listing = Listing(root)
    counts: dict = {"label_mode": mode, "kept": {}, "left_out": {}, "unlisted_png": {},
                    "single_rater_agreement": {}}
    soft: dict[str, np.ndarray] = {}
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
        agreement = []
        rule = split_rule(mode, split)
        for name, votes in rows:
            k = label(votes, rule)
            if k is None:
                continue
            cls = canonical(VOTE_COLUMNS[k])
            kept[cls] = kept.get(cls, 0) + 1
            listing.entries.append((f"{folder}/{name}", cls, split))
            agreement.append(votes[k] / votes.sum())
            if mode == "probability" and split == "train":
                soft[f"{folder}/{name}"] = soft_target(votes)
        counts["kept"][split] = kept
        counts["left_out"][split] = len(rows) - sum(kept.values())
        counts["single_rater_agreement"][split] = round(float(np.mean(agreement)), 4)
    return listing, counts, soft
