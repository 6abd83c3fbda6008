"""FateZero's attention fusion (Qi et al. 2023): Prompt-to-Prompt's edits with the source's maps taken from
inverting the source video instead of from a source branch.

`InversionMapStore` keeps, per inversion step and layer, the cross- and self-attention maps of layers with at
most `max_queries` queries, in fp16 on the CPU (the official code keeps every map in fp32: 15–100 GB of host RAM
for 8 frames); an edit (core.control.edit, `stored=`) replays them in reverse order. `SourceMask` is FateZero's
attention blending: self-attention keeps the edit's own maps inside the binarised source cross-attention of the
edited words, the source's outside.
"""
from __future__ import annotations

import torch

from ..attention import AttentionContext, AttentionController
from .blend import binary_region, normalised_region
from .store import conditional_rows


class InversionMapStore(AttentionController):
    def __init__(self, max_queries: int, dtype: torch.dtype = torch.float16, device: str = "cpu"):
        self.max_queries, self.dtype, self.device = max_queries, dtype, device
        self.maps: dict[int, dict[str, torch.Tensor]] = {}  # step → layer → (rows, heads, q, k)

    def wants(self, ctx: AttentionContext) -> bool:
        return ctx.step >= 0 and ctx.num_queries <= self.max_queries

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        rows = probs[conditional_rows(probs, ctx)]
        self.maps.setdefault(ctx.step, {})[ctx.layer] = rows.detach().to(self.device, self.dtype)
        return probs

    def at_edit_step(self, step: int, num_steps: int) -> dict[str, torch.Tensor]:
        """The maps of the inversion step whose timestep editing step `step` runs at (N−1−step)."""
        return self.maps.get(num_steps - 1 - step, {})

    def replayed(self, ctx: AttentionContext, num_steps: int) -> torch.Tensor | None:
        return self.at_edit_step(ctx.step, num_steps).get(ctx.layer)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for step in self.maps.values() for t in step.values())


class SourceMask:
    """(frames, side·side) where the edited words are, read from the stored source cross-attention of the editing
    step's inversion step at `map_side`: head- and layer-averaged, the words summed, pooled, divided by the maximum
    (the official's), resized bilinearly to each layer's side and thresholded."""

    def __init__(self, store: InversionMapStore, positions: list[int], threshold: float, map_side: int,
                 num_steps: int):
        self.store, self.positions, self.threshold = store, positions, threshold
        self.map_side, self.num_steps = map_side, num_steps
        self._regions: dict[int, torch.Tensor] = {}

    def __call__(self, step: int, side: int) -> torch.Tensor | None:
        if step not in self._regions:
            stored = self.store.at_edit_step(step, self.num_steps)
            cross = [m for name, m in stored.items() if name.endswith("attn2") and m.shape[2] == self.map_side ** 2]
            if not cross:
                return None
            maps = torch.stack([m.float().mean(1) for m in cross]).mean(0)  # (frames, q, tokens)
            words = maps[..., self.positions].sum(-1).view(-1, 1, self.map_side, self.map_side)
            self._regions[step] = normalised_region(words, pool=True, min_max=False)
        return binary_region(self._regions[step], (side, side), self.threshold, "bilinear").flatten(1).float()
