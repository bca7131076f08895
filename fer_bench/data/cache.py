"""Decode once: each data set's splits are stored as uint8 arrays keyed by a source fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def fingerprint(spec: dict) -> str:
    """A digest of everything that determines the decoded arrays."""
    blob = json.dumps({"version": CACHE_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load(path: Path) -> dict[str, dict[str, np.ndarray]] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, dict[str, np.ndarray]] = {}
            for key in z.files:
                split, field = key.split("/")
                out.setdefault(split, {})[field] = z[key]
            return out
    except (OSError, ValueError, KeyError):
        return None  # a torn or foreign file: decode again and overwrite it


def save(path: Path, splits: dict[str, dict[str, np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{s}/{k}": v for s, d in splits.items() for k, v in d.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)
