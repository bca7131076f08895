"""timm-style shape tests: output shape, no NaNs, every parameter gets a gradient."""

import pytest
import torch

from fer_bench.models.components.dcnn import DCNN
from fer_bench.models.components.gan import Discriminator, Generator
from fer_bench.models.components.lstm import RowLSTM

K, B = 5, 4

NETWORKS = {
    "dcnn": lambda s: DCNN(K, s),
    "dcnn_deep": lambda s: DCNN(K, s, channels=(32, 64, 128, 256), convs_per_block=2),
    "discriminator": lambda s: Discriminator(K, s),
    "lstm_bidirectional_mean": lambda s: RowLSTM(K, s, bidirectional=True, pooling="mean"),
    "lstm_last": lambda s: RowLSTM(K, s, bidirectional=False, pooling="last"),
}


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("size", [44, 48])
@pytest.mark.parametrize("name", NETWORKS)
def test_network_shape_finite_and_gradients(name, size):
    torch.manual_seed(0)
    net = NETWORKS[name](size)
    out = _logits(net(torch.randn(B, 1, size, size)))
    expected = K + 1 if name == "discriminator" else K
    assert out.shape == (B, expected)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
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
    assert net.lstm.input_size == 48  # 48 pixels a step; the sequence is the 48 rows


def test_dcnn_first_block_has_96_filters():
    assert DCNN(K, 44).trunk.body[0].out_channels == 96
