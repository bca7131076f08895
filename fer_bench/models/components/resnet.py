"""A small residual network (He et al. 2016), the other standard from-scratch FER2013 baseline.

A 3x3 stem, then stages of basic blocks (two 3x3 convolutions with batch norm and an identity or
1x1 projection shortcut); every stage after the first halves the resolution. Global average
pooling, dropout, a linear layer: logits.
"""

from __future__ import annotations

import torch
from torch import nn

from fer_bench.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


@register_model("resnet")
class ResNet(nn.Module):
    def __init__(self, num_classes: int, input_size: int = 44, channels=(32, 64, 128, 256),
                 blocks_per_stage: int = 1, dropout: float = 0.3):
        super().__init__()
        if input_size < 2 ** (len(channels) - 1):
            raise ValueError(f"input_size={input_size} is too small for {len(channels)} stages")
        layers: list[nn.Module] = [nn.Conv2d(1, channels[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        c = channels[0]
        for i, out in enumerate(channels):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(c, out, stride=2 if i > 0 and j == 0 else 1))
                c = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; softmax gives the class probabilities."""
        return self.head(self.body(x))
