"""The precision a run trains in: bfloat16 autocast where the device computes it natively,
float32 where it would be emulated (and a warning when a run asks for emulated bfloat16)."""

from __future__ import annotations

import logging

import pytest
import torch

from fer_bench import precision


@pytest.mark.parametrize(("units", "fastest"), [
    ({"amx_bf16": True}, "bf16-mixed"),  # Sapphire Rapids and later Xeons
    # AVX512-BF16 without AMX (a Xeon VM that hides AMX): the CNN trained at 0.72x fp32 in bf16
    ({"avx512_bf16": True, "avx512_fp16": True, "amx_bf16": False}, "32-true"),
    ({"avx2": True, "avx512_f": True}, "32-true"),  # no bfloat16 instructions: emulated
])
def test_the_fastest_precision_follows_the_cpus_bfloat16_units(units, fastest, monkeypatch,
                                                               caplog):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"cpu_name": "Test CPU", **units})
    assert precision.fastest_precision("cpu") == fastest
    with caplog.at_level(logging.WARNING, logger="fer_bench.precision"):
        assert precision.warn_if_emulated("bf16-mixed", "cpu") == (fastest == "32-true")
        assert not precision.warn_if_emulated("32-true", "cpu")
    if fastest == "32-true":  # names the CPU and what to do
        assert "Test CPU" in caplog.text and "trainer.precision=32-true" in caplog.text
    else:
        assert not caplog.text


def test_experiments_that_leave_the_precision_to_the_machine_resolve_it_here(compose_cfg):
    for name in ("ferplus", "paper5"):
        cfg = compose_cfg(f"experiment={name}", "+model=cnn")
        assert cfg.trainer.precision == precision.fastest_precision(cfg.trainer.accelerator)
    # the float32 experiments whose points are compared across runs made in float32
    for name in ("fer2013", "label_efficiency"):
        assert compose_cfg(f"experiment={name}", "+model=cnn").trainer.precision == "32-true"
    # the experiments that measure bfloat16 itself keep it wherever they run
    assert compose_cfg("experiment=bf16_check", "+model=cnn").trainer.precision == "bf16-mixed"
