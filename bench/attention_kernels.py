"""Fused versus explicit attention on SD1.5's largest self-attention (first block: 320 channels,
8 heads of 40; batch 2 = classifier-free guidance) at 256, 512 and 768 px, side by side in one run.

    python bench/attention_kernels.py [--device cpu|cuda] [--repeats 3]

Variants, each in a fresh process: `fused` (what the engine's processor runs when no controller
needs the map: PyTorch SDPA, or xformers on CUDA when it works), `explicit` (softmax(QKᵀ)·V with the
N×N map materialised: what P2P/FateZero's official code runs on every layer), and on CUDA `sdpa`
(SDPA even where xformers works). Peak memory is above the inputs' own.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import current_mib, isolated, peak_mib, ratio  # noqa: E402

SIZES = (256, 512, 768)
HEADS, HEAD_DIM = 8, 40


def run_variant(variant: str, size: int, device: str, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from core.attention import attention_probs, fused_attention, xformers_works

    dtype = torch.float16 if device == "cuda" else torch.float32
    tokens = (size // 8) ** 2
    q, k, v = (torch.randn(2, HEADS, tokens, HEAD_DIM, device=device, dtype=dtype) for _ in range(3))
    scale = HEAD_DIM ** -0.5
    if variant == "fused":
        run = lambda: fused_attention(q, k, v, None, scale)  # noqa: E731
    elif variant == "sdpa":
        run = lambda: F.scaled_dot_product_attention(q, k, v, scale=scale)  # noqa: E731
    else:
        run = lambda: torch.matmul(attention_probs(q, k, None, scale), v)  # noqa: E731
    with torch.no_grad():
        run()  # warm-up (kernel choice, allocator)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        before = current_mib(device)
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / repeats
    kernel = "xformers" if variant == "fused" and xformers_works(device) else "sdpa" if variant != "explicit" else "explicit"
    return {"seconds": seconds, "extra_mib": max(peak_mib(device) - before, 0.0), "kernel": kernel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.size, device, args.repeats)))
        return
    variants = ["fused", "explicit"] + (["sdpa"] if device == "cuda" else [])
    print(f"SD1.5 first-block self-attention, batch 2, {HEADS}×{HEAD_DIM}, device {device}, {args.repeats} repeats")
    print(f"{'size':>5} {'queries':>8} {'variant':9} {'kernel':9} {'ms':>9} {'extra MiB':>10}")
    for size in SIZES:
        rows = {v: isolated(__file__, "--variant", v, "--size", str(size), "--device", device,
                            "--repeats", str(args.repeats)) for v in variants}
        for name, r in rows.items():
            if "error" in r:
                print(f"{size:5} {(size // 8) ** 2:8} {name:9} error: {r['error']}")
                continue
            print(f"{size:5} {(size // 8) ** 2:8} {name:9} {r['kernel']:9} {r['seconds'] * 1000:9.1f} {r['extra_mib']:10.1f}")
        fused, explicit = rows["fused"], rows["explicit"]
        if "error" not in fused and "error" not in explicit:
            ratio("attention", f"fused ÷ explicit time, {size} px", fused["seconds"] / explicit["seconds"], "time")
            ratio("attention", f"fused ÷ explicit extra memory, {size} px",
                  fused["extra_mib"] / max(explicit["extra_mib"], 1e-6), "memory")


if __name__ == "__main__":
    main()
