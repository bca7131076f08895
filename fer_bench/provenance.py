"""What ran where: versions, the git commit (and whether the tree was dirty), the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy",
            "opencv-python-headless", "fer_bench")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(start: Path | None = None) -> dict:
    """The commit of the repository that holds fer_bench's source (or the working folder), and
    whether its tracked files differ from that commit; nulls outside a git checkout."""
    for folder in (Path(__file__).resolve().parent, start or Path.cwd()):
        try:
            commit = _git(folder, "rev-parse", "HEAD")
            dirty = _git(folder, "status", "--porcelain", "--untracked-files=no")
            root = _git(folder, "rev-parse", "--show-toplevel")
        except (OSError, subprocess.CalledProcessError):
            continue
        return {"commit": commit, "dirty": bool(dirty), "root": root,
                "changed": [line.strip() for line in dirty.splitlines()[:20]]}
    return {"commit": None, "dirty": None, "root": None, "changed": []}


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                          check=True, timeout=20).stdout.strip()


def cpu_model() -> str:
    """The processor's model name (not the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()


_flushing_subnormals = False


def flush_subnormals() -> bool:
    """Compute subnormal floats (|x| < 1.2e-38) as zero on this CPU thread and the threads it
    starts. Weights that weight decay drives towards zero end up subnormal, and x86 CPUs
    compute with them 10-100x slower: a FER2013 CNN slowed from 3 to 0.8 batches/s by its 25th
    epoch with 10% of its weights subnormal (3.7x faster again once flushed). No result above
    1e-38 changes. Recorded in `machine` as flush_subnormals."""
    import torch

    global _flushing_subnormals
    _flushing_subnormals = torch.set_flush_denormal(True)  # False where the CPU cannot
    return _flushing_subnormals


def machine(accelerator: str | None = None) -> dict:
    import torch

    from fer_bench.precision import native_bf16

    info = {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "os": platform.platform(), "hostname": platform.node(), "pid": os.getpid(),
            "accelerator": accelerator, "flush_subnormals": _flushing_subnormals,
            "native_bf16": native_bf16(accelerator or "auto")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def record(accelerator: str | None = None) -> dict:
    return {"versions": versions(), "git": git_state(), "machine": machine(accelerator),
            "argv": sys.argv}
