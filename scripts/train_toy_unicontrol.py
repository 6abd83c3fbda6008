"""Train `toy-unicontrol`: one UniControl model for three tasks over the frozen toy-sd.

    python scripts/train_toy_unicontrol.py [--steps 3000] [--out assets/models/toy-unicontrol]

Tasks (the official instructions where the task is official): "canny edge to image" (Canny edges),
"segmentation map to image" (the object's mask) and our "color blocks to image" (8×8 colour cells).
The encoder starts as a copy of toy-sd's (the ControlNet recipe); every batch is one task, in turn
(as the official training: one task per batch). Captions hide what the condition carries half of
the time (the shape for edges and masks, the colour for colour blocks); 10% are empty.
The card reports per task: mask IoU with the condition's filled shape, or the colour read back.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.conditions import fill_outline  # noqa: E402
from core.methods import unicontrol  # noqa: E402
from core.shapes import dataset, reader  # noqa: E402
from core.training.adapters import condition_batch, control_loss  # noqa: E402
from core.training.epsilon import X0_WEIGHT_CAP, frozen_pipeline, loss_words  # noqa: E402
from core.training.loop import CONTINUED_FROM, optimizer_step, steps_trained  # noqa: E402
from core.unicontrol import INSTRUCTIONS, UniControlModel  # noqa: E402

SEED = 0
STEPS, BATCH, LR = 3000, 32, 5e-4
TASKS = ("control_canny", "control_seg", "control_palette")
HIDDEN = {"control_canny": "shape", "control_seg": "shape", "control_palette": "color"}
EVAL_IMAGES, EVAL_STEPS = 8, 25


def evaluate(pipe, model) -> dict:
    """Held-out single objects on white; the prompt hides the conditioned attribute."""
    report = {}
    for task in TASKS:
        rng = np.random.default_rng([SEED, 99])
        scores = []
        for index in range(EVAL_IMAGES):
            scene = dataset.random_scene(rng, two_object_prob=0.0, background="white")
            params = unicontrol.UniControlParams(scene.caption(hide=HIDDEN[task]), INSTRUCTIONS[task], steps=EVAL_STEPS,
                                                 seed=index)
            out = unicontrol.generate(pipe, model, dataset.render(scene), params)
            blob = reader.read_single(out.image)
            if HIDDEN[task] == "shape":
                truth = fill_outline(out.condition) if task == "control_canny" else out.condition[..., 0] > 127
                scores.append(0.0 if blob is None else reader.mask_iou(blob.mask, truth))
            else:
                scores.append(float(blob is not None and blob.color == scene.objects[0].color))
        report[task] = float(np.mean(scores))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / "toy-unicontrol")
    parser.add_argument("--init-from", type=Path, help="continue from a saved model (a fresh warm-up and cosine)")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    model = UniControlModel.from_unet(pipe.unet, TASKS, pipe.text_encoder.config.hidden_size, task_token="pooled")
    earlier = None
    if args.init_from is not None:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(args.init_from / "diffusion_pytorch_model.safetensors"))
        earlier = json.loads((args.init_from / "metrics.json").read_text())
    instructions = {task: unicontrol.instruction_features(pipe, INSTRUCTIONS[task], "pooled") for task in TASKS}
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    first_batch = steps_trained(earlier) if earlier else 0  # a continuation draws new batches
    started = time.time()
    for step in range(args.steps):
        rng = np.random.default_rng([SEED, first_batch + step])
        task = TASKS[step % len(TASKS)]
        images, maps, captions = condition_batch(rng, config.UNICONTROL_TASK_CONDITIONS[task], HIDDEN[task],
                                                 BATCH)
        loss = control_loss(pipe, model, images, maps, captions, task, instructions[task],
                            torch.Generator().manual_seed(int(rng.integers(2**31))))
        optimizer_step(optimizer, loss, step, args.steps, LR, warmup=50)
        if step % 50 == 0:
            print(f"step {step} {task} loss {loss.item():.4f} elapsed {time.time() - started:.0f}s", flush=True)
    seconds = round(time.time() - started)
    model.eval().requires_grad_(False)
    model.to(torch.float16).save_pretrained(args.out, safe_serialization=True)
    model.to(torch.float32)
    report = {"base": config.EMBEDDED_BASE_MODEL, "tasks": list(TASKS), "steps": args.steps, "batch": BATCH,
              "train_seconds": seconds} | {"eval": evaluate(pipe, model)}
    if earlier is not None:
        report[CONTINUED_FROM] = {k: earlier[k] for k in ("steps", "train_seconds", "eval", CONTINUED_FROM)
                                    if k in earlier}
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(args.out, report)
    print(json.dumps(report, indent=2))


def continued(r: dict) -> str:
    """The card's words for a run that went on from a saved model (--init-from)."""
    if CONTINUED_FROM not in r:
        return ""
    earlier = r[CONTINUED_FROM]
    return (f" These {r['steps']} steps went on from a model trained {earlier['steps']} steps the same way "
            f"({earlier['train_seconds']} s; held-out {', '.join(f'{v:.3f}' for v in earlier['eval'].values())}).")


def write_card(out: Path, r: dict) -> None:
    rows = "\n".join(f"| {INSTRUCTIONS[task]} | " + ("mask IoU with the condition's shape" if HIDDEN[task] == "shape"
                                                    else "object colour = block colour") + f" | {score:.3f} |"
                     for task, score in r["eval"].items())
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
tags: [unicontrol, controlnet, toy, procedural-shapes, diffusion-studio]
---
# toy-unicontrol

A UniControl control model (`core/unicontrol.py`: ControlNet encoder copied from toy-sd, one input
stem per task, the task HyperNet modulating the zero-convolutions) for the embedded `{r['base']}`,
trained by `scripts/train_toy_unicontrol.py` (seed {SEED}) with toy-sd frozen: {r['steps']} steps of
batch {r['batch']}, one task per batch in turn, AdamW lr {LR}; {r['train_seconds']} s of CPU. Loss: ε-loss{loss_words(True, X0_WEIGHT_CAP)}.{continued(r)}
The instruction is encoded by toy-sd's text encoder, pooled end token (`task_token: pooled`; the
official checkpoint uses the first token). fp16 safetensors.

## Metrics ({EVAL_IMAGES} held-out single objects on white per task, prompt without the conditioned attribute, {EVAL_STEPS} DDIM steps, guidance {config.UniControlDefaults.guidance_scale})

| task instruction | measured | |
|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()
