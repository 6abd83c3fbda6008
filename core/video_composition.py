"""Sampling a video composed from conditions: what the VideoComposer method and Gen-1 (depth structure + content)
both run — on the embedded model, VideoComposer's STC-encoders over a widened motion UNet (`generate`); on SD1.5,
public models standing in for the encoders (`generate_with_controls`: AnimateDiff + ControlNet v1.1 + SparseCtrl +
IP-Adapter, core.video_control). Both read the same extracted conditions (core.videocomposer.condition_sequences)."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from diffusers import DDIMScheduler

from . import config
from .attention import FrameMode, install
from .denoisers import TextGuided
from .sampling import decode_video, denoise, encode_prompts, frame_context, prepare_latents, square_image, square_mask
from .validate import check_prompt, check_range, check_sampling
from .video import draw_motion, path_motion, sample_frames
from .video_control import (ControlledVideoParams, FrameControl, frame_control, sparse_control, warped_noise,
                            generate as generate_controlled)
from .videocomposer import CONDITION_CHANNELS, ComposedUNet, condition_sequences, to_tensors

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


def drawn_on_frames(drawing: np.ndarray | None, side: int) -> np.ndarray | None:
    """A map drawn over the reference's first frame (H, W) (a sketch, uint8, or a painted mask, bool) → the model's
    frames: centre-cropped square at `side` px, as `reference_frames` crops the video."""
    if drawing is None:
        return None
    drawing = np.asarray(drawing)
    if drawing.dtype == bool:
        return square_mask(drawing, side)
    return square_image(drawing.astype(np.uint8)[..., None].repeat(3, -1), side)[..., 0]


def parse_motion_path(text: str | None) -> list[tuple[float, float]] | None:
    """'x, y; x, y; …' (fractions of the frame, 0–1) → the points; None for an empty text."""
    if not (text or "").strip():
        return None
    points = []
    for part in str(text).split(";"):
        if not part.strip():
            continue
        try:
            x, y = (float(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"motion_path takes 'x, y' pairs separated by ';', got {part.strip()!r}") from None
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise ValueError(f"motion_path points are fractions of the frame (0 to 1), got {part.strip()!r}")
        points.append((x, y))
    if len(points) < 2:
        raise ValueError("motion_path needs at least two points: where the object starts and where it goes")
    return points


def drawn_motion(points, frames: int, side: int) -> np.ndarray | None:
    """A drawn trajectory (points in fractions of the frame) → motion vectors for the model's frames, or None."""
    return None if points is None or len(points) == 0 else path_motion(points, frames, side)


def model_depth_frames(depth: np.ndarray | None, frames: int, side: int) -> np.ndarray | None:
    """A depth-model sequence (T, H, W) in [0, 1] → the `frames` used, centre-cropped square at `side` px."""
    if depth is None:
        return None
    return np.stack([square_image((np.asarray(d) * 255).astype(np.uint8)[..., None].repeat(3, -1), side)[..., 0]
                     for d in sample_frames(np.asarray(depth), frames)]) / 255.0


def generate(pipe, unet, composer, reference: np.ndarray | None, params: VideoComposerParams,
             style: torch.Tensor | None = None, depth: np.ndarray | None = None, hole: np.ndarray | None = None,
             structure_level: int = 0, temporal_guidance: float = 1.0, cross_frame_attention: bool = False,
             on_step=None, sketch: np.ndarray | None = None, motion_path=None) -> ComposedVideo:
    """Conditions from `reference` (F, H, W, 3) uint8 + text (+ `style`: a CLIP image embedding) → video.

    `pipe` supplies text encoder, VAE and scheduler; `unet` is the widened motion UNet and
    `composer` its encoders (Models.videocomposer). `depth`: a depth-model sequence for the reference
    frames (else the offline stand-in); `hole`: the inpainting mask (H, W) bool, True = fill in (else a centred
    box); `sketch`: a drawn single sketch (H, W) uint8 (else frame 0's). Both are drawn over the reference's first
    frame and cropped as it is. `motion_path`: points (x, y) in fractions of the frame, a drawn trajectory whose
    motion vectors replace the reference's (core.video.path_motion). Gen-1 uses `structure_level`,
    `temporal_guidance` and `cross_frame_attention` (every frame also reads the first frame's keys
    and values)."""
    # 1. check inputs
    params.check()
    frames, steps, guidance = int(params.frames), int(params.steps), float(params.guidance_scale)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if params.conditions and reference is None:
        raise ValueError("these conditions are extracted from a reference video: give one")
    reference = reference_frames(reference, frames, side) if reference is not None else None
    depth = model_depth_frames(depth, frames, side)
    with torch.no_grad():
        # 2. extract and encode the conditions once
        sequences = condition_sequences(reference, params.conditions, depth=depth, hole=drawn_on_frames(hole, side),
                                        structure_level=structure_level, sketch=drawn_on_frames(sketch, side),
                                        motion=drawn_motion(motion_path, frames, side)) if params.conditions else {}
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
            result = denoise(TextGuided(model, cond, uncond if guidance > 1 else None, guidance), scheduler, latents,
                             steps, on_step=on_step)
        video = decode_video(pipe, result.latents)
    return ComposedVideo(video, condition_views(reference, sequences) if sequences else {})


# the conditions each kind of public control model reads on SD1.5 (config.VIDEO_CONTROLNETS, VIDEO_SPARSE_CONTROLNETS)
FRAME_CONTROLLED = ("depth", "sketch", "mask")  # a ControlNet per frame
KEY_FRAME_CONTROLLED = ("single_image", "single_sketch")  # SparseCtrl on frame 0


def generate_with_controls(pipe, motion_unet, control_models: dict, reference: np.ndarray | None,
                           params: VideoComposerParams, depth: np.ndarray | None = None, image_prompts=(),
                           structure_level: int = 0, temporal_guidance: float = 1.0,
                           on_step=None, hole: np.ndarray | None = None, sketch: np.ndarray | None = None,
                           motion_path=None) -> ComposedVideo:
    """The same conditions as `generate`, read by public models (SD1.5): depth and sketch sequences through their
    ControlNets frame by frame, the mask sequence through the inpaint ControlNet with the reference kept outside
    the hole, a single image or sketch through SparseCtrl on frame 0, motion vectors as the initial noise carried
    along them (core.video_control.warped_noise: no public model reads motion), the style / content image as an
    image prompt. `control_models`: condition kind → its loaded model (Models.video_controls); `hole`, `sketch`,
    `motion_path` as in `generate`."""
    params.check()
    frames = int(params.frames)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if params.conditions and reference is None:
        raise ValueError("these conditions are extracted from a reference video: give one")
    single = [c for c in params.conditions if c in KEY_FRAME_CONTROLLED]
    if len(single) > 1:
        raise ValueError(f"on this base model one SparseCtrl model reads the key frame: choose one of {', '.join(single)}")
    reference = reference_frames(reference, frames, side) if reference is not None else None
    sequences = condition_sequences(reference, params.conditions, depth=model_depth_frames(depth, frames, side),
                                    hole=drawn_on_frames(hole, side), structure_level=structure_level,
                                    sketch=drawn_on_frames(sketch, side), motion=drawn_motion(motion_path, frames, side)
                                    ) if params.conditions else {}
    views = condition_views(reference, sequences) if sequences else {}
    controls, sparse, inpaint, latents = [], None, None, None
    scale = D.control_scale
    for kind in params.conditions:
        model = control_models.get(kind)
        if kind != "motion" and model is None:
            raise ValueError(f"no control model for the {kind!r} condition was given")
        if kind == "mask":
            keep = sequences[kind][..., 3]  # (F, H, W), 1 = keep
            pixels = frame_control(model, reference).frames
            pixels[torch.from_numpy(keep < 0.5)[:, None].expand_as(pixels)] = -1.0  # the inpaint ControlNet's hole
            controls.append(FrameControl(model, pixels, scale))
            latent_side = side // pipe.vae_scale_factor
            inpaint = (reference, np.stack([cv2.resize(k, (latent_side, latent_side), interpolation=cv2.INTER_NEAREST)
                                            for k in keep]))
        elif kind in FRAME_CONTROLLED:
            controls.append(frame_control(model, views[kind], scale))
        elif kind in KEY_FRAME_CONTROLLED:
            sparse = sparse_control(pipe, model, views[kind][:1], [0], frames, scale)
        elif kind == "motion":
            generator = torch.Generator().manual_seed(int(params.seed))
            first = prepare_latents(pipe, 1, side, side, generator)
            latents = warped_noise(first, sequences[kind] * D.motion_scale)
    video = generate_controlled(
        pipe, motion_unet, ControlledVideoParams(params.prompt, params.negative_prompt, frames, int(params.steps),
                                                 float(params.guidance_scale), int(params.seed)),
        controls, sparse, image_prompts, temporal_guidance, latents, inpaint, on_step)
    return ComposedVideo(video, views)
