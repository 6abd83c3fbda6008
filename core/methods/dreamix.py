"""Dreamix (Molad et al. 2023, docs/METHODS.md §17): edit a video, animate an image or render a subject
with a video diffusion model.

Sampling does not start from pure noise but from the input video downsampled by `downsample` (and
back up: only coarse structure and colour survive), encoded and noised to `strength`; the new
prompt is then denoised with the motion model after mixed fine-tuning on the input: the clip as a
video and its frames as stills (frame_loss_weight), temporal attention masked on stills so temporal
layers never learn from images (core.training.video_tuning). Three modes:
- edit: the uploaded video; video + still losses;
- animate: one image repeated to `frames` with a camera move (pan / zoom), stills only;
- subject: a few images of a subject, stills only, sampled from pure noise.
No Dreamix weights exist: this runs on the app's motion model (toy-motion over toy-sd offline,
AnimateDiff's adapter over SD1.5 on a GPU).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..denoisers import TextGuided
from ..motion import use_loras
from ..sampling import decode_video, denoise, encode_prompts, frame_context, noise_to_strength, prepare_latents
from ..training.epsilon import video_latents
from ..training.video_tuning import run_to_end, tune_on_clip
from ..validate import check_prompt, check_range, check_sampling
from ..video import resize_frames, sample_frames

D = config.DreamixDefaults
MODES = ("edit", "animate", "subject")
CAMERAS = ("none", "pan left", "pan right", "pan up", "pan down", "zoom in", "zoom out")


@dataclass
class DreamixParams:
    prompt: str
    mode: str = "edit"
    downsample: int = D.downsample  # the input is shrunk by this factor (and back) before noising
    strength: float = D.strength  # noise level the degraded input is taken to (1 = pure noise)
    finetune_steps: int = D.finetune_steps
    frame_loss_weight: float = D.frame_loss_weight  # weight of the still-frame loss beside the video loss
    lr: float = D.lr
    camera: str = "pan right"  # animate mode: how the still image moves over the frames
    frames: int = D.frames
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    # the caption fine-tuning pairs with the input ("" = none: the unconditional branch learns the input,
    # so guidance then pushes from it towards the prompt; tuning on the prompt itself teaches the model
    # that the prompt *is* the input — measured on toy-sd: red circles stayed purple, not blue)
    source_prompt: str = ""

    def check(self) -> None:
        check_prompt(self.prompt)
        check_prompt(self.source_prompt, "source_prompt", allow_empty=True)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera must be one of {', '.join(CAMERAS)}, got {self.camera!r}")
        check_range("downsample", self.downsample, 1, D.max_downsample)
        check_range("strength", self.strength, 0.0, 1.0)
        check_range("finetune_steps", self.finetune_steps, 0, D.max_finetune_steps)
        check_range("frame_loss_weight", self.frame_loss_weight, 0.0, 10.0)
        check_range("lr", self.lr, 1e-7, 1e-2)
        check_range("frames", self.frames, 2, D.max_frames)
        check_sampling(self.steps, self.guidance_scale, self.seed)


def degrade(frames: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by `factor` and back to the same size: what survives is coarse structure and colour."""
    if factor <= 1:
        return frames
    h, w = frames.shape[1:3]
    small = resize_frames(frames, max(1, h // factor), max(1, w // factor))
    return resize_frames(small, h, w)


def camera_move(image: np.ndarray, frames: int, camera: str, amount: float = D.camera_amount) -> np.ndarray:
    """A still image → `frames` frames under a camera move; `amount` is the total shift (pan, a
    fraction of the side) or scale change (zoom). Pan right: the scene slides right."""
    h, w = image.shape[:2]
    out = []
    for k in range(frames):
        f = k / max(1, frames - 1)
        dx = {"pan right": 1, "pan left": -1}.get(camera, 0) * amount * w * f
        dy = {"pan down": 1, "pan up": -1}.get(camera, 0) * amount * h * f
        scale = 1 + {"zoom in": 1, "zoom out": -0.5}.get(camera, 0) * amount * f
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale)
        matrix[:, 2] += (dx, dy)
        out.append(cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def input_frames(pipe, media: np.ndarray, params: DreamixParams) -> np.ndarray:
    """The clip the mode works from, at the model's size: (F, H, W, 3) uint8."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if params.mode == "edit":
        return resize_frames(sample_frames(media, int(params.frames)), size, size)
    images = resize_frames(media, size, size)  # animate: one image; subject: a few
    if params.mode == "animate":
        return camera_move(images[0], int(params.frames), params.camera)
    return images


def finetune(pipe, motion_unet, clip: np.ndarray, params: DreamixParams, on_step=None):
    """A fine-tuned copy of `motion_unet` (the shared one is left as it is)."""
    unet = copy.deepcopy(motion_unet)
    video_weight = 1.0 if params.mode == "edit" else 0.0  # stills only for images
    still_weight = float(params.frame_loss_weight) if params.mode == "edit" else 1.0
    if int(params.finetune_steps) > 0:
        torch.manual_seed(int(params.seed))
        run_to_end(tune_on_clip(pipe, unet, clip, params.source_prompt, int(params.finetune_steps), float(params.lr),
                                int(params.seed), video_weight=video_weight, still_weight=still_weight), on_step)
    return unet


def generate(pipe, unet, clip: np.ndarray, params: DreamixParams, loras: dict | None = None, on_step=None) -> np.ndarray:
    """Sample the prompt from the degraded, noised clip (edit, animate) or from noise (subject)."""
    use_loras(unet, loras or {})
    steps, guidance = int(params.steps), float(params.guidance_scale)
    frames = int(params.frames)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(int(params.seed))
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    latents = prepare_latents(pipe, 1, size, size, generator, frames=frames)
    start = 0
    with torch.no_grad():
        if params.mode != "subject" and params.strength < 1.0:
            source = video_latents(pipe, degrade(clip, int(params.downsample))[None]).to(latents)
            start, latents = noise_to_strength(scheduler, source, latents / scheduler.init_noise_sigma,
                                               float(params.strength))
        cond = frame_context(encode_prompts(pipe, [params.prompt]), frames)
        uncond = frame_context(encode_prompts(pipe, [""]), frames) if guidance > 1 else None
        result = denoise(TextGuided(unet, cond, uncond, guidance), scheduler, latents, span=(start, None),
                         on_step=on_step)
    return decode_video(pipe, result.latents)


def run(pipe, motion_unet, media: np.ndarray, params: DreamixParams, loras: dict | None = None,
        on_step=None) -> tuple[np.ndarray, np.ndarray]:
    """(the edited / animated video, the clip it was made from)."""
    params.check()
    clip = input_frames(pipe, media, params)
    tune_progress = None if on_step is None else (lambda r: on_step(r.step, r.total + int(params.steps)))
    unet = finetune(pipe, motion_unet, clip, params, tune_progress)
    offset = int(params.finetune_steps)
    sample_progress = None if on_step is None else (lambda d, t: on_step(offset + d, offset + int(params.steps)))
    return generate(pipe, unet, clip, params, loras, sample_progress), clip
