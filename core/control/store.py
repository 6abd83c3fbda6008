"""AttentionStore: the conditional branch's cross-attention maps at one resolution, per token.

Keeps each step's maps, averaged over heads and layers, summed over the steps so far: local blend
reads the sum as the official attention store's, the heatmaps its average. Memory: (prompts, h·w, tokens).
"""
from __future__ import annotations

import torch

from ..attention import AttentionContext, AttentionController


def conditional_rows(probs: torch.Tensor, ctx: AttentionContext) -> slice:
    """The rows of the batch that belong to the conditional branch: [source rows, uncond, cond] when guided,
    [source rows, cond] when not (source rows: a recomputed source branch, none by default)."""
    first = ctx.source_rows
    return slice(first + (probs.shape[0] - first) // 2 if ctx.guided else first, None)


class StepMaps(AttentionController):
    """The conditional branch's cross-attention maps at `side`×`side` queries, averaged over heads and over the
    step's layers; `finish_step(step, maps)` receives them, (rows, side·side, tokens), at each step's end."""

    def __init__(self, side: int):
        self.side = side
        self._sum, self._layers = None, 0

    def wants(self, ctx: AttentionContext) -> bool:
        return ctx.is_cross and ctx.num_queries == self.side * self.side

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        maps = probs[conditional_rows(probs, ctx)].float().mean(1)
        self._sum = maps if self._sum is None else self._sum + maps
        self._layers += 1
        return probs

    def step_begin(self, step: int, num_steps: int) -> None:
        self._sum, self._layers = None, 0

    def step_end(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        if self._layers:
            self.finish_step(step, self._sum / self._layers)
        return latents

    def finish_step(self, step: int, maps: torch.Tensor) -> None:
        raise NotImplementedError


class AttentionStore(StepMaps):
    def __init__(self, side: int):
        super().__init__(side)  # maps are kept at side×side queries
        self.total: torch.Tensor | None = None  # (rows, side·side, tokens), summed over finished steps
        self.steps = 0

    def finish_step(self, step: int, maps: torch.Tensor) -> None:
        self.total = maps if self.total is None else self.total + maps
        self.steps += 1

    def average(self) -> torch.Tensor:
        """(rows, side, side, tokens) maps averaged over the steps seen."""
        if self.total is None:
            raise RuntimeError("no cross-attention maps were recorded")
        return (self.total / self.steps).view(self.total.shape[0], self.side, self.side, -1)
