"""Train a Face0 identity mapper over a frozen base pipeline (default: `toy-face0` over toy-sd).

    python scripts/train_face0_mapper.py                       # toy: object crops → toy-sd, toy-clip
    python scripts/train_face0_mapper.py --base stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --clip openai/clip-vit-base-patch16 --data FACES/ --out my-face0   # a folder of face photos (GPU)

Toy data: one object per image; its crop (core.methods.face0.detect_crop) through toy-clip's
image tower is the "identity", the caption hides colour and shape ("an object on a … background",
or empty 30% of the time, for the face-only branch of the three-way guidance).
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
from core.methods import face0  # noqa: E402
from core.guidance import clip_inputs  # noqa: E402
from core.models import Models  # noqa: E402
from core.shapes import dataset, reader  # noqa: E402
from core.training.identity_mapper import mapper_loss  # noqa: E402
from core.training.loop import warmup_cosine  # noqa: E402

SEED = 0
STEPS, BATCH, LR = 800, 32, 1e-3
EMPTY_CAPTION = 0.3
EVAL_STEPS, EVAL_SEEDS = 25, (0, 1)


def toy_batch(rng: np.random.Generator, n: int):
    scenes = [dataset.random_scene(rng, two_object_prob=0.0) for _ in range(n)]
    images = np.stack([dataset.render(s) for s in scenes])
    captions = ["" if rng.random() < EMPTY_CAPTION else f"an object on a {s.background} background" for s in scenes]
    return images, captions, [face0.detect_crop(image)[0] for image in images]


def folder_batches(folder: Path, size: int):
    from PIL import Image
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
    if not paths:
        raise SystemExit(f"{folder}: no images")
    images = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for p in paths]
    crops = [face0.detect_crop(image)[0] for image in images]

    def batch(rng: np.random.Generator, n: int):
        pick = rng.integers(0, len(images), n)
        captions = ["" if rng.random() < EMPTY_CAPTION else "a photo of a person" for _ in pick]
        return np.stack([images[i] for i in pick]), captions, [crops[i] for i in pick]
    return batch


def toy_identity_accuracy(pipe, mapper, clip_model, inputs, seeds=EVAL_SEEDS) -> dict:
    """References of every colour × shape on white; "an object on a white background"; c = 1."""
    right = {"color": 0, "shape": 0, "both": 0}
    total = 0
    for color in dataset.PALETTE:
        for shape in dataset.SHAPES:
            reference = dataset.render(dataset.Scene((dataset.ShapeObject(color, shape, 32, 32, 16),), "white"))
            for seed in seeds:
                params = face0.Face0Params(steps=EVAL_STEPS, seed=seed)
                image = face0.generate(pipe, mapper, clip_model, inputs, reference, params).image
                blob = reader.read_single(image)
                right["color"] += blob is not None and blob.color == color
                right["shape"] += blob is not None and blob.shape == shape
                right["both"] += blob is not None and blob.color == color and blob.shape == shape
                total += 1
    return {f"{k}_accuracy": v / total for k, v in right.items()} | {"n": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=config.EMBEDDED_BASE_MODEL)
    parser.add_argument("--clip", default=config.EMBEDDED_CLIP_MODEL)
    parser.add_argument("--data", type=Path, default=None, help="a folder of face photos instead of the toy data")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / config.FACE0_MAPPERS[config.EMBEDDED_BASE_MODEL])
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    models = Models(args.base, allow_local=True)
    models.dtype = torch.float32  # train in fp32 even on a GPU
    pipe = models.pipeline()
    pipe.unet.requires_grad_(False), pipe.text_encoder.requires_grad_(False), pipe.vae.requires_grad_(False)
    clip_model, _ = models.clip(args.clip)
    inputs = clip_inputs(clip_model)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    batches = toy_batch if args.data is None else folder_batches(args.data, size)
    mapper = face0.IdentityMapper(clip_model.config.projection_dim, pipe.text_encoder.config.hidden_size,
                                  hidden=max(256, pipe.text_encoder.config.hidden_size)).to(models.device)
    optimizer = torch.optim.AdamW(mapper.parameters(), lr=LR, weight_decay=0.0)
    started = time.time()
    for step in range(args.steps):
        rng = np.random.default_rng([SEED, step])
        images, captions, crops = batches(rng, BATCH)
        for group in optimizer.param_groups:
            group["lr"] = LR * warmup_cosine(step, args.steps, warmup=50)
        loss = mapper_loss(pipe, mapper, clip_model, inputs, images, captions, crops,
                           torch.Generator().manual_seed(int(rng.integers(2**31))))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} elapsed {time.time() - started:.0f}s", flush=True)
    seconds = round(time.time() - started)
    mapper.eval().requires_grad_(False)
    report = {"base": args.base, "clip": args.clip, "steps": args.steps, "batch": BATCH, "train_seconds": seconds}
    if args.data is None:
        report |= toy_identity_accuracy(pipe, mapper, clip_model, inputs)
    mapper.save(args.out, report)
    write_card(args.out, report)
    print(json.dumps(report, indent=2))


def write_card(out: Path, r: dict) -> None:
    metrics = "" if "both_accuracy" not in r else f"""
## Metrics

A reference object of every colour × shape (centred, on white), the prompt "an object on a white
background", c = 1, guidance 7.5, {EVAL_STEPS} DDIM steps, seeds {EVAL_SEEDS}; read from pixels
({r['n']} images): colour {r['color_accuracy']:.3f}, shape {r['shape_accuracy']:.3f}, both {r['both_accuracy']:.3f}.
"""
    (out / "README.md").write_text(f"""---
license: mit
tags: [face0, toy, procedural-shapes, diffusion-studio]
---
# {out.name}

A Face0 identity mapper (4-layer ReLU MLP → {face0.D.face_tokens} text-encoder-space tokens written into the
prompt's last slots) for base model `{r['base']}` with identity embedder `{r['clip']}` (CLIP image features
of the detected crop), trained by `scripts/train_face0_mapper.py` with the base model frozen:
{r['steps']} steps of batch {r['batch']}, {r['train_seconds']} s. For the toy model the "identity" is the
object's colour and shape. Weights: `mapper.safetensors`; settings: `mapper_config.json`.
{metrics}""")


if __name__ == "__main__":
    main()
