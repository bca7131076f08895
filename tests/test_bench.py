"""The benchmark measures what it says: real rows for a family, FLOPs from the counter, a CSV
named by its conditions; the speed options leave the model's outputs unchanged."""

from __future__ import annotations

import pandas as pd
import torch

from fer_bench import bench
from fer_bench.precision import bf16_instructions

from .conftest import make_module


def test_bench_writes_every_row_for_a_family(tmp_path):
    out = bench.main(["--models", "lstm", "--batches", "2", "--warmup", "1", "--rounds", "1",
                      "--no-compile", "--out", str(tmp_path)])
    assert out.parent == tmp_path
    assert out.name.endswith(f"_{torch.get_num_threads()}t_torch"
                             f"{torch.__version__.split('+')[0]}_b50.csv")
    header = out.read_text().splitlines()[:2]
    assert header[0].startswith("# python -m fer_bench.bench --models lstm")
    rows = pd.read_csv(out, comment="#")
    peak = rows[rows.options == "matmul 2048x2048 fp32, median"].gflops.item()
    fastest = rows[rows.options == "matmul 2048x2048 fp32, fastest"].gflops.item()
    assert 0 < peak <= fastest
    n = 2048 if bf16_instructions() else 512  # emulated bf16: a smaller product
    peak_bf16 = rows[rows.options == f"matmul {n}x{n} bf16, median"].gflops.item()
    assert 0 < peak_bf16 <= rows[rows.options == f"matmul {n}x{n} bf16, fastest"].gflops.item()
    lstm = rows[rows.family == "lstm"]
    assert set(lstm.path) == {"bare", "harness", "eval"}
    assert len(rows[rows.path == "augment"]) == 2
    bare = set(lstm[lstm.path == "bare"].options)
    assert {"eager", "channels_last", "channels_last+bf16"} <= bare
    assert {"configured (channels_last)", "eager", "configured + bf16-mixed"} <= set(
        lstm[lstm.path == "harness"].options)
    assert len(lstm[lstm.path == "eval"]) == 4
    trained = lstm[lstm.path != "eval"]
    assert (trained.images_per_s > 0).all()
    # FLOPs of a forward + backward, per image; GFLOP/s and the share of the peak follow from it
    assert (trained.flops_per_image == bench.flops_per_image("lstm", 50)).all()
    expected = trained.images_per_s * trained.flops_per_image / 1e9
    assert ((trained.gflops - expected).abs() < 0.02).all()
    # the share of the peak of the row's own precision
    peaks = trained.options.str.contains("bf16").map({True: peak_bf16, False: peak})
    # (the CSV rounds GFLOP/s to 0.01 and the fraction to 0.001: relative to a small figure, an
    # emulated bf16 peak of ~1.3 or less on a busy machine, that is a share of the fraction)
    share = trained.gflops / peaks
    rounding = 0.0006 + share * (0.0051 / trained.gflops + 0.0051 / peaks)
    assert ((trained.peak_fraction - share).abs() <= rounding).all()


def test_channels_last_changes_speed_not_outputs():
    torch.manual_seed(0)
    eager = make_module("cnn", ("a", "b", "c"), "model.channels_last=false").eval()
    fast = make_module("cnn", ("a", "b", "c"), "model.channels_last=true").eval()
    fast.load_state_dict(eager.state_dict())
    x = torch.randn(4, 1, 48, 48)
    assert torch.allclose(eager.probabilities(x, tta=True), fast.probabilities(x, tta=True),
                          atol=1e-5)
    convs = [m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[1].weight.is_contiguous(memory_format=torch.channels_last)
    assert not convs[1].weight.is_contiguous()  # really NHWC, not NCHW


def test_bench_measures_a_family_as_an_experiment_configures_it(monkeypatch):
    monkeypatch.setattr(bench, "EXPERIMENT_OVERRIDES", bench.experiment_overrides("fer2013_cnn20"))
    cfg = bench.compose("cnn")
    assert list(cfg.model.net.channels) == [32, 64, 128, 256]  # its tuned network
    assert cfg.trainer.precision == "bf16-mixed" and cfg.data.name == "synthetic"
    assert cfg.model.get("scheduler") is None  # the harness runs without validation
    assert bench.configured_options("cnn")["precision"] == "bf16-mixed"
    assert bench.label(bench.configured_options("cnn")) == "channels_last+bf16-mixed"
    # the float32 rows stay float32 under an experiment that chooses bf16
    assert bench.compose("cnn", bench.BARE_OPTIONS["eager"]).trainer.precision == "32-true"
