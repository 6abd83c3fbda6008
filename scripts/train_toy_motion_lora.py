"""Train a toy camera motion LoRA for toy-motion: a pan, tilt or zoom learnt from clips of that one motion, in
diffusers' LoRA format for the motion modules (what the Hub's guoyww/animatediff-motion-lora-* ship), loaded by the
same code as those.

    python scripts/train_toy_motion_lora.py --motion pan-right      # → assets/models/toy-motion-lora-pan-right
    python scripts/train_toy_motion_lora.py --motion zoom-in --steps 2000 --threads 1

Data (`core/shapes/dataset.py`): pans and tilts are `moving_clip` in the one direction (pan-right: the object moves
right in the frame, the way the app's direction pad draws it), zooms are `zooming_clip` (a camera zoom about the centre:
the object grows for zoom-in). Captions carry no motion words (`a {color} {shape} on a {background} background`, 10%
empty): the LoRA, not the prompt, carries the motion. Trained: a rank-8 LoRA on the motion modules' attention
(`core.training.lora.MOTION_ATTENTION`) over the frozen toy-sd + toy-motion + its domain LoRA; ε-loss at high-noise-
favoured steps, x0-weighted (`core.training.epsilon`: where a clip's layout over time is decided), AdamW, resumable
checkpoints. The card reports, on drawn cases (colours × shapes × backgrounds × seeds), how often the object moves the
LoRA's way (≥ 3 px, or its area ≥ 10 %) and keeps its colour and shape in every frame.
"""
from __future__ import annotations

import argparse
import json
import resource
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
from core.shapes import dataset  # noqa: E402
from core.shapes.metrics import CAMERA_MOTIONS, camera_motion_score, drawn_still_prompts  # noqa: E402
from core.training.epsilon import epsilon_loss, frozen_pipeline, loss_words, video_latents  # noqa: E402
from core.training.loop import CONTINUED_FROM, Checkpoint, optimizer_step, steps_trained  # noqa: E402
from core.training.lora import MOTION_ATTENTION, add_lora, lora_parameters, save_lora  # noqa: E402

SEED = 0
STEPS, BATCH, FRAMES, LR, RANK = 2000, 4, 8, 2e-3, 8
X0_WEIGHT_CAP = 20.0
EVAL_CASES, EVAL_SEED, EVAL_STEPS = 12, 7, 25


def still_caption(caption: str) -> str:
    """'a red circle moving right on a white background' → 'a red circle on a white background'."""
    words = caption.split()
    if "moving" not in words:
        return caption
    at = words.index("moving")
    return " ".join(words[:at] + words[at + 2:])


def motion_clip(rng: np.random.Generator, motion: str) -> tuple[np.ndarray, str]:
    kind, way = CAMERA_MOTIONS[motion]
    if kind == "zoom":
        return dataset.zooming_clip(rng, frames=FRAMES, zoom=way)
    return dataset.moving_clip(rng, frames=FRAMES, direction=way)


def evaluate(pipe, unet, motion: str, cases: int = EVAL_CASES, seed: int = EVAL_SEED) -> dict:
    """The LoRA at 1.0 beside the domain LoRA on drawn prompts and seeds, read from pixels."""
    rng = np.random.default_rng(seed)
    prompts = drawn_still_prompts(rng, cases)
    scores = []
    for prompt in prompts:
        params = animatediff.AnimateDiffParams(prompt, frames=FRAMES, steps=EVAL_STEPS,
                                               seed=int(rng.integers(1000, 10**6)))
        frames = animatediff.generate(pipe, unet, params, loras={"domain": 1.0, "camera": 1.0})
        scores.append(camera_motion_score(frames, prompt, motion))
    return {"moved_rate": float(np.mean([s["moved"] for s in scores])),
            "kept_rate": float(np.mean([s["kept"] for s in scores])),
            "changes": [s["change"] for s in scores], "cases": prompts, "eval_seed": seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--motion", choices=list(CAMERA_MOTIONS), required=True)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--plain-loss", action="store_true", help="uniform steps, unweighted ε-loss")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--init-from", type=Path, help="go on from a saved LoRA (its folder, with its metrics.json); "
                        "the card gives both runs")
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (1 when two trainings share 2 cores)")
    args = parser.parse_args()
    name = f"toy-motion-lora-{args.motion}"
    # a continuation keeps its own checkpoints: resuming the first run's would skip the new steps
    out = args.out or config.MODELS_DIR / name
    work = args.work or Path("runs") / (f"{name}-continued" if args.init_from else name)
    high_noise_bias, x0_weight_cap = (False, 1.0) if args.plain_loss else (True, X0_WEIGHT_CAP)
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    motion = config.MODELS_DIR / config.EMBEDDED_MOTION_ADAPTER
    unet = inflate(pipe.unet, MotionAdapter.from_pretrained(motion, use_safetensors=True))
    load_lora(unet, str(motion / config.MOTION_DOMAIN_LORA_DIR), "domain", local=True)
    earlier = None
    if args.init_from is None:
        add_lora(unet, "camera", RANK, MOTION_ATTENTION)
    else:
        load_lora(unet, str(args.init_from), "camera", local=True, weight_name=config.LORA_FILE)
        earlier = json.loads((args.init_from / "metrics.json").read_text())
    data_offset = steps_trained(earlier) if earlier else 0
    unet.requires_grad_(False)
    trainable = lora_parameters(unet, "camera")
    for p in trainable:
        p.requires_grad_(True)
    unet.set_adapters(["domain", "camera"], [1.0, 1.0])
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    checkpoint = Checkpoint(work / "lora.pt", every=50)
    # only the LoRA's parameters are saved; re-measuring a saved LoRA measures that one, not a checkpoint
    start = 0 if args.eval_only and earlier else checkpoint.resume(optimizer, {"unet": unet}, strict=False)
    unet.train()
    for step in range(start, 0 if args.eval_only else args.steps):
        rng = np.random.default_rng([SEED, data_offset + step])  # a continued run sees clips the first did not
        clips, captions = zip(*(motion_clip(rng, args.motion) for _ in range(BATCH)))
        captions = ["" if rng.random() < 0.1 else still_caption(c) for c in captions]
        x0 = video_latents(pipe, np.stack(clips))
        context = frame_context(encode_prompts(pipe, captions), FRAMES)
        loss = epsilon_loss(pipe, x0, context, torch.Generator().manual_seed(int(rng.integers(2**31))), unet=unet,
                            high_noise_bias=high_noise_bias, x0_weight_cap=x0_weight_cap)
        optimizer_step(optimizer, loss, step, args.steps, args.lr, warmup=50)
        trained = {n: p.detach() for n, p in unet.named_parameters() if p.requires_grad}
        checkpoint.maybe_save(step, {"unet": trained, "optimizer": optimizer.state_dict()}, force=step == args.steps - 1)
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.4f} elapsed {checkpoint.elapsed():.0f}s", flush=True)
    seconds = round(checkpoint.elapsed())
    unet.eval().requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    save_lora(unet, "camera", out)
    if args.eval_only and earlier:  # re-measure a saved LoRA: its training figures stay, its metrics are new
        report = earlier | evaluate(pipe, unet, args.motion)
    else:
        report = {"motion": args.motion, "steps": args.steps, "lr": args.lr, "batch": BATCH, "frames": FRAMES,
                  "rank": RANK, "high_noise_bias": high_noise_bias, "x0_weight_cap": x0_weight_cap,
                  "threads": args.threads, "train_seconds": seconds,
                  "cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]))}
        report |= evaluate(pipe, unet, args.motion)
        if earlier:
            report[CONTINUED_FROM] = earlier
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(out, report)
    print(json.dumps(report), flush=True)


def write_card(out: Path, r: dict) -> None:
    kind, way = CAMERA_MOTIONS[r["motion"]]
    moves = (f"moving {way} (1.5–3 px per frame)" if kind == "pan" else
             f"under a camera zoom {way} about the centre (size and offset {'grow' if way == 'in' else 'shrink'} 1.4–1.8× over the clip)")
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
base_model: toy-motion
tags: [animatediff, motion-lora, toy, procedural-shapes, diffusion-studio]
---
# toy-motion-lora-{r['motion']}

A camera motion LoRA for `toy-motion` (the embedded AnimateDiff motion adapter), the toy counterpart of
`guoyww/animatediff-motion-lora-{r['motion']}`, in the same format: diffusers LoRA weights
(`pytorch_lora_weights.safetensors`, PEFT keys) on the motion modules' attention (to_q, to_k, to_v, to_out),
rank {r['rank']}. Load it as the Hub's: AnimateDiff tab → motion_lora, or `pipe.load_lora_weights(folder)`.
Trained by `scripts/train_toy_motion_lora.py --motion {r['motion']}` (seed {SEED}).

- **Data**: 64×64 clips of {r['frames']} frames, one filled shape (6 colours × 3 shapes × 3 backgrounds)
  {moves}; captions name the colour, shape and background, never the motion (10 % empty).
- **Training**: over the frozen toy-sd + toy-motion + its domain LoRA; {r['steps']} steps of batch {r['batch']},
  AdamW lr {r['lr']} (warm-up 50, cosine), ε-loss{loss_words(r['high_noise_bias'], r['x0_weight_cap'])};
  {r['cpu_seconds']} s of CPU time for the run, training and the evaluation below ({r['threads']} thread{'s' if r['threads'] > 1 else ''} of this
  2-core machine; {r['train_seconds']} s wall for the training, beside other work).{continued_words(r)}
- **Weights**: fp32 safetensors, {sum(f.stat().st_size for f in out.glob('*.safetensors')) / 1024:.0f} KiB.

## Metrics ({len(r['cases'])} drawn cases: prompts over colours × shapes × backgrounds and seeds, seed {r['eval_seed']})

25 DDIM steps, 8 frames, the domain LoRA and this LoRA at 1.0, read from pixels:

| the object {'moves ' + way + ' ≥ 3 px' if kind == 'pan' else ('grows' if way == 'in' else 'shrinks') + ' ≥ 10 % in area'} over the clip | colour and shape kept in every frame |
|---|---|
| {r['moved_rate']:.2f} | {r['kept_rate']:.2f} |

Per case ({'px the named way' if kind == 'pan' else 'area change the named way'}): {', '.join(str(c) for c in r['changes'])}.

Limits: the toy motion module was trained blind to frame order (its card), so the LoRA has to learn to read the
frames' positions itself; without it toy-motion moves the object either way, set by the seed.
""")


def continued_words(r: dict) -> str:
    """The card's words for a run that went on from a saved LoRA (--init-from)."""
    if CONTINUED_FROM not in r:
        return ""
    e = r[CONTINUED_FROM]
    return (f"\n  It went on from a LoRA trained {steps_trained(e)} steps (last at lr {e['lr']}, ε-loss"
            f"{loss_words(e['high_noise_bias'], e['x0_weight_cap'])}; {e['cpu_seconds']} s of CPU time): "
            f"{e['cpu_seconds'] + r['cpu_seconds']} s in all.")


if __name__ == "__main__":
    main()
