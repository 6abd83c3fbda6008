"""FateZero's stored attention maps: ours (≤32×32 queries, fp16, CPU) vs every map in fp32 (what
the official code keeps), per frame and per inversion step, on an SD1.5-shaped random UNet.

    python bench/fatezero_memory.py [--frames 2] [--size 512] [--steps 1]

Both figures come from the same inversion run: our store keeps its maps; a counting controller
adds up the bytes every map would take in fp32 without keeping them. Also prints the process's
peak RSS (model + activations + stored maps).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.p2p_memory import sd15_unet  # noqa: E402
from bench.report import ratio  # noqa: E402
from core import config  # noqa: E402
from core.attention import AttentionController, FrameMode, install  # noqa: E402
from core.control.fusion import InversionMapStore  # noqa: E402


class CountAllFp32(AttentionController):
    """Counts the bytes of every attention map in fp32, keeping none."""

    def __init__(self):
        self.bytes = 0

    def wants(self, ctx):
        return True

    def attention(self, probs, ctx):
        self.bytes += probs.numel() * 4
        return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet = sd15_unet().to(device, dtype).eval()
    state = install(unet)
    latent = args.size // 8
    x = torch.randn(args.frames, 4, latent, latent, device=device, dtype=dtype)
    context = torch.randn(args.frames, 77, 768, device=device, dtype=dtype)
    with torch.no_grad():  # the plain step: the same frames as independent images, nothing stored
        started = time.perf_counter()
        for step in range(args.steps):
            unet(x, 500, encoder_hidden_states=context)
        plain_seconds = time.perf_counter() - started
    with torch.no_grad(), state.use([InversionMapStore(config.MAX_SELF_ATTENTION_QUERIES)], frames=args.frames,
                                    frame_mode=FrameMode.MIDDLE):
        started = time.perf_counter()
        for step in range(args.steps):
            state.step_begin(step, args.steps)
            unet(x, 500, encoder_hidden_states=context)
        fatezero_seconds = time.perf_counter() - started
    ours, everything = InversionMapStore(config.MAX_SELF_ATTENTION_QUERIES), CountAllFp32()
    started = time.perf_counter()
    with torch.no_grad(), state.use([ours, everything], frames=args.frames, frame_mode=FrameMode.MIDDLE):
        for step in range(args.steps):
            state.step_begin(step, args.steps)
            unet(x, 500, encoder_hidden_states=context)
    seconds = time.perf_counter() - started
    per = args.frames * args.steps * 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"SD1.5-shaped UNet, {args.size}×{args.size}, {args.frames} frames, {args.steps} step(s), {device}, "
          f"spatial-temporal (current + middle frame) attention; {seconds:.1f} s")
    print(f"{'store':32} {'MiB per frame per step':>24}")
    print(f"{'ours (≤32² queries, fp16, CPU)':32} {ours.nbytes() / per:24.2f}")
    print(f"{'every map, fp32 (official)':32} {everything.bytes / per:24.2f}")
    print(f"ratio ours / fp32-everything: {ours.nbytes() / everything.bytes:.4f}")
    print(f"step time: plain {plain_seconds / args.steps:.2f} s, FateZero inversion step (middle-frame attention, "
          f"storing maps) {fatezero_seconds / args.steps:.2f} s")
    ratio("fatezero", "stored maps: ours ÷ every map in fp32 (official)", ours.nbytes() / everything.bytes, "memory")
    ratio("fatezero", "inversion step ÷ plain step, time", fatezero_seconds / plain_seconds, "time")
    print(f"at 8 frames × 50 steps: ours {ours.nbytes() / per * 400 / 1024:.1f} GiB, "
          f"fp32-everything {everything.bytes / per * 400 / 1024:.1f} GiB; process peak RSS now {peak:.0f} MiB")


if __name__ == "__main__":
    main()
