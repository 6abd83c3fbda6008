"""Prompt-to-Prompt attention edits: the target prompt's maps take (a function of) the source's.

The conditional branch holds the prompts in order [source, target, …] (times frames for video).
Cross-attention: target = f(source)·α + own·(1 − α), α per step and token (core.control.schedule).
Self-attention: in the `self_replace_steps` window the target's maps become the source's, only
in layers with at most `max_self_queries` queries; every other layer keeps the fused kernel.
"""
from __future__ import annotations

import torch

from ..attention import AttentionContext, AttentionController
from .alignment import refinement_alignment, replacement_mapper
from .store import conditional_rows


class AttentionEdit(AttentionController):
    """The source's maps are the batch's first prompt's (Prompt-to-Prompt), or — with `source_maps` — the inversion's
    (FateZero, core.control.fusion: stored while inverting, or recomputed by a source branch in the batch; every
    prompt of the batch is edited). `self_mask(step, side)`: (frames, queries) where the edit keeps its own
    self-attention (FateZero's attention blending); None: all replaced."""

    def __init__(self, cross_alpha: torch.Tensor, self_window: tuple[int, int], max_self_queries: int,
                 prompts: int = 2, source_maps=None, self_mask=None):
        self.cross_alpha = cross_alpha  # (num_steps, tokens)
        self.self_window = self_window
        self.max_self_queries = max_self_queries
        self.prompts = prompts
        self.source_maps, self.self_mask = source_maps, self_mask  # InversionMapStore or RecomputedSource

    def wants(self, ctx: AttentionContext) -> bool:
        if ctx.step < 0 or (self.source_maps is not None and ctx.num_queries > self.source_maps.max_queries):
            return False
        if ctx.is_cross:
            return self.edits_cross(ctx.step)
        return self.edits_self(ctx.step) and ctx.num_queries <= self.max_self_queries

    def edits_cross(self, step: int) -> bool:
        return bool(self.cross_alpha[min(step, len(self.cross_alpha) - 1)].any())

    def edits_self(self, step: int) -> bool:
        return self.self_window[0] <= step < self.self_window[1]

    def needs_source(self, step: int) -> bool:
        """Does step `step` read the source's maps at all (a source branch may skip the others)?"""
        return self.edits_cross(step) or self.edits_self(step)

    def substitutes(self, ctx: AttentionContext) -> bool:
        """Self-attention replaced whole, from rows of the batch: the edited rows take the source rows' Q and K."""
        return not ctx.is_cross and self.self_mask is None and (self.source_maps is None or ctx.source_rows > 0)

    def substitute(self, query: torch.Tensor, key: torch.Tensor, ctx: AttentionContext):
        return (substitute_rows(query, ctx, self.prompts, self.source_maps),
                substitute_rows(key, ctx, self.prompts, self.source_maps))

    def replace_cross(self, base: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """base (F, heads, q, tokens), edited (P−1, F, heads, q, tokens) → new edited maps."""
        raise NotImplementedError

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        rows = conditional_rows(probs, ctx)
        cond = probs[rows]
        cond = cond.view(self.prompts, -1, *cond.shape[1:])  # (P, frames, heads, q, k)
        if self.source_maps is None:
            base, edited = cond[0], cond[1:]
        else:
            base, edited = self.source_maps.maps_for(probs, ctx), cond
            if base is None:
                return probs
        if ctx.is_cross:
            alpha = self.cross_alpha[min(ctx.step, len(self.cross_alpha) - 1)].to(probs)
            edited = self.replace_cross(base, edited) * alpha + edited * (1 - alpha)
        else:
            source = base.unsqueeze(0).expand_as(edited)
            mask = None if self.self_mask is None else self.self_mask(ctx.step, int(round(ctx.num_queries ** 0.5)))
            if mask is None:
                edited = source
            else:  # queries inside the edited region keep their own maps
                mask = mask.to(edited)[None, :, None, :, None]
                edited = mask * edited + (1 - mask) * source
        probs = probs.clone()
        probs[rows] = (edited if self.source_maps is not None else torch.cat([base.unsqueeze(0), edited])
                       ).reshape(probs[rows].shape)
        return probs


def substitute_rows(tensor: torch.Tensor, ctx: AttentionContext, prompts: int, source_maps) -> torch.Tensor:
    """(batch, heads, n, d) with every edited conditional row's values taken from its source row: the same frame
    of the first prompt, or of the source branch."""
    rows = conditional_rows(tensor, ctx)
    cond = tensor[rows].view(prompts, -1, *tensor.shape[1:])
    base = cond[0] if source_maps is None else tensor[:ctx.source_rows]
    tensor = tensor.clone()
    tensor[rows] = base.unsqueeze(0).expand_as(cond).reshape(tensor[rows].shape)
    return tensor


class AttentionReplace(AttentionEdit):
    """Word swap: the target's token j looks where the source's mapped tokens looked."""

    def __init__(self, mapper: torch.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.mapper = mapper  # (tokens, tokens)

    def replace_cross(self, base, edited):
        replaced = torch.einsum("fhqi,ij->fhqj", base, self.mapper.to(base))
        return replaced.unsqueeze(0).expand_as(edited)


class AttentionRefine(AttentionEdit):
    """Added words: shared tokens take the source's maps, new tokens keep their own."""

    def __init__(self, index: torch.Tensor, aligned: torch.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.index, self.aligned = index, aligned  # (tokens,) each

    def replace_cross(self, base, edited):
        aligned = self.aligned.to(base)
        return base[..., self.index.to(base.device)].unsqueeze(0) * aligned + edited * (1 - aligned)


class AttentionReweight(AttentionController):
    """Scale chosen tokens' cross-attention in the edited prompts (the equalizer), on top of any
    edit listed before it, in the steps where `active[step]` is set."""

    def __init__(self, equalizer: torch.Tensor, active: torch.Tensor, prompts: int = 2, source_in_batch: bool = True,
                 max_queries: int | None = None):
        self.equalizer, self.active, self.prompts = equalizer, active, prompts
        self.first_edited = 1 if source_in_batch else 0  # FateZero's batch holds only edited prompts
        self.max_queries = max_queries  # FateZero: only where the edit has stored maps

    def wants(self, ctx: AttentionContext) -> bool:
        if self.max_queries is not None and ctx.num_queries > self.max_queries:
            return False
        return ctx.is_cross and ctx.step >= 0 and bool(self.active[min(ctx.step, len(self.active) - 1)])

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        rows = conditional_rows(probs, ctx)
        cond = probs[rows].view(self.prompts, -1, *probs.shape[1:])
        scale = torch.ones_like(self.equalizer).expand(self.prompts, -1).clone()
        scale[self.first_edited:] = self.equalizer
        probs = probs.clone()
        probs[rows] = (cond * scale.to(probs)[:, None, None, None, :]).reshape(probs[rows].shape)
        return probs


def same_word_count(source: str, target: str) -> bool:
    return len(source.split()) == len(target.split())


def cross_edit(tokenizer, source: str, target: str, **kwargs) -> AttentionEdit:
    """The edit the prompts call for: a word swap (as many words: replace), or words added (refine)."""
    if same_word_count(source, target):
        return AttentionReplace(replacement_mapper(tokenizer, source, target), **kwargs)
    return AttentionRefine(*refinement_alignment(tokenizer, source, target), **kwargs)
