"""Keeping x̂0 in range: static clipping and Imagen's dynamic thresholding (Saharia et al. 2022 §2.3),
as x̂0 rewrites of a scheduler's step (`RewrittenX0`), the way diffusers' schedulers threshold inside `step`.

Pixel-space models bound x̂0 by 1; latent models by a bound of their own (`bound`): both are
expressed here as x̂0 / bound ∈ [−1, 1].
"""
from __future__ import annotations

import torch

from .sampling import epsilon_for_x0


def static_clip(x0: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """Clip x̂0 to [−bound, bound]: everything past the bound saturates at it."""
    return x0.clamp(-bound, bound)


def dynamic_threshold(x0: torch.Tensor, percentile: float = 0.995, bound: float = 1.0) -> torch.Tensor:
    """Per sample: s = the `percentile` of |x̂0|/bound (at least 1); clip to [−s, s], divide by s.
    Large guidance weights push x̂0 past the bound; this pulls the whole sample back instead of
    flattening the outliers, so fewer values end exactly at the bound."""
    flat = (x0 / bound).reshape(x0.shape[0], -1).float()
    s = torch.quantile(flat.abs(), percentile, dim=1).clamp(min=1.0)
    s = s.view(-1, *([1] * (x0.dim() - 1))).to(x0)
    return (x0 / bound).clamp(-s, s) / s * bound


def saturated_share(x0: torch.Tensor, bound: float = 1.0, tolerance: float = 1e-4) -> float:
    """The share of values at (or past) ±bound."""
    return float((x0.abs() >= bound - tolerance).float().mean())


class RewrittenX0:
    """A scheduler whose every step moves towards `transform(x̂0)` instead of x̂0 (ε-prediction models, DDPM-family
    schedulers): the ε that lands there is solved back and handed to `scheduler`'s own step. Everything else is
    the wrapped scheduler's."""

    def __init__(self, scheduler, transform):
        self.scheduler, self.transform = scheduler, transform

    def __getattr__(self, name):
        return getattr(self.scheduler, name)

    def step(self, noise_pred, timestep, sample, **kwargs):
        return self.scheduler.step(epsilon_for_x0(self.scheduler, sample, noise_pred, timestep, self.transform),
                                   timestep, sample, **kwargs)
