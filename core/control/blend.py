"""Local blend: only the region of the chosen words may change between source and edit.

Mask from the cross-attention maps of `blend_words` (source and target) summed over the steps so far,
as the official reads its attention store, after the edit replaced the target's maps (the store comes
after the edit in the controller list): sum the words' maps, 3×3 max-pool, upsample (nearest) to the latent,
normalise to [0, 1] (min–max), threshold; the union over prompts. Words that must keep their region
(`blend_exclude_words`, the official LocalBlend's `substruct_words`) take theirs out the same way,
unpooled. Then x_t* = x_t + mask·(x_t* − x_t) after each step from `start_step` on.

The latents outside the mask then equal the source's, but the VAE decoder (its mid-block attention and
receptive field) spreads a latent change over the whole picture, so `overlay_source` puts the source's
pixels back outside the mask after decoding, as diffusers' inpainting overlays the original image.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..attention import AttentionController
from .store import AttentionStore


class LocalBlend(AttentionController):
    def __init__(self, store: AttentionStore, positions: list[list[int]] | None, threshold: float, start_step: int = 0,
                 exclude_positions: list[list[int]] | None = None, region: np.ndarray | None = None, prompts: int = 2):
        self.store = store  # must come before this controller in the list
        self.positions = positions  # per prompt, the token positions of the blend words (None: the region alone)
        # a painted region (H, W) bool at any resolution: the blend is confined to it (our addition to the paper,
        # which finds the region from words alone)
        self.region = None if region is None else torch.from_numpy(np.asarray(region, np.float32))[None, None]
        self.prompts = len(positions) if positions is not None else prompts
        self.threshold = threshold
        self.start_step = start_step
        self.exclude_positions = exclude_positions  # per prompt, words whose region may not change
        self.last_mask: torch.Tensor | None = None  # (prompts, h, w), for display and tests

    def mask(self, latent_hw: tuple[int, int]) -> torch.Tensor:
        """(prompts, frames or 1, 1, h, w) bool: where the edit may change the latents."""
        if self.positions is None:
            return self.latent_region(latent_hw).expand(self.prompts, 1, 1, *latent_hw)
        mask = self.word_mask(self.positions, latent_hw, pool=True)
        if self.exclude_positions is not None and any(self.exclude_positions):
            mask = mask & ~self.word_mask(self.exclude_positions, latent_hw, pool=False)
        return mask if self.region is None else mask & self.latent_region(latent_hw)

    def latent_region(self, latent_hw: tuple[int, int]) -> torch.Tensor:
        """The painted region on the latent grid (1, 1, 1, h, w): every latent cell the paint touches."""
        return (F.adaptive_max_pool2d(self.region, latent_hw) > 0)[None]

    def word_mask(self, positions: list[list[int]], latent_hw: tuple[int, int], pool: bool) -> torch.Tensor:
        maps = self.store.total  # (prompts·frames, q, tokens)
        prompts = len(positions)
        maps = maps.view(prompts, -1, *maps.shape[1:])
        side = self.store.side
        word_maps = torch.stack([maps[p][..., pos].sum(-1) for p, pos in enumerate(positions)])
        # min–max normalisation: the official divides by the max alone, which on diffuse maps
        # (small models, early steps) leaves the whole image above any threshold
        region = normalised_region(word_maps.view(-1, 1, side, side), pool, min_max=True)
        mask = binary_region(region, latent_hw, self.threshold, "nearest").view(prompts, -1, 1, *latent_hw)
        return mask[:1] | mask  # a pixel may change where either prompt's word is

    def step_end(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        if step < self.start_step or (self.positions is not None and self.store.total is None):
            return latents
        prompts = self.prompts
        mask = self.mask(tuple(latents.shape[-2:]))
        self.last_mask = mask[:, 0, 0].float()
        x = latents.view(prompts, -1, *latents.shape[1:])
        x = x[:1] + mask.to(latents.dtype) * (x - x[:1])
        return x.reshape(latents.shape)


def normalised_region(word_maps: torch.Tensor, pool: bool, min_max: bool) -> torch.Tensor:
    """(N, 1, side, side) summed attention maps of some words → [0, 1]: grown a little by a 3×3 max-pool (`pool`:
    the region reaches the object's soft edge), then divided by the maximum, less the minimum first (`min_max`)."""
    if pool:
        word_maps = F.max_pool2d(word_maps, 3, stride=1, padding=1)
    low = word_maps.flatten(1).amin(1)[:, None, None, None] if min_max else 0
    high = word_maps.flatten(1).amax(1)[:, None, None, None]
    return (word_maps - low) / (high - low).clamp(min=1e-8)


def binary_region(region: torch.Tensor, size: tuple[int, int], threshold: float, mode: str) -> torch.Tensor:
    """A normalised region resized to `size` (`mode`: Prompt-to-Prompt's nearest, FateZero's bilinear) and
    thresholded: (N, 1, *size) bool."""
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(region, size=size, mode=mode, **kwargs) > threshold


def overlay_source(source: np.ndarray, edited: np.ndarray, latent_mask: np.ndarray, feather: int) -> np.ndarray:
    """uint8 images (H, W, 3) and the final blend mask (h, w) → the edit inside the mask and the source outside,
    with a seam 2·`feather` px wide just outside the mask's edge (no hard edge, and the edit leaks no further)."""
    mask = torch.from_numpy(np.asarray(latent_mask, dtype=np.float32))[None, None]
    mask = F.interpolate(mask, size=source.shape[:2], mode="nearest")
    if feather > 0:  # grow by `feather`, then blur as far: still 1 on the mask itself
        kernel = 2 * feather + 1
        mask = F.max_pool2d(mask, kernel, stride=1, padding=feather)
        mask = F.avg_pool2d(mask, kernel, stride=1, padding=feather, count_include_pad=False)
    alpha = mask[0, 0, ..., None].numpy()
    return (alpha * edited.astype(np.float32) + (1 - alpha) * source.astype(np.float32)).round().astype(np.uint8)
