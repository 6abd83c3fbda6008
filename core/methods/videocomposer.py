"""VideoComposer (Wang et al. 2023, METHODS.md §8): a video composed from text, a style image and
conditions extracted from a reference video — motion vectors, depth, sketch, mask sequences, a
single image or sketch repeated over the frames.

Conditions are extracted once (core.videocomposer.condition_sequences), encoded once by their
STC-encoders and summed (features fed to the motion UNet's extra input channels at every step);
classifier-free guidance is over text + style (the style token zeroed in the unconditional branch),
in the engine's one loop. Our open re-implementation, not the official weights (see core.videocomposer).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..attention import FrameMode, install
from ..sampling import decode_video, denoise, encode_prompts, frame_context, prepare_latents, square_image, to_model_pixels
from ..validate import check_prompt, check_range, check_sampling
from ..video import draw_motion, sample_frames
from ..videocomposer import CONDITION_CHANNELS, ComposedUNet, condition_sequences, to_tensors

D = config.VideoComposerDefaults


@dataclass
class VideoComposerParams:
    prompt: str = D.prompt
    conditions: list[str] = field(default_factory=lambda: list(D.conditions))
    frames: int = D.frames
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    negative_prompt: str = ""

    def check(self, max_frames: int = D.max_frames) -> None:
        check_prompt(self.prompt, allow_empty=True)
        check_prompt(self.negative_prompt, "negative_prompt", allow_empty=True)
        unknown = [c for c in self.conditions if c not in CONDITION_CHANNELS]
        if unknown:
            raise ValueError(f"unknown conditions {unknown}; choose from {', '.join(CONDITION_CHANNELS)}")
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError("each condition once")
        check_range("frames", self.frames, 2, max_frames)
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class ComposedVideo:
    frames: np.ndarray  # generated (F, H, W, 3) uint8
    condition_views: dict[str, np.ndarray]  # what each condition looked like, (F, H, W, 3) uint8


def reference_frames(video: np.ndarray, frames: int, side: int) -> np.ndarray:
    """The reference video as the model's frames: `frames` evenly spread, centre-cropped square, `side` px."""
    return np.stack([square_image(frame, side) for frame in sample_frames(np.asarray(video), frames)])


def condition_views(reference: np.ndarray, sequences: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each condition as frames a person can look at (motion vectors as arrows on the frames)."""
    views = {}
    for kind, sequence in sequences.items():
        if kind == "motion":
            flow = sequence * D.motion_scale
            views[kind] = np.stack([draw_motion(frame, f, spacing=max(4, frame.shape[0] // 8))
                                    for frame, f in zip(reference, flow)])
            continue
        pixels = ((sequence[..., :3] + 1) * 127.5).clip(0, 255).astype(np.uint8)
        views[kind] = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
    return views


def style_embedding(models, image: np.ndarray | None) -> torch.Tensor | None:
    """A style / content image → its unit CLIP image embedding (1, D) from the image tower the style
    token was trained on, or None."""
    if image is None:
        return None
    from ..guidance import clip_image_features, clip_inputs
    clip_model, _ = models.clip(config.VIDEOCOMPOSER_STYLE_ENCODER)
    side = clip_model.config.vision_config.image_size
    pixels = to_model_pixels(square_image(np.asarray(image)[..., :3], side)[None])
    with torch.no_grad():
        return clip_image_features(clip_model, clip_inputs(clip_model), pixels.to(clip_model.device))


def depth_for(models, video: np.ndarray, conditions, frames: int) -> np.ndarray | None:
    """The depth of the `frames` reference frames used, from the depth model the VideoComposer model
    learnt with, or None (the offline stand-in is then extracted with the other conditions)."""
    from ..conditions import model_depth
    name = config.VIDEOCOMPOSER_DEPTH_MODELS.get(config.VIDEOCOMPOSER_MODELS.get(models.base_model, ""))
    if "depth" not in conditions or name is None:
        return None
    return model_depth(sample_frames(np.asarray(video), frames), models.depth_estimator(name))


def generate(pipe, unet, composer, reference: np.ndarray | None, params: VideoComposerParams,
             style: torch.Tensor | None = None, depth: np.ndarray | None = None, hole: np.ndarray | None = None,
             structure_level: int = 0, temporal_guidance: float = 1.0, cross_frame_attention: bool = False,
             on_step=None) -> ComposedVideo:
    """Conditions from `reference` (F, H, W, 3) uint8 + text (+ `style`: a CLIP image embedding) → video.

    `pipe` supplies text encoder, VAE and scheduler; `unet` is the widened motion UNet and
    `composer` its encoders (Models.videocomposer). `depth`: a depth-model sequence for the reference
    frames (else the offline stand-in); `hole`: the inpainting mask. Gen-1 uses `structure_level`,
    `temporal_guidance` and `cross_frame_attention` (every frame also reads the first frame's keys
    and values)."""
    # 1. check inputs
    params.check()
    frames, steps, guidance = int(params.frames), int(params.steps), float(params.guidance_scale)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if params.conditions and reference is None:
        raise ValueError("these conditions are extracted from a reference video: give one")
    reference = reference_frames(reference, frames, side) if reference is not None else None
    if depth is not None:
        depth = np.stack([square_image((np.asarray(d) * 255).astype(np.uint8)[..., None].repeat(3, -1), side)[..., 0]
                          for d in sample_frames(np.asarray(depth), frames)]) / 255.0
    with torch.no_grad():
        # 2. extract and encode the conditions once
        sequences = condition_sequences(reference, params.conditions, depth=depth, hole=hole,
                                        structure_level=structure_level) if params.conditions else {}
        generator = torch.Generator().manual_seed(int(params.seed))
        latents = prepare_latents(pipe, 1, side, side, generator, frames=frames)
        features = composer.features(to_tensors(sequences), tuple(latents.shape))
        # 3. encode text + style (the unconditional branch has neither)
        cond = torch.cat([encode_prompts(pipe, [params.prompt]), composer.style_token(style, 1)], dim=1)
        uncond = torch.cat([encode_prompts(pipe, [params.negative_prompt]), composer.style_token(None, 1)], dim=1)
        cond, uncond = frame_context(cond, frames), frame_context(uncond, frames)
        # 4. the loop over the composed UNet, 5. decode
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        model = ComposedUNet(unet, features, temporal_guidance)
        state = install(unet)
        mode = FrameMode.FIRST if cross_frame_attention else FrameMode.NONE
        with state.use(frames=frames, frame_mode=mode):
            result = denoise(model, scheduler, latents, cond, uncond if guidance > 1 else None, guidance, steps,
                             on_step=on_step)
        video = decode_video(pipe, result.latents)
    return ComposedVideo(video, condition_views(reference, sequences) if sequences else {})


# ---- measurements of the embedded model (the model card and the behaviour tests) ------------------

def moving_reference(color: str = "red", shape: str = "circle", direction: str = "right", frames: int = 8,
                     seed: int = 0) -> np.ndarray:
    """A procedural reference clip: one object moving 2.5 px per frame."""
    from ..shapes import dataset
    rng = np.random.default_rng(seed)
    while True:
        clip, caption = dataset.moving_clip(rng, frames=frames, speed=2.5, direction=direction)
        if f"{color} {shape}" in caption and "white background" in caption:
            return clip


def evaluate(models, seeds: int = 8, steps: int = 25, weights: str | None = None) -> dict:
    """The issue's measurements on the embedded model, or on `weights` (see
    scripts/train_toy_videocomposer.py)."""
    from ..shapes import reader
    from .gen1 import Gen1Params, edit
    pipe = models.pipeline()
    unet, composer = models.videocomposer(weights=weights)
    reference = moving_reference("red", "circle", "right")
    sequences = condition_sequences(reference, ["motion"])
    masks = [reader.read_single(f).mask for f in reference]
    motion_dx = float(np.mean([s[..., 0][m].mean() for s, m in zip(sequences["motion"][1:], masks[1:])]) * D.motion_scale)
    right, kept, ious, gen1_iou, gen1_blue = [], [], [], [], []
    for seed in range(seeds):
        params = VideoComposerParams("a blue square", ["motion"], frames=len(reference), steps=steps, seed=100 + seed)
        blobs = [reader.read_single(f) for f in generate(pipe, unet, composer, reference, params).frames]
        ok = all(b is not None for b in blobs)
        right.append(ok and blobs[-1].cx - blobs[0].cx >= 3.0)
        kept.append(ok and all(b.color == "blue" and b.shape == "square" for b in blobs))
        params = VideoComposerParams("a blue square", ["single_sketch"], frames=len(reference), steps=steps, seed=100 + seed)
        first = reader.read_single(generate(pipe, unet, composer, reference, params).frames[0])
        ious.append(0.0 if first is None else reader.mask_iou(first.mask, masks[0]))
        edited = edit(pipe, unet, composer, reference, Gen1Params("a blue circle", frames=len(reference), steps=steps,
                                                                  seed=100 + seed)).frames
        blobs = [reader.read_single(f) for f in edited]  # read once for IoU and colour
        gen1_iou.append(float(np.mean(reader.blob_ious(blobs, masks))))
        gen1_blue.append(all(b is not None and b.color == "blue" for b in blobs))
    by_level = {0: round(float(np.mean(gen1_iou)), 3)}  # the runs above are structure_level 0
    for level in (3, config.Gen1Defaults.max_structure_level):
        values = []
        for seed in range(seeds):
            edited = edit(pipe, unet, composer, reference, Gen1Params("a blue circle", structure_level=level,
                                                                      frames=len(reference), steps=steps, seed=100 + seed)).frames
            values.append(np.mean(reader.frame_ious(edited, masks)))
        by_level[level] = round(float(np.mean(values)), 3)
    return {"eval_steps": steps, "eval_seeds": f"100–{99 + seeds}", "motion_dx": motion_dx,
            "motion_right": float(np.mean(right)), "motion_kept": float(np.mean(kept)),
            "sketch_iou": float(np.mean(ious)), "gen1_iou": float(np.mean(gen1_iou)),
            "gen1_blue": float(np.mean(gen1_blue)), "gen1_iou_by_level": by_level}
