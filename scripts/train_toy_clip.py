"""Train `toy-clip`: a small CLIPModel (image + text towers) on the procedural shapes, contrastively.

    python scripts/train_toy_clip.py [--steps 800] [--out assets/models/toy-clip]

Fixed seed, resumable (runs/toy-clip/ckpt.pt), CPU. Its text tower also initialises toy-sd's
text encoder, as CLIP's does SD's. Writes the model card with the zero-shot accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.shapes import dataset  # noqa: E402
from core.shapes.metrics import clip_zero_shot  # noqa: E402
from core.sampling import to_model_pixels  # noqa: E402
from core.tokenizer import clip_tokenizer  # noqa: E402
from core.training.loop import Checkpoint, warmup_cosine  # noqa: E402

SEED = 0
BATCH = 128
LR = 1e-3


def make_model() -> CLIPModel:
    text = CLIPTextConfig(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=128,
                          bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = CLIPVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                              image_size=config.TOY_IMAGE_SIZE, patch_size=8, projection_dim=128)
    cfg = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=128)
    return CLIPModel(cfg)



def contrastive_loss(model: CLIPModel, pixels, input_ids, captions) -> torch.Tensor:
    out = model(input_ids=input_ids, pixel_values=pixels)
    logits = out.logits_per_image
    # identical captions in one batch are all correct matches: spread the target over them
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32)
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())


def save(model: CLIPModel, tokenizer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # fp16 on disk keeps the folder small; loaders upcast to fp32 on CPU
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    tokenizer.save_pretrained(out)
    # the image processor: toy-clip reads 64×64 images scaled to [-1, 1]
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": config.TOY_IMAGE_SIZE},
        "do_center_crop": True, "crop_size": {"height": config.TOY_IMAGE_SIZE, "width": config.TOY_IMAGE_SIZE},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / "toy-clip")
    parser.add_argument("--run-dir", type=Path, default=config.ROOT / "runs" / "toy-clip")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    tokenizer = clip_tokenizer(config.TOY_TOKENIZER_LENGTH)
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    ckpt = Checkpoint(args.run_dir / "ckpt.pt", every=200)
    start = 0
    if (state := ckpt.load()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"resumed at step {start}")
    log = open(args.run_dir / "log.txt", "a") if args.run_dir.exists() else None
    for step in range(start, args.steps):
        rng = np.random.default_rng([SEED, step])  # the data of a step does not depend on resuming
        images, captions = dataset.sample_batch(rng, BATCH)
        ids = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt").input_ids
        for group in optimizer.param_groups:
            group["lr"] = LR * warmup_cosine(step, args.steps, warmup=100)
        loss = contrastive_loss(model, to_model_pixels(images), ids, captions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            line = f"step {step} loss {loss.item():.4f} elapsed {ckpt.elapsed():.0f}s"
            print(line, flush=True)
            if log is None:
                args.run_dir.mkdir(parents=True, exist_ok=True)
                log = open(args.run_dir / "log.txt", "a")
            log.write(line + "\n"), log.flush()
        ckpt.maybe_save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    ckpt.maybe_save(args.steps - 1, {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, force=True)
    model.eval()
    save(model, tokenizer, args.out)
    metrics = clip_zero_shot(CLIPModel.from_pretrained(args.out, dtype=torch.float32), tokenizer, n=600, seed=12345)
    metrics["train_seconds"] = round(ckpt.elapsed())
    metrics["steps"] = args.steps
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_card(args.out, metrics)
    print(json.dumps(metrics, indent=2))


def write_card(out: Path, metrics: dict) -> None:
    (out / "README.md").write_text(f"""---
license: mit
tags: [clip, toy, procedural-shapes, diffusion-studio]
---
# toy-clip

A small CLIPModel (text tower: 3 layers, width 128, the real CLIP BPE tokenizer with
{config.TOY_TOKENIZER_LENGTH} positions; vision tower: ViT 4 layers, width 128, 8×8 patches of
64×64 images) trained contrastively from scratch by `scripts/train_toy_clip.py` (seed {SEED}) on
the procedural shapes dataset of `core/shapes/dataset.py`: fresh batches of {BATCH} images of one or
two coloured shapes on a white, black or gray background, captioned by the fixed grammar.
Identical captions in a batch count as matches.

It is the offline stand-in for `{config.HUB_CLIP_MODEL}` in CLIP losses and energies, and its text
tower initialises `toy-sd`'s text encoder.

| | |
|---|---|
| steps | {metrics['steps']} (AdamW lr {LR}, warm-up + cosine) |
| CPU wall time (2 cores) | {metrics['train_seconds']} s |
| zero-shot colour accuracy | {metrics['color_accuracy']:.3f} |
| zero-shot shape accuracy | {metrics['shape_accuracy']:.3f} |
| zero-shot background accuracy | {metrics['background_accuracy']:.3f} |

Zero-shot: each of {metrics['n']} fresh single-object images is scored against all 54 captions
`a {{color}} {{shape}} on a {{background}} background`; the best caption's words are compared with
the truth. Images are fed as 64×64 RGB scaled to [-1, 1].
""")


if __name__ == "__main__":
    main()
