"""Null-text inversion for real-image editing (Mokady et al. 2022, docs/METHODS.md §13).

Invert the image with its caption (DDIM pivots, then per-step null-text optimisation — or the
fast negative-prompt inversion, or plain DDIM), then edit with Prompt-to-Prompt from the
inverted noise with the per-step unconditional embeddings. An inversion depends on (image,
caption, model, steps, method, settings) only, so it is cached: a second edit skips it.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..control import prompt_to_prompt as p2p
from ..inversion import (
    DDIMSchedule,
    ddim_invert,
    negative_prompt_embeddings,
    null_text_optimize,
)
from ..sampling import encode_images, encode_prompts, square_image
from ..validate import check_range

INVERSIONS = ("null-text", "negative-prompt", "ddim")
D = config.NullTextDefaults


@dataclass
class NullTextParams:
    edit: p2p.P2PParams  # source_prompt is the image's caption
    inversion: str = D.inversion
    num_inner_steps: int = D.num_inner_steps
    early_stop_epsilon: float = D.early_stop_epsilon

    def check(self) -> None:
        self.edit.check()
        if self.inversion not in INVERSIONS:
            raise ValueError(f"inversion must be one of {', '.join(INVERSIONS)}, got {self.inversion!r}")
        check_range("num_inner_steps", self.num_inner_steps, 0, D.max_inner_steps)
        check_range("early_stop_epsilon", self.early_stop_epsilon, 0.0, 1.0)


@dataclass
class Inversion:
    latent: torch.Tensor  # x_T
    uncond: list[torch.Tensor] | torch.Tensor  # per-step (null-text, negative-prompt) or one ("ddim")
    seconds: float
    losses: list[float] = field(default_factory=list)


@dataclass
class NullTextResult:
    reconstruction: np.ndarray
    edited: np.ndarray
    psnr: float  # reconstruction vs the (resized) input, dB
    seconds: float  # spent inverting (0 when the cache had it)
    cached: bool
    heatmaps: list = field(default_factory=list)
    input_image: np.ndarray | None = None
    blend_mask: np.ndarray | None = None  # local blend's final mask (latent resolution), when blend_words are given
    attention_shares: dict = field(default_factory=dict)  # as P2PResult's


class InversionCache:
    """Least-recently-used inversions, keyed by everything they depend on."""

    def __init__(self, size: int = D.cache_size):
        self.size, self._items = size, OrderedDict()

    def get(self, key):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def invert(pipe, image: np.ndarray, caption: str, params: NullTextParams, on_step=None) -> Inversion:
    """image uint8 (side, side, 3) at the model's resolution → x_T and unconditional embeddings."""
    started = time.perf_counter()
    steps, guidance = int(params.edit.steps), float(params.edit.guidance_scale)
    schedule = DDIMSchedule.from_scheduler(DDIMScheduler.from_config(pipe.scheduler.config), steps)
    cond, empty = encode_prompts(pipe, [caption]), encode_prompts(pipe, [""])
    latents = encode_images(pipe, image[None])
    phases = 2 if params.inversion == "null-text" else 1

    def progress(phase):
        return None if on_step is None else (lambda done, total: on_step(phase * total + done, phases * total))

    trajectory = ddim_invert(pipe.unet, latents, cond, schedule, on_step=progress(0))
    losses = []
    if params.inversion == "null-text":
        with torch.enable_grad():
            uncond, losses = null_text_optimize(pipe.unet, trajectory, cond, empty, schedule, guidance,
                                                int(params.num_inner_steps), float(params.early_stop_epsilon),
                                                D.learning_rate, on_step=progress(1))
    elif params.inversion == "negative-prompt":
        uncond = negative_prompt_embeddings(cond, steps)
    else:
        uncond = empty
    return Inversion(trajectory[-1], uncond, time.perf_counter() - started, losses)


def cache_key(image: np.ndarray, model: str, params: NullTextParams) -> tuple:
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    return (digest, model, params.edit.source_prompt, int(params.edit.steps), float(params.edit.guidance_scale),
            params.inversion, int(params.num_inner_steps), float(params.early_stop_epsilon))


def run(pipe, image: np.ndarray, params: NullTextParams, cache: InversionCache | None = None, model: str = "",
        on_step=None) -> NullTextResult:
    """Invert (or reuse a cached inversion), then edit with P2P from the inverted noise."""
    params.check()
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    image = square_image(image, side)
    key = cache_key(image, model, params)
    inversion = cache.get(key) if cache is not None else None
    cached = inversion is not None
    if inversion is None:
        inversion = invert(pipe, image, params.edit.source_prompt, params, on_step)
        if cache is not None:
            cache.put(key, inversion)
    result = p2p.edit(pipe, params.edit, latents=inversion.latent, uncond_embeds=inversion.uncond,
                      heatmap_image=image)
    return NullTextResult(result.source_image, result.edited_image, psnr(result.source_image, image),
                          0.0 if cached else inversion.seconds, cached, result.heatmaps, image, result.blend_mask,
                          result.attention_shares)
