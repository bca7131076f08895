"""timm-style tests of every registered family: output shape, no NaNs, every parameter gets a
gradient; the registry and the configs agree."""

import pytest
import torch

from fer_bench.models import families
from fer_bench.models.components.gan import Generator
from fer_bench.models.components.lstm import RowLSTM
from tests.conftest import REPO, make_module

K, B = 5, 4
FAMILIES = list(families())


def test_the_paper_families_and_the_resnet_are_registered():
    assert FAMILIES[:3] == ["cnn", "gan", "lstm"] and "resnet" in FAMILIES


def test_the_order_of_families_does_not_depend_on_what_was_imported_first(monkeypatch):
    from torch import nn

    from fer_bench.models import registry

    # as if a test (or a user's script) had imported the LSTM's file before discovery, and a
    # family were registered from outside the package
    reordered = dict(reversed(list(registry._FAMILIES.items())))
    monkeypatch.setattr(registry, "_FAMILIES", reordered)
    registry.register_model("zz_outside")(type("Outside", (nn.Module,), {}))
    assert list(families()) == [*FAMILIES, "zz_outside"]
    assert FAMILIES == ["cnn", "gan", "lstm", "resnet"]  # the network files' name order


def test_every_family_has_its_configs_and_every_model_config_a_family():
    conf = REPO / "conf"
    assert sorted(p.stem for p in (conf / "model").glob("*.yaml")) == sorted(FAMILIES)
    assert sorted(p.stem for p in (conf / "family").glob("*.yaml")) == sorted(FAMILIES)


@pytest.mark.parametrize("size", [44, 48])
@pytest.mark.parametrize("name", FAMILIES)
def test_network_shape_finite_and_gradients(name, size):
    torch.manual_seed(0)
    module = make_module(name, list("abcde"), crop_size=size, image_size=size)
    assert type(module.net) is families()[name].network  # the registered network, from config
    x = torch.randn(B, 1, size, size)
    logits = module.logits(x)
    assert logits.shape == (B, K)
    assert torch.isfinite(logits).all()
    out = module.net(x)
    sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out,))).backward()
    missing = [n for n, p in module.net.named_parameters()
               if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("size", [44, 48])
def test_generator_shape_finite_and_gradients(size):
    torch.manual_seed(0)
    gen = Generator(size, z_dim=16, width=8)
    fake = gen(torch.randn(B, 16))
    assert fake.shape == (B, 1, size, size)
    assert torch.isfinite(fake).all()
    assert fake.abs().max() <= gen.out_scale
    fake.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_the_lstm_reads_one_row_per_step():
    net = RowLSTM(K, 48)
    seq, _ = net.lstm(net.norm(torch.randn(2, 48, 48)))
    assert net.lstm.input_size == 48 and seq.shape[1] == 48  # 48 steps of 48 pixels


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_under_bf16_autocast_with_float32_weights(name):
    """trainer.precision=bf16-mixed (the CPU's AMX speed-up): the family's layers compute in
    bfloat16 inside its real training step, while its weights stay float32 and every one of
    them is updated to finite values."""
    import hydra
    import pytorch_lightning as pl

    from fer_bench.config import compose_config
    from fer_bench.train import build

    cfg = compose_config("train", [f"+model={name}", "debug=fast", "trainer.precision=bf16-mixed"])
    pl.seed_everything(0, verbose=False)
    dm, module = build(cfg)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    dtypes = []
    layers = [m for m in module.net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [m.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype)) for m in layers]
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False,
                                      enable_progress_bar=False, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    for h in hooks:
        h.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    for n, p in module.named_parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), n
    unchanged = [n for n, p in module.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"


def test_the_lstm_recurrence_runs_in_float32_under_bf16_where_the_cpu_has_no_bf16_units(
        monkeypatch):
    """oneDNN cannot build a bfloat16 LSTM on a CPU without bf16 instructions (AVX2 only): there
    the recurrence runs in float32 and the layers around it under autocast, so bf16-mixed
    trains."""
    from fer_bench.models.components import lstm as lstm_module

    monkeypatch.setattr(lstm_module, "bf16_instructions", lambda: False)
    net = lstm_module.RowLSTM(num_classes=7)
    seen = []
    net.lstm.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(torch.randn(4, 1, 44, 44))
    logits.float().sum().backward()
    assert seen == [torch.float32] and logits.dtype == torch.bfloat16
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
