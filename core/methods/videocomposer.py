"""VideoComposer (Wang et al. 2023, docs/METHODS.md §8): a video composed from text, a style image and
conditions extracted from a reference video — motion vectors, depth, sketch, mask sequences, a
single image or sketch repeated over the frames.

Conditions are extracted once (core.videocomposer.condition_sequences). On the embedded model they are encoded once
by their STC-encoders and summed (features fed to the motion UNet's extra input channels at every step);
classifier-free guidance is over text + style (the style token zeroed in the unconditional branch), in the engine's
one loop: our open re-implementation, not the official weights (see core.videocomposer). On SD1.5 public models
stand in for the encoders (`generate_with_controls`: AnimateDiff, ControlNet v1.1 per frame, SparseCtrl on frame 0,
the style image through IP-Adapter, motion vectors as warped initial noise).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import config
from ..sampling import square_image, to_model_pixels
from ..video import sample_frames
from ..video_composition import (ComposedVideo, VideoComposerParams, generate,  # noqa: F401 (the method's API)
                                 generate_with_controls)

D = config.VideoComposerDefaults


def style_prompt(models, image: np.ndarray | None):
    """On public weights: a style / content image → its image prompt (IP-Adapter), or None."""
    return None if image is None else models.image_prompt(image, D.image_prompt_scale)


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
    learnt with (on public weights: config.CONDITION_MODELS' depth model), or None (the offline stand-in is then
    extracted with the other conditions)."""
    from ..conditions import model_depth
    if models.uses_public_video_controls():
        name = config.CONDITION_MODELS["depth"]  # what the depth ControlNet reads: a depth model's map
    else:
        name = config.VIDEOCOMPOSER_DEPTH_MODELS.get(config.VIDEOCOMPOSER_MODELS.get(models.base_model, ""))
    if "depth" not in conditions or name is None:
        return None
    return model_depth(sample_frames(np.asarray(video), frames), models.depth_estimator(name))
