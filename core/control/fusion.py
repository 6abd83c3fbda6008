"""FateZero's attention fusion (Qi et al. 2023): Prompt-to-Prompt's edits with the source's maps taken from
inverting the source video instead of from a source branch that is denoised beside the edit.

Two ways to have the inversion's maps while editing (`AttentionEdit(source_maps=…)`, core.control.edit):
- `RecomputedSource` (the default): `SourceBranch` keeps the inverted latent of every step and runs the source
  prompt on it again inside the editing batch, at the same timestep; that branch's maps are the inversion's own,
  made when a controller needs them and dropped after the layer. Kept between the passes: one latent per step.
- `InversionMapStore`: keeps, per inversion step and layer, the maps of layers with at most `max_queries` queries,
  in fp16 on the CPU, and replays them in reverse order (the official code keeps every map in fp32: 15–100 GB of
  host RAM for 8 frames; ours is smaller but still grows with frames × steps).
`SourceRegions` and `SourceMask` are FateZero's attention blending: self-attention keeps the edit's own maps
inside the binarised source cross-attention of the edited words, the source's outside.
"""
from __future__ import annotations

import torch

from ..attention import AttentionContext, AttentionController, InnerUNet, active_state
from .blend import binary_region, normalised_region
from .store import StepMaps, conditional_rows


def inversion_step(edit_step: int, num_steps: int) -> int:
    """The inversion step (ascending noise) whose timestep editing step `edit_step` runs at."""
    return num_steps - 1 - edit_step


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

    def maps_for(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor | None:
        """(frames, heads, q, k): the maps this layer had in the inversion step of the editing step."""
        maps = self.maps.get(inversion_step(ctx.step, ctx.num_steps), {}).get(ctx.layer)
        return None if maps is None else maps.to(probs)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for step in self.maps.values() for t in step.values())


class RecomputedSource:
    """The source's maps from the source branch in the batch (`SourceBranch`): its rows come first."""

    def __init__(self, max_queries: int):
        self.max_queries = max_queries  # edit where the stored variant would have maps: the same video

    def maps_for(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor | None:
        return probs[:ctx.source_rows] if ctx.source_rows else None


class SourceBranch(InnerUNet):
    """A UNet that also runs the source branch in every call whose timestep has an inverted latent: the batch
    becomes [source rows, the caller's rows], the source rows being the source prompt at the latent the
    inversion's UNet call had at this timestep. Their noise predictions are dropped; attention controllers
    read their maps (`RecomputedSource`). `latents`: timestep → (frames, C, h, w); timesteps left out (no
    controller needs the source there) cost a plain call."""

    def __init__(self, unet, latents: dict[int, torch.Tensor], embeds: torch.Tensor):
        self.unet, self.latents, self.embeds = unet, latents, embeds

    def __call__(self, sample, timestep, encoder_hidden_states, return_dict: bool = True, **kwargs):
        source = self.latents.get(int(timestep))
        if source is None:
            return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=return_dict,
                             **kwargs)
        if kwargs:
            raise ValueError(f"a source branch takes no extra UNet inputs, got {sorted(kwargs)}")
        rows, state = source.shape[0], active_state()
        state.source_rows = rows
        try:
            noise = self.unet(torch.cat([source.to(sample), sample]), timestep,
                              encoder_hidden_states=torch.cat([self.embeds.to(encoder_hidden_states),
                                                               encoder_hidden_states]), return_dict=False)[0]
        finally:
            state.source_rows = 0
        return (noise[rows:],)


class SourceRegions(StepMaps):
    """Recorded while inverting: per step, where the words at `positions` are in the source's cross-attention at
    `side`×`side` — head- and layer-averaged, the words summed, pooled, divided by the maximum (the official's).
    (frames, 1, side, side) per step: tiny, so both ways of having the source's maps keep it."""

    def __init__(self, positions: list[int], side: int):
        super().__init__(side)
        self.positions = positions
        self.regions: dict[int, torch.Tensor] = {}

    def wants(self, ctx: AttentionContext) -> bool:
        return ctx.step >= 0 and super().wants(ctx)

    def finish_step(self, step: int, maps: torch.Tensor) -> None:
        words = maps[..., self.positions].sum(-1).view(-1, 1, self.side, self.side)
        self.regions[step] = normalised_region(words, pool=True, min_max=False)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.regions.values())


class SourceMask:
    """(frames, side·side) where the edited words are at editing step `step`: the region recorded in its inversion
    step, resized bilinearly to each layer's side and thresholded."""

    def __init__(self, regions: SourceRegions, threshold: float, num_steps: int):
        self.regions, self.threshold, self.num_steps = regions, threshold, num_steps

    def __call__(self, step: int, side: int) -> torch.Tensor | None:
        region = self.regions.regions.get(inversion_step(step, self.num_steps))
        if region is None:
            return None
        return binary_region(region, (side, side), self.threshold, "bilinear").flatten(1).float()
