"""Train `toy-chatface`: the diffusion autoencoder behind /chatface, over the frozen toy-sd.

    python scripts/train_toy_chatface.py [--steps 800] [--out assets/models/toy-chatface]

A semantic encoder (small CNN, global pooling) and a LoRA of toy-sd's UNet learn together to
reconstruct images from the code z alone (the empty prompt with z in its last slots), as diffae's
encoder and conditional UNet do. Then attribute directions are fitted on labelled procedural
images (core.methods.chatface.fit_directions), and the card reports reconstruction and edits.
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
from core.methods import chatface  # noqa: E402
from core.methods.null_text import psnr  # noqa: E402
from core.sampling import to_model_pixels  # noqa: E402
from core.shapes import dataset, reader  # noqa: E402
from core.training.epsilon import frozen_pipeline  # noqa: E402
from core.training.loop import warmup_cosine  # noqa: E402

SEED = 0
STEPS, BATCH, LR, LORA_RANK = 800, 32, 1e-3, 8
PROBE_IMAGES = 1500
EVAL_IMAGES, EVAL_STEPS = 12, 25


def scenes(rng: np.random.Generator, n: int):
    chosen = [dataset.random_scene(rng, two_object_prob=0.0) for _ in range(n)]
    return chosen, np.stack([dataset.render(s) for s in chosen])


@torch.no_grad()
def fit(encoder: chatface.SemanticEncoder) -> chatface.AttributeDirections:
    chosen, images = scenes(np.random.default_rng([SEED, 1]), PROBE_IMAGES)
    z = torch.cat([encoder.encode(to_model_pixels(images[i:i + 250])) for i in range(0, len(images), 250)])
    labels = {"colour": [s.objects[0].color for s in chosen], "shape": [s.objects[0].shape for s in chosen],
              "background": [s.background for s in chosen]}
    radius = torch.tensor([s.objects[0].radius for s in chosen], dtype=torch.float32)
    return chatface.fit_directions(z, labels, radius)


def evaluate(pipe, model: chatface.ChatFaceModel) -> dict:
    """Held-out red objects on white: reconstruction PSNR, and 'make it blue and a bit bigger'."""
    rng = np.random.default_rng([SEED, 2])
    results = {"psnr": [], "blue": 0, "bigger": 0, "kept_position": 0}
    for _ in range(EVAL_IMAGES):
        scene = dataset.random_scene(rng, two_object_prob=0.0, color="red", background="white")
        image = dataset.render(scene)
        out = chatface.edit(chatface.DiffaeCodec(pipe, model), image, "make it blue and a bit bigger", steps=EVAL_STEPS)
        results["psnr"].append(psnr(out.reconstruction, image))
        before, after = reader.read_single(image), reader.read_single(out.edited)
        if after is None:
            continue
        results["blue"] += after.color == "blue"
        results["bigger"] += after.area > before.area * 1.1
        results["kept_position"] += np.hypot(after.cx - before.cx, after.cy - before.cy) <= 3.0
    return {"reconstruction_psnr": float(np.mean(results["psnr"])), "n": EVAL_IMAGES,
            **{k: results[k] / EVAL_IMAGES for k in ("blue", "bigger", "kept_position")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / config.EMBEDDED_CHATFACE_MODEL)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    pipe = frozen_pipeline(config.EMBEDDED_BASE_MODEL)
    encoder = chatface.SemanticEncoder(width=pipe.text_encoder.config.hidden_size)
    started = time.time()
    with chatface.decoder_adapter(pipe.unet, None, rank=LORA_RANK):
        lora = [p for n, p in pipe.unet.named_parameters() if "lora_" in n]
        for p in lora:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(list(encoder.parameters()) + lora, lr=LR, weight_decay=0.0)
        for step in range(args.steps):
            rng = np.random.default_rng([SEED, 0, step])
            _, images = scenes(rng, BATCH)
            for group in optimizer.param_groups:
                group["lr"] = LR * warmup_cosine(step, args.steps, warmup=50)
            loss = chatface.dae_loss(pipe, encoder, images, torch.Generator().manual_seed(int(rng.integers(2**31))))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 50 == 0:
                print(f"step {step} loss {loss.item():.4f} elapsed {time.time() - started:.0f}s", flush=True)
        from peft.utils import get_peft_model_state_dict
        weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(pipe.unet, adapter_name=chatface.ADAPTER).items()}
        for p in lora:
            p.requires_grad_(False)
    seconds = round(time.time() - started)
    encoder.eval().requires_grad_(False)
    model = chatface.ChatFaceModel(encoder, weights, LORA_RANK, fit(encoder))
    report = {"base": config.EMBEDDED_BASE_MODEL, "steps": args.steps, "batch": BATCH, "train_seconds": seconds}
    report |= evaluate(pipe, model)
    model.save(args.out, report)
    write_card(args.out, report)
    print(json.dumps(report, indent=2))


def write_card(out: Path, r: dict) -> None:
    (out / "README.md").write_text(f"""---
license: mit
tags: [chatface, diffusion-autoencoder, toy, procedural-shapes, diffusion-studio]
---
# toy-chatface

The diffusion autoencoder behind Diffusion Studio's offline `/chatface` tab, trained by
`scripts/train_toy_chatface.py` (seed {SEED}) over the frozen `{r['base']}`:

- `encoder.safetensors`: the semantic encoder (4 convs, mean+max pooling → z, {config.ChatFaceDefaults.z_dim}-d;
  a linear map of z → {config.ChatFaceDefaults.z_tokens} context tokens written into the empty prompt's last slots).
- `decoder_lora.safetensors`: a rank-{LORA_RANK} LoRA of the UNet's attention that reads them.
- `directions.safetensors`: attribute directions in z: class means of colour, shape and background,
  and the least-squares size direction (one pixel of radius), fitted on {PROBE_IMAGES} labelled images.
- Training: {r['steps']} steps of batch {r['batch']}, encoder and LoRA together, ε-loss; {r['train_seconds']} s of CPU.

## Metrics ({r['n']} held-out red objects on white, {EVAL_STEPS} DDIM steps)

| | |
|---|---|
| reconstruction PSNR (DDIM-inverted x_T + z) | {r['reconstruction_psnr']:.1f} dB |
| "make it blue and a bit bigger": blue | {r['blue']:.2f} |
| … area up by > 10% | {r['bigger']:.2f} |
| … centre kept within 3 px | {r['kept_position']:.2f} |
""")


if __name__ == "__main__":
    main()
