"""VideoComposer's condition path (Wang et al. 2023) on the engine's motion UNet; Gen-1's temporal guidance.

- `STCEncoder`: one per condition kind — a per-frame stack of convs with SiLU and pooling down to the
  latent grid, then a temporal transformer over the frames at every latent position.
- `VideoComposer`: the encoders (their outputs summed over the conditions given) and the style
  projection (a CLIP image embedding → one extra context token after the text).
- `ComposedUNet`: a motion UNet whose input has extra channels (`widen_input`) fed with those
  features; with `temporal_guidance` ≠ 1 it also runs the same UNet frame by frame (no temporal
  mixing) and guides away from that prediction (Gen-1's temporal-consistency knob).

This is our open re-implementation: the official weights (ModelScope `damo/VideoComposer`) are a
non-commercial pickle and are not loaded.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_motion_model import UNetMotionOutput
from torch import nn

from . import config
from .attention import InnerUNet, active_state
from .conditions import coarsen, extract
from .video import frame_motion

# channels each condition kind brings per frame (pixels in [−1, 1] or flow in pixels / MOTION_SCALE)
CONDITION_CHANNELS = {
    "motion": 2,  # motion vectors (dx, dy)
    "depth": 1,  # depth sequence (near = 1)
    "sketch": 1,  # sketch sequence
    "mask": 4,  # masked frames (RGB) + the mask (1 = keep), the seed's 4-channel layout
    "single_image": 3,  # one image repeated over the frames
    "single_sketch": 1,  # one sketch repeated over the frames
}


def condition_sequences(frames: np.ndarray, kinds, depth: np.ndarray | None = None, hole: np.ndarray | None = None,
                        structure_level: int = 0, sketch: np.ndarray | None = None,
                        motion: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Reference frames (F, H, W, 3) uint8 → each asked condition as float (F, H, W, C) in the encoders'
    ranges: pixels and maps in [−1, 1], motion vectors in px / `motion_scale`.

    `depth`: a depth sequence (F, H, W) in [0, 1] from a depth model; else the offline stand-in.
    `hole`: (H, W) bool, True where video inpainting fills in; else a centred box.
    `sketch`: a drawn sketch (H, W) uint8, white lines on black, for `single_sketch`; else frame 0's extracted.
    `motion`: drawn motion vectors (F, H, W, 2) in px (core.video.path_motion); else the reference's.
    `structure_level` coarsens depth and sketches (Gen-1's structure fidelity)."""
    frames = np.asarray(frames)
    f, h, w = frames.shape[:3]
    unit = lambda maps: maps.astype(np.float32) / 127.5 - 1.0  # noqa: E731
    coarse = lambda maps: np.stack([coarsen(m, structure_level) for m in maps])  # noqa: E731
    out = {}
    for kind in kinds:
        if kind == "motion":
            out[kind] = (frame_motion(frames) if motion is None else motion) / config.VideoComposerDefaults.motion_scale
        elif kind == "depth":
            maps = extract("pseudo_depth", frames)[..., :1] if depth is None else \
                (np.clip(depth, 0, 1)[..., None] * 255).astype(np.uint8)
            out[kind] = unit(coarse(maps).reshape(f, h, w, 1))
        elif kind == "sketch":
            out[kind] = unit(coarse(extract("sketch", frames)[..., :1]).reshape(f, h, w, 1))
        elif kind == "single_sketch":
            drawn = extract("sketch", frames[0])[..., 0] if sketch is None else np.asarray(sketch)
            out[kind] = np.repeat(unit(drawn[None, ..., None]), f, axis=0)
        elif kind == "single_image":
            out[kind] = np.repeat(unit(frames[:1]), f, axis=0)
        elif kind == "mask":
            keep = ~centre_hole(h, w) if hole is None else ~np.asarray(hole, bool)
            masked = unit(frames) * keep[None, ..., None]
            out[kind] = np.concatenate([masked, np.broadcast_to(keep[None, ..., None], (f, h, w, 1))], axis=-1)
        else:
            raise ValueError(f"unknown condition {kind!r}; choose from {', '.join(CONDITION_CHANNELS)}")
        out[kind] = out[kind].astype(np.float32)
    return out


def centre_hole(h: int, w: int, fraction: float = config.VideoComposerDefaults.mask_hole) -> np.ndarray:
    """(H, W) bool: a centred box `fraction` of each side (video inpainting's default hole)."""
    hole = np.zeros((h, w), bool)
    top, left = int(h * (1 - fraction) / 2), int(w * (1 - fraction) / 2)
    hole[top:h - top, left:w - left] = True
    return hole


def to_tensors(sequences: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Condition sequences (F, H, W, C), or batches (B, F, H, W, C), → encoder inputs (B, F, C, H, W)."""
    out = {}
    for kind, sequence in sequences.items():
        tensor = torch.from_numpy(np.ascontiguousarray(sequence))
        tensor = tensor[None] if tensor.ndim == 4 else tensor
        out[kind] = tensor.permute(0, 1, 4, 2, 3).contiguous()
    return out


def frame_positions(frames: int, channels: int, device, dtype) -> torch.Tensor:
    """Sinusoidal frame positions (F, channels)."""
    position = torch.arange(frames, device=device, dtype=torch.float32)[:, None]
    scale = torch.exp(torch.arange(0, channels, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(frames, channels, device=device)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale)
    return table.to(dtype)


class STCEncoder(nn.Module):
    """Spatio-temporal condition encoder: (B, F, C, H, W) → (B, out, F, H / 2^downsample, W / 2^downsample)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, downsample_steps: int, heads: int = 4):
        super().__init__()
        # group norms keep the activations at unit scale: with PyTorch's default init alone, four
        # convs shrink the map ~20× and the temporal layer's biases then swamp its spatial detail
        layers = [nn.Conv2d(in_channels, hidden // 2, 3, padding=1), nn.GroupNorm(8, hidden // 2), nn.SiLU()]
        width = hidden // 2
        for _ in range(downsample_steps):
            layers += [nn.Conv2d(width, hidden, 3, padding=1), nn.GroupNorm(8, hidden), nn.SiLU(), nn.AvgPool2d(2)]
            width = hidden
        layers += [nn.Conv2d(width, hidden, 3, padding=1)]
        self.spatial = nn.Sequential(*layers)
        self.temporal = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True,
                                                   norm_first=True)
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        b, f = condition.shape[:2]
        x = self.spatial(condition.flatten(0, 1))  # (B·F, hidden, h, w)
        _, c, h, w = x.shape
        tokens = x.view(b, f, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, f, c)
        tokens = self.temporal(tokens + frame_positions(f, c, x.device, x.dtype))
        x = tokens.view(b, h, w, f, c).permute(0, 3, 4, 1, 2).reshape(b * f, c, h, w)
        return self.out(x).view(b, f, -1, h, w).transpose(1, 2)


class VideoComposer(ModelMixin, ConfigMixin):
    """The STC-encoders (one per condition kind) and the style-image projection."""

    @register_to_config
    def __init__(self, conditions: tuple[str, ...] = tuple(CONDITION_CHANNELS), feature_channels: int = 4,
                 hidden: int = 64, downsample_steps: int = 2, image_embed_dim: int = 128,
                 cross_attention_dim: int = 128):
        super().__init__()
        self.encoders = nn.ModuleDict({name: STCEncoder(CONDITION_CHANNELS[name], hidden, feature_channels,
                                                        downsample_steps) for name in conditions})
        self.style = nn.Sequential(nn.Linear(image_embed_dim, cross_attention_dim), nn.LayerNorm(cross_attention_dim))

    def features(self, conditions: dict[str, torch.Tensor], latent_shape: tuple[int, ...]) -> torch.Tensor:
        """Summed encoder outputs (B, feature_channels, F, h, w); zeros when no condition is given."""
        b, _, f, h, w = latent_shape
        total = torch.zeros(b, self.config.feature_channels, f, h, w, device=self.device, dtype=self.dtype)
        for name, condition in conditions.items():
            if name not in self.encoders:
                raise ValueError(f"this VideoComposer model has no encoder for {name!r}; it has "
                                 f"{', '.join(self.encoders)}")
            total = total + self.encoders[name](condition.to(self.device, self.dtype))
        return total

    def style_token(self, image_embeds: torch.Tensor | None, batch: int) -> torch.Tensor:
        """One context token per row: the projected style embedding, or zeros (no style: its CFG branch)."""
        if image_embeds is None:
            return torch.zeros(batch, 1, self.config.cross_attention_dim, device=self.device, dtype=self.dtype)
        return self.style(image_embeds.to(self.device, self.dtype))[:, None]


@torch.no_grad()
def widen_input(unet, extra_channels: int, latent_like: float = 0.0) -> None:
    """Give `unet` `extra_channels` more input channels. Their weights are zero (it computes what it
    did), or — `latent_like` > 0, extra channels as many as the latent's — that times the latent
    channels' own: features shaped like a clean latent then read as extra signal the UNet already
    knows how to denoise towards (a warm start for training)."""
    old = unet.conv_in
    new = nn.Conv2d(old.in_channels + extra_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    new.weight.zero_()
    new.weight[:, :old.in_channels] = old.weight
    if latent_like:
        if extra_channels != old.in_channels:
            raise ValueError("a latent-like start needs as many extra channels as the latent has")
        new.weight[:, old.in_channels:] = latent_like * old.weight
    new.bias.copy_(old.bias)
    unet.conv_in = new.to(old.weight.device, old.weight.dtype)
    unet.register_to_config(in_channels=old.in_channels + extra_channels)


class ComposedUNet(InnerUNet, nn.Module):
    """A motion UNet called with the condition features appended to its input channels.

    `features` (1 or B, K, F, h, w) are computed once per video and repeated over the guidance branches.
    `temporal_guidance` w mixes ε = ε_frames + w·(ε_video − ε_frames), where ε_frames is the same UNet
    run on every frame alone (its temporal layers and any cross-frame attention see one frame): 1 is
    the video model alone, > 1 pushes away from frame-wise (flickering) predictions."""

    def __init__(self, unet, features: torch.Tensor, temporal_guidance: float = 1.0):
        super().__init__()
        self.unet = unet
        self.features = features
        self.temporal_guidance = float(temporal_guidance)

    def forward(self, sample, timestep, encoder_hidden_states, return_dict: bool = True, **kwargs):
        features = self.features.to(sample.device, sample.dtype)
        features = features.expand(sample.shape[0], *features.shape[1:])
        x = torch.cat([sample, features], dim=1)
        video = self.unet(x, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False, **kwargs)[0]
        if self.temporal_guidance != 1.0:
            b, c, f, h, w = x.shape
            single = x.transpose(1, 2).reshape(b * f, c, 1, h, w)
            state = active_state()  # frame-wise means no cross-frame attention either
            with state.frame_by_frame() if state is not None else contextlib.nullcontext():
                frames = self.unet(single, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False,
                                   **kwargs)[0]
            frames = frames.view(b, f, -1, h, w).transpose(1, 2)
            video = frames + self.temporal_guidance * (video - frames)
        return UNetMotionOutput(sample=video) if return_dict else (video,)
