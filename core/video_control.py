"""A motion UNet under control: AnimateDiff with per-frame ControlNets, a SparseCtrl model on key frames, image
prompts (IP-Adapter) and a frame-wise guidance term — what VideoComposer and Gen-1 run on SD1.5 (public weights).

`ControlledMotionUNet` wraps the motion UNet for the engine's one loop: at each call it runs every ControlNet on the
frames folded into the batch (each frame its own condition), the SparseCtrl model on the whole clip (its condition
and key-frame mask), sums their residuals and hands them to the motion UNet — the computation of diffusers'
`AnimateDiffControlNetPipeline` and `AnimateDiffSparseControlNetPipeline` (tests/test_parity.py). Control models read
the text alone (image prompts reach the motion UNet only, as in diffusers). With `temporal_guidance` w ≠ 1 it also
predicts with the motion modules bypassed (core.motion.motion_bypassed: the image model, frame by frame, with the
same residuals) and returns ε_frames + w·(ε_video − ε_frames).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from diffusers import DDIMScheduler
from diffusers.models.unets.unet_motion_model import UNetMotionOutput
from torch import nn

from . import config
from .attention import InnerUNet, active_state, with_image_prompts
from .denoisers import TextGuided
from .motion import motion_bypassed
from .sampling import decode_video, denoise, encode_images, encode_prompts, frame_context, prepare_latents, to_unit_pixels


@dataclass
class FrameControl:
    """A ControlNet applied to every frame: its condition frames (F, 3, H, W) in [0, 1] and its scale."""
    model: nn.Module
    frames: torch.Tensor
    scale: float = 1.0


@dataclass
class SparseControl:
    """A SparseCtrl model: its condition (1, C, F, H', W') — zero outside the key frames — and the key-frame mask
    (1, 1, F, H', W')."""
    model: nn.Module
    condition: torch.Tensor
    mask: torch.Tensor
    scale: float = 1.0


def frame_control(model, frames: np.ndarray, scale: float = 1.0) -> FrameControl:
    """uint8 condition frames (F, H, W, 3) → a FrameControl (as diffusers' control video processor prepares them)."""
    return FrameControl(model, to_unit_pixels(np.asarray(frames)), float(scale))


@torch.no_grad()
def sparse_control(pipe, model, images: np.ndarray, indices: Sequence[int], frames: int,
                   scale: float = 1.0) -> SparseControl:
    """uint8 key images (K, H, W, 3) placed at frames `indices` of a `frames`-long clip. The RGB model reads the
    images' latents (its simplified condition embedding), the scribble model their pixels in [0, 1]. The latents
    are the VAE posterior's mean (diffusers draws a sample with no seed: ours is deterministic)."""
    images = np.asarray(images)
    if len(indices) != len(images) or not all(0 <= i < frames for i in indices):
        raise ValueError(f"key frames {list(indices)} do not fit {len(images)} images in a {frames}-frame clip")
    if model.config.use_simplified_condition_embedding:
        keys = encode_images(pipe, images)
    else:
        keys = to_unit_pixels(images)
    keys = keys.to(model.device, model.dtype)
    condition = torch.zeros(1, keys.shape[1], frames, *keys.shape[2:], device=keys.device, dtype=keys.dtype)
    mask = torch.zeros(1, 1, frames, *keys.shape[2:], device=keys.device, dtype=keys.dtype)
    condition[0, :, list(indices)] = keys.transpose(0, 1)
    mask[:, :, list(indices)] = 1
    return SparseControl(model, condition, mask, float(scale))


def _add(total, residuals):
    if total is None:
        return residuals
    down, mid = residuals
    return [a + b for a, b in zip(total[0], down)], total[1] + mid


class ControlledMotionUNet(InnerUNet, nn.Module):
    """A motion UNet called with its control models' residuals (and, with `temporal_guidance` ≠ 1, Gen-1's
    frame-wise guidance term)."""

    def __init__(self, unet, controls: Sequence[FrameControl] = (), sparse: SparseControl | None = None,
                 temporal_guidance: float = 1.0):
        super().__init__()
        self.unet = unet
        self.controls, self.sparse = list(controls), sparse
        self.temporal_guidance = float(temporal_guidance)

    def residuals(self, sample: torch.Tensor, timestep, context: torch.Tensor):
        """Summed (down, mid) residuals of every control model for this batch of clips, or None."""
        total = None
        b, c, f, h, w = sample.shape
        state = active_state()
        with state.text_only() if state is not None else contextlib.nullcontext():
            folded = sample.transpose(1, 2).reshape(b * f, c, h, w)
            for control in self.controls:
                condition = control.frames.to(sample.device, control.model.dtype).repeat(b, 1, 1, 1)
                total = _add(total, control.model(folded.to(control.model.dtype), timestep, encoder_hidden_states=context,
                                                  controlnet_cond=condition, conditioning_scale=control.scale,
                                                  return_dict=False))
            if self.sparse is not None:
                model = self.sparse.model
                total = _add(total, model(sample.to(model.dtype), timestep, encoder_hidden_states=context,
                                          controlnet_cond=self.sparse.condition, conditioning_mask=self.sparse.mask,
                                          conditioning_scale=self.sparse.scale, return_dict=False))
        return total

    def forward(self, sample, timestep, encoder_hidden_states, return_dict: bool = True, **kwargs):
        total = self.residuals(sample, timestep, encoder_hidden_states)
        if total is not None:
            kwargs = {**kwargs, "down_block_additional_residuals": total[0], "mid_block_additional_residual": total[1]}
        video = self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False, **kwargs)[0]
        if self.temporal_guidance != 1.0:
            with motion_bypassed():
                frames = self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False,
                                   **kwargs)[0]
            video = frames + self.temporal_guidance * (video - frames)
        return UNetMotionOutput(sample=video) if return_dict else (video,)


@dataclass
class KeepOutside:
    """A step hook for video inpainting: outside the hole, x_t is the reference video's latents noised to the
    step's level (blended latent diffusion), so only the hole is generated. mask: (1, 1, F, h, w), 1 = keep."""
    scheduler: object
    reference: torch.Tensor
    mask: torch.Tensor
    noise: torch.Tensor

    def __call__(self, step, timestep, latents, x0):
        timesteps = self.scheduler.timesteps
        if step + 1 >= len(timesteps):
            kept = self.reference
        else:
            kept = self.scheduler.add_noise(self.reference, self.noise, timesteps[step + 1:step + 2])
        return latents * (1 - self.mask) + kept.to(latents.dtype) * self.mask


@dataclass
class ControlledVideoParams:
    prompt: str
    negative_prompt: str = ""
    frames: int = config.AnimateDiffDefaults.frames
    steps: int = config.AnimateDiffDefaults.steps
    guidance_scale: float = config.AnimateDiffDefaults.guidance_scale
    seed: int = config.AnimateDiffDefaults.seed


def encode_reference(pipe, frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) → video latents (1, C, F, h, w)."""
    return encode_images(pipe, np.asarray(frames)).transpose(0, 1)[None]


def generate(pipe, motion_unet, params: ControlledVideoParams, controls: Sequence[FrameControl] = (),
             sparse: SparseControl | None = None, image_prompts=(), temporal_guidance: float = 1.0,
             latents: torch.Tensor | None = None, inpaint: tuple[np.ndarray, np.ndarray] | None = None,
             on_step=None) -> np.ndarray:
    """Text (+ controls, image prompts) → uint8 frames (F, H, W, 3). `latents`: the initial noise (1, C, F, h, w)
    (else drawn from the seed); `inpaint`: (reference frames (F, H, W, 3) uint8, keep mask (h, w) or (F, h, w)
    at the latent grid, 1 = keep) — the reference stays outside the mask."""
    frames, steps, guidance = int(params.frames), int(params.steps), float(params.guidance_scale)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    with torch.no_grad():
        cond = frame_context(encode_prompts(pipe, [params.prompt]), frames)
        uncond = frame_context(encode_prompts(pipe, [params.negative_prompt]), frames) if guidance > 1 else None
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        generator = torch.Generator().manual_seed(int(params.seed))
        if latents is None:
            latents = prepare_latents(pipe, 1, side, side, generator, frames=frames)
        hooks = []
        if inpaint is not None:
            reference, keep = inpaint
            keep = torch.as_tensor(np.asarray(keep, np.float32)).to(latents.device, latents.dtype)
            keep = keep.expand(frames, *keep.shape[-2:])[None, None]
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
            hooks.append(KeepOutside(scheduler, encode_reference(pipe, reference).to(latents.dtype), keep, noise))
        model = ControlledMotionUNet(motion_unet, controls, sparse, temporal_guidance)
        with with_image_prompts(motion_unet, image_prompts):
            result = denoise(TextGuided(model, cond, uncond, guidance), scheduler, latents, steps, hooks=hooks,
                             on_step=on_step)
        return decode_video(pipe, result.latents)


def warped_noise(noise: torch.Tensor, flows: np.ndarray) -> torch.Tensor:
    """One frame's noise (1, C, h, w) carried along motion vectors: (1, C, F, h, w) where frame k shows frame 0's
    noise moved by the flow accumulated up to k. `flows` (F, H, W, 2): pixels each frame moved since the previous
    one (frame 0's are zero), at any resolution. Nearest sampling keeps every value one of frame 0's, so each
    frame is still unit Gaussian noise; only the correlation between frames follows the motion. An approximation
    for models that cannot read motion vectors (no public SD1.5 model can): the initial noise of a video model
    shapes where things go."""
    _, _, h, w = noise.shape
    flows = torch.from_numpy(np.ascontiguousarray(flows, np.float32)).permute(0, 3, 1, 2)
    scale = torch.tensor([w / flows.shape[-1], h / flows.shape[-2]])[None, :, None, None]
    travelled = torch.nn.functional.interpolate(flows.cumsum(0), size=(h, w), mode="area") * scale
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs - travelled[:, 0] + 0.5) / w * 2 - 1  # frame k at p shows what frame 0 had at p − travelled
    gy = (ys - travelled[:, 1] + 0.5) / h * 2 - 1
    grid = torch.stack([gx, gy], -1).to(noise)
    warped = torch.nn.functional.grid_sample(noise.expand(len(flows), -1, -1, -1), grid, mode="nearest",
                                             padding_mode="reflection", align_corners=False)
    return warped.transpose(0, 1)[None]
