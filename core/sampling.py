"""The one denoising loop, and the prompt-encoding / latent / decoding steps around it.

`denoise` steps any diffusers scheduler (or core.inversion.DDIMSchedule) over a model function —
a UNet under a guidance wrapper from core.denoisers — with step hooks (latent blending, snapshots)
and energy guidance; attention controllers see every step. With classifier-free guidance and no
extras it computes exactly what `StableDiffusionPipeline.__call__` computes (tests/test_sampling.py).
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from . import calls
from .attention import ensure_active, install
from .tokenizer import TOKENIZER_LOCK
from .validate import check_finite

# hook(step, timestep, latents, x0_prediction) -> new latents or None
StepHook = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor | None]


@dataclass
class Snapshot:
    step: int  # 0-based index of the finished step
    timestep: int
    latents: torch.Tensor  # x_t after the step
    x0: torch.Tensor | None  # the scheduler's prediction of x_0 at this step


@dataclass
class DenoiseResult:
    latents: torch.Tensor
    timesteps: list[int]


class Snapshots:
    """A step hook that keeps x_t and x̂0 after the chosen steps (`taken`)."""

    def __init__(self, steps: Sequence[int]):
        self.steps, self.taken = set(steps), []

    def __call__(self, step, timestep, latents, x0) -> None:
        if step in self.steps:
            self.taken.append(Snapshot(step, int(timestep), latents.detach().clone(),
                                       None if x0 is None else x0.detach().clone()))


@torch.no_grad()
def encode_prompts(pipe, prompts: Sequence[str]) -> torch.Tensor:
    """Prompts → text-encoder hidden states (B, tokenizer.model_max_length, dim), like the pipeline."""
    tokenizer = pipe.tokenizer
    with TOKENIZER_LOCK:
        ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(pipe.text_encoder.device)
    use_mask = getattr(pipe.text_encoder.config, "use_attention_mask", False)
    mask = (ids != tokenizer.pad_token_id).long() if use_mask else None
    embeds = pipe.text_encoder(ids, attention_mask=mask)[0]
    return embeds.to(dtype=pipe.unet.dtype)


def prepare_latents(pipe, batch: int, height: int, width: int, generator: torch.Generator | None,
                    frames: int | None = None) -> torch.Tensor:
    """Initial noise, drawn on the CPU generator's stream so a seed means the same on every device."""
    channels = pipe.unet.config.in_channels
    scale = pipe.vae_scale_factor
    shape = (batch, channels, height // scale, width // scale) if frames is None else \
        (batch, channels, frames, height // scale, width // scale)
    device = pipe.unet.device
    latents = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu",
                          dtype=pipe.unet.dtype).to(device)
    return latents * pipe.scheduler.init_noise_sigma


def _step_kwargs(scheduler, eta: float, generator) -> dict:
    inner = getattr(scheduler, "scheduler", scheduler)  # a wrapper's (core.thresholding.RewrittenX0) scheduler
    accepted = set(inspect.signature(inner.step).parameters)
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


def predict_x0(scheduler, latents, noise_pred, timestep) -> torch.Tensor | None:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t for schedulers that do not report it (ε-prediction only)."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None or scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        return None
    alpha = alphas.to(latents.device)[int(timestep)].to(latents.dtype)
    return (latents - (1 - alpha).sqrt() * noise_pred) / alpha.sqrt()


def denoise(model, scheduler, latents: torch.Tensor, num_steps: int | None = None,
            span: tuple[int, int | None] = (0, None), eta: float = 0.0, generator: torch.Generator | None = None,
            hooks: Sequence[StepHook] = (), energy_guidance=None,
            on_step: Callable[[int, int], None] | None = None) -> DenoiseResult:
    """The one denoising loop: `model(x, step, timestep)` → the noise prediction at the scheduler-scaled x_t
    (core.denoisers: classifier-free guidance, Instruct-Pix2Pix, mixed branches — guidance lives in the model
    wrapper, as in k-diffusion), stepped by `scheduler` from `latents` (already scaled by init_noise_sigma).

    num_steps: set the scheduler's timesteps (None: the caller has set them). span: the steps to run, from the
    first up to (not including) the second — img2img and inversion-based edits start part-way, Text2Video-Zero
    stops part-way. hooks: `hook(step, timestep, latents, x̂0)` after each step, may return new latents (latent
    blending, snapshots). energy_guidance (core.guidance.EnergyGuidance): steers x_t by an energy's gradient and
    time-travels in its windows. Attention controllers are those of the call's active `AttentionState`
    (core.attention); the loop tells it where steps begin and end, and checks the call's cancel signal before
    each step (core.calls). With a classifier-free-guided model and no extras it computes exactly what
    `StableDiffusionPipeline.__call__` computes (tests/test_sampling.py).
    """
    install(model.unet)
    with ensure_active() as state:  # the call's attention state, or this loop's own
        if num_steps is not None:
            scheduler.set_timesteps(int(num_steps), device=latents.device)
        timesteps = scheduler.timesteps
        state.guided = bool(getattr(model, "guided", False))
        step_kwargs = _step_kwargs(scheduler, eta, generator)
        result = DenoiseResult(latents, [int(t) for t in timesteps])
        first, end = span[0], len(timesteps) if span[1] is None else span[1]
        for i, t in enumerate(timesteps):
            if i < first or i >= end:
                continue
            calls.step()  # counts the step, or stops here if the call was cancelled
            state.step_begin(i, len(timesteps))
            steering = energy_guidance is not None and energy_guidance.active(i, len(timesteps))
            repeats = energy_guidance.repeats(i, len(timesteps)) if steering else 1
            for repeat in range(repeats):
                previous = latents
                with torch.enable_grad() if steering else contextlib.nullcontext():
                    x_t = latents.detach().requires_grad_(True) if steering else latents
                    noise_pred = model(scheduler.scale_model_input(x_t, t), i, t)
                    output = scheduler.step(noise_pred, t, x_t, **step_kwargs, return_dict=True)
                    x0 = getattr(output, "pred_original_sample", None)
                    if steering:
                        x0 = x0 if x0 is not None else predict_x0(scheduler, x_t, noise_pred, t)
                        latents = energy_guidance.apply(i, t, x_t, x0, output.prev_sample,
                                                        getattr(model, "guidance_term", None))
                        noise_pred, x0 = noise_pred.detach(), x0.detach()
                    else:
                        latents = output.prev_sample
                if repeat < repeats - 1:  # time travel: back to x_t, redo the step
                    next_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
                    latents = energy_guidance.renoise(latents, t, next_t, generator)
            latents = state.step_end(latents, i)
            if hooks and x0 is None:
                x0 = predict_x0(scheduler, previous, noise_pred, t)
            for hook in hooks:
                changed = hook(i, t, latents, x0)
                latents = changed if changed is not None else latents
            if on_step is not None:
                on_step(i + 1 - first, end - first)
        state.guided = False
        result.latents = latents
        return result


def epsilon_for_x0(scheduler, latents, noise_pred, timestep, transform) -> torch.Tensor:
    """The ε that makes the step land where transform(x̂0) points: x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ is
    rewritten and ε solved back from it (what diffusers' `thresholding` does inside its schedulers)."""
    x0 = predict_x0(scheduler, latents, noise_pred, timestep)
    if x0 is None:
        raise ValueError("x̂0 rewriting (dynamic thresholding) needs an ε-prediction model and a DDPM-family scheduler")
    alpha = scheduler.alphas_cumprod.to(latents.device)[int(timestep)].to(latents.dtype)
    return (latents - alpha.sqrt() * transform(x0)) / (1 - alpha).sqrt()


def noise_to_strength(scheduler, latents: torch.Tensor, noise: torch.Tensor, strength: float) -> tuple[int, torch.Tensor]:
    """SDEdit-style start part-way: (the first step to run, `latents` noised to that step's level) for
    a scheduler whose timesteps are set; strength 1 starts at the first step, small ones near the end."""
    steps = len(scheduler.timesteps)
    start = min(steps - 1, int(round(steps * (1 - float(strength)))))
    return start, scheduler.add_noise(latents, noise, scheduler.timesteps[start:start + 1])


def decode_pixels(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Latents (B, C, h, w) → pixels in [-1, 1] (B, 3, H, W) in the VAE's dtype; differentiable (energies, losses)."""
    vae = pipe.vae
    return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]


@torch.no_grad()
def decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """Latents (B, C, h, w) → uint8 images (B, H, W, 3), as the pipeline's postprocessing does."""
    check_finite(latents, "the sampled latents")
    images = decode_pixels(pipe, latents)
    check_finite(images, "the decoded image")
    images = (images / 2 + 0.5).clamp(0, 1)
    return (images.permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)


def decode_frames(pipe, latents: torch.Tensor) -> np.ndarray:
    """Frame latents (F, C, h, w) → uint8 frames (F, H, W, 3), one frame at a time (the VAE's memory)."""
    return np.concatenate([decode(pipe, latents[i:i + 1]) for i in range(latents.shape[0])])


def decode_video(pipe, latents: torch.Tensor) -> np.ndarray:
    """Video latents (1, C, F, h, w), a motion UNet's layout → uint8 frames (F, H, W, 3)."""
    return decode_frames(pipe, latents[0].transpose(0, 1))


def frame_context(embeds: torch.Tensor, frames: int) -> torch.Tensor:
    """One text context per video → one per frame (UNetMotionModel folds frames into the batch)."""
    return embeds.repeat_interleave(frames, dim=0)


def pixels_to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Pixels (B, 3, H, W) in [-1, 1] → uint8 images (B, H, W, 3)."""
    check_finite(pixels, "the image")
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def to_unit_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1]: how control models (adapters, ControlNets) take maps."""
    return (to_model_pixels(images) + 1) / 2


def to_model_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images (B, H, W, 3) → float tensor (B, 3, H, W) in [-1, 1], as VAEs and toy-clip see them."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def encode_images(pipe, images: np.ndarray, scaled: bool = True) -> torch.Tensor:
    """uint8 images (B, H, W, 3) → latents (posterior mean: inversion wants no noise), scaled by
    the VAE's factor unless `scaled` is False (Instruct-Pix2Pix's image conditioning is unscaled)."""
    vae = pipe.vae
    latents = vae.encode(to_model_pixels(images).to(vae.device, vae.dtype)).latent_dist.mean
    return latents * vae.config.scaling_factor if scaled else latents


def square_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """A mask (H, W) bool drawn over a picture → the same centre crop and resize as `square_image` gives the
    picture: (side, side) bool."""
    pixels = (np.asarray(mask, bool).astype(np.uint8) * 255)[..., None].repeat(3, -1)
    return square_image(pixels, side)[..., 0] > 127


def square_image(image: np.ndarray, side: int) -> np.ndarray:
    """Centre-crop to a square and resize to the model's resolution."""
    h, w = image.shape[:2]
    crop = min(h, w)
    top, left = (h - crop) // 2, (w - crop) // 2
    square = image[top:top + crop, left:left + crop]
    interpolation = cv2.INTER_AREA if crop > side else cv2.INTER_CUBIC
    return cv2.resize(square, (side, side), interpolation=interpolation)
