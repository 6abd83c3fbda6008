"""FateZero's attention fusion (Qi et al. 2023): maps stored while inverting the source video
replace or blend with the maps of the edit.

`InversionMapStore` keeps, per inversion step and layer, the cross- and self-attention maps of
layers with at most `max_queries` queries, in fp16 on the CPU (the official code keeps every
map in fp32: 15–100 GB of host RAM for 8 frames). `AttentionFusion` replays them in reverse
order while editing: cross-attention P2P-style (with amplified words), self-attention blended
by the binarised source cross-attention mask of the edited words.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import AttentionContext, AttentionController
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

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for step in self.maps.values() for t in step.values())


class AttentionFusion(AttentionController):
    def __init__(self, store: InversionMapStore, cross_mapper: torch.Tensor | None, refine: tuple | None,
                 cross_alpha: torch.Tensor, self_window: tuple[int, int], equalizer: torch.Tensor,
                 blend_positions: list[int], blend_threshold: float, mask_side: int):
        self.store = store
        self.cross_mapper, self.refine = cross_mapper, refine  # replace (same word count) or refine
        self.cross_alpha, self.self_window = cross_alpha, self_window
        self.equalizer = equalizer  # (tokens,) amplification of target words
        self.blend_positions, self.blend_threshold, self.mask_side = blend_positions, blend_threshold, mask_side
        self._masks: dict[int, torch.Tensor] = {}
        self.num_steps = len(cross_alpha)

    def _stored(self, ctx: AttentionContext) -> torch.Tensor | None:
        # editing step i runs at the timestep of inversion step N−1−i
        step = self.store.maps.get(self.num_steps - 1 - ctx.step, {})
        return step.get(ctx.layer)

    def wants(self, ctx: AttentionContext) -> bool:
        if ctx.step < 0 or ctx.num_queries > self.store.max_queries:
            return False
        if ctx.is_cross:
            return bool(self.cross_alpha[min(ctx.step, self.num_steps - 1)].any())
        return self.self_window[0] <= ctx.step < self.self_window[1]

    def source_mask(self, step: int, side: int) -> torch.Tensor | None:
        """(frames, side·side) binary mask of the blend words in the stored source cross-attention."""
        if not self.blend_positions:
            return None
        if step not in self._masks:
            stored = self.store.maps.get(self.num_steps - 1 - step, {})
            cross = [m for name, m in stored.items() if name.endswith("attn2") and m.shape[2] == self.mask_side ** 2]
            if not cross:
                return None
            maps = torch.stack([m.float().mean(1) for m in cross]).mean(0)  # (frames, q, tokens)
            words = maps[..., self.blend_positions].sum(-1).view(-1, 1, self.mask_side, self.mask_side)
            words = F.max_pool2d(words, 3, stride=1, padding=1)
            self._masks[step] = words / words.flatten(1).amax(1).clamp(min=1e-8)[:, None, None, None]
        words = F.interpolate(self._masks[step], size=(side, side), mode="bilinear", align_corners=False)
        return (words > self.blend_threshold).flatten(1).float()

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        base = self._stored(ctx)
        if base is None:
            return probs
        rows = conditional_rows(probs, ctx)
        edited = probs[rows]
        base = base.to(edited)
        if ctx.is_cross:
            alpha = self.cross_alpha[min(ctx.step, self.num_steps - 1)].to(edited)
            if self.cross_mapper is not None:
                replaced = torch.einsum("bhqi,ij->bhqj", base, self.cross_mapper.to(edited))
            else:
                index, aligned = self.refine
                aligned = aligned.to(edited)
                replaced = base[..., index.to(edited.device)] * aligned + edited * (1 - aligned)
            replaced = replaced * self.equalizer.to(edited)
            fused = replaced * alpha + edited * (1 - alpha)
        else:
            side = int(round(ctx.num_queries ** 0.5))
            mask = self.source_mask(ctx.step, side)
            if mask is None:
                fused = base
            else:
                mask = mask.to(edited)[:, None, :, None]  # queries inside the edited region keep theirs
                fused = mask * edited + (1 - mask) * base
        probs = probs.clone()
        probs[rows] = fused
        return probs
