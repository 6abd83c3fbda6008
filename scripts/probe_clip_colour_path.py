"""Can a CLIP's directional loss lead a red object to blue? Gradient ascent on the object's colour alone.

    python scripts/probe_clip_colour_path.py [--clip assets/models/toy-clip] [--source red] [--target blue]

DiffusionCLIP moves an image along the text direction E_T("a blue circle") − E_T("a red circle") by
gradient steps through the generator. This probe removes the generator: the object's RGB colour is the
only parameter, climbed on the same cosine. It prints where the climb ends and the cosine of the image
direction to each palette colour, so a local optimum of the CLIP (not of the tuning) shows as a
stop short of the target colour with a lower cosine than the target's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.guidance import clip_image_features  # noqa: E402
from core.methods.diffusionclip import text_direction  # noqa: E402
from core.guidance import clip_inputs  # noqa: E402
from core.models import Models  # noqa: E402
from core.sampling import to_model_pixels  # noqa: E402
from core.shapes import dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=None, help="a CLIP folder or Hub id (default: the embedded toy-clip)")
    parser.add_argument("--source", default="red", choices=list(dataset.PALETTE))
    parser.add_argument("--target", default="blue", choices=list(dataset.PALETTE))
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = Models(config.EMBEDDED_BASE_MODEL, device="cpu", allow_local=True).clip(args.clip)
    model.requires_grad_(False)
    inputs = clip_inputs(model)
    scenes = dataset.scenes_matching(f"a {args.source} circle", np.random.default_rng(0), 4)
    original = to_model_pixels(np.stack([dataset.render(s) for s in scenes]))
    mask = torch.tensor(np.stack([dataset.object_mask(s.objects[0]) for s in scenes]))[:, None]
    with torch.no_grad():
        direction = text_direction(model, tokenizer, f"a {args.source} circle", f"a {args.target} circle")
        start = clip_image_features(model, inputs, original)

    def cosine(rgb: torch.Tensor) -> torch.Tensor:
        recoloured = original * (1 - mask) + mask * rgb[None, :, None, None]
        moved = clip_image_features(model, inputs, recoloured) - start
        return F.cosine_similarity(moved, direction[None], dim=-1).mean()

    with torch.no_grad():
        for name, rgb in dataset.PALETTE.items():
            if name != args.source:
                print(f"recoloured {name:7s}: cosine {cosine(torch.tensor(rgb) / 127.5 - 1).item():+.3f}")
    colour = (torch.tensor(dataset.PALETTE[args.source]) / 127.5 - 1).requires_grad_(True)
    optimizer = torch.optim.Adam([colour], lr=0.02)
    for _ in range(args.steps):
        loss = -cosine(colour)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            colour.clamp_(-1, 1)
    rgb = ((colour.detach() + 1) * 127.5).round().int().tolist()
    print(f"gradient ascent from {args.source}: ends at RGB {rgb}, cosine {-loss.item():+.3f}")


if __name__ == "__main__":
    main()
