"""Model functions for the one loop (core.sampling.denoise): `model(x, step, timestep)` → the noise prediction
at the scheduler-scaled x_t. Guidance is a wrapper around the UNet, as in k-diffusion: the loop never knows
how many branches ran or how they were mixed.

Each wrapper has `unet` (the loop installs the engine's attention processor there) and `guided` (True when the
UNet's batch is [unconditional, conditional] halves, which attention controllers need to know). A wrapper is
made for one call and may keep what that call's step hooks read (`guidance_term`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

PerStep = torch.Tensor | Sequence[torch.Tensor]  # one value for every step, or one per step


def at_step(value, step: int):
    return value[step] if isinstance(value, (list, tuple)) else value


class TextGuided:
    """Classifier-free guidance: ε_u + w·(ε_c − ε_u) (Ho & Salimans 2022), in one batch [uncond, cond].

    cond, uncond: one embedding for every step or one per step (null-text inversion's unconditional
    embeddings, ChatFace's moving code); uncond None, or every guidance_scale ≤ 1, runs the conditional
    branch alone. guidance_scale: one value or one per step (oscillating guidance). unet_kwargs_fn(step,
    timestep, model_input, context) adds per-step UNet inputs (ControlNet, adapter and UniControl residuals).
    After each call `guidance_term` holds w·(ε_c − ε_u) (energy guidance sizes its step by it)."""

    def __init__(self, unet, cond: PerStep, uncond: PerStep | None = None, guidance_scale: float | Sequence[float] = 7.5,
                 unet_kwargs_fn: Callable | None = None):
        self.unet, self.cond, self.uncond, self.guidance_scale = unet, cond, uncond, guidance_scale
        self.unet_kwargs_fn = unet_kwargs_fn
        highest = max(guidance_scale) if isinstance(guidance_scale, (list, tuple)) else guidance_scale
        self.guided = uncond is not None and highest > 1.0
        self.guidance_term: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, step: int, timestep) -> torch.Tensor:
        cond = at_step(self.cond, step)
        if not self.guided:
            return self.predict(x, step, timestep, cond)
        uncond = at_step(self.uncond, step)
        uncond = uncond.expand(cond.shape[0], *uncond.shape[1:]) if uncond.shape[0] == 1 else uncond
        noise_uncond, noise_text = self.predict(torch.cat([x] * 2), step, timestep, torch.cat([uncond, cond])).chunk(2)
        self.guidance_term = at_step(self.guidance_scale, step) * (noise_text - noise_uncond)
        return noise_uncond + self.guidance_term

    def predict(self, model_input, step, timestep, context) -> torch.Tensor:
        extra = {} if self.unet_kwargs_fn is None else self.unet_kwargs_fn(step, timestep, model_input, context)
        return self.unet(model_input, timestep, encoder_hidden_states=context, return_dict=False, **extra)[0]


class InstructPix2Pix:
    """Instruct-Pix2Pix's three branches (text+image, image, neither; Brooks et al. 2023, eq. 3): the UNet also
    takes the source image's latents, zeros in the branch without it."""
    guided = False  # three thirds, not [uncond, cond] halves

    def __init__(self, unet, cond: torch.Tensor, uncond: torch.Tensor, image_latents: torch.Tensor,
                 guidance_scale: float = 7.5, image_guidance_scale: float = 1.5):
        self.unet, self.cond, self.image_latents = unet, cond, image_latents
        self.uncond = uncond.expand(cond.shape[0], *uncond.shape[1:]) if uncond.shape[0] == 1 else uncond
        self.guidance_scale, self.image_guidance_scale = guidance_scale, image_guidance_scale

    def __call__(self, x: torch.Tensor, step: int, timestep) -> torch.Tensor:
        image = self.image_latents
        model_input = torch.cat([torch.cat([x] * 3), torch.cat([image, image, torch.zeros_like(image)])], dim=1)
        context = torch.cat([self.cond, self.uncond, self.uncond])
        noise_text, noise_image, noise_uncond = self.unet(model_input, timestep, encoder_hidden_states=context,
                                                          return_dict=False)[0].chunk(3)
        return (noise_uncond + self.guidance_scale * (noise_text - noise_image)
                + self.image_guidance_scale * (noise_image - noise_uncond))


class Branches:
    """Several conditionings in one batch, mixed by `combine([ε per context])` → ε (Face0's three-way guidance)."""
    guided = False

    def __init__(self, unet, contexts: Sequence[torch.Tensor], combine: Callable[[list[torch.Tensor]], torch.Tensor]):
        self.unet, self.contexts, self.combine = unet, list(contexts), combine

    def __call__(self, x: torch.Tensor, step: int, timestep) -> torch.Tensor:
        count = len(self.contexts)
        noise = self.unet(torch.cat([x] * count), timestep, encoder_hidden_states=torch.cat(self.contexts),
                          return_dict=False)[0]
        return self.combine(list(noise.chunk(count)))
