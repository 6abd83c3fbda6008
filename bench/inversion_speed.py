"""Seconds of each inversion method on one image, side by side in one run.

    python bench/inversion_speed.py [--model toy-sd] [--steps 50]

Prints seconds, UNet evaluations and reconstruction PSNR for DDIM, negative-prompt and
null-text inversion, and the ratios to negative-prompt inversion.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.report import ratio  # noqa: E402
from core.methods import null_text, p2p  # noqa: E402
from core.models import Models  # noqa: E402
from core.sampling import square_image  # noqa: E402
from core.shapes.dataset import Scene, ShapeObject, render  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-sd")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = Models(args.model, allow_local=True).pipeline()
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    image = square_image(render(Scene((ShapeObject("red", "circle", 30, 34, 16),), "white")), side)
    caption = "a red circle on a white background"
    calls = []
    pipe.unet.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    rows = {}
    for kind in ("ddim", "negative-prompt", "null-text"):
        params = null_text.NullTextParams(p2p.P2PParams(caption, caption, steps=args.steps), inversion=kind)
        calls.clear()
        started = time.perf_counter()
        null_text.invert(pipe, image, caption, params)
        seconds = time.perf_counter() - started
        evaluations = len(calls)
        result = null_text.run(pipe, image, params)
        rows[kind] = (seconds, evaluations, result.psnr)
    base = rows["negative-prompt"]
    print(f"model {args.model}, {args.steps} steps, {side}×{side}, device {pipe.unet.device}")
    print(f"{'inversion':16} {'seconds':>8} {'UNet calls':>10} {'PSNR dB':>8} {'× NPI time':>10}")
    for kind, (seconds, evaluations, value) in rows.items():
        print(f"{kind:16} {seconds:8.2f} {evaluations:10d} {value:8.2f} {seconds / base[0]:10.2f}")
    nti = rows["null-text"]
    ratio("inversion", "negative-prompt ÷ null-text, UNet calls", base[1] / nti[1], "calls")
    ratio("inversion", "negative-prompt ÷ null-text, time", base[0] / nti[0], "time")


if __name__ == "__main__":
    main()
