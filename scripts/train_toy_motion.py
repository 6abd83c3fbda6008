"""Train `toy-motion`: an AnimateDiff motion adapter (with a small domain LoRA) over the frozen toy-sd.

    python scripts/train_toy_motion.py [--steps 2400] [--out assets/models/toy-motion]

Data: procedural clips of one object moving in a straight line (core/shapes/dataset.py,
`moving_clip`: 8 frames, 1.5–3 px per frame), captioned
`a {color} {shape} moving {left|right|up|down} on a {background} background`; 10% empty captions.
Trained: the motion modules (zero-initialised outputs, as AnimateDiff) and a rank-8 LoRA on the
spatial cross-attention keys/values (AnimateDiff v3's "domain adapter"): toy-sd never saw the words
"moving left/right", and its causal text encoder puts them after the object's words, so the frozen
UNet barely reads them; the LoRA lets the spatial layers pass the direction to the temporal ones.
ε-loss, AdamW, resumable checkpoints. The card reports how often the generated object moves the
way the prompt says, read from pixels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import MotionAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.methods import animatediff  # noqa: E402
from core.models import load_lora  # noqa: E402
from core.motion import inflate, new_motion_adapter, temporal_parameters  # noqa: E402
from core.sampling import encode_prompts, frame_context  # noqa: E402
from core.shapes import dataset  # noqa: E402
from core.training.epsilon import X0_WEIGHT_CAP, epsilon_loss, frozen_pipeline, loss_words, video_latents  # noqa: E402
from core.training.loop import CONTINUED_FROM, Checkpoint, optimizer_step, steps_trained  # noqa: E402
from core.shapes.metrics import direction_score  # noqa: E402
from core.training.lora import CROSS_ATTENTION_KV, add_lora, lora_parameters, save_lora  # noqa: E402

SEED = 0
STEPS, BATCH, FRAMES, LR, LORA_RANK = 2400, 4, 8, 5e-4, 8
EVAL_SEEDS, EVAL_STEPS = 8, 25
EVAL_PROMPTS = [f"a {color} {shape} moving {direction} on a white background"
                for color, shape in (("red", "circle"), ("blue", "square")) for direction in ("left", "right")]


def clip_batch(rng: np.random.Generator, n: int, centred: float | None = None):
    clips, captions = zip(*(dataset.moving_clip(rng, frames=FRAMES, centred=centred) for _ in range(n)))
    captions = ["" if rng.random() < 0.1 else c for c in captions]
    return np.stack(clips), list(captions)


def evaluate(pipe, unet) -> dict:
    """For each prompt × seed: does the object move the named way, keeping colour and shape?"""
    moved, kept, paths = [], [], {}
    for prompt in EVAL_PROMPTS:
        for seed in range(EVAL_SEEDS):
            params = animatediff.AnimateDiffParams(prompt, frames=FRAMES, steps=EVAL_STEPS, seed=100 + seed)
            frames = animatediff.generate(pipe, unet, params, loras={"domain": 1.0})
            score = direction_score(frames, prompt)
            moved.append(score["moved"])
            kept.append(score["kept"])
            paths.setdefault(prompt, []).append(score["displacement"])
    return {"direction_right": float(np.mean(moved)), "colour_shape_kept": float(np.mean(kept)),
            "n": len(moved), "displacements_px": paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / config.EMBEDDED_MOTION_ADAPTER)
    parser.add_argument("--work", type=Path, default=Path("runs/toy-motion"), help="resumable checkpoints")
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--init-from", type=Path, help="continue from a saved adapter and its domain LoRA "
                                                        "(a fresh warm-up and cosine, new batches)")
    # the shipped adapter was trained with the plain ε-loss at uniform steps (the defaults); the
    # control trainers' x0 weighting (core/training/epsilon.py) did not make it read direction (card)
    parser.add_argument("--high-noise-bias", action="store_true", help="cubic training steps instead of uniform")
    parser.add_argument("--centred", type=float, default=None,
                        help="paths pass within this many px of the image centre mid-clip (default: anywhere)")
    parser.add_argument("--x0-weight-cap", type=float, default=1.0, help=f"e.g. {X0_WEIGHT_CAP:g}; 1: the plain ε-loss")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    earlier = None
    if args.init_from is None:
        unet = inflate(pipe.unet, new_motion_adapter(pipe.unet, max_frames=config.AnimateDiffDefaults.max_frames))
        add_lora(unet, "domain", LORA_RANK, CROSS_ATTENTION_KV)
    else:
        unet = inflate(pipe.unet, MotionAdapter.from_pretrained(args.init_from, use_safetensors=True))
        load_lora(unet, str(args.init_from / config.MOTION_DOMAIN_LORA_DIR), "domain", local=True)
        earlier = json.loads((args.init_from / "metrics.json").read_text())
    unet.requires_grad_(False)
    trainable = list(temporal_parameters(unet).values()) + lora_parameters(unet, "domain")
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=LR, weight_decay=0.0)
    checkpoint = Checkpoint(args.work / "motion.pt", every=100)
    start = checkpoint.resume(optimizer, {"unet": unet}, strict=False)  # only the trained parameters are saved
    unet.train()
    first_batch = steps_trained(earlier) if earlier else 0  # a continuation draws new batches
    for step in range(start, 0 if args.eval_only else args.steps):
        rng = np.random.default_rng([SEED, first_batch + step])
        clips, captions = clip_batch(rng, BATCH, args.centred)
        x0 = video_latents(pipe, clips)
        context = frame_context(encode_prompts(pipe, captions), FRAMES)
        loss = epsilon_loss(pipe, x0, context, torch.Generator().manual_seed(int(rng.integers(2**31))), unet=unet,
                            high_noise_bias=args.high_noise_bias, x0_weight_cap=args.x0_weight_cap)
        optimizer_step(optimizer, loss, step, args.steps, LR, warmup=100)
        trained = {n: p.detach() for n, p in unet.named_parameters() if p.requires_grad}
        checkpoint.maybe_save(step, {"unet": trained, "optimizer": optimizer.state_dict()},
                              force=step == args.steps - 1)
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} elapsed {checkpoint.elapsed():.0f}s", flush=True)
    seconds = round(checkpoint.elapsed())
    unet.eval().requires_grad_(False)
    args.out.mkdir(parents=True, exist_ok=True)
    unet.save_motion_modules(str(args.out), safe_serialization=True)
    save_lora(unet, "domain", args.out / config.MOTION_DOMAIN_LORA_DIR)
    report = ({"steps": args.steps, "batch": BATCH, "frames": FRAMES, "train_seconds": seconds,
               "high_noise_bias": args.high_noise_bias, "centred": args.centred, "x0_weight_cap": args.x0_weight_cap}
              | evaluate(pipe, unet) | ({CONTINUED_FROM: earlier} if earlier else {}))
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(args.out, report)
    print(json.dumps(report), flush=True)


def centred_words(centred: float | None) -> str:
    return "" if centred is None else f", each path passing within {centred:g} px of the image centre mid-clip"


def continued(r: dict) -> str:
    """The card's words for a run that went on from a saved adapter (--init-from)."""
    earlier = r.get(CONTINUED_FROM)
    if earlier is None:
        return ""
    return (f", going on from an adapter trained {earlier['steps']} steps ({earlier['train_seconds']} s; "
            f"direction {earlier['direction_right']:.3f})")


def write_card(out: Path, r: dict) -> None:
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
tags: [animatediff, motion-adapter, toy, procedural-shapes, diffusion-studio]
---
# toy-motion

An AnimateDiff motion adapter (diffusers `MotionAdapter`: temporal transformers at toy-sd's three
resolutions and the middle block, sinusoidal positions up to {config.AnimateDiffDefaults.max_frames} frames, outputs zero-initialised)
for the embedded `toy-sd`, trained by `scripts/train_toy_motion.py` (seed {SEED}) with toy-sd frozen,
plus `{config.MOTION_DOMAIN_LORA_DIR}/`: a rank-{LORA_RANK} LoRA on the spatial cross-attention keys/values trained with it
(AnimateDiff v3's domain adapter), which the app always applies with this adapter.

- **Data**: `core/shapes/dataset.py` `moving_clip`: {r['frames']}-frame 64×64 clips of one object moving
  1.5–3 px per frame left, right, up or down{centred_words(r.get('centred'))}, captioned
  `a {{color}} {{shape}} moving {{direction}} on a {{background}} background`; 10% empty captions.
- **Training**: ε-loss{loss_words(r.get('high_noise_bias', False), r.get('x0_weight_cap', 1.0))}, AdamW lr {LR} (warm-up 100, cosine),
  {r['steps']} steps × {r['batch']} clips; {r['train_seconds']} s on 2 CPU cores{continued(r)}. Use {r['frames']} frames (what it learnt).
- **Weights**: fp32 safetensors.

## Metrics ({r['n']} videos: {', '.join(EVAL_PROMPTS)}; seeds 100–{99 + EVAL_SEEDS}; {EVAL_STEPS} DDIM steps, guidance 7.5)

| | |
|---|---|
| object moves the way the prompt says (centroid, first → last frame, ≥ 3 px) | {r['direction_right']:.3f} |
| colour and shape of every frame = the prompt's | {r['colour_shape_kept']:.3f} |

Displacements (px, along the named direction) per prompt: `{json.dumps(r['displacements_px'])}`
""")


if __name__ == "__main__":
    main()
