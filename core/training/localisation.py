"""Teach cross-attention where words are: an auxiliary loss for the toy models' trainers.

Prompt-to-Prompt edits (and local blend, reweighting, FateZero's blend masks) work only when
a word's cross-attention map covers its object. Big models learn that from billions of
images; a toy model trained for an hour on shapes does not (its maps came out nearly uniform
over space). The procedural dataset knows every object's mask, so we ask for it directly:
the attention mass a colour or shape word receives should fall inside its object, the
background word's outside every object. Loss = −log(fraction of the word's mass inside).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..attention import AttentionContext, AttentionController
from ..shapes.dataset import Scene, object_mask
from ..tokenizer import TOKENIZER_LOCK


class CrossAttentionRecorder(AttentionController):
    """Keeps (with gradients) the head-averaged cross-attention maps at chosen query counts."""

    def __init__(self, num_queries: tuple[int, ...]):
        self.num_queries = set(num_queries)
        self.maps: list[torch.Tensor] = []  # (batch, queries, tokens) each

    def wants(self, ctx: AttentionContext) -> bool:
        return ctx.is_cross and ctx.num_queries in self.num_queries

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        self.maps.append(probs.mean(dim=1))
        return probs


def word_positions(caption: str, tokenizer) -> list[tuple[str, int]]:
    """(word, index of its first token) for each word of the caption; index 0 is BOS."""
    positions, index = [], 1
    for word in caption.split():
        positions.append((word, index))
        with TOKENIZER_LOCK:
            index += len(tokenizer(word, add_special_tokens=False).input_ids)
    return positions


def scene_targets(scene: Scene, caption: str, tokenizer, num_tokens: int, size: int = 64):
    """(num_tokens, size, size) masks and (num_tokens,) weights: where each grounded word belongs.

    Colour and shape words → their object's mask; the background colour word → the rest."""
    masks = np.zeros((num_tokens, size, size), np.float32)
    weights = np.zeros(num_tokens, np.float32)
    objects = sorted(scene.objects, key=lambda o: o.cx)  # caption order: left first
    object_masks = [object_mask(o, size) for o in objects]
    words = word_positions(caption, tokenizer)
    next_object = 0
    for i, (word, index) in enumerate(words):
        if index >= num_tokens:
            break
        if next_object < len(objects) and word == objects[next_object].color:
            masks[index], weights[index] = object_masks[next_object], 1.0
            shape_word, shape_index = words[i + 1]
            if shape_index < num_tokens:
                masks[shape_index], weights[shape_index] = object_masks[next_object], 1.0
            next_object += 1
        elif word == scene.background and i + 1 < len(words) and words[i + 1][0] == "background":
            rest = 1.0 - np.clip(sum(object_masks), 0, 1)
            masks[index], weights[index] = rest, 1.0
            if words[i + 1][1] < num_tokens:  # "… white background": both words name the rest
                masks[words[i + 1][1]], weights[words[i + 1][1]] = rest, 1.0
    return masks, weights


def localisation_loss(maps: list[torch.Tensor], masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """maps: (B, Q, K) each; masks: (B, K, H, W) at image resolution; weights: (B, K).

    Mean over weighted words and layers of −log(share of the word's attention inside its mask)."""
    total, count = 0.0, 0
    for attention in maps:
        side = int(round(attention.shape[1] ** 0.5))
        small = F.adaptive_avg_pool2d(masks, side).flatten(2)  # (B, K, Q)
        inside = torch.einsum("bqk,bkq->bk", attention.float(), small)
        share = inside / attention.float().sum(dim=1).clamp_min(1e-8)
        total = total - (weights * torch.log(share.clamp_min(1e-6))).sum()
        count += 1
    return total / (weights.sum().clamp_min(1.0) * max(count, 1))


def routing_loss(maps: list[torch.Tensor], masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The pixel side: each pixel should read its content from the words that name it.

    A pixel's allowed tokens are BOS (a content-free sink, as in CLIP-conditioned SD) and the
    grounded words whose mask covers it; loss = mean over pixels of −log(mass on allowed tokens).
    Without it the toy model reads colour from the padding tokens (which carry the whole
    caption), so replacing or reweighting one word's attention changes little."""
    total, count = 0.0, 0
    captioned = (weights.sum(dim=1) > 0).float()  # empty captions ground nothing
    for attention in maps:
        side = int(round(attention.shape[1] ** 0.5))
        allowed = (F.adaptive_avg_pool2d(masks, side).flatten(2) > 0.5).float()  # (B, K, Q)
        allowed[:, 0] = 1.0
        mass = torch.einsum("bqk,bkq->bq", attention.float(), allowed)
        per_image = -torch.log(mass.clamp_min(1e-6)).mean(dim=1)
        total = total + (per_image * captioned).sum()
        count += 1
    return total / (captioned.sum().clamp_min(1.0) * max(count, 1))


def batch_targets(scenes: list[Scene], captions: list[str], tokenizer, num_tokens: int, size: int = 64):
    """Stack `scene_targets` over a batch → (masks (B, K, H, W), weights (B, K)) tensors."""
    pairs = [scene_targets(s, c, tokenizer, num_tokens, size) for s, c in zip(scenes, captions)]
    return torch.from_numpy(np.stack([m for m, _ in pairs])), torch.from_numpy(np.stack([w for _, w in pairs]))


def word_share(maps: list[torch.Tensor], masks: torch.Tensor, weights: torch.Tensor) -> float:
    """Mean share of a grounded word's attention inside its mask (1.0 = perfectly localised)."""
    shares = []
    for attention in maps:
        side = int(round(attention.shape[1] ** 0.5))
        small = F.adaptive_avg_pool2d(masks, side).flatten(2)
        inside = torch.einsum("bqk,bkq->bk", attention.float(), small)
        share = inside / attention.float().sum(dim=1).clamp_min(1e-8)
        shares.append((share * weights).sum() / weights.sum().clamp_min(1.0))
    return float(torch.stack(shares).mean())
