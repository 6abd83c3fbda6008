"""Train a toy motion LoRA for toy-motion: a camera move learnt from clips of one direction, in diffusers' LoRA
format for the motion modules (what the Hub's guoyww/animatediff-motion-lora-* ship), loaded by the same code.

    python scripts/train_toy_motion_lora.py --direction right [--steps 600] [--out assets/models/toy-motion-lora-pan-right]

Data: `core/shapes/dataset.py` `moving_clip` with the one direction (pan-right: the object moves right, as the issue
asks of the embedded world), captioned without the motion words (`a {color} {shape} on a {background} background`,
10% empty): the LoRA, not the prompt, carries the direction. Trained: a rank-8 LoRA on the motion modules' attention
(`core.training.lora.MOTION_ATTENTION`) over the frozen toy-sd + toy-motion + its domain LoRA. ε-loss, AdamW,
resumable checkpoints. The card reports, on drawn cases (colours × shapes × backgrounds × seeds), how often the
object moves the LoRA's way by ≥ 3 px and keeps its colour and shape.
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
from core.motion import inflate  # noqa: E402
from core.sampling import encode_prompts, frame_context  # noqa: E402
from core.shapes import dataset, reader  # noqa: E402
from core.training.epsilon import epsilon_loss, frozen_pipeline, video_latents  # noqa: E402
from core.training.loop import Checkpoint, optimizer_step  # noqa: E402
from core.training.lora import MOTION_ATTENTION, add_lora, lora_parameters, save_lora  # noqa: E402

SEED = 0
STEPS, BATCH, FRAMES, LR, RANK = 600, 4, 8, 5e-4, 8
EVAL_CASES, EVAL_STEPS = 12, 25


def still_caption(caption: str) -> str:
    """'a red circle moving right on a white background' → 'a red circle on a white background'."""
    words = caption.split()
    at = words.index("moving")
    return " ".join(words[:at] + words[at + 2:])


def drawn_cases(n: int, seed: int) -> list[tuple[str, int]]:
    """(prompt, seed) pairs drawn over the embedded grammar: colours × shapes × backgrounds × seeds."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        color, shape = str(rng.choice(list(dataset.PALETTE))), str(rng.choice(dataset.SHAPES))
        background = str(rng.choice([b for b in dataset.BACKGROUNDS if b != color]))
        cases.append((f"a {color} {shape} on a {background} background", int(rng.integers(1000, 10**6))))
    return cases


def evaluate(pipe, unet, direction: str, cases) -> dict:
    dx, dy = dataset.DIRECTIONS[direction]
    moved, kept, shifts = [], [], []
    for prompt, seed in cases:
        frames = animatediff.generate(pipe, unet, animatediff.AnimateDiffParams(prompt, frames=FRAMES,
                                                                               steps=EVAL_STEPS, seed=seed),
                                      loras={"domain": 1.0, "camera": 1.0})
        blobs = [reader.read_single(f) for f in frames]
        if any(b is None for b in blobs):
            moved.append(False), kept.append(False), shifts.append(None)
            continue
        shift = (blobs[-1].cx - blobs[0].cx) * dx + (blobs[-1].cy - blobs[0].cy) * dy
        words = set(prompt.split())
        moved.append(shift >= 3.0)
        kept.append(all(b.color in words and b.shape in words for b in blobs))
        shifts.append(round(float(shift), 1))
    return {"moved_rate": float(np.mean(moved)), "kept_rate": float(np.mean(kept)), "shifts": shifts,
            "cases": [prompt for prompt, _ in cases]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direction", choices=list(dataset.DIRECTIONS), required=True)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--lr", type=float, default=LR)
    args = parser.parse_args()
    name = f"toy-motion-lora-pan-{args.direction}"
    out, work = args.out or config.MODELS_DIR / name, args.work or Path("runs") / name
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    motion = config.MODELS_DIR / config.EMBEDDED_MOTION_ADAPTER
    unet = inflate(pipe.unet, MotionAdapter.from_pretrained(motion, use_safetensors=True))
    load_lora(unet, str(motion / config.MOTION_DOMAIN_LORA_DIR), "domain", local=True)
    add_lora(unet, "camera", RANK, MOTION_ATTENTION)
    unet.requires_grad_(False)
    trainable = lora_parameters(unet, "camera")
    for p in trainable:
        p.requires_grad_(True)
    unet.set_adapters(["domain", "camera"], [1.0, 1.0])
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    checkpoint = Checkpoint(work / "lora.pt", every=50)
    start = 0
    if (state := checkpoint.load()) is not None:
        unet.load_state_dict(state["unet"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"resumed at step {start}", flush=True)
    unet.train()
    for step in range(start, 0 if args.eval_only else args.steps):
        rng = np.random.default_rng([SEED, step])
        clips, captions = zip(*(dataset.moving_clip(rng, frames=FRAMES, direction=args.direction) for _ in range(BATCH)))
        captions = ["" if rng.random() < 0.1 else still_caption(c) for c in captions]
        x0 = video_latents(pipe, np.stack(clips))
        context = frame_context(encode_prompts(pipe, captions), FRAMES)
        loss = epsilon_loss(pipe, x0, context, torch.Generator().manual_seed(int(rng.integers(2**31))), unet=unet)
        optimizer_step(optimizer, loss, step, args.steps, args.lr, warmup=50)
        trained = {n: p.detach() for n, p in unet.named_parameters() if p.requires_grad}
        checkpoint.maybe_save(step, {"unet": trained, "optimizer": optimizer.state_dict()}, force=step == args.steps - 1)
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.4f} elapsed {checkpoint.elapsed():.0f}s", flush=True)
    seconds = round(checkpoint.elapsed())
    unet.eval().requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    save_lora(unet, "camera", out)
    report = {"direction": args.direction, "steps": args.steps, "lr": args.lr, "batch": BATCH, "frames": FRAMES, "rank": RANK,
              "train_seconds": seconds} | evaluate(pipe, unet, args.direction, drawn_cases(EVAL_CASES, 7))
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
