"""Per-batch data augmentation with tensor ops (no per-image PIL work in the training loop).

All randomness comes from the ``torch.Generator`` passed in, so a run is reproducible and resumable.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fer.settings import Augment

def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    """n draws from U(lo, hi), made on the CPU generator (the same numbers on every device), moved to ``device``."""
    return (torch.rand(n, generator=gen) * (hi - lo) + lo).to(device)


def augment(x: torch.Tensor, cfg: Augment, gen: torch.Generator) -> torch.Tensor:
    """x: (N, 1, H, W) float in 0..1 -> augmented batch, same shape and range."""
    n = x.shape[0]
    if cfg.flip:
        flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    rot, tr, sc = float(cfg.rotate_deg), float(cfg.translate), float(cfg.scale)
    if rot or tr or sc:
        angle = _uniform(n, -rot, rot, gen, x.device) * math.pi / 180.0
        scale = _uniform(n, 1.0 - sc, 1.0 + sc, gen, x.device)
        tx, ty = _uniform(n, -tr, tr, gen, x.device) * 2, _uniform(n, -tr, tr, gen, x.device) * 2  # grid units span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    b, c = float(cfg.brightness), float(cfg.contrast)
    if c:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * _uniform(n, 1.0 - c, 1.0 + c, gen, x.device)[:, None, None, None] + mean
    if b:
        x = x + _uniform(n, -b, b, gen, x.device)[:, None, None, None]
    return x.clamp_(0.0, 1.0)
