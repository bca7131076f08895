"""`python -m fer_bench.report.pipeline`: the recognition process as one figure.

A real FER2013 face, upscaled, tilted and placed in a larger photograph, goes through detection,
alignment (square box with margin, eyes levelled), illumination normalisation and the ten views.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fer_bench.data.align import FaceAligner  # noqa: E402
from fer_bench.data.normalize import METHODS, normalize  # noqa: E402
from fer_bench.data.views import ten_views  # noqa: E402

DEFAULT_FACE = "../shared/datasets/fer2013/test/angry/PrivateTest_4129990.jpg"


def photograph(face: np.ndarray, tilt: float = 8.0, seed: int = 0) -> np.ndarray:
    """The face, upscaled and tilted, on a lit wall with sensor noise (480 x 360)."""
    rng = np.random.default_rng(seed)
    wall = np.linspace(60, 190, 480)[None, :] + rng.normal(0, 4, (360, 480))
    img = Image.fromarray(np.clip(wall, 0, 255).astype(np.uint8))
    big = Image.fromarray(face).resize((160, 160), Image.BICUBIC)
    mask = Image.new("L", big.size, 255).rotate(tilt, expand=True)
    img.paste(big.rotate(tilt, resample=Image.BICUBIC, expand=True), (200, 90), mask)
    return np.asarray(img)


def figure(face_path: str, out: Path, size: int = 48, crop: int = 44) -> Path:
    face = np.asarray(Image.open(face_path).convert("L"))
    photo = photograph(face)
    aligner = FaceAligner()
    boxes = aligner.detect(photo)
    if not boxes:
        raise SystemExit(f"no face found in the photograph made from {face_path}; try --face")
    box = boxes[0]
    aligned = aligner.crop(photo, box, size)
    angle = aligner.eye_angle(photo, box)
    views = ten_views(torch.from_numpy(normalize(aligned, "clahe"))[None, None], crop)[:, 0, 0]

    fig = plt.figure(figsize=(15, 4.4))
    grid = fig.add_gridspec(2, 10, width_ratios=[3.4, 1.4, 1, 1, 0.25, 1, 1, 1, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(photo, cmap="gray", vmin=0, vmax=255)
    ax.add_patch(patches.Rectangle(box[:2], box[2], box[3], fill=False, color="red", lw=2))
    ax.set_title(f"1. detected face {tuple(int(v) for v in box)}", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(aligned, cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"2. aligned {size}x{size}", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(grid[1, 1])
    ax.text(0, 0.9, f"square box, 20% margin\neyes levelled {angle:+.1f} deg\n"
            f"face: {Path(face_path).name}", fontsize=7, va="top")
    ax.axis("off")
    for i, method in enumerate(METHODS):
        ax = fig.add_subplot(grid[i // 2, 2 + i % 2])
        ax.imshow(normalize(aligned, method), cmap="gray")
        ax.set_title(f"3. {method}", fontsize=8)
        ax.axis("off")
    names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
    for i in range(10):
        ax = fig.add_subplot(grid[i // 5, 5 + i % 5])
        ax.imshow(views[i], cmap="gray")
        ax.set_title(("4. " if i == 0 else "") + names[i % 5] + (" mirrored" if i >= 5 else ""),
                     fontsize=7)
        ax.axis("off")
    fig.suptitle("fer_bench: detection, alignment, normalisation, ten views "
                 f"({crop}x{crop} crops of the CLAHE face; test-time averaging takes the mean "
                 "softmax over them)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m fer_bench.report.pipeline", description=__doc__)
    p.add_argument("--face", default=DEFAULT_FACE, help="a face image (default: a FER2013 face)")
    p.add_argument("--out", default="reports/pipeline.png")
    args = p.parse_args(argv)
    print(figure(args.face, Path(args.out)))


if __name__ == "__main__":
    main()
