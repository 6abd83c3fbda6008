"""FateZero's recolouring on clips and prompt phrasings other than the tab's example: toy-sd with its recommended
settings (studio.json) and with the official empty unconditional prompt, on moving shapes drawn from the grammar
(seeded), each recoloured to another colour, phrased two ways (the clip's caption with the colour swapped, and a
shorter "a {colour} {shape}" pair). Per case: frames whose object reads as the target colour, the mask IoU with the
source, and the reconstruction PSNR.

    python -m bench.fatezero_recolour [--cases 6] [--frames 8] [--steps 25]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from core import config
from core.methods import fatezero
from core.methods.null_text import psnr
from core.models import Models
from core.shapes import reader
from core.shapes.dataset import PALETTE, moving_clip


def cases(count: int, frames: int):
    rng = np.random.default_rng(2026)
    made = []
    while len(made) < count:
        clip, caption = moving_clip(rng, frames=frames)
        words = caption.split()
        colour, shape = words[1], words[2]
        target = str(rng.choice([c for c in PALETTE if c != colour]))
        if len(made) % 2 == 0:  # the caption itself with the colour swapped
            pair = caption, caption.replace(f"a {colour} ", f"a {target} ", 1)
        else:  # a shorter phrasing the tab's example does not use
            pair = f"a {colour} {shape}", f"a {target} {shape}"
        made.append((clip, pair, target))
    return made


def measure(pipe, clip, pair, target, steps: int, unconditional: str) -> dict:
    params = fatezero.FateZeroParams(pair[0], pair[1], frames=len(clip), steps=steps, unconditional=unconditional)
    result = fatezero.run(pipe, clip, params)
    source = [reader.read_single(f) for f in result.source]
    edited = [reader.read_single(f) for f in result.edited]
    right = sum(b is not None and b.color == target for b in edited)
    ious = [reader.mask_iou(a.mask, b.mask) for a, b in zip(source, edited) if a is not None and b is not None]
    colours = [b.color if b is not None else "-" for b in edited]
    return {"right": right, "iou": min(ious) if ious else 0.0, "colours": colours,
            "psnr": float(np.mean([psnr(a, b) for a, b in zip(result.reconstruction, result.source)]))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args(argv)
    models = Models(config.EMBEDDED_BASE_MODEL, device="cpu")
    pipe = models.pipeline()
    recommended = models.recommended("fatezero").defaults(config.FateZeroDefaults).unconditional
    print("| case | source → target prompt | unconditional | frames in the target colour | min IoU | recon dB | s |")
    print("|---|---|---|---|---|---|---|")
    totals = {}
    for index, (clip, pair, target) in enumerate(cases(args.cases, args.frames)):
        for unconditional in dict.fromkeys([recommended, "empty"]):
            started = time.monotonic()
            m = measure(pipe, clip, pair, target, args.steps, unconditional)
            totals.setdefault(unconditional, []).append(m["right"])
            print(f"| {index} | {pair[0]} → {pair[1]} | {unconditional} | {m['right']}/{len(clip)} ({' '.join(m['colours'])}) "
                  f"| {m['iou']:.2f} | {m['psnr']:.1f} | {time.monotonic() - started:.0f} |", flush=True)
    for unconditional, rights in totals.items():
        print(f"{unconditional}: {sum(rights)}/{len(rights) * args.frames} frames recoloured; "
              f"{sum(r == args.frames for r in rights)}/{len(rights)} cases with every frame")


if __name__ == "__main__":
    main()
