"""Train `toy-adapters`: an edge (canny) and a colour (palette) T2I-Adapter over the frozen toy-sd.

    python scripts/train_toy_adapters.py [--kinds canny palette] [--steps 3000] [--out assets/models/toy-adapters]

Each adapter learns from procedural images and the condition map extracted from them
(core/conditions.py). Captions hide what the condition carries half of the time ("a red object …"
for edges, "a circle …" for colours) so the adapter, not the prompt, has to supply it; 10% are empty
(the unconditional branch of classifier-free guidance sees the features too). The card reports the
edge adapter's mask IoU and the colour adapter's colour accuracy, read from pixels.
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
from core.conditions import extract, fill_outline  # noqa: E402
from core.methods import t2i_adapter  # noqa: E402
from core.shapes import dataset, reader  # noqa: E402
from core.training.adapters import adapter_loss, condition_batch  # noqa: E402
from core.training.epsilon import X0_WEIGHT_CAP, frozen_pipeline  # noqa: E402
from core.training.loop import optimizer_step  # noqa: E402

SEED = 0
STEPS, BATCH, LR = 3000, 32, 1e-3
RES_BLOCKS = {"canny": 2, "palette": 1}
EVAL_IMAGES, EVAL_STEPS = 12, 25


HIDDEN = {"canny": "shape", "palette": "color"}  # what each condition carries, hidden from half the captions


def evaluate(pipe, adapter, kind: str) -> dict:
    """Held-out single objects; prompt hides the condition's attribute; read from pixels."""
    rng = np.random.default_rng([SEED, 99])
    scores = []
    for index in range(EVAL_IMAGES):
        scene = dataset.random_scene(rng, two_object_prob=0.0, background="white")
        image = dataset.render(scene)
        condition = extract(kind, image)
        params = t2i_adapter.AdapterParams(scene.caption(hide=HIDDEN[kind]), [kind], [1.0], extract=False,
                                           steps=EVAL_STEPS, seed=index)
        out = t2i_adapter.generate(pipe, [adapter], [condition], params).image
        blob = reader.read_single(out)
        if kind == "canny":
            scores.append(0.0 if blob is None else reader.mask_iou(blob.mask, fill_outline(condition)))
        else:
            scores.append(float(blob is not None and blob.color == scene.objects[0].color))
    name = "edge_mask_iou" if kind == "canny" else "colour_accuracy"
    return {name: float(np.mean(scores)), "n": EVAL_IMAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(RES_BLOCKS), choices=list(RES_BLOCKS))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / "toy-adapters")
    parser.add_argument("--uniform-t", action="store_true", help="uniform training steps instead of cubic")
    parser.add_argument("--x0-weight-cap", type=float, default=X0_WEIGHT_CAP, help="1: the plain ε-loss")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    report = {}
    for kind in args.kinds:
        torch.manual_seed(SEED)
        adapter = t2i_adapter.make_adapter(tuple(pipe.unet.config.block_out_channels), pipe.vae_scale_factor,
                                           RES_BLOCKS[kind])
        optimizer = torch.optim.AdamW(adapter.parameters(), lr=LR, weight_decay=0.0)
        started = time.time()
        for step in range(args.steps):
            rng = np.random.default_rng([SEED, step, len(kind)])
            images, maps, captions = condition_batch(rng, kind, HIDDEN[kind], BATCH)
            loss = adapter_loss(pipe, adapter, images, maps, captions,
                                torch.Generator().manual_seed(int(rng.integers(2**31))),
                                high_noise_bias=not args.uniform_t, x0_weight_cap=args.x0_weight_cap)
            optimizer_step(optimizer, loss, step, args.steps, LR, warmup=50)
            if step % 50 == 0:
                print(f"{kind} step {step} loss {loss.item():.4f} elapsed {time.time() - started:.0f}s", flush=True)
        seconds = round(time.time() - started)
        adapter.eval().requires_grad_(False)
        adapter.to(torch.float16).save_pretrained(args.out / kind, safe_serialization=True)
        adapter.to(torch.float32)
        report[kind] = {"steps": args.steps, "batch": BATCH, "train_seconds": seconds} | evaluate(pipe, adapter, kind)
        print(json.dumps({kind: report[kind]}), flush=True)
    previous = json.loads((args.out / "metrics.json").read_text()) if (args.out / "metrics.json").exists() else {}
    report = previous | report
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(args.out, report)


def write_card(out: Path, r: dict) -> None:
    rows = "\n".join(f"| {kind} | {v['steps']} × {v['batch']} | {v['train_seconds']} s | "
                     + (f"mask IoU with the edges' filled outline {v['edge_mask_iou']:.3f}" if kind == "canny"
                        else f"object colour = palette colour {v['colour_accuracy']:.3f}") + " |"
                     for kind, v in r.items())
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
tags: [t2i-adapter, toy, procedural-shapes, diffusion-studio]
---
# toy-adapters

T2I-Adapters (diffusers `T2IAdapter`, `full_adapter`, channels = toy-sd's (32, 64, 128), pixel-unshuffle 4 =
toy-sd's VAE factor) for the embedded `toy-sd`, trained by `scripts/train_toy_adapters.py` (seed {SEED})
with toy-sd frozen: ε-loss at t = (1 − u³)·T (T2I-Adapter's cubic sampling: high noise favoured), each
sample weighed by min(max(1, 1/SNR_t), {X0_WEIGHT_CAP:g}) (its x0 error where noise dominates), AdamW lr {LR},
batch of procedural images and their condition maps
(`core/conditions.py`); half the captions hide what the condition carries. One subfolder per condition:
`canny/` (Canny edges) and `palette/` (8×8 colour blocks). fp16 safetensors.

## Metrics ({EVAL_IMAGES} held-out single objects on white, prompt without the conditioned attribute, {EVAL_STEPS} DDIM steps)

| adapter | training | CPU time | measured |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    main()
