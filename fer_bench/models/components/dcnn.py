"""The paper's DCNN: stacked 3x3 convolution blocks, a fully connected head, softmax."""

from __future__ import annotations

import torch
from torch import nn

from fer_bench.models.registry import register_model


class ConvTrunk(nn.Module):
    """Blocks of [3x3 conv, norm, activation] x convs_per_block, 2x2 max pooling, dropout.

    norm: "batch", "group" (8 groups) or "none".
    """

    def __init__(self, channels=(96, 128, 256), convs_per_block: int = 1, dropout: float = 0.1,
                 in_channels: int = 1, leaky: float = 0.0, norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for out in channels:
            for _ in range(convs_per_block):
                act = nn.LeakyReLU(leaky, inplace=True) if leaky else nn.ReLU(inplace=True)
                layers += [nn.Conv2d(c, out, 3, padding=1, bias=norm == "none"),
                           _norm(norm, out), act]
                c = out
            layers += [nn.MaxPool2d(2), nn.Dropout2d(dropout) if dropout else nn.Identity()]
        self.body = nn.Sequential(*layers)
        self.out_channels = c

    def out_features(self, input_size: int) -> int:
        side = input_size
        for m in self.body:
            if isinstance(m, nn.MaxPool2d):
                side //= 2
        return self.out_channels * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(8, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"model.net.norm={kind!r}; choose batch, group or none")


@register_model("cnn")
class DCNN(nn.Module):
    def __init__(self, num_classes: int, input_size: int = 44, channels=(96, 128, 256),
                 convs_per_block: int = 1, fc: int = 256, dropout: float = 0.1,
                 fc_dropout: float = 0.5):
        super().__init__()
        self.trunk = ConvTrunk(channels, convs_per_block, dropout)
        self.head = nn.Sequential(
            nn.Linear(self.trunk.out_features(input_size), fc), nn.ReLU(inplace=True),
            nn.Dropout(fc_dropout), nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; softmax gives the class probabilities."""
        return self.head(self.trunk(x))
