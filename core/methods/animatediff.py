"""AnimateDiff (Guo et al. 2023, docs/METHODS.md §14): animate a personalised text-to-image model with a
motion module trained once.

The base model's UNet is inflated with a `MotionAdapter` (core.motion: temporal transformers after
every resnet/attention pair, zero-initialised outputs), optionally with motion LoRAs (camera moves)
at a scale each, and sampled by the engine's one loop over video latents (B, C, F, h, w) — the
computation of diffusers' `AnimateDiffPipeline`, with our progress, attention processor and
per-frame decoding (core.video_control.generate with no control model).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import config, video_control
from ..motion import use_loras
from ..validate import check_prompt, check_range, check_sampling
from ..video_control import ControlledVideoParams

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
    params.check(max_frames)
    use_loras(motion_unet, loras or {})
    return video_control.generate(
        pipe, motion_unet, ControlledVideoParams(params.prompt, params.negative_prompt, int(params.frames),
                                                 int(params.steps), float(params.guidance_scale), int(params.seed)),
        image_prompts=[image_prompt], on_step=on_step)
