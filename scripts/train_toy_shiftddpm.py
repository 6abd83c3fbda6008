"""Train `toy-shiftddpm`: a class-conditional ShiftDDPM of the procedural shapes, 32×32 pixels.

    python scripts/train_toy_shiftddpm.py --variant prior_shift     # the shipped assets/models/toy-shiftddpm
    python scripts/train_toy_shiftddpm.py --variant quadratic_shift --out assets/models/toy-shiftddpm-quadratic
    python scripts/train_toy_shiftddpm.py --data FOLDER --out my-shiftddpm   # FOLDER/<class name>/*.png (on a GPU)

Classes are "{color} {shape}" (18); the UNet2DModel takes no class input, the class enters only
through the learned shift E(c) (core/methods/shiftddpm.py). Resumable from runs/toy-shiftddpm.
The model card reports class accuracy read from pixels for shifted DDPM and shifted DDIM.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.methods import shiftddpm  # noqa: E402
from core.sampling import to_model_pixels  # noqa: E402
from core.shapes.metrics import shift_class_accuracy  # noqa: E402
from core.training.loop import CONTINUED_FROM, EMA, Checkpoint, steps_trained, warmup_cosine  # noqa: E402

SEED = 0
SIZE, BATCH, LR, EMA_DECAY = 32, 32, 5e-4, 0.999
STEPS = 20000
EVAL_PER_CLASS, EVAL_SEED = 4, 1000
# DDIM-50 is cheap: measured wider, every class × 8 samples at three seeds (one sample is 0.7 points of each)
DDIM_PER_CLASS, DDIM_SEEDS = 8, (1000, 7, 500)
SHIFT_START_SCALE = 3.0  # E(c) = 3 × the class's mean image (+ the MLP branch's small random image)
# Trained jointly with the UNet (the paper's recipe), E(c) collapsed on our CPU budget: between-class
# RMS 0.52 → 0.12 per pixel after 3,500 steps, and the UNet ignored it (class accuracy 0.056 = chance):
# shrinking E is the cheapest way to lower the ε-loss while the UNet cannot yet read the class.
# So E(c) stays fixed at a designed start (--train-shift restores the joint training). The class's mean
# image alone carries the colour but not the shape (a mean over positions and sizes is a blob for every
# shape: shape right in 0.39 of samples, chance); so the default adds a shape texture (checkerboard /
# horizontal / vertical stripes, amplitude TEXTURE) to 3 × the mean. Measured: at 3,500 steps every code
# was sample-quality bound (mean 0.40, texture 0.36: noisy blobs); mean + texture gives DDPM-1000 0.889,
# DDIM-50 0.819 at 12,000 steps and 0.931 / 0.875 at 20,000 (the shipped model: resumed 12,000 → 20,000).
TINT, TEXTURE = 0.6, 0.6
CODE_WORDS = {"mean": f"{SHIFT_START_SCALE} × the class's mean image",
              "texture": f"a colour tint ({TINT}) + a shape texture ({TEXTURE}: checkerboard for circles, "
                         "horizontal stripes for squares, vertical for triangles)",
              "mean+texture": f"{SHIFT_START_SCALE} × the class's mean image (its colour) + a shape texture "
                              f"({TEXTURE}: checkerboard for circles, horizontal stripes for squares, vertical for "
                              "triangles; the mean alone is a blob for every shape)"}
MEAN_IMAGES_PER_CLASS = 64


def make_unet(size: int = SIZE) -> UNet2DModel:
    return UNet2DModel(sample_size=size, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(16, 32, 64), down_block_types=("DownBlock2D",) * 3,
                       up_block_types=("UpBlock2D",) * 3, norm_num_groups=8)


def folder_dataset(folder: Path, size: int):
    """A folder of class folders → (uint8 images (N, size, size, 3), labels (N,), class names)."""
    from PIL import Image
    names = sorted(p.name for p in Path(folder).iterdir() if p.is_dir())
    images, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((Path(folder) / name).iterdir()):
            if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp"}:
                images.append(np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)))
                labels.append(label)
    if len(names) < 2 or not images:
        raise SystemExit(f"{folder}: expected at least two class folders with images")
    return np.stack(images), np.array(labels), names


def toy_class_codes(names: list[str], size: int, tint: float = TINT) -> torch.Tensor:
    """(C, 3, size, size): colour tint + shape texture for each "{color} {shape}" class."""
    from core.shapes import dataset
    ys, xs = np.mgrid[0:size, 0:size]
    textures = {"circle": ((xs // 2 + ys // 2) % 2) * 2.0 - 1, "square": (ys // 2 % 2) * 2.0 - 1,
                "triangle": (xs // 2 % 2) * 2.0 - 1}
    codes = []
    for name in names:
        color, shape = name.split()
        colour = np.array(dataset.PALETTE[color], np.float32) / 127.5 - 1
        codes.append(tint * colour[:, None, None] + TEXTURE * textures[shape][None].astype(np.float32))
    return torch.from_numpy(np.stack(codes)).float()


def class_means(names: list[str], size: int, data_images=None, data_labels=None) -> torch.Tensor:
    """(C, 3, size, size) mean image of each class in [−1, 1]: the folder's, or procedural samples'."""
    means = []
    for index, name in enumerate(names):
        if data_images is not None:
            pixels = to_model_pixels(data_images[data_labels == index])
        else:
            rng = np.random.default_rng([SEED, 7, index])
            pixels, _ = shiftddpm.toy_batch(rng, [name], MEAN_IMAGES_PER_CLASS, size)
        means.append(pixels.mean(dim=0))
    return torch.stack(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--variant", default="prior_shift", choices=shiftddpm.VARIANTS)
    parser.add_argument("--out", type=Path, default=shiftddpm.default_folder())
    parser.add_argument("--data", type=Path, default=None, help="a folder of class folders instead of the toy data")
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--run-dir", type=Path, default=config.ROOT / "runs" / "toy-shiftddpm")
    parser.add_argument("--code", default="mean+texture", choices=("mean", "texture", "mean+texture"),
                        help="E(c)'s start: 3 × class mean images, the toy texture code, or both summed")
    parser.add_argument("--init-from", type=Path, help="go on from a saved model (its UNet and E(c); a fresh "
                        "optimiser, EMA from the saved weights, a new warm-up and cosine over --steps)")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--train-shift", action="store_true", help="train E(c) jointly (the paper) instead of fixing it")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (1 when two trainings share 2 cores)")
    parser.add_argument("--eval-only", action="store_true", help="re-measure the model saved in --out (its card)")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    if args.eval_only:  # re-measure the saved model: its training figures stay, its accuracies are new
        write_figures(args.out, json.loads((args.out / "metrics.json").read_text())
                      | accuracy_figures(shiftddpm.ShiftModel.load(args.out)))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data_images = data_labels = None
    if args.data is not None:
        data_images, data_labels, names = folder_dataset(args.data, args.size)
    else:
        names = shiftddpm.toy_class_names()
    model = shiftddpm.ShiftModel(make_unet(args.size), shiftddpm.ShiftPredictor(len(names), 3, args.size), names,
                                 args.variant)
    # start_from multiplies by SHIFT_START_SCALE: the designed code is divided by it to stay as designed
    if args.code == "texture" and args.data is None:
        codes = toy_class_codes(names, args.size) / SHIFT_START_SCALE
    elif args.code == "mean+texture" and args.data is None:
        codes = (class_means(names, args.size) + toy_class_codes(names, args.size, tint=0.0) / SHIFT_START_SCALE)
    else:
        codes = class_means(names, args.size, data_images, data_labels)
    model.predictor.start_from(codes, SHIFT_START_SCALE)
    earlier = None
    if args.init_from is not None:
        saved = shiftddpm.ShiftModel.load(args.init_from)
        if saved.class_names != names or saved.variant != args.variant:
            raise SystemExit(f"{args.init_from}: its classes or variant ({saved.variant}) differ from this run's")
        model.unet.load_state_dict(saved.unet.state_dict()), model.predictor.load_state_dict(saved.predictor.state_dict())
        earlier = json.loads((args.init_from / "metrics.json").read_text())
    model.predictor.requires_grad_(bool(args.train_shift))
    modules = torch.nn.ModuleDict({"unet": model.unet, "predictor": model.predictor}).to(device)
    ema = EMA(modules, EMA_DECAY)
    optimizer = torch.optim.AdamW([p for p in modules.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    ckpt = Checkpoint(args.run_dir / "model.pt", every=250)
    start = 0
    if (state := ckpt.load()) is not None:
        modules.load_state_dict(state["model"]), ema.shadow.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    args.run_dir.mkdir(parents=True, exist_ok=True)
    first_batch = steps_trained(earlier) if earlier else 0  # a continuation draws new batches
    for step in range(start, args.steps):
        rng = np.random.default_rng([SEED, first_batch + step])
        if args.data is not None:
            pick = rng.integers(0, len(data_labels), BATCH)
            x0, labels = to_model_pixels(data_images[pick]), torch.from_numpy(data_labels[pick])
        else:
            x0, labels = shiftddpm.toy_batch(rng, names, BATCH, args.size)
        x0, weights = x0.to(device), torch.nn.functional.one_hot(labels, len(names)).float().to(device)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup_cosine(step, args.steps, warmup=100)
        loss = shiftddpm.training_loss(model, x0, weights, torch.Generator().manual_seed(int(rng.integers(2**31))))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(modules.parameters(), 1.0)
        optimizer.step()
        ema.update(modules, step)
        if step % 50 == 0:
            line = f"step {step} loss {loss.item():.4f} elapsed {ckpt.elapsed():.0f}s"
            print(line, flush=True)
            with open(args.run_dir / "log.txt", "a") as f:
                f.write(line + "\n")
        ckpt.maybe_save(step, {"model": modules.state_dict(), "ema": ema.shadow.state_dict(),
                               "optimizer": optimizer.state_dict()})
    ckpt.maybe_save(args.steps - 1, {"model": modules.state_dict(), "ema": ema.shadow.state_dict(),
                                     "optimizer": optimizer.state_dict()}, force=True)
    trained = shiftddpm.ShiftModel(ema.shadow["unet"].cpu().half(), ema.shadow["predictor"].cpu().half(), names,
                                   args.variant)
    args.out.mkdir(parents=True, exist_ok=True)
    trained.save(args.out)  # fp16 on disk
    reloaded = shiftddpm.ShiftModel.load(args.out)
    if args.data is not None:  # class accuracy needs the shapes reader: toy data only
        print(f"saved {args.out}")
        return
    report = {"variant": args.variant, "code": args.code, "shift_trained": bool(args.train_shift), "steps": args.steps, "batch": BATCH,
              "lr": args.lr, "train_seconds": round(ckpt.elapsed()),
              "cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]))}
    write_figures(args.out, report | accuracy_figures(reloaded) | ({CONTINUED_FROM: earlier} if earlier else {}))


def write_figures(out: Path, report: dict) -> None:
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(out, report)
    print(json.dumps(report, indent=2))


def accuracy_figures(model) -> dict:
    """The card's class accuracies: DDPM-1000 and shifted DDIM-50 at EVAL_SEED, and DDIM-50 per DDIM_SEEDS."""
    return {"ddpm_1000_accuracy": shift_class_accuracy(model, shiftddpm.sample, "DDPM", 1000, EVAL_PER_CLASS, EVAL_SEED),
            "ddim_50_accuracy": shift_class_accuracy(model, shiftddpm.sample, "DDIM", 50, EVAL_PER_CLASS, EVAL_SEED),
            "per_class": EVAL_PER_CLASS} | ddim_figures(model)


def ddim_figures(model) -> dict:
    """Shifted DDIM-50's class accuracy per seed of DDIM_SEEDS (DDIM_PER_CLASS per class) and pooled."""
    per_seed = [shift_class_accuracy(model, shiftddpm.sample, "DDIM", 50, DDIM_PER_CLASS, seed) for seed in DDIM_SEEDS]
    return {"ddim_50_by_seed": dict(zip(map(str, DDIM_SEEDS), per_seed)), "ddim_50_pooled": float(np.mean(per_seed)),
            "ddim_per_class": DDIM_PER_CLASS}


def went_on_from(earlier: dict | None) -> str:
    """The card's words for the saved runs a continuation (--init-from) went on from, newest first."""
    if earlier is None:
        return ""
    return (f", going on from a model trained {earlier['steps']} steps at lr {earlier.get('lr', LR)} "
            f"({earlier['train_seconds']} s; DDPM-1000 {earlier['ddpm_1000_accuracy']:.3f}, DDIM-50 "
            f"{earlier['ddim_50_accuracy']:.3f})" + went_on_from(earlier.get(CONTINUED_FROM)))


def ddim_row(r: dict) -> str:
    if "ddim_50_by_seed" not in r:
        return ""
    seeds = " / ".join(r["ddim_50_by_seed"])
    figures = " / ".join(f"{v:.3f}" for v in r["ddim_50_by_seed"].values())
    return (f"| shifted DDIM (η = 0), 50 steps, {r['ddim_per_class']} per class at seeds {seeds} | {figures} "
            f"(pooled {r['ddim_50_pooled']:.3f}) |\n")


def write_card(out: Path, r: dict) -> None:
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
tags: [shiftddpm, toy, procedural-shapes, diffusion-studio]
---
# toy-shiftddpm

A class-conditional ShiftDDPM (Zhang et al., AAAI 2023) of the procedural shapes, the offline
default of Diffusion Studio's `/shiftddpm` tab, trained from scratch on 2 CPU cores by
`scripts/train_toy_shiftddpm.py` (seed {SEED}).

- **Data**: 32×32 images of one filled circle, square or triangle in one of six colours on a
  white, black or gray background (`core/shapes/dataset.py`); 18 classes "{{color}} {{shape}}".
- **Model**: `unet/` is an unconditional UNet2DModel, channels (16, 32, 64): it takes no class
  input. `shift_predictor.safetensors` is E(c) (class embedding → MLP → two transposed convs →
  3×32×32) plus a per-class image: {CODE_WORDS[r['code']]}. Variant **{r['variant']}**;
  linear β 1e-4…0.02 over 1000 steps; ε-loss with ε̂ = ε_θ − k_t·E(c)/√(1−ᾱ_t); EMA {EMA_DECAY}.
  {"UNet and E(c) trained jointly." if r['shift_trained'] else "E(c) fixed at its data-informed start, the UNet trained (joint training collapsed E on our budget: see the script)."}
- **Training**: {r['steps']} steps of batch {r['batch']}, AdamW lr {r.get('lr', LR)} (warm-up, cosine);
  {r.get('cpu_seconds', r['train_seconds'])} s of CPU{went_on_from(r.get(CONTINUED_FROM))}.
- **Weights**: fp16 safetensors.

## Metrics (colour and shape read from pixels, {r['per_class']} samples per class)

| sampler | class right |
|---|---|
| shifted DDPM, 1000 steps | {r['ddpm_1000_accuracy']:.3f} |
| shifted DDIM (η = 0), 50 steps | {r['ddim_50_accuracy']:.3f} |
{ddim_row(r)}""")


if __name__ == "__main__":
    main()
