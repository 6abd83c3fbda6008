"""IP-Adapter (Ye et al. 2023): an image prompt through a second cross-attention branch per layer.

Each cross-attention layer of the UNet adds scale · softmax(Q·K_ipᵀ)·V_ip over the image tokens, with its own
`to_k_ip` / `to_v_ip`; the tokens are the adapter's projection of a CLIP image encoding (h94/IP-Adapter's files:
the image embedding for the base adapter, the encoder's second-to-last hidden states for the plus and face ones).

Nothing is installed on the cached UNet (diffusers' `load_ip_adapter` replaces its processors and makes every later
call need image embeddings): an `IPAdapter` is a companion model, and a call that wants an image prompt hands the
engine's processor an `ImagePrompt` through its attention state (`AttentionState.use(image_prompts=…)`), so other
calls on the same UNet never see it. The image branch always runs on the fused kernel; controllers still see the
text cross-attention maps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

IMAGE_PROJ, IP_LAYERS = "image_proj.", "ip_adapter."


def cross_attention_layers(unet) -> list[str]:
    """The layers that get an image branch, in the order the adapter files number them (1, 3, 5, …): every
    cross-attention of the UNet outside motion modules, as diffusers' loader counts them."""
    return [name.removesuffix(".processor") for name in unet.attn_processors
            if name.endswith("attn2.processor") and "motion_modules" not in name]


class IPAdapter(nn.Module):
    """One adapter's image projection and the image keys/values of every cross-attention layer."""

    def __init__(self, image_projection: nn.Module, keys: dict[str, nn.Linear], values: dict[str, nn.Linear]):
        super().__init__()
        self.image_projection = image_projection
        self.keys = nn.ModuleDict({name.replace(".", "/"): layer for name, layer in keys.items()})
        self.values = nn.ModuleDict({name.replace(".", "/"): layer for name, layer in values.items()})
        # the base adapter projects the pooled image embedding; the plus and face ones read hidden states
        self.reads_hidden_states = type(image_projection).__name__ != "ImageProjection"

    @classmethod
    def from_state_dict(cls, unet, state_dict: dict[str, torch.Tensor]) -> "IPAdapter":
        projection = {k.removeprefix(IMAGE_PROJ): v for k, v in state_dict.items() if k.startswith(IMAGE_PROJ)}
        layers = {k.removeprefix(IP_LAYERS): v for k, v in state_dict.items() if k.startswith(IP_LAYERS)}
        if not projection or not layers:
            raise ValueError("not an IP-Adapter state dict: it needs image_proj.* and ip_adapter.* weights")
        image_projection = unet._convert_ip_adapter_image_proj_to_diffusers(projection, low_cpu_mem_usage=False)
        keys, values = {}, {}
        names = cross_attention_layers(unet)
        for index, name in enumerate(names):
            number = 2 * index + 1
            try:
                weights = layers[f"{number}.to_k_ip.weight"], layers[f"{number}.to_v_ip.weight"]
            except KeyError:
                raise ValueError(f"the IP-Adapter has no weights for layer {number} ({name}): "
                                 f"it was made for another UNet") from None
            keys[name], values[name] = (_linear(w) for w in weights)
        if len(layers) != 2 * len(names):
            raise ValueError(f"the IP-Adapter has {len(layers) // 2} image branches, the UNet {len(names)} "
                             f"cross-attention layers: it was made for another UNet")
        parameter = next(unet.parameters())
        return cls(image_projection, keys, values).to(parameter.device, parameter.dtype).eval().requires_grad_(False)

    @classmethod
    def load(cls, unet, path: str | Path) -> "IPAdapter":
        from safetensors.torch import load_file
        return cls.from_state_dict(unet, load_file(str(path)))

    def branch(self, layer: str) -> tuple[nn.Linear, nn.Linear] | None:
        key = layer.replace(".", "/")
        return (self.keys[key], self.values[key]) if key in self.keys else None


def _linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    layer.weight.data.copy_(weight)
    return layer


@dataclass
class ImagePrompt:
    """One call's image prompt: the adapter, its tokens for the conditional and the unconditional branch
    (1, n, dim), and its scale (0: the branch is skipped). `tokens` may be one tensor per sampling step (ChatFace's
    code moving from z_edit to z). `branches`: for a batch of equal parts that are not classifier-free-guidance
    halves (Face0's three-way guidance), which parts see the image; None: every row but the unconditional half."""
    adapter: IPAdapter
    tokens: torch.Tensor | Sequence[torch.Tensor]
    negative: torch.Tensor
    scale: float = 1.0
    branches: tuple[bool, ...] | None = None

    def rows(self, batch: int, guided: bool, source_rows: int = 0,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(batch, n, dim) tokens and per-row weights (None: all 1). With guidance the unconditional half gets the
        negative tokens, the conditional half (frames included) the image's. A source branch's rows (FateZero's
        recomputed inversion, which ran without the image) get weight 0."""
        tokens = self.tokens if isinstance(self.tokens, torch.Tensor) else self.tokens[min(max(step, 0), len(self.tokens) - 1)]
        if self.branches is not None:
            part = batch // len(self.branches)
            weights = torch.tensor([float(seen) for seen in self.branches]).repeat_interleave(part)
            return tokens.expand(batch, -1, -1), weights
        halves = batch - source_rows
        negative = halves // 2 if guided else 0
        rows = torch.cat([tokens.expand(source_rows, -1, -1), self.negative.expand(negative, -1, -1),
                          tokens.expand(batch - source_rows - negative, -1, -1)])
        return rows, (torch.tensor([0.0] * source_rows + [1.0] * halves) if source_rows else None)

    def with_branches(self, branches: tuple[bool, ...]) -> "ImagePrompt":
        return replace(self, branches=tuple(branches))


def image_pixels(image: np.ndarray, processor) -> torch.Tensor:
    """uint8 (H, W, 3) → the image encoder's input, as its CLIPImageProcessor prepares it."""
    return processor(images=image, return_tensors="pt").pixel_values


@torch.no_grad()
def encode_image_prompt(adapter: IPAdapter, image_encoder, processor, image: np.ndarray,
                        scale: float = 1.0) -> ImagePrompt:
    """The image's tokens as diffusers' IP-Adapter pipelines make them: the pooled embedding (negative: zeros)
    for the base adapter; the encoder's second-to-last hidden states (negative: those of a black image) for the
    plus and face adapters."""
    parameter = next(image_encoder.parameters())
    pixels = image_pixels(image, processor).to(parameter.device, parameter.dtype)
    if adapter.reads_hidden_states:
        embeds = image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
        negative = image_encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    else:
        embeds = image_encoder(pixels).image_embeds
        negative = torch.zeros_like(embeds)
    projection = next(adapter.parameters())
    project = adapter.image_projection
    return ImagePrompt(adapter, project(embeds.to(projection.dtype)), project(negative.to(projection.dtype)),
                       float(scale))
