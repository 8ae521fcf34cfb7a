"""The two training objectives: SimCLR (projector + NT-Xent) and the learning-rate schedule both use."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SimCLRNet(nn.Module):
    """Backbone plus the MLP projector; only the backbone is shipped."""

    def __init__(self, backbone: nn.Module, feature_dim: int, out_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = 4 * feature_dim
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss for 2N projections where rows i and i+N are two views of one image."""
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0] // 2
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
