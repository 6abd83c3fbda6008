"""Peak memory and time of one Prompt-to-Prompt edit step vs one plain diffusers pipeline step,
side by side in one run, on an SD1.5-shaped UNet with random weights at 512×512.

    python bench/p2p_memory.py [--device cpu|cuda] [--steps 1] [--size 512]

Three variants, each in a fresh subprocess (so peak RSS / peak CUDA memory is its own):
- plain: StableDiffusionPipeline-style step for the two prompts (CFG batch 4), diffusers' SDPA;
- p2p: our controllers (store + replace + self-attention injection at ≤32² queries), fused
  kernels elsewhere;
- all-maps: what the official code and the diffusers community pipeline do — the explicit
  softmax on every layer (our processor with a controller that asks for everything).
Prints the figures and the ratios to plain. Then the breakdown of the p2p step, in one process with
the variants interleaved (best of `--repeats`): diffusers' processor, ours with no controller, and the
controllers added one at a time; the last row makes the same self-attention injection through
explicit maps (how it was done before it ran on the fused kernel).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import ratio  # noqa: E402


def sd15_unet():
    from diffusers import UNet2DConditionModel

    from bench.report import cheap_random_init

    # SD1.5's UNet config (random weights: shapes and costs are what matter here)
    with cheap_random_init():
        return UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
                                    attention_head_dim=8,
                                    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def p2p_controllers(tokenizer, steps: int, cross: bool = True, self_attention: bool = True, explicit: bool = False):
    """The bench's edit: AttentionStore at 16×16 (heatmaps, local blend) and a word swap with cross-attention
    replaced in every step (`cross`) and self-attention injected at ≤32² queries (`self_attention`)."""
    import torch

    from core.control.alignment import replacement_mapper
    from core.control.edit import AttentionReplace
    from core.control.store import AttentionStore

    class ExplicitReplace(AttentionReplace):
        def substitutes(self, ctx):
            return False

    kind = ExplicitReplace if explicit else AttentionReplace
    mapper = replacement_mapper(tokenizer, "a red bicycle on the road", "a blue bicycle on the road")
    alpha = torch.ones(steps, 77) if cross else torch.zeros(steps, 77)
    return [AttentionStore(16), kind(mapper, cross_alpha=alpha, self_window=(0, steps if self_attention else 0),
                                     max_self_queries=32 * 32)]


def breakdown(device: str, size: int, repeats: int) -> list[tuple[str, float]]:
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    from core.attention import install
    from core.control.store import AttentionStore
    from core.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet = sd15_unet().to(device, dtype).eval()
    tokenizer = clip_tokenizer(77)
    latent = size // 8
    x = torch.randn(4, 4, latent, latent, device=device, dtype=dtype)
    context = torch.randn(4, 77, 768, device=device, dtype=dtype)
    variants = [
        ("diffusers' AttnProcessor2_0 (the plain step)", None),
        ("our processor, no controller", lambda: []),
        ("+ AttentionStore: explicit cross-attention at 16×16", lambda: [AttentionStore(16)]),
        ("+ word swap: explicit cross-attention, every layer", lambda: p2p_controllers(tokenizer, 1, True, False)),
        ("+ self-attention injection ≤32², fused (the p2p step)", lambda: p2p_controllers(tokenizer, 1)),
        ("  (the injection through explicit maps instead)", lambda: p2p_controllers(tokenizer, 1, explicit=True)),
    ]
    best = [float("inf")] * len(variants)
    with torch.no_grad():
        unet(x, 500, encoder_hidden_states=context)  # warm-up
        for _ in range(repeats):
            for index, (_, controllers) in enumerate(variants):
                if controllers is None:
                    unet.set_attn_processor(AttnProcessor2_0())
                    state = None
                else:
                    state = install(unet)
                if device == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                if state is None:
                    unet(x, 500, encoder_hidden_states=context)
                else:
                    with state.use(controllers()):
                        state.guided = True
                        state.step_begin(0, 1)
                        unet(x, 500, encoder_hidden_states=context)
                if device == "cuda":
                    torch.cuda.synchronize()
                best[index] = min(best[index], time.perf_counter() - started)
    return [(name, seconds) for (name, _), seconds in zip(variants, best)]


def run_variant(variant: str, device: str, steps: int, size: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from core.attention import AttentionController, install
    from core.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet = sd15_unet().to(device, dtype).eval()
    tokenizer = clip_tokenizer(77)
    latent = size // 8
    x = torch.randn(4, 4, latent, latent, device=device, dtype=dtype)  # [uncond×2, cond×2]
    context = torch.randn(4, 77, 768, device=device, dtype=dtype)
    controllers = []
    if variant != "plain":
        state = install(unet)
        state.guided = True
        if variant == "p2p":
            controllers = p2p_controllers(tokenizer, steps)
        else:
            class Everything(AttentionController):
                def wants(self, ctx):
                    return True
            controllers = [Everything()]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with torch.no_grad():
        for step in range(steps):
            if controllers:
                with state.use(controllers):
                    state.guided = True
                    state.step_begin(step, steps)
                    unet(x, 500, encoder_hidden_states=context)
                    state.step_end(x, step)
            else:
                unet(x, 500, encoder_hidden_states=context)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "seconds_per_step": seconds, "peak_mib": peak, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant == "breakdown":
        print(json.dumps(breakdown(args.device, args.size, args.repeats)))
        return
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.device, args.steps, args.size)))
        return
    results = {}
    for variant in ("plain", "p2p", "all-maps"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--device", args.device,
                              "--steps", str(args.steps), "--size", str(args.size)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if out.returncode != 0:
            results[variant] = {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
            continue
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    plain = results["plain"]
    print(f"SD1.5-shaped UNet, {args.size}×{args.size}, batch 2 prompts × CFG, device {args.device}, {args.steps} step(s)")
    print(f"{'variant':10} {'s/step':>9} {'peak MiB':>10} {'time ×':>8} {'memory ×':>9}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:10} error: {r['error']}")
            continue
        print(f"{name:10} {r['seconds_per_step']:9.2f} {r['peak_mib']:10.0f} "
              f"{r['seconds_per_step'] / plain['seconds_per_step']:8.2f} {r['peak_mib'] / plain['peak_mib']:9.2f}")
    for name in ("p2p", "all-maps"):
        if "error" not in results[name] and "error" not in plain:
            label = "P2P edit step" if name == "p2p" else "every map explicit (official P2P)"
            ratio("p2p", f"{label} ÷ plain step, time", results[name]["seconds_per_step"] / plain["seconds_per_step"], "time")
            ratio("p2p", f"{label} ÷ plain step, peak memory", results[name]["peak_mib"] / plain["peak_mib"], "memory")
    out = subprocess.run([sys.executable, __file__, "--variant", "breakdown", "--device", args.device, "--size",
                          str(args.size), "--repeats", str(args.repeats)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        print(f"breakdown: {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
        return
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    base = rows[0][1]
    print(f"\nwhere the p2p step's time goes (one process, variants interleaved, best of {args.repeats}):")
    print(f"{'variant':56} {'s/step':>7} {'× plain':>8} {'added':>7}")
    previous = base
    for index, (name, seconds) in enumerate(rows):
        added = "" if index in (0, len(rows) - 1) else f"{(seconds - previous) / base:+7.1%}"
        print(f"{name:56} {seconds:7.2f} {seconds / base:8.3f} {added:>7}")
        if index < len(rows) - 1:
            previous = seconds
    ratio("p2p", "P2P edit step ÷ plain step, time (breakdown, interleaved)", rows[-2][1] / base, "time")


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
