"""The paper's real-time augmentation: four corner crops and the centre crop, each mirrored.

Training draws one random view per face (plus a small random rotation); evaluation uses the
centre view (single view) or averages over all ten views (test-time augmentation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def crop_offsets(size: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop."""
    if not 0 < crop <= size:
        raise ValueError(f"data.crop_size={crop} must be in 1..image_size ({size})")
    m, c = size - crop, (size - crop) // 2
    return [(0, 0), (0, m), (m, 0), (m, m), (c, c)]


def center_view(x: torch.Tensor, crop: int) -> torch.Tensor:
    top, left = crop_offsets(x.shape[-1], crop)[-1]
    return x[..., top : top + crop, left : left + crop]


def ten_views(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, C, S, S) -> (10, B, C, crop, crop): five crops, then the same five mirrored."""
    crops = [x[..., t : t + crop, lf : lf + crop] for t, lf in crop_offsets(x.shape[-1], crop)]
    views = crops + [c.flip(-1) for c in crops]
    return torch.stack(views)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of (B, C, H, W) by its angle, replicating the border."""
    rad = degrees * math.pi / 180
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def random_views(
    x: torch.Tensor, crop: int, mirror: bool = True, max_rotation: float = 10.0
) -> torch.Tensor:
    """One random view per image: a rotation, one of the five crops, a mirror."""
    b = x.shape[0]
    if max_rotation > 0:
        x = rotate(x, (torch.rand(b, device=x.device) * 2 - 1) * max_rotation)
    offsets = crop_offsets(x.shape[-1], crop)
    choice = torch.randint(len(offsets), (b,), device=x.device)
    out = x.new_empty(b, x.shape[1], crop, crop)
    for i, (top, left) in enumerate(offsets):
        idx = (choice == i).nonzero(as_tuple=True)[0]
        out[idx] = x[idx, :, top : top + crop, left : left + crop]
    if mirror:
        flip = torch.rand(b, device=x.device) < 0.5
        out[flip] = out[flip].flip(-1)
    return out
