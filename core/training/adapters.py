"""One training step of a control module over a frozen text-to-image pipeline: the ε-loss with a
T2I-Adapter's features, or a ControlNet-style model's residuals, added to the UNet (the official
recipes, at toy scale)."""
from __future__ import annotations

import numpy as np
import torch

from ..conditions import extract
from ..sampling import encode_prompts, to_unit_pixels
from ..shapes import dataset
from .epsilon import X0_WEIGHT_CAP, epsilon_loss, image_latents


def condition_batch(rng: np.random.Generator, kind: str, hide: str, n: int, hide_share: float = 0.5,
                    empty_share: float = 0.1):
    """n procedural scenes → (images, their `kind` condition maps, captions). A `hide_share` of the
    captions leave out what the condition carries (`hide`: "shape" or "color"), so the control module,
    not the prompt, has to supply it; an `empty_share` are empty (the unconditional branch)."""
    scenes = [dataset.random_scene(rng) for _ in range(n)]
    images = np.stack([dataset.render(s) for s in scenes])
    captions = []
    for scene in scenes:
        draw = rng.random()
        captions.append("" if draw < empty_share else scene.caption(hide=hide) if draw < empty_share + hide_share
                        else scene.caption())
    return images, extract(kind, images), captions


def adapter_loss(pipe, adapter, images: np.ndarray, maps: np.ndarray, captions: list[str],
                 generator: torch.Generator, high_noise_bias: bool = True,
                 x0_weight_cap: float = X0_WEIGHT_CAP) -> torch.Tensor:
    """images and their condition maps: uint8 (B, H, W, 3); captions: B strings. By default the
    training steps follow T2I-Adapter's cubic schedule and high-noise samples count by their x0
    error (epsilon_loss): the condition's layout is decided at high noise, where the plain ε-loss
    barely sees it."""
    device = pipe.unet.device
    with torch.no_grad():
        text = encode_prompts(pipe, captions)
    conditions = to_unit_pixels(maps).to(device)  # [0, 1], as diffusers feeds adapters
    return epsilon_loss(pipe, image_latents(pipe, images), text, generator, high_noise_bias=high_noise_bias,
                        x0_weight_cap=x0_weight_cap, down_intrablock_additional_residuals=list(adapter(conditions)))


def control_loss(pipe, control_model, images: np.ndarray, maps: np.ndarray, captions: list[str], task: str,
                 instruction: torch.Tensor, generator: torch.Generator, high_noise_bias: bool = True,
                 x0_weight_cap: float = X0_WEIGHT_CAP) -> torch.Tensor:
    """The same for a ControlNet-style model (UniControl), whose residuals depend on x_t and t."""
    device = pipe.unet.device
    with torch.no_grad():
        text = encode_prompts(pipe, captions)
    hints = to_unit_pixels(maps).to(device)

    def residuals(x_t, t, context):
        down, mid = control_model(x_t, t, context, hints, task, instruction)
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

    return epsilon_loss(pipe, image_latents(pipe, images), text, generator, unet_kwargs_fn=residuals,
                        high_noise_bias=high_noise_bias, x0_weight_cap=x0_weight_cap)
