"""An Imagen-Video-style cascade (Ho et al. 2022, docs/METHODS.md §16) on the app's motion model.

Imagen Video has no public weights. This open cascade keeps its structure with one text-to-video
model (the base model + motion adapter, core.motion) used training-free at every stage:
1. base: `base_frames` frames at the model's resolution;
2. temporal super-resolution (TSR): × `tsr_factor` frames. New frames are inserted between the base
   frames (repeated neighbours, or blank = noise) and the clip is denoised while the base frames'
   positions are replaced, every step, by the base latents noised to that step's level (the
   replacement method of Ho et al.'s Video Diffusion Models: conditioning without a trained TSR model);
3. spatial super-resolution (SSR): × `ssr_factor` pixels. The video is upsampled, encoded and
   denoised from part-way (`ssr_strength`), so the low-resolution video conditions the result.
Between stages the conditioning video gets noise-conditioning augmentation (`noise_aug`: it is
noised to that fraction of the schedule first). Options at every stage: dynamic thresholding of x̂0
(core.thresholding; the latent bound in config) and oscillating guidance (high/1 alternating over
the first steps, then constant).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..denoisers import TextGuided
from ..motion import use_loras
from ..sampling import decode_video, denoise, encode_prompts, frame_context, noise_to_strength, prepare_latents
from ..thresholding import RewrittenX0, dynamic_threshold
from ..training.epsilon import video_latents
from ..validate import check_prompt, check_range, check_sampling
from ..video import resize_frames

D = config.CascadeDefaults
INSERTS = ("repeat", "blank")


@dataclass
class CascadeParams:
    prompt: str
    base_frames: int = D.base_frames
    tsr_factor: int = D.tsr_factor
    ssr_factor: int = D.ssr_factor
    noise_aug: float = D.noise_aug  # noise-conditioning augmentation between stages (fraction of T)
    dynamic_threshold: float = D.dynamic_threshold  # percentile of |x̂0|; 0 = off
    oscillating_guidance: bool = False
    seed: int = D.seed
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    insert: str = "repeat"  # TSR: how inserted frames start ("repeat" neighbours or "blank" noise)
    ssr_strength: float = D.ssr_strength  # SSR: how far into the schedule the upsampled video is noised

    def check(self, max_frames: int = D.max_frames) -> None:
        check_prompt(self.prompt)
        check_range("base_frames", self.base_frames, 2, max_frames)
        check_range("tsr_factor", self.tsr_factor, 1, D.max_factor)
        check_range("ssr_factor", self.ssr_factor, 1, D.max_factor)
        if self.base_frames * self.tsr_factor > max_frames:
            raise ValueError(f"base_frames × tsr_factor = {self.base_frames * self.tsr_factor} frames; the motion "
                             f"model takes at most {max_frames}")
        check_range("noise_aug", self.noise_aug, 0.0, 1.0)
        if self.dynamic_threshold != 0:
            check_range("dynamic_threshold", self.dynamic_threshold, 0.5, 1.0)
        check_range("ssr_strength", self.ssr_strength, 0.05, 1.0)
        if self.insert not in INSERTS:
            raise ValueError(f"insert must be one of {INSERTS}, got {self.insert!r}")
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class Stage:
    name: str
    frames: np.ndarray  # uint8 (F, H, W, 3)
    latents: torch.Tensor = field(repr=False)


def guidance_schedule(params: CascadeParams, steps: int) -> float | list[float]:
    """Imagen Video's oscillating guidance: w and 1 alternating over the first steps, then w."""
    if not params.oscillating_guidance:
        return float(params.guidance_scale)
    first = int(round(steps * D.oscillating_share))
    return [float(params.guidance_scale) if i >= first or i % 2 == 0 else 1.0 for i in range(steps)]


def augment(latents: torch.Tensor, level: float, scheduler, generator) -> torch.Tensor:
    """Noise-conditioning augmentation: the conditioning latents taken to `level` of the schedule."""
    if level <= 0:
        return latents
    t = torch.tensor([int(level * (scheduler.config.num_train_timesteps - 1))])
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    return scheduler.add_noise(latents, noise, t)


class Cascade:
    """The three stages over one (pipe, motion UNet) pair."""

    def __init__(self, pipe, unet, params: CascadeParams, on_step=None):
        self.pipe, self.unet, self.params = pipe, unet, params
        self.on_step = on_step
        self.generator = torch.Generator().manual_seed(int(params.seed))
        self.text = encode_prompts(pipe, [params.prompt])
        self.empty = encode_prompts(pipe, [""])
        self.done = 0

    def scheduler(self) -> DDIMScheduler:
        scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(int(self.params.steps))
        return scheduler

    def sample(self, latents, scheduler, start: int = 0, hooks=()) -> torch.Tensor:
        frames = latents.shape[2]
        p = self.params
        steps = int(p.steps)
        transform = partial(dynamic_threshold, percentile=float(p.dynamic_threshold), bound=D.latent_bound) \
            if p.dynamic_threshold else None
        guidance = guidance_schedule(p, steps)
        uncond = frame_context(self.empty, frames) if max(np.atleast_1d(guidance)) > 1 else None
        progress = None
        if self.on_step is not None:
            base, total = self.done, 3 * steps
            progress = lambda d, t: self.on_step(base + d, total)  # noqa: E731
        model = TextGuided(self.unet, frame_context(self.text, frames), uncond, guidance)
        result = denoise(model, scheduler if transform is None else RewrittenX0(scheduler, transform), latents,
                         span=(start, None), hooks=hooks, on_step=progress)
        self.done += steps
        return result.latents

    def base(self) -> Stage:
        size = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        scheduler = self.scheduler()
        latents = prepare_latents(self.pipe, 1, size, size, self.generator, frames=int(self.params.base_frames))
        latents = self.sample(latents, scheduler)
        return Stage("base", decode_video(self.pipe, latents), latents)

    def temporal(self, base: Stage) -> Stage:
        factor = int(self.params.tsr_factor)
        if factor == 1:
            return Stage("tsr", base.frames, base.latents)
        scheduler = self.scheduler()
        condition = augment(base.latents, float(self.params.noise_aug), scheduler, self.generator)
        kept = torch.arange(base.latents.shape[2]) * factor
        interleaved = base.latents.repeat_interleave(factor, dim=2)  # each base frame followed by copies
        noise = torch.randn(interleaved.shape, generator=self.generator).to(interleaved)
        fixed_noise = noise[:, :, kept]
        if self.params.insert == "repeat":
            start, latents = noise_to_strength(scheduler, interleaved, noise, D.tsr_strength)
        else:
            start, latents = 0, noise * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps

        def replace_kept(i, t, x, x0):
            """After step i: base positions ← the conditioning noised to the next step's level."""
            if i + 1 >= len(timesteps):
                return None  # the last step's output is the model's own
            x = x.clone()
            x[:, :, kept] = scheduler.add_noise(condition, fixed_noise, timesteps[i + 1:i + 2])
            return x

        latents[:, :, kept] = scheduler.add_noise(condition, fixed_noise, timesteps[start:start + 1])
        latents = self.sample(latents, scheduler, start, hooks=[replace_kept])
        return Stage("tsr", decode_video(self.pipe, latents), latents)

    def spatial(self, low: Stage) -> Stage:
        factor = int(self.params.ssr_factor)
        if factor == 1:
            return Stage("ssr", low.frames, low.latents)
        h, w = low.frames.shape[1:3]
        upsampled = resize_frames(low.frames, h * factor, w * factor)
        scheduler = self.scheduler()
        condition = augment(video_latents(self.pipe, upsampled[None]), float(self.params.noise_aug), scheduler,
                            self.generator)
        noise = torch.randn(condition.shape, generator=self.generator).to(condition)
        start, latents = noise_to_strength(scheduler, condition, noise, float(self.params.ssr_strength))
        latents = self.sample(latents, scheduler, start)
        return Stage("ssr", decode_video(self.pipe, latents), latents)


def run(pipe, unet, params: CascadeParams, loras: dict | None = None, on_step=None,
        max_frames: int = D.max_frames) -> list[Stage]:
    """Prompt → [base, tsr, ssr] stages, each with its frames."""
    params.check(max_frames)
    use_loras(unet, loras or {})
    with torch.no_grad():
        cascade = Cascade(pipe, unet, params, on_step)
        base = cascade.base()
        tsr = cascade.temporal(base)
        return [base, tsr, cascade.spatial(tsr)]
