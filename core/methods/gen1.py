"""Structure- and content-guided video editing in the manner of Gen-1 (Esser et al. 2023, docs/METHODS.md
§12): an open re-implementation — Gen-1 has no public weights.

Structure is the source video's depth sequence (a depth model on a GPU; offline, a stand-in read
from the foreground), coarsened `structure_level` times (Gen-1 trained with depth blurred over a
number of steps to control how closely the result follows the source's shapes); content is the
text and, optionally, an image (its CLIP image embedding as one context token). Frames read the
first frame's keys and values (cross-frame attention) for consistency, and `temporal_guidance`
w mixes the video prediction with the frame-wise one: ε = ε_frames + w·(ε_video − ε_frames).
On the embedded model it runs on VideoComposer's conditioned motion UNet (its depth encoder). On SD1.5 public
models stand in (`edit_with_controls`): AnimateDiff's motion UNet, the depth ControlNet v1.1 per frame on a depth
model's maps, the content image through IP-Adapter; the frame-wise prediction is the same motion UNet with its
motion modules bypassed (core.motion.motion_bypassed), which is the image model frame by frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import config
from ..validate import check_prompt, check_range, check_sampling
from ..video_composition import ComposedVideo, VideoComposerParams, generate, generate_with_controls

D = config.Gen1Defaults


@dataclass
class Gen1Params:
    prompt: str = D.prompt
    structure_level: int = D.structure_level
    temporal_guidance: float = D.temporal_guidance
    frames: int = D.frames
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed

    def check(self) -> None:
        check_prompt(self.prompt)
        check_range("structure_level", self.structure_level, 0, D.max_structure_level)
        check_range("temporal_guidance", self.temporal_guidance, 0.0, D.max_temporal_guidance)
        check_range("frames", self.frames, 2, D.max_frames)
        check_sampling(self.steps, self.guidance_scale, self.seed)


def composed(params: Gen1Params) -> VideoComposerParams:
    """Gen-1's call as a composition: the depth sequence is its one condition."""
    params.check()
    return VideoComposerParams(params.prompt, ["depth"], frames=params.frames, steps=params.steps,
                               guidance_scale=params.guidance_scale, seed=params.seed)


def edit(pipe, unet, composer, video: np.ndarray, params: Gen1Params, content: torch.Tensor | None = None,
         depth: np.ndarray | None = None, on_step=None) -> ComposedVideo:
    """Source frames (T, H, W, 3) uint8 → the edited video and its (coarsened) depth sequence.
    `content`: a CLIP image embedding of the content image; `depth`: a depth-model sequence."""
    return generate(pipe, unet, composer, video, composed(params), style=content, depth=depth,
                    structure_level=int(params.structure_level), temporal_guidance=params.temporal_guidance,
                    cross_frame_attention=True, on_step=on_step)


def edit_with_controls(pipe, motion_unet, depth_controlnet, video: np.ndarray, params: Gen1Params, content=None,
                       depth: np.ndarray | None = None, on_step=None) -> ComposedVideo:
    """The SD1.5 path: `motion_unet` (AnimateDiff), `depth_controlnet` (ControlNet v1.1 depth) per frame on `depth`
    (a depth model's sequence), `content`: an image prompt (core.ip_adapter.ImagePrompt) or None."""
    return generate_with_controls(pipe, motion_unet, {"depth": depth_controlnet}, video, composed(params), depth=depth,
                                  image_prompts=[content], structure_level=int(params.structure_level),
                                  temporal_guidance=params.temporal_guidance, on_step=on_step)
