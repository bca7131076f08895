"""Illumination normalisation: the one code path for training, evaluation and prediction."""

from __future__ import annotations

import cv2
import numpy as np

METHODS = ("none", "histeq", "clahe", "standardize")


def normalize(images: np.ndarray, method: str = "none") -> np.ndarray:
    """uint8 faces (N, H, W) or (H, W) -> float32 of the same shape, roughly zero-centred."""
    if method not in METHODS:
        raise ValueError(f"data.normalization={method!r} is unknown; choose one of {METHODS}")
    if images.dtype != np.uint8:
        raise TypeError(f"normalize expects uint8 faces, got {images.dtype}")
    single = images.ndim == 2
    batch = images[None] if single else images
    if method == "standardize":
        x = batch.astype(np.float32)
        mean = x.mean(axis=(1, 2), keepdims=True)
        std = x.std(axis=(1, 2), keepdims=True)
        out = (x - mean) / np.maximum(std, 1.0)
    else:
        if method == "histeq":
            batch = np.stack([cv2.equalizeHist(im) for im in batch])
        elif method == "clahe":
            clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
            batch = np.stack([clahe.apply(im) for im in batch])
        out = (batch.astype(np.float32) / 255.0 - 0.5) / 0.25
    return out[0] if single else out
