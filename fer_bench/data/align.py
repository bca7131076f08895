"""Face alignment with OpenCV's Haar cascades (shipped inside opencv-python-headless < 5).

Find the face box, make it square with a margin, optionally level the eyes (pose
normalisation), crop and resize. Nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in the original image's pixels


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV cascade {path} did not load; install opencv-python-headless<5")
    return cascade


@dataclass
class FaceAligner:
    margin: float = 0.2
    level_eyes: bool = True
    fallback: str = "center"  # what to crop when no face is found: "center" or "none"
    min_face: int = 20  # smallest face side in pixels, in the original image
    work_size: int = 640  # images are rescaled so their longer side is about this

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Face boxes, largest first."""
        h, w = gray.shape
        scale = self.work_size / max(h, w)
        work = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
                          if scale < 1 else cv2.INTER_LINEAR)
        work = cv2.equalizeHist(work)
        min_side = max(24, int(self.min_face * scale))
        found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
            work, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        boxes = [tuple(int(round(v / scale)) for v in b) for b in found]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def eye_angle(self, gray: np.ndarray, box: Box) -> float:
        """Degrees to rotate so the eyes are level (0 when two eyes are not found)."""
        x, y, w, h = box
        upper = gray[y : y + h // 2, x : x + w]
        if upper.size == 0:
            return 0.0
        side = max(1, w // 8)
        eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
            upper, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
        )
        if len(eyes) < 2:
            return 0.0
        eyes = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
        (x1, y1), (x2, y2) = sorted((ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in eyes)
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
        return angle if abs(angle) <= 30 else 0.0

    def crop(self, gray: np.ndarray, box: Box, size: int) -> np.ndarray:
        """Square crop around `box` with the margin, eyes levelled, resized to size x size."""
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        side = max(w, h) * (1 + self.margin)
        angle = self.eye_angle(gray, box) if self.level_eyes else 0.0
        # One affine map: rotate about the face centre, then scale the square onto the output.
        m = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
        m[:, 2] += (size / 2 - cx, size / 2 - cy)
        return cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REPLICATE)

    def center_crop(self, gray: np.ndarray, size: int) -> np.ndarray:
        h, w = gray.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = gray[top : top + side, left : left + side]
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return cv2.resize(square, (size, size), interpolation=interp)

    def align(self, gray: np.ndarray, size: int) -> tuple[np.ndarray | None, Box | None]:
        """The largest face, cropped; without a face the fallback (or None)."""
        boxes = self.detect(gray)
        if boxes:
            return self.crop(gray, boxes[0], size), boxes[0]
        if self.fallback == "center":
            return self.center_crop(gray, size), None
        return None, None
