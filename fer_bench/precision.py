"""Which training precision is fast where a run lands.

bfloat16 autocast (`trainer.precision=bf16-mixed`) is x1.8-2.6 float32's rate on a CPU with AMX
tiles (the Xeon of experiments/bench/), but slower than float32 without them: an AVX2-only CPU
(an AMD EPYC here) emulates it at a fraction of float32's rate, and a Xeon whose virtual machine
exposes AVX512-BF16 but not AMX ran a bfloat16 matmul at 0.73x and trained the CNN at 0.72x
float32's rate (experiments/bench/README.md). `${fastest_precision:${trainer.accelerator}}` in a
config picks bf16-mixed where it is fast and 32-true elsewhere; each run records the precision
it resolved to (its composed config, and each fitting session's entry).
"""

from __future__ import annotations

import logging

import torch

BF16 = "bf16-mixed"
FP32 = "32-true"
log = logging.getLogger(__name__)


def native_bf16(accelerator: str = "auto") -> bool:
    """Whether the device a run with this `trainer.accelerator` trains on computes bfloat16 faster
    than float32: a GPU that supports it; a CPU with AMX-BF16 tiles (AVX512-BF16's dot products
    alone measured slower than float32, see the module's docstring)."""
    if str(accelerator).startswith(("auto", "gpu", "cuda")) and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("amx_bf16"))


def bf16_instructions() -> bool:
    """Whether this CPU has bfloat16 instructions at all (AMX or AVX512-BF16): what oneDNN needs
    to build its bfloat16 kernels (an LSTM, say), fast or not."""
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def fastest_precision(accelerator: str = "auto") -> str:
    return BF16 if native_bf16(accelerator) else FP32


def warn_if_emulated(precision: str, accelerator: str = "auto") -> bool:
    """Log a warning (and return True) when a run asks for bfloat16 on a device without fast
    bfloat16 units: it trains, but slower than float32 would."""
    if not str(precision).startswith("bf16") or native_bf16(accelerator):
        return False
    cpu = torch.cpu.get_capabilities().get("cpu_name", "this CPU")
    log.warning("trainer.precision=%s on %s, which has no AMX bfloat16 units: bfloat16 runs "
                "slower than float32 here (emulated, or AVX512-BF16 alone). Unless that is what "
                "you mean to measure, run with trainer.precision=32-true or "
                "trainer.precision='${fastest_precision:${trainer.accelerator}}'",
                precision, cpu)
    return True
