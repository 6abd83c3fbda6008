"""Does a motion UNet know which way time runs, and does it read the direction word? The ε-loss of
right-moving clips, against the same clips and noise played backwards (a left-moving clip, still
captioned "right") and against the same clips captioned "moving left".

    python scripts/probe_frame_order.py [--adapter assets/models/toy-motion] [--clips 8]

A model that reads the frame order (its temporal layers' positional embeddings) pays more for the
reversed clip at the noise levels where the motion is not yet visible in x_t; one that does not is
equivariant to time reversal, and then "moving right" and "moving left" are the same clip to it: the
noise, not the prompt, picks the direction. Likewise a model that reads "right" pays more when the
caption says "left"; a ratio of 1 there means the direction word does not reach the motion.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.sampling import frame_context  # noqa: E402
from core.models import Models  # noqa: E402
from core.sampling import encode_prompts  # noqa: E402
from core.shapes import dataset  # noqa: E402
from core.training.epsilon import video_latents  # noqa: E402

TIMESTEPS = (200, 400, 600, 800, 950)


@torch.no_grad()
def probe(models: Models, adapter: str | None, clips: int, seed: int = 7) -> dict[int, tuple[float, float, float]]:
    """timestep → ε-loss of (the clips, the clips and their noise reversed in time, the clips captioned
    "moving left")."""
    pipe, unet = models.pipeline(), models.motion_unet(adapter=adapter)
    rng = np.random.default_rng(seed)
    videos, captions = zip(*(dataset.moving_clip(rng, direction="right") for _ in range(clips)))
    x0 = video_latents(pipe, np.stack(videos))  # (B, C, F, h, w)
    context = frame_context(encode_prompts(pipe, list(captions)), x0.shape[2])
    swapped = [c.replace("moving right", "moving left") for c in captions]
    swapped_context = frame_context(encode_prompts(pipe, swapped), x0.shape[2])
    generator = torch.Generator().manual_seed(seed)
    losses = {}
    for t in TIMESTEPS:
        noise = torch.randn(x0.shape, generator=generator)
        timesteps = torch.full((x0.shape[0],), t)
        variants = []
        for latents, eps, text in ((x0, noise, context), (x0.flip(2), noise.flip(2), context), (x0, noise, swapped_context)):
            pred = unet(pipe.scheduler.add_noise(latents, eps, timesteps), timesteps, encoder_hidden_states=text).sample
            variants.append(float((pred - eps).pow(2).mean()))
        losses[t] = tuple(variants)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", default=None, help="a MotionAdapter folder (default: the embedded toy-motion)")
    parser.add_argument("--clips", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = Models(config.EMBEDDED_BASE_MODEL, device="cpu", allow_local=True)
    for t, (forward, backward, left) in probe(models, args.adapter, args.clips).items():
        print(f"t={t:4d}  ε-loss forward {forward:.5f}  reversed {backward:.5f}  ratio {backward / forward:.3f}"
              f"  captioned left {left:.5f}  ratio {left / forward:.3f}")


if __name__ == "__main__":
    main()
