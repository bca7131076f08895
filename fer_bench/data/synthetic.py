"""An embedded generator of 48x48 grayscale faces whose expression drives the geometry.

Each expression moves a few facial parameters away from neutral, in the spirit of FACS action
units: brow height (AU1/2 vs AU4), brow tilt (inner brow up or down), eye opening (AU5/AU7),
mouth curvature (AU12 vs AU15), mouth opening (AU25/26) and mouth width (AU20 vs AU18).
Identity, position, scale, rotation, illumination, noise and expression intensity are random,
so low-intensity faces resemble neutral ones: learnable, but no model should reach 100%.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# brow_raise, brow_tilt (inner up +), eye_open, mouth_curve (smile +), mouth_open, mouth_width
EXPRESSIONS = {
    "neutral": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "happy": (0.1, 0.0, -0.35, 1.0, 0.35, 0.3),
    "sad": (0.2, 1.0, -0.3, -0.8, 0.0, -0.1),
    "angry": (-1.0, -1.0, -0.3, -0.3, 0.0, -0.25),
    "fear": (0.8, 0.7, 0.6, -0.25, 0.55, 0.3),
    "surprise": (1.2, 0.0, 0.8, 0.0, 1.0, -0.3),
    "disgust": (-0.5, -0.3, -0.45, -0.55, 0.2, 0.0),
}
CANVAS = 96  # faces are drawn at twice the output size, then downsampled (anti-aliasing)


def generate(classes, n: int, seed: int, image_size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """`n` faces (uint8, n x size x size) with balanced labels indexing `classes`."""
    unknown = [c for c in classes if c not in EXPRESSIONS]
    if unknown:
        raise ValueError(
            f"data.classes {unknown} cannot be synthesised; the synthetic faces have "
            f"{sorted(EXPRESSIONS)}"
        )
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(classes)).astype(np.int64)
    images = np.empty((n, image_size, image_size), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = _face(rng, EXPRESSIONS[classes[label]], image_size)
    return images, labels


def _face(rng: np.random.Generator, expression, image_size: int) -> np.ndarray:
    intensity = rng.uniform(0.3, 1.0)
    raise_, tilt, eye_open, curve, mouth_open, width = (
        np.asarray(expression) * intensity + rng.normal(0.0, 0.1, 6)
    )
    c = CANVAS
    bg, skin = rng.uniform(10, 245), rng.uniform(90, 210)
    img = Image.new("L", (c, c), int(bg))
    d = ImageDraw.Draw(img)
    cx, cy = c / 2, c / 2 + 2
    rx, ry = rng.uniform(28, 36), rng.uniform(36, 44)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(skin))
    dark, light = int(skin * 0.25), int(min(255, skin * 1.25 + 20))

    eye_dx, eye_y = rng.uniform(11, 15), cy - rng.uniform(8, 12)
    eye_w, eye_h = rng.uniform(5, 7), max(0.6, rng.uniform(2.6, 3.6) * (1 + eye_open))
    brow_y, brow_w = eye_y - rng.uniform(7, 9) - 5.0 * raise_, rng.uniform(7, 9)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        d.ellipse([ex - eye_w, eye_y - eye_h, ex + eye_w, eye_y + eye_h], fill=light)
        pupil = min(eye_h, 2.5)
        d.ellipse([ex - pupil, eye_y - pupil, ex + pupil, eye_y + pupil], fill=dark)
        inner = (ex - side * brow_w * 0.9, brow_y - 4.0 * tilt)
        outer = (ex + side * brow_w, brow_y + 1.0 * tilt)
        d.line([inner, outer], fill=dark, width=int(rng.integers(2, 4)))

    nose_y = cy + rng.uniform(3, 6)
    d.line([(cx, cy - 4), (cx - 2, nose_y), (cx + 2, nose_y)], fill=int(skin * 0.7), width=1)
    mouth_y, mouth_w = cy + rng.uniform(15, 19), rng.uniform(9, 12) * (1 + 0.35 * width)
    xs = np.linspace(-1, 1, 15)
    upper = mouth_y - 7.0 * curve * xs**2 + 7.0 * curve / 2 - 3.0 * max(mouth_open, 0)
    lower = upper + 1.0 + 11.0 * max(mouth_open, 0) * (1 - 0.6 * xs**2)
    top = [(cx + mouth_w * x, y) for x, y in zip(xs, upper)]
    bottom = [(cx + mouth_w * x, y) for x, y in zip(xs[::-1], lower[::-1])]
    d.polygon(top + bottom, fill=dark)
    d.line(top, fill=dark, width=2)

    angle = rng.uniform(-12, 12)
    scale = rng.uniform(0.88, 1.08)
    shift = rng.uniform(-4, 4, 2)
    img = img.rotate(angle, resample=Image.BILINEAR, fillcolor=int(bg))
    size = int(round(c * scale))
    img = img.resize((size, size), Image.BILINEAR)
    canvas = Image.new("L", (c, c), int(bg))
    canvas.paste(img, (int((c - size) / 2 + shift[0]), int((c - size) / 2 + shift[1])))
    out = np.asarray(canvas.resize((image_size, image_size), Image.LANCZOS), dtype=np.float32)

    # Illumination: a random linear gradient and gain; then sensor noise.
    yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size - 0.5
    theta = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0, 0.6) * (np.cos(theta) * xx + np.sin(theta) * yy)
    out = out * gradient * rng.uniform(0.7, 1.2) + rng.normal(0, rng.uniform(3, 12), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)
