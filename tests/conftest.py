"""Shared fixtures: Hydra compose, models built from their configs, small image trees and CSVs."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_bench.config import compose_config
from fer_bench.data.synthetic import generate
from fer_bench.train import build_model

REPO = Path(__file__).resolve().parents[1]
FER2013_ROOT = REPO.parent / "shared" / "datasets" / "fer2013"


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(*overrides) -> the composed train config, writing only under tmp_path."""

    def make(*overrides: str):
        return compose_config("train", [f"paths.root_dir={tmp_path}", *overrides])

    return make


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory):
    """A checkpoint trained for a few steps through the real Hydra entry point (its results.json
    two folders up)."""
    root = tmp_path_factory.mktemp("ckpt")
    res = subprocess.run(
        [sys.executable, "-m", "fer_bench", "+model=cnn", "debug=fast", f"paths.root_dir={root}"],
        capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return next(root.rglob("best.ckpt"))


def make_module(family: str = "cnn", classes=("angry", "sad", "happy", "fear", "neutral"),
                *overrides: str, **sizes):
    """The family's LightningModule exactly as `+model=<family>` configures it."""
    cfg = compose_config("train", [f"+model={family}", *overrides])
    return build_model(cfg, list(classes), **sizes)


def write_faces(folder: Path, classes, per_class: int, seed: int = 0, prefix: str = "img",
                suffix: str = ".png") -> None:
    """Synthetic faces saved as real image files under folder/<class>/."""
    for k, name in enumerate(classes):
        images, _ = generate(["happy", "sad", "angry", "fear", "neutral", "surprise"][k % 6:][:1],
                             per_class, seed + k)
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(images):
            Image.fromarray(im).save(folder / name / f"{prefix}_{i}{suffix}")


def write_fer_csv(path: Path, rows_per_usage: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for i in range(rows_per_usage):
            pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
            lines.append(f"{i % 7},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def regenerate_committed(report: Path, page: str, module: str, tmp_path: Path, monkeypatch,
                         files: tuple[str, ...] = (),
                         sources: tuple[str, ...] = ("experiments/results/",)) -> dict[str, bool]:
    """Rerun the command written on a committed report's `page` (`python -m <module> ARGS`, on a
    `Regenerate:` line or a line of its own) into tmp_path, from the repository root; each folder
    it reads (the arguments before the first option) must start with one of `sources`. For each
    of `files` (default: the report's CSVs, which must be exactly the CSVs regenerated) whether
    the regenerated file is byte for byte the committed one (a page's command names the `--out`
    it was given, which is left out)."""
    text = (report / page).read_text()
    command = re.search(rf"^(?:Regenerate: `)?python -m {re.escape(module)} ([^`\n]+)`?$",
                        text, re.M)
    assert command, f"{report / page} names no `python -m {module}` command"
    args = shlex.split(command.group(1))
    folders = args[:next((i for i, a in enumerate(args) if a.startswith("-")), len(args))]
    assert folders and all(f.startswith(sources) for f in folders), args
    monkeypatch.chdir(REPO)
    imported = importlib.import_module(module)
    main = getattr(imported, "main", None) or importlib.import_module(f"{module}.__main__").main
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = tmp_path / report.name
    if not files:
        files = tuple(sorted(p.name for p in report.glob("*.csv")))
        assert files and files == tuple(sorted(p.name for p in out.glob("*.csv")))
    same = {}
    for name in files:
        regenerated = (out / name).read_bytes()
        if name.endswith(".md"):  # its command names the --out it was given
            regenerated = regenerated.replace(f" --out {tmp_path}".encode(), b"")
        same[name] = regenerated == (report / name).read_bytes()
    return same
