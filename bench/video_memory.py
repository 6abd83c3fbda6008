"""Memory per frame of one guided denoising step of each video tab, on an SD1.5-shaped random-weight
UNet, side by side in one run, against the same frames run as independent images.

    python bench/video_memory.py [--device cpu|cuda] [--size 256]

Each variant runs in a fresh process at 2 and at 4 frames (batch = 2 × frames: classifier-free
guidance); memory per frame = (peak at 4 − peak at 2) / 2, so the weights cancel out.
- images: the plain UNet over the frames, no frame attention (the baseline);
- t2v-zero: cross-frame attention (every frame reads frame 1's keys/values);
- fatezero-inversion: current + middle frame attention while storing maps (≤ 32² queries, fp16, CPU);
- animatediff: the UNet inflated with SD1.5-sized motion modules (core.motion);
- tune-a-video: the same inflation plus sparse-causal attention (first + previous frame).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import cheap_random_init, isolated, peak_mib, ratio, reset_peak  # noqa: E402

VARIANTS = ("images", "t2v-zero", "fatezero-inversion", "animatediff", "tune-a-video")


def run_variant(variant: str, frames: int, size: int, device: str) -> dict:
    import torch

    from bench.p2p_memory import sd15_unet
    from core import config
    from core.attention import FrameMode, install
    from core.control.fusion import InversionMapStore
    from core.motion import inflate, new_motion_adapter

    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet = sd15_unet().to(device, dtype).eval()
    latent = size // 8
    context = torch.randn(2 * frames, 77, 768, device=device, dtype=dtype)
    controllers, mode = [], FrameMode.NONE
    if variant in ("animatediff", "tune-a-video"):
        with cheap_random_init():
            unet = inflate(unet, new_motion_adapter(unet).to(device, dtype))
        x = torch.randn(2, 4, frames, latent, latent, device=device, dtype=dtype)
        mode = FrameMode.SPARSE_CAUSAL if variant == "tune-a-video" else FrameMode.NONE
    else:
        x = torch.randn(2 * frames, 4, latent, latent, device=device, dtype=dtype)
        mode = {"t2v-zero": FrameMode.FIRST, "fatezero-inversion": FrameMode.MIDDLE}.get(variant, FrameMode.NONE)
        if variant == "fatezero-inversion":
            controllers = [InversionMapStore(config.MAX_SELF_ATTENTION_QUERIES)]
    state = install(unet)
    reset_peak(device)  # the step's memory, not the model build's (from_unet2d copies the weights)
    started = time.perf_counter()
    with torch.no_grad(), state.use(controllers, frames=frames, frame_mode=mode):
        state.step_begin(0, 1)
        unet(x, 500, encoder_hidden_states=context)
    if device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - started, "peak_mib": peak_mib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.frames, args.size, device)))
        return
    print(f"SD1.5-shaped UNet, {args.size}×{args.size}, one guided step, device {device}")
    print(f"{'variant':20} {'MiB per frame':>14} {'s at 4 frames':>14} {'× images':>9}")
    per_frame = {}
    for variant in VARIANTS:
        runs = {f: isolated(__file__, "--variant", variant, "--frames", str(f), "--size", str(args.size),
                            "--device", device) for f in (2, 4)}
        if any("error" in r for r in runs.values()):
            print(f"{variant:20} error: {[r.get('error') for r in runs.values()]}")
            continue
        per_frame[variant] = (runs[4]["peak_mib"] - runs[2]["peak_mib"]) / 2
        base = per_frame.get("images")
        times = base and per_frame[variant] / base
        print(f"{variant:20} {per_frame[variant]:14.1f} {runs[4]['seconds']:14.2f} {times or float('nan'):9.2f}")
        if base and variant != "images":
            ratio("video", f"{variant} ÷ independent images, memory per frame", times, "memory")


if __name__ == "__main__":
    main()
