"""An LSTM that reads a face row by row: each image row is one time step."""

from __future__ import annotations

import torch
from torch import nn

from fer_bench.models.registry import register_model
from fer_bench.precision import bf16_instructions


@register_model("lstm")
class RowLSTM(nn.Module):
    def __init__(self, num_classes: int, input_size: int = 44, hidden: int = 128,
                 layers: int = 2, bidirectional: bool = True, pooling: str = "mean",
                 dropout: float = 0.3):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"model.net.pooling={pooling!r}; choose 'last' or 'mean'")
        self.pooling = pooling
        self.norm = nn.LayerNorm(input_size)
        self.lstm = nn.LSTM(input_size, hidden, layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        out = hidden * (2 if bidirectional else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(out, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.norm(x.squeeze(1))  # (B, H, W): H steps of W pixels
        on_cpu = rows.device.type == "cpu"
        if on_cpu and torch.is_autocast_enabled("cpu") and not bf16_instructions():
            # oneDNN has no bfloat16 LSTM on a CPU without bf16 instructions (it cannot build the
            # primitive): there the recurrence runs in float32, the layers around it in bf16
            with torch.autocast("cpu", enabled=False):
                seq, (h, _) = self.lstm(rows.float())
        else:
            seq, (h, _) = self.lstm(rows)
        if self.pooling == "mean":
            state = seq.mean(1)
        else:  # the last layer's final state, both directions when bidirectional
            state = torch.cat([h[-1], h[-2]], 1) if self.lstm.bidirectional else h[-1]
        return self.head(state)
