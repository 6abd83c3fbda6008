"""One-shot fine-tuning of an inflated (motion) UNet on one clip, shared by Tune-A-Video and Dreamix.

Each step can take two losses: the clip as a video (every trainable parameter learns from it) and
the clip's frames as independent stills (Dreamix's mixed fine-tuning). On stills the temporal
attention sees one frame at a time (masked to itself) and its parameters get no gradient from the
still loss, so temporal layers are never tuned on images.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .. import calls
from ..attention import FrameMode, install
from ..sampling import encode_prompts
from .epsilon import epsilon_loss, video_latents
from .precision import MixedPrecision

# what one-shot video tuning trains: spatial attention's query projections (self and cross) and the
# temporal layers (Tune-A-Video's choice; Dreamix tunes the same set here)
TRAINABLE = re.compile(r"(attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_q\.)|(\.motion_modules\.)")
TEMPORAL = re.compile(r"\.motion_modules\.")


@dataclass
class StepReport:
    step: int
    total: int
    loss: float  # the weighted sum of this step's losses


def select_trainable(unet) -> dict[str, torch.nn.Parameter]:
    """Freeze `unet` except TRAINABLE; returns those parameters by name."""
    unet.requires_grad_(False)
    trainable = {n: p for n, p in unet.named_parameters() if TRAINABLE.search(n)}
    for parameter in trainable.values():
        parameter.requires_grad_(True)
    return trainable


def tune_on_clip(pipe, unet, frames: np.ndarray, prompt: str, steps: int, lr: float, seed: int,
                 video_weight: float = 1.0, still_weight: float = 0.0,
                 frame_mode: FrameMode = FrameMode.NONE, gradient_checkpointing: bool = True):
    """A generator: one StepReport per optimisation step (stop iterating to cancel); returns the
    trained parameters' names. frames: uint8 (F, H, W, 3)."""
    trainable = select_trainable(unet)
    spatial = [p for n, p in trainable.items() if not TEMPORAL.search(n)]
    precision = MixedPrecision(trainable.values())  # float32 masters of float16 layers
    optimizer = torch.optim.AdamW(precision.masters, lr=lr, weight_decay=1e-2)
    count = len(frames)
    clip = video_latents(pipe, frames[None])  # (1, C, F, h, w)
    stills = clip[0].transpose(0, 1).unsqueeze(2)  # (F, C, 1, h, w): each frame a one-frame video
    with torch.no_grad():
        text = encode_prompts(pipe, [prompt])
    generator = torch.Generator().manual_seed(int(seed))
    state = install(unet)
    unet.train()
    # activations recomputed in the backward pass (the official Tune-A-Video configs' gradient_checkpointing):
    # the same gradients for a fraction of the memory, which is what a clip of frames needs on a GPU
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    try:
        for step in range(int(steps)):
            calls.step()
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            if video_weight > 0:
                with state.use(frames=count, frame_mode=frame_mode):  # the backward recomputes in this mode too
                    loss = epsilon_loss(pipe, clip, text.repeat(count, 1, 1), generator, unet=unet) * video_weight
                    precision.scaled(loss).backward()
                total += float(loss.detach())
            if still_weight > 0:
                loss = epsilon_loss(pipe, stills, text.repeat(count, 1, 1), generator, unet=unet) * still_weight
                for parameter, grad in zip(spatial, torch.autograd.grad(precision.scaled(loss), spatial,
                                                                        allow_unused=True)):
                    if grad is not None:
                        parameter.grad = grad if parameter.grad is None else parameter.grad + grad
                total += float(loss.detach())
            precision.step(optimizer, max_grad_norm=1.0)
            yield StepReport(step + 1, int(steps), total)
    finally:
        unet.disable_gradient_checkpointing()
        unet.eval()
        unet.requires_grad_(False)
    return list(trainable)


def run_to_end(steps, on_step=None):
    """Drive a tuning generator to its end; `on_step(StepReport)` after every step; its return value."""
    while True:
        try:
            report = next(steps)
        except StopIteration as done:
            return done.value
        if on_step is not None:
            on_step(report)
