"""Text2Video-Zero (Khachatryan et al. 2023, docs/METHODS.md §15): zero-shot video from an image model.

Motion dynamics, as the official code (and diffusers' TextToVideoZeroPipeline, which the suite compares
against): denoise frame 1's x_T to step t1 and on to t0 (DDIM step indices counted from the end, 47 and
44 of 50), copy it to frames 2…F, warp frame k with the flow k·δ (δ = motion_x, motion_y in pixels of a
512-px frame: frame k shows frame 1's latent at p + k·δ), re-noise each moved frame from t0 to t1 with its
own noise (ᾱ ratio ∏ α over [t0, t1)), and denoise all frames from t1 with cross-frame attention (every
frame's self-attention reads frame 1's keys and values); frame 1 keeps its own x_t1.

The official warp samples a flow drawn at 512² and resized to the latent with nearest sampling, so at a
shift of exactly half a latent pixel some rows are doubled and others dropped; here each frame's shift is
rounded once, as the official rounds it elsewhere, so a translation stays rigid.

`noise="warped"` is an option (not the official): one re-noised latent moved with the content. At t1 a
small model has not fixed where the object is, so fresh noise per frame re-decides it: on toy-sd the
object wandered ~9 px with no motion at all; warped noise keeps frame k exactly frame 1 moved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

from .. import config
from ..attention import FrameMode, active_state, install
from ..denoisers import InstructPix2Pix, TextGuided
from ..sampling import (
    decode_frames,
    denoise,
    encode_images,
    encode_prompts,
    prepare_latents,
)
from ..validate import check_prompt, check_range
from ..video import resize_frames

NOISE_MODES = ("warped", "shared", "per-frame")
MOTION_REFERENCE = 512  # motion_x/y are pixels of a 512-px frame, whatever the model's size
D = config.T2VZeroDefaults


@dataclass
class T2VZeroParams:
    prompt: str
    frames: int = D.frames
    motion_x: float = D.motion_x
    motion_y: float = D.motion_y
    t0: int = D.t0
    t1: int = D.t1
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    cross_frame: bool = True  # the paper's cross-frame attention (off only for the ablation)
    motion: bool = True  # the paper's motion dynamics in the latent (off: all frames share x_T)
    noise: str = D.noise  # re-noising t0 → t1: "per-frame" (the official code) or "warped"

    def __post_init__(self):
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")

    def check(self) -> None:
        check_prompt(self.prompt)
        check_range("frames", self.frames, 1, D.max_frames)
        check_range("motion_x", self.motion_x, -D.max_motion, D.max_motion)
        check_range("motion_y", self.motion_y, -D.max_motion, D.max_motion)
        check_range("steps", self.steps, 2, config.MAX_STEPS)
        if self.motion:
            check_range("t1", self.t1, 1, D.schedule_steps - 1)
            check_range("t0", self.t0, 0, self.t1 - 1)
        check_range("guidance_scale", self.guidance_scale, 0.0, config.MAX_GUIDANCE)
        check_range("seed", self.seed, 0, config.MAX_SEED)


def motion_steps(t0: int, t1: int, steps: int) -> tuple[int, int]:
    """t0, t1 are step indices counted from the end of a 50-step schedule (the official's 44, 47); another step
    count takes the same fraction of its steps (exactly the given ones at 50), keeping 0 ≤ t0 < t1 < steps."""
    scale = steps / D.schedule_steps
    t1 = min(max(round(int(t1) * scale), 1), steps - 1)
    return min(round(int(t0) * scale), t1 - 1), t1


def latent_shift(flow: float, side: int) -> int:
    """A flow of `flow` pixels of a 512-px frame → whole latent pixels on a latent `side` wide, as the official
    warp lands: its 512² coordinates resized to the latent put latent pixel i at i + (flow − ½)/(512/side)."""
    scale = MOTION_REFERENCE / side
    return round((flow - 0.5) / scale)  # Python's round, like grid_sample's nearest, rounds halves to even


def translate(latent: torch.Tensor, flows: list[tuple[float, float]]) -> torch.Tensor:
    """(1, C, h, w) → (len(flows), C, h, w): frame k shows the latent at p + flow_k (flows in pixels of a 512-px
    frame, whole latent pixels, nearest with reflection at the borders, as the official warp)."""
    _, _, h, w = latent.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grids = []
    for flow_x, flow_y in flows:
        # pixel centres (+ ½): every output pixel reads exactly one input pixel, so the shift is rigid
        gx = (xs + latent_shift(flow_x, w) + 0.5) / w * 2 - 1
        gy = (ys + latent_shift(flow_y, h) + 0.5) / h * 2 - 1
        grids.append(torch.stack([gx, gy], -1))
    grid = torch.stack(grids).to(latent)
    return F.grid_sample(latent.expand(len(flows), -1, -1, -1), grid, mode="nearest", padding_mode="reflection",
                         align_corners=False)


def forward_noise(x: torch.Tensor, ratio: torch.Tensor, generator, shared: bool = False) -> torch.Tensor:
    """q(x_to | x_from) for a noisier `to`: √r·x + √(1 − r)·ε with r = ∏ α over [from, to) (the official's
    alpha_vec); one ε for the whole batch when `shared`."""
    ratio = ratio.to(x)
    shape = (1, *x.shape[1:]) if shared else x.shape
    noise = torch.randn(shape, generator=generator, dtype=x.dtype).to(x.device)
    return ratio.sqrt() * x + (1 - ratio).sqrt() * noise


def generate(pipe, params: T2VZeroParams, on_step=None, unet_kwargs_fn=None, cond_embeds=None,
             uncond_embeds=None) -> np.ndarray:
    """→ uint8 frames (F, H, W, 3). `unet_kwargs_fn` / embeddings let the ControlNet mode reuse it
    (the function sees batches of the first frame alone while the motion is prepared)."""
    params.check()
    frames, steps = int(params.frames), int(params.steps)
    t0, t1 = motion_steps(params.t0, params.t1, steps)
    generator = torch.Generator().manual_seed(int(params.seed))
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    first_t1 = steps - t1 - 1  # step index at which the motion is added (t1)
    first_t0 = steps - t0 - 1
    cond = encode_prompts(pipe, [params.prompt]) if cond_embeds is None else cond_embeds
    uncond = encode_prompts(pipe, [""]) if uncond_embeds is None else uncond_embeds
    latent = prepare_latents(pipe, 1, size, size, generator)
    state = install(pipe.unet)
    total = first_t0 + (steps - first_t1) * frames  # in frame-steps

    def progress(offset):
        return None if on_step is None else (lambda done, _: on_step(offset + done, total))

    with torch.no_grad():
        if params.motion and frames > 1:
            model = TextGuided(pipe.unet, cond, uncond, params.guidance_scale, unet_kwargs_fn)
            x_t1 = denoise(model, scheduler, latent, steps, span=(0, first_t1), generator=generator,
                           on_step=progress(0)).latents
            x_t0 = denoise(model, scheduler, x_t1, steps, span=(first_t1, first_t0), generator=generator,
                           on_step=progress(first_t1)).latents
            flows = [(params.motion_x * k, params.motion_y * k) for k in range(frames)]
            ratio = scheduler.alphas[int(timesteps[first_t0]):int(timesteps[first_t1])].prod()
            if params.noise == "warped":  # one re-noised latent, noise and all, moved to every frame
                latents = translate(forward_noise(x_t0, ratio, generator), flows)
            elif params.noise == "shared":  # the content moves, one noise for every frame stays
                latents = forward_noise(translate(x_t0, flows), ratio, generator, shared=True)
            else:  # the official: fresh noise per moved frame; frame 1 keeps its own x_t1
                latents = torch.cat([x_t1, forward_noise(translate(x_t0, flows[1:]), ratio, generator)])
            start = first_t1
        else:
            latents, start = latent.expand(frames, -1, -1, -1).clone(), 0
        mode = FrameMode.FIRST if params.cross_frame else FrameMode.NONE
        with state.use([], frames=frames, frame_mode=mode):
            model = TextGuided(pipe.unet, cond.expand(frames, -1, -1), uncond, params.guidance_scale, unet_kwargs_fn)
            result = denoise(model, scheduler, latents, steps, span=(start, None), generator=generator,
                             on_step=None if on_step is None else (lambda done, n: on_step(first_t0 + done * frames, total)))
    return decode_frames(pipe, result.latents[:frames])


def controlnet_inputs(controlnet, conditions: torch.Tensor, scale: float = 1.0):
    """A `unet_kwargs_fn` adding ControlNet residuals for per-frame conditions (F, 3, H, W) in [0, 1].

    A call for n frames uses the first n conditions, twice when the batch is guided."""
    def unet_kwargs(step, timestep, model_input, context):
        batch = model_input.shape[0]
        frames = batch // 2 if active_state().guided else batch
        cond = conditions[:frames].to(model_input)
        cond = cond.repeat(batch // frames, 1, 1, 1)
        down, mid = controlnet(model_input, timestep, encoder_hidden_states=context, controlnet_cond=cond,
                               conditioning_scale=scale, return_dict=False)
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    return unet_kwargs


def generate_controlled(pipe, controlnet, conditions: np.ndarray, params: T2VZeroParams, scale: float = 1.0,
                        on_step=None) -> np.ndarray:
    """The ControlNet variant: one shared x_T for every frame (no latent motion: the conditions
    carry it), cross-frame attention in both the UNet and the ControlNet."""
    install(pipe.unet)
    install(controlnet)  # its attention follows the call's frame mode too
    images = torch.from_numpy(np.ascontiguousarray(conditions)).permute(0, 3, 1, 2).float() / 255
    params.motion = False
    return generate(pipe, params, on_step, unet_kwargs_fn=controlnet_inputs(controlnet, images, scale))


def edit_pix2pix(pipe, frames: np.ndarray, instruction: str, params: T2VZeroParams,
                 image_guidance_scale: float = D.image_guidance_scale, on_step=None) -> np.ndarray:
    """Video Instruct-Pix2Pix as the official code: every frame edited by `instruction` with cross-frame attention,
    Instruct-Pix2Pix's Euler-ancestral sampler, each frame from its own x_T (an Instruct-Pix2Pix pipeline: its UNet
    takes the image latent too)."""
    params.prompt, params.motion = instruction, False
    params.check()
    check_range("image_guidance_scale", image_guidance_scale, 0.0, config.MAX_GUIDANCE)
    if pipe.unet.config.in_channels != 2 * pipe.vae.config.latent_channels:
        raise ValueError("the video-editing mode needs an Instruct-Pix2Pix model (its UNet takes the image too)")
    count = int(params.frames)
    size = pipe.vae_scale_factor * (pipe.unet.config.sample_size or 64)
    frames = resize_frames(frames, size, size)[:count]
    count = len(frames)
    generator = torch.Generator().manual_seed(int(params.seed))
    scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    image_latents = torch.cat([encode_images(pipe, frames[i:i + 1], scaled=False) for i in range(count)])
    channels = pipe.vae.config.latent_channels
    shape = (count, channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
    scheduler.set_timesteps(int(params.steps))  # Euler's first σ sets the initial noise's scale
    latents = torch.randn(shape, generator=generator).to(pipe.unet.device, pipe.unet.dtype) * scheduler.init_noise_sigma
    state = install(pipe.unet)
    with torch.no_grad(), state.use([], frames=count, frame_mode=FrameMode.FIRST):
        model = InstructPix2Pix(pipe.unet, encode_prompts(pipe, [instruction]).expand(count, -1, -1),
                                encode_prompts(pipe, [""]), image_latents, params.guidance_scale, image_guidance_scale)
        result = denoise(model, scheduler, latents, generator=generator, on_step=on_step)
    return decode_frames(pipe, result.latents[:count])
