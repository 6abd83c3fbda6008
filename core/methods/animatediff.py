"""AnimateDiff (Guo et al. 2023, docs/METHODS.md §14): animate a personalised text-to-image model with a
motion module trained once.

The base model's UNet is inflated with a `MotionAdapter` (core.motion: temporal transformers after
every resnet/attention pair, zero-initialised outputs), optionally with motion LoRAs (camera moves)
at a scale each, and sampled by the engine's one loop over video latents (B, C, F, h, w) — the
computation of diffusers' `AnimateDiffPipeline`, with our progress, attention processor and
per-frame decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..attention import install
from ..denoisers import TextGuided
from ..motion import use_loras
from ..sampling import decode_video, denoise, encode_prompts, frame_context, prepare_latents
from ..validate import check_prompt, check_range, check_sampling

D = config.AnimateDiffDefaults


@dataclass
class AnimateDiffParams:
    prompt: str
    motion_lora_scale: float = D.motion_lora_scale  # weight of the chosen motion LoRA (0 = off)
    frames: int = D.frames
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    negative_prompt: str = ""
    image_prompt_scale: float = D.image_prompt_scale  # an image prompt's weight (IP-Adapter), when one is given

    def check(self, max_frames: int = D.max_frames) -> None:
        check_prompt(self.prompt)
        check_prompt(self.negative_prompt, "negative_prompt", allow_empty=True)
        check_range("frames", self.frames, 2, max_frames)
        check_range("motion_lora_scale", self.motion_lora_scale, 0.0, D.max_motion_lora_scale)
        check_range("image_prompt_scale", self.image_prompt_scale, 0.0, D.max_image_prompt_scale)
        check_sampling(self.steps, self.guidance_scale, self.seed)


def generate(pipe, motion_unet, params: AnimateDiffParams, loras: dict[str, float] | None = None,
             on_step=None, max_frames: int = D.max_frames, image_prompt=None) -> np.ndarray:
    """Text → uint8 frames (F, H, W, 3). `pipe` supplies text encoder, VAE and scheduler config;
    `motion_unet` is its UNet inflated with a motion adapter; `loras` maps loaded LoRA adapter names
    to their scales; `image_prompt` (core.ip_adapter.ImagePrompt) is seen by every frame, as in diffusers."""
    # 1. check inputs
    params.check(max_frames)
    frames, steps, guidance = int(params.frames), int(params.steps), float(params.guidance_scale)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    use_loras(motion_unet, loras or {})
    with torch.no_grad():
        # 2. encode the prompt (one row per frame)
        cond = frame_context(encode_prompts(pipe, [params.prompt]), frames)
        uncond = frame_context(encode_prompts(pipe, [params.negative_prompt]), frames) if guidance > 1 else None
        # 3. timesteps and 4. latents: one noise video, drawn on the CPU generator's stream
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        generator = torch.Generator().manual_seed(int(params.seed))
        latents = prepare_latents(pipe, 1, size, size, generator, frames=frames)
        # 5. the loop, 6. decode
        with install(motion_unet).use(image_prompts=[image_prompt] if image_prompt is not None else []):
            result = denoise(TextGuided(motion_unet, cond, uncond, guidance), scheduler, latents, steps,
                             on_step=on_step)
        return decode_video(pipe, result.latents)
