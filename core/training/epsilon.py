"""The ε-prediction loss of a (mostly frozen) text-to-image pipeline, shared by every trainer that
teaches a small module to steer it: Face0's mapper, ChatFace's encoder, T2I-Adapters, UniControl."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..sampling import to_model_pixels

# What the control trainers weigh high-noise samples by (see epsilon_loss): measured on the toy edge
# adapter at 600 steps, card IoU 0.31 (uniform t, plain loss), 0.30 (cubic t), 0.64 (cubic t + cap 20),
# 0.63 (cap 100)
X0_WEIGHT_CAP = 20.0


def frozen_pipeline(base_model: str, device: str = "cpu"):
    """The base text-to-image pipeline with UNet, text encoder and VAE frozen (what trainers steer)."""
    from ..models import Models
    pipe = Models(base_model, device=device, allow_local=True).pipeline()
    for module in (pipe.unet, pipe.text_encoder, pipe.vae):
        module.requires_grad_(False)
    return pipe


@torch.no_grad()
def image_latents(pipe, images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (B, H, W, 3), or pixels in [−1, 1], → scaled VAE latents (the posterior mean)."""
    pixels = to_model_pixels(images) if isinstance(images, np.ndarray) else images
    latents = pipe.vae.encode(pixels.to(pipe.unet.device, pipe.vae.dtype)).latent_dist.mean
    return latents * pipe.vae.config.scaling_factor


@torch.no_grad()
def video_latents(pipe, videos: np.ndarray) -> torch.Tensor:
    """uint8 videos (B, F, H, W, 3) → scaled latents (B, C, F, h, w), the layout motion UNets take."""
    b, f = videos.shape[:2]
    latents = image_latents(pipe, videos.reshape(b * f, *videos.shape[2:]))
    return latents.view(b, f, *latents.shape[1:]).transpose(1, 2).contiguous()


def epsilon_loss(pipe, x0: torch.Tensor, context: torch.Tensor, generator: torch.Generator,
                 unet_kwargs_fn=None, unet=None, high_noise_bias: bool = False, x0_weight_cap: float = 1.0,
                 **unet_kwargs) -> torch.Tensor:
    """‖ε − ε_θ(x_t, t, context, …)‖² at uniform training steps; gradients reach whatever made
    `context` or `unet_kwargs` (or trainable UNet weights). `unet_kwargs_fn(x_t, t, context)` adds
    inputs that depend on x_t (a ControlNet's residuals). `unet` replaces the pipeline's (a motion
    UNet over video latents (B, C, F, h, w), whose context is one row per frame). `high_noise_bias`
    draws t = (1 − u³)·T instead of uniformly (79% above T/2): where layout is decided, so that a new
    structural condition is learnt sooner (T2I-Adapter's cubic sampling). `x0_weight_cap` > 1 weighs
    each sample by min(max(1, 1/SNR_t), cap): the x0 error where noise dominates (an ε error there is
    an x0 error shrunk by √SNR, so the plain loss barely sees a misplaced object), the ε error elsewhere."""
    unet = unet or pipe.unet
    device = x0.device
    noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)  # CPU generator: same on any device
    total = pipe.scheduler.config.num_train_timesteps
    if high_noise_bias:
        u = torch.rand(x0.shape[0], generator=generator)
        t = ((1 - u ** 3) * total).long().clamp(0, total - 1).to(device)
    else:
        t = torch.randint(0, total, (x0.shape[0],), generator=generator).to(device)
    x_t = pipe.scheduler.add_noise(x0, noise, t)
    if unet_kwargs_fn is not None:
        unet_kwargs = unet_kwargs | unet_kwargs_fn(x_t, t, context)
    pred = unet(x_t, t, encoder_hidden_states=context, **unet_kwargs).sample
    if x0_weight_cap <= 1.0:
        return F.mse_loss(pred.float(), noise.float())
    alphas = pipe.scheduler.alphas_cumprod.to(device)[t]
    weight = ((1 - alphas) / alphas).clamp(1.0, x0_weight_cap)
    per_sample = (pred.float() - noise.float()).pow(2).flatten(1).mean(1)
    return (weight * per_sample).mean()


def loss_words(high_noise_bias: bool, x0_weight_cap: float) -> str:
    """A model card's words for `epsilon_loss`'s options (empty for the plain ε-loss at uniform steps)."""
    words = " at t = (1 − u³)·T (high noise favoured)" if high_noise_bias else ""
    if x0_weight_cap > 1.0:
        words += f", each sample weighed by min(max(1, 1/SNR_t), {x0_weight_cap:g})"
    return words
