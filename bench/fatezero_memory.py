"""FateZero's attention maps on an SD1.5-shaped random UNet: what storing them costs, and editing without
storing them.

    python bench/fatezero_memory.py [--frames 2] [--size 512] [--steps 1]

1. The store, per frame and per inversion step: ours (≤32×32 queries, fp16, CPU) vs every map in fp32
   (what the official code keeps). Both from the same inversion run: our store keeps its maps; a
   counting controller adds up the bytes every map would take in fp32 without keeping them.
2. attention_maps "store" vs "recompute" (a source branch at each step's inverted latent), each in a
   fresh process running core.methods.fatezero on a pipeline around the same UNet (tiny VAE and text
   encoder; 2 frames, 2 steps, the tab's defaults): memory kept between inversion and editing (and
   at 8 frames × 50 steps from the measured per-step figure), the editing step's time against a
   plain guided video step of the same frames (middle-frame attention, no maps), the process's peak
   RSS during the run, and the largest pixel difference between the two videos.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.p2p_memory import sd15_unet  # noqa: E402
from bench.report import cheap_random_init, isolated, peak_mib, ratio, reset_peak  # noqa: E402
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


def sd15_shaped_pipe():
    """The bench's SD1.5-shaped UNet (512 px) in a pipeline with a tiny VAE (scale 8) and a one-layer text encoder
    of SD1.5's width: FateZero's cost is the UNet's."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    from core.tokenizer import clip_tokenizer

    with cheap_random_init():
        unet = sd15_unet()
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8,) * 4, latent_channels=4,
                            norm_num_groups=8, layers_per_block=1)
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=256, num_hidden_layers=1,
                                                    num_attention_heads=12, max_position_embeddings=77))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae.eval(), text_encoder.eval(), clip_tokenizer(77), unet.eval(), scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def run_mode(mode: str, frames: int, steps: int, out: str) -> dict:
    """One FateZero run (no reconstruction) with `attention_maps=mode`, then a plain guided video step of the same
    frames; the edited video goes to `out` (.npy)."""
    import numpy as np

    from core.denoisers import TextGuided
    from core.methods import fatezero
    from core.sampling import encode_prompts
    from core.shapes.dataset import moving_clip

    torch.manual_seed(0)
    pipe = sd15_shaped_pipe()
    video = moving_clip(np.random.default_rng(0), frames=8, size=64)[0]
    params = fatezero.FateZeroParams("a red circle moving right on a white background",
                                     "a blue circle moving right on a white background", frames=frames, steps=steps,
                                     attention_maps=mode)
    stamps = []
    reset_peak("cpu")
    started = time.perf_counter()
    result = fatezero.run(pipe, video, params, reconstruct=False, on_step=lambda done, total: stamps.append(
        time.perf_counter()))
    peak = peak_mib("cpu")
    times = np.diff([started] + stamps)  # inversion steps, then editing steps
    np.save(out, result.edited)
    size = pipe.unet.config.sample_size
    x = torch.randn(frames, 4, size, size)
    cond = encode_prompts(pipe, [params.target_prompt]).expand(frames, -1, -1)
    model = TextGuided(pipe.unet, cond, encode_prompts(pipe, [""]), params.guidance_scale)
    plain = []
    with torch.no_grad(), install(pipe.unet).use([], frames=frames, frame_mode=FrameMode.MIDDLE):
        for _ in range(2):
            begun = time.perf_counter()
            model(x, 0, torch.tensor(981))
            plain.append(time.perf_counter() - begun)
    return {"mode": mode, "kept_bytes": result.stored_bytes, "inversion_step_s": float(times[:steps].mean()),
            "edit_steps_s": [float(t) for t in times[steps:]], "plain_step_s": min(plain), "peak_mib": peak}


def compare_modes(frames: int, steps: int) -> None:
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        runs = {mode: isolated(__file__, "--mode", mode, "--frames", str(frames), "--steps", str(steps), "--out",
                               f"{folder}/{mode}.npy") for mode in ("store", "recompute")}
        if any("error" in r for r in runs.values()):
            print("store vs recompute: " + "; ".join(f"{m}: {r['error']}" for m, r in runs.items() if "error" in r))
            return
        videos = {mode: np.load(f"{folder}/{mode}.npy").astype(int) for mode in runs}
    difference = int(np.abs(videos["store"] - videos["recompute"]).max())
    per_frame_step = {mode: r["kept_bytes"] / (frames * steps) for mode, r in runs.items()}
    print(f"\nattention_maps store vs recompute: core.methods.fatezero on the SD1.5-shaped UNet, {frames} frames, "
          f"{steps} steps, the tab's defaults (windows 0.8: the first editing step reads the source's cross- and "
          f"self-attention, the second its cross-attention), no reconstruction")
    print(f"{'mode':10} {'kept MiB':>9} {'GiB at 8×50':>12} {'inversion s':>12} {'edit steps s':>16} {'plain s':>8} "
          f"{'edit ÷ plain':>13} {'peak RSS MiB':>13}")
    for mode, r in runs.items():
        edit = r["edit_steps_s"]
        print(f"{mode:10} {r['kept_bytes'] / 2**20:9.1f} {per_frame_step[mode] * 400 / 2**30:12.3f} "
              f"{r['inversion_step_s']:12.2f} {' / '.join(f'{t:.2f}' for t in edit):>16} {r['plain_step_s']:8.2f} "
              f"{edit[0] / r['plain_step_s']:13.2f} {r['peak_mib']:13.0f}")
    print(f"same video: max |store − recompute| = {difference}/255 (over {frames} frames)")
    ratio("fatezero", "kept for the maps at 8 frames × 50 steps: recompute ÷ store",
          per_frame_step["recompute"] / per_frame_step["store"], "memory")
    for mode in ("store", "recompute"):
        r = runs[mode]
        ratio("fatezero", f"editing step ({mode}) ÷ plain video step, time", r["edit_steps_s"][0] / r["plain_step_s"],
              "time")
    ratio("fatezero", "peak RSS of the run: recompute ÷ store", runs["recompute"]["peak_mib"] / runs["store"]["peak_mib"],
          "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.frames, max(args.steps, 2), args.out)))
        return
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
    del ours, everything
    compare_modes(args.frames, max(args.steps, 2))


if __name__ == "__main__":
    main()
