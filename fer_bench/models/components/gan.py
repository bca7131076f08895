"""Semi-supervised GAN networks (Salimans et al. 2016): DCGAN generator, K+1 discriminator."""

from __future__ import annotations

import math

import torch
from torch import nn

from fer_bench.models.components.dcnn import ConvTrunk
from fer_bench.models.registry import register_model


class Generator(nn.Module):
    """z -> a face of output_size x output_size (DCGAN: transposed convs, batch norm, ReLU)."""

    def __init__(self, output_size: int = 44, z_dim: int = 100, width: int = 64,
                 out_scale: float = 2.0):
        super().__init__()
        self.z_dim, self.output_size, self.out_scale = z_dim, output_size, out_scale
        self.start = math.ceil(output_size / 8)
        self.project = nn.Sequential(
            nn.Linear(z_dim, width * 4 * self.start**2, bias=False),
            nn.BatchNorm1d(width * 4 * self.start**2), nn.ReLU(inplace=True),
        )
        self.width = width
        self.body = nn.Sequential(
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.width * 4, self.start, self.start)
        x = self.body(x) * self.out_scale  # the data are normalised to about [-2, 2]
        off = (x.shape[-1] - self.output_size) // 2
        return x[..., off : off + self.output_size, off : off + self.output_size]


@register_model("gan", module="fer_bench.models.gan.GANModule")
class Discriminator(nn.Module):
    """K + 1 logits: the K expressions, then "fake". Also returns features for feature matching.

    No batch norm by default: real and generated batches pass separately, so batch statistics
    would mix the two and evaluation (real faces only) would see the wrong running averages.
    """

    def __init__(self, num_classes: int, input_size: int = 44, channels=(64, 128, 256),
                 convs_per_block: int = 1, fc: int = 256, dropout: float = 0.2,
                 norm: str = "group"):
        super().__init__()
        self.trunk = ConvTrunk(channels, convs_per_block, dropout, leaky=0.2, norm=norm)
        self.features = nn.Sequential(
            nn.Linear(self.trunk.out_features(input_size), fc), nn.LeakyReLU(0.2, inplace=True),
        )
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(fc, num_classes + 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(self.trunk(x))
        return self.out(self.drop(f)), f
