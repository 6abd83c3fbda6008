"""Train `toy-sd`: a StableDiffusionPipeline-format text-to-image model of the procedural shapes.

    python scripts/train_toy_sd.py [--unet-steps 5000] [--out assets/models/toy-sd]
    python scripts/train_toy_sd.py --export-only   # write the pipeline from the last checkpoint

Stages, each resumable from runs/toy-sd/<stage>.pt with a fixed seed, on the CPU:
1. VAE: AutoencoderKL 64×64×3 → 16×16×4, MSE + small KL, in fp32 (`--vae-precision bf16`: faster, worse).
2. Latent pool: a fixed set of images encoded once (the VAE is frozen afterwards).
3. UNet + text encoder: ε-prediction with min-SNR weighting, 10% empty captions for
   classifier-free guidance; the text encoder starts from toy-clip's text tower, as SD's starts
   from CLIP's.
4. Localise: both go on training on freshly drawn scenes with an added cross-attention
   localisation loss (core/training/localisation.py), so that each colour/shape word's map
   covers its object, as Prompt-to-Prompt needs. EMA weights are exported.
`--base FOLDER` starts stage 4 from an exported pipeline instead of running stages 1–3.
Needs `assets/models/toy-clip` (scripts/train_toy_clip.py) first.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPModel, CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core import config  # noqa: E402
from core.shapes import dataset, metrics  # noqa: E402
from core.sampling import to_model_pixels  # noqa: E402
from core.tokenizer import clip_tokenizer  # noqa: E402
from core.attention import install  # noqa: E402
from core.training.localisation import (CrossAttentionRecorder, batch_targets, localisation_loss,  # noqa: E402
                                        routing_loss, word_share)
from core.training.loop import EMA, Checkpoint, warmup_cosine  # noqa: E402

SEED = 0
VAE_STEPS, VAE_BATCH, VAE_LR = 1000, 32, 2e-3
# fp32, as the shipped VAE was trained (its reconstruction error matches an fp32 run's, 0.0080 vs 0.0079);
# bf16 autocast is ~1.6× faster here but reconstructs worse (0.0140), and UNets on its latents placed
# two objects at 0.67–0.71 against 0.94 (the card's "Fresh re-runs")
VAE_PRECISIONS = ("fp32", "bf16")
POOL_SIZE = 40_000
UNET_BATCH, UNET_LR, TEXT_LR = 64, 6e-4, 1.5e-4
CAPTION_DROPOUT = 0.1
MIN_SNR_GAMMA = 5.0
EMA_DECAY = 0.999
EVAL_EVERY = 1000
LOCALISE_STEPS, LOCALISE_BATCH = 1500, 64
LOCALISE_UNET_LR, LOCALISE_TEXT_LR = 2e-4, 5e-5
LOCALISE_WEIGHT = 0.01  # × −log(share inside); the ε loss is ~0.01 by then, this starts at ~0.012
ROUTING_WEIGHT = 0.01  # × −log(a pixel's mass on BOS + the words naming it); starts at ~0.017
LOCALISE_QUERIES = (256, 64)  # the 16×16 and 8×8 cross-attention layers (P2P reads 16×16)
EVAL_STEPS, EVAL_GUIDANCE = 25, 6.0


def make_vae() -> AutoencoderKL:
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 64),
                        layers_per_block=1, latent_channels=4, norm_num_groups=16, sample_size=config.TOY_IMAGE_SIZE)
    # start with a tight posterior: a wide one drowns small colour differences in sampling noise
    with torch.no_grad():
        vae.quant_conv.weight[4:] *= 0.0
        vae.quant_conv.bias[4:] = -6.0
    return vae


def make_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=config.TOY_IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=128, attention_head_dim=(2, 4, 8), norm_num_groups=16)


def make_scheduler() -> DDIMScheduler:
    # SD1.5's training schedule
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def text_encoder_from_clip(clip_dir: Path) -> CLIPTextModel:
    clip = CLIPModel.from_pretrained(clip_dir, dtype=torch.float32)
    text = CLIPTextModel(CLIPTextConfig(**clip.config.text_config.to_dict()))
    prefix = "text_model."  # transformers 5's CLIPTextModel holds the tower's modules directly
    weights = {k[len(prefix):]: v for k, v in clip.state_dict().items() if k.startswith(prefix)}
    text.load_state_dict(weights)
    return text



def train_vae(run_dir: Path, steps: int, precision: str = "fp32") -> AutoencoderKL:
    vae = make_vae()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=VAE_LR, weight_decay=0.0)
    ckpt = Checkpoint(run_dir / "vae.pt", every=100)
    start = 0
    if (state := ckpt.load()) is not None:
        vae.load_state_dict(state["model"]), optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    for step in range(start, steps):
        images, _ = dataset.sample_batch(np.random.default_rng([SEED, 1, step]), VAE_BATCH)
        x = to_model_pixels(images)
        for group in optimizer.param_groups:
            group["lr"] = VAE_LR * warmup_cosine(step, steps, warmup=50)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(recon.float(), x) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            log(run_dir, f"vae step {step} loss {loss.item():.5f} elapsed {ckpt.elapsed():.0f}s")
        ckpt.maybe_save(step, {"model": vae.state_dict(), "optimizer": optimizer.state_dict()})
    ckpt.maybe_save(steps - 1, {"model": vae.state_dict(), "optimizer": optimizer.state_dict()}, force=True)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def latent_pool(vae: AutoencoderKL, run_dir: Path, size: int):
    path = run_dir / "pool.pt"
    if path.exists():
        return torch.load(path)
    rng = np.random.default_rng([SEED, 2])
    latents, captions = [], []
    for _ in range(max(1, size // 250)):
        images, caps = dataset.sample_batch(rng, 250)
        latents.append(vae.encode(to_model_pixels(images)).latent_dist.mean)
        captions += caps
    latents = torch.cat(latents)
    pool = {"latents": latents, "captions": captions, "scaling_factor": float(1.0 / latents.std())}
    torch.save(pool, path)
    return pool


def snr_weights(scheduler: DDIMScheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Min-SNR-γ loss weights for ε-prediction (Hang et al. 2023): min(SNR, γ)/SNR."""
    alphas = scheduler.alphas_cumprod[timesteps]
    snr = alphas / (1 - alphas)
    return torch.clamp(snr, max=MIN_SNR_GAMMA) / snr


def build_pipeline(unet, text_encoder, vae, tokenizer, scaling_factor: float) -> StableDiffusionPipeline:
    vae.register_to_config(scaling_factor=scaling_factor)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=make_scheduler(), safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)


@torch.no_grad()
def evaluate(pipe: StableDiffusionPipeline, seeds=(0, 1), two_object_n: int = 24) -> dict:
    """Colour/shape accuracy over every colour × shape on white and black, and left/right on pairs."""
    cases = metrics.single_object_prompts()
    results = {}
    images, expected = [], []
    for seed in seeds:
        prompts = [f"a {c} {s} on a {b} background" for c, s, b in cases]
        out = pipe(prompts, num_inference_steps=EVAL_STEPS, guidance_scale=EVAL_GUIDANCE, output_type="np",
                   generator=torch.Generator().manual_seed(seed)).images
        images += list((out * 255).round().astype(np.uint8))
        expected += cases
    results.update(metrics.grade_single(images, expected))
    pairs = metrics.two_object_cases(np.random.default_rng(7), two_object_n)
    out = pipe([metrics.two_object_prompt(c) for c in pairs], num_inference_steps=EVAL_STEPS,
               guidance_scale=EVAL_GUIDANCE, output_type="np", generator=torch.Generator().manual_seed(0)).images
    results.update({"two_object_" + k: v for k, v in metrics.grade_two_objects((out * 255).round().astype(np.uint8), pairs).items()})
    return results


def log(run_dir: Path, line: str) -> None:
    print(line, flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.txt", "a") as f:
        f.write(line + "\n")


class JointTraining:
    """UNet + text encoder, their EMAs and one AdamW: the state stages 3 and 4 checkpoint and resume."""

    def __init__(self, unet, text_encoder, unet_lr: float, text_lr: float, path: Path, every: int, run_dir: Path):
        self.unet, self.text_encoder = unet, text_encoder
        self.ema_unet, self.ema_text = EMA(unet, EMA_DECAY), EMA(text_encoder, EMA_DECAY)
        self.optimizer = torch.optim.AdamW([
            {"params": unet.parameters(), "lr": unet_lr, "weight_decay": 0.01, "base_lr": unet_lr},
            {"params": text_encoder.parameters(), "lr": text_lr, "weight_decay": 0.0, "base_lr": text_lr},
        ])
        self.ckpt = Checkpoint(path, every=every)
        self.start = 0
        if (saved := self.ckpt.load()) is not None:
            unet.load_state_dict(saved["unet"]), text_encoder.load_state_dict(saved["text"])
            self.ema_unet.shadow.load_state_dict(saved["ema_unet"]), self.ema_text.shadow.load_state_dict(saved["ema_text"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.start = saved["step"]
            log(run_dir, f"resumed {path.stem} at step {self.start}")

    def snapshot(self) -> dict:
        return {"unet": self.unet.state_dict(), "text": self.text_encoder.state_dict(),
                "ema_unet": self.ema_unet.shadow.state_dict(), "ema_text": self.ema_text.shadow.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def step(self, loss: torch.Tensor, step: int, total_steps: int, warmup: int) -> None:
        """One optimiser step at the warm-up/cosine rate, gradients clipped to 1, EMAs updated."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * warmup_cosine(step, total_steps, warmup=warmup)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.unet.parameters()) + list(self.text_encoder.parameters()), 1.0)
        self.optimizer.step()
        self.ema_unet.update(self.unet, step), self.ema_text.update(self.text_encoder, step)
        self.ckpt.maybe_save(step, self.snapshot())


def train_unet(run_dir: Path, pool: dict, vae, tokenizer, clip_dir: Path, total_steps: int, export_only: bool):
    unet, text_encoder = make_unet(), text_encoder_from_clip(clip_dir)
    training = JointTraining(unet, text_encoder, UNET_LR, TEXT_LR, run_dir / "unet.pt", 250, run_dir)
    scheduler, ckpt, start = make_scheduler(), training.ckpt, training.start

    latents, captions = pool["latents"] * pool["scaling_factor"], pool["captions"]
    history = []
    for step in range(start, 0 if export_only else total_steps):
        rng = np.random.default_rng([SEED, 3, step])
        index = rng.integers(0, len(captions), UNET_BATCH)
        x0 = latents[index]
        caps = ["" if rng.random() < CAPTION_DROPOUT else captions[i] for i in index]
        ids = tokenizer(caps, padding="max_length", truncation=True, return_tensors="pt").input_ids
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (UNET_BATCH,), generator=generator)
        noisy = scheduler.add_noise(x0, noise, t)
        context = text_encoder(ids).last_hidden_state
        pred = unet(noisy, t, encoder_hidden_states=context).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_sample * snr_weights(scheduler, t)).mean()
        training.step(loss, step, total_steps, warmup=200)
        if step % 50 == 0:
            log(run_dir, f"unet step {step} loss {loss.item():.4f} elapsed {ckpt.elapsed():.0f}s")
        if (step + 1) % EVAL_EVERY == 0:
            pipe = build_pipeline(training.ema_unet.shadow, training.ema_text.shadow, vae, tokenizer, pool["scaling_factor"])
            result = evaluate(pipe, seeds=(0,), two_object_n=12)
            history.append({"step": step + 1, **result})
            log(run_dir, f"eval step {step + 1}: {json.dumps(result)}")
    if not export_only:
        ckpt.maybe_save(total_steps - 1, training.snapshot(), force=True)
    seconds = ckpt.elapsed_before if export_only else ckpt.elapsed()  # export time is not training time
    return training.ema_unet.shadow, training.ema_text.shadow, seconds, history


def scene_batch(rng: np.random.Generator, n: int):
    scenes = [dataset.random_scene(rng) for _ in range(n)]
    return scenes, [s.caption() for s in scenes], np.stack([dataset.render(s) for s in scenes])


def train_localise(run_dir: Path, unet, text_encoder, vae, tokenizer, scaling_factor: float, total_steps: int):
    """Stage 4: the ε loss plus LOCALISE_WEIGHT × the localisation loss on fresh scenes."""
    unet, text_encoder = unet.train().requires_grad_(True), text_encoder.train().requires_grad_(True)
    training = JointTraining(unet, text_encoder, LOCALISE_UNET_LR, LOCALISE_TEXT_LR, run_dir / "localise.pt", 100,
                             run_dir)
    scheduler, state, ckpt = make_scheduler(), install(unet), training.ckpt

    num_tokens = tokenizer.model_max_length
    for step in range(training.start, total_steps):
        rng = np.random.default_rng([SEED, 4, step])
        scenes, captions, images = scene_batch(rng, LOCALISE_BATCH)
        masks, weights = batch_targets(scenes, captions, tokenizer, num_tokens)
        dropped = rng.random(LOCALISE_BATCH) < CAPTION_DROPOUT
        captions = ["" if d else c for c, d in zip(captions, dropped)]
        weights[torch.from_numpy(dropped)] = 0.0  # an empty caption grounds nothing
        with torch.no_grad():
            x0 = vae.encode(to_model_pixels(images)).latent_dist.mean * scaling_factor
        ids = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt").input_ids
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (LOCALISE_BATCH,), generator=generator)
        recorder = CrossAttentionRecorder(LOCALISE_QUERIES)
        with state.use([recorder]):
            pred = unet(scheduler.add_noise(x0, noise, t), t,
                        encoder_hidden_states=text_encoder(ids).last_hidden_state).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        eps_loss = (per_sample * snr_weights(scheduler, t)).mean()
        loc_loss = localisation_loss(recorder.maps, masks, weights)
        route_loss = routing_loss(recorder.maps, masks, weights)
        loss = eps_loss + LOCALISE_WEIGHT * loc_loss + ROUTING_WEIGHT * route_loss
        training.step(loss, step, total_steps, warmup=50)
        if step % 25 == 0:
            share = word_share([m.detach() for m in recorder.maps], masks, weights)
            log(run_dir, f"localise step {step} eps {eps_loss.item():.4f} loc {loc_loss.item():.3f} "
                         f"route {route_loss.item():.3f} "
                         f"share {share:.3f} elapsed {ckpt.elapsed():.0f}s")
    ckpt.maybe_save(total_steps - 1, training.snapshot(), force=True)
    return training.ema_unet.shadow, training.ema_text.shadow, ckpt.elapsed()


@torch.no_grad()
def measure_localisation(pipe: StableDiffusionPipeline, n: int = 48, timesteps=(200, 500, 800)) -> float:
    """Mean share of a grounded word's 16×16 attention inside its object, on fresh scenes."""
    scenes, captions, images = scene_batch(np.random.default_rng([SEED, 5]), n)
    masks, weights = batch_targets(scenes, captions, pipe.tokenizer, pipe.tokenizer.model_max_length)
    x0 = pipe.vae.encode(to_model_pixels(images)).latent_dist.mean * pipe.vae.config.scaling_factor
    context = pipe.text_encoder(pipe.tokenizer(captions, padding="max_length", return_tensors="pt").input_ids)[0]
    state, shares = install(pipe.unet), []
    for t in timesteps:
        recorder = CrossAttentionRecorder((LOCALISE_QUERIES[0],))
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        steps = torch.full((n,), t)
        with state.use([recorder]):
            pipe.unet(pipe.scheduler.add_noise(x0, noise, steps), steps, encoder_hidden_states=context)
        shares.append(word_share(recorder.maps, masks, weights))
    return float(np.mean(shares))


def load_base(folder: Path):
    """An exported toy-sd in fp32, and the stage 1–3 figures from its metrics.json."""
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    previous = json.loads((Path(folder) / "metrics.json").read_text())
    keep = ("vae_precision", "vae_train_seconds", "unet_steps", "unet_train_seconds", "history")
    return (pipe.vae.eval().requires_grad_(False), pipe.unet, pipe.text_encoder,
            float(pipe.vae.config.scaling_factor), {k: previous[k] for k in keep if k in previous})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unet-steps", type=int, default=5000)
    parser.add_argument("--vae-steps", type=int, default=VAE_STEPS)
    parser.add_argument("--vae-precision", choices=VAE_PRECISIONS, default="fp32")
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE)
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR / "toy-sd")
    parser.add_argument("--clip", type=Path, default=config.MODELS_DIR / "toy-clip")
    parser.add_argument("--run-dir", type=Path, default=config.ROOT / "runs" / "toy-sd")
    parser.add_argument("--localise-steps", type=int, default=LOCALISE_STEPS)
    parser.add_argument("--base", type=Path, default=None, help="run stage 4 only, from this exported pipeline")
    parser.add_argument("--export-only", action="store_true", help="export the last checkpoint without training on")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    tokenizer = clip_tokenizer(config.TOY_TOKENIZER_LENGTH)
    if args.base is None:
        vae = train_vae(args.run_dir, args.vae_steps, args.vae_precision)
        pool = latent_pool(vae, args.run_dir, args.pool_size)
        unet, text_encoder, unet_seconds, history = train_unet(args.run_dir, pool, vae, tokenizer, args.clip,
                                                               args.unet_steps, args.export_only)
        scaling_factor = pool["scaling_factor"]
        base = {"vae_precision": args.vae_precision,
                "vae_train_seconds": round(torch.load(args.run_dir / "vae.pt", weights_only=False)["elapsed"]),
                "unet_steps": torch.load(args.run_dir / "unet.pt", weights_only=False)["step"],
                "unet_train_seconds": round(unet_seconds), "history": history}
    else:  # stage 4 on top of an exported pipeline; its card's figures for stages 1–3 carry over
        vae, unet, text_encoder, scaling_factor, base = load_base(args.base)
    unet, text_encoder, localise_seconds = train_localise(args.run_dir, unet, text_encoder, vae, tokenizer,
                                                          scaling_factor, args.localise_steps)
    pipe = build_pipeline(unet, text_encoder, vae, tokenizer, scaling_factor)
    pipe.to(torch.float16).save_pretrained(args.out, safe_serialization=True)  # fp16 on disk: small
    reloaded = StableDiffusionPipeline.from_pretrained(args.out, torch_dtype=torch.float32)
    result = evaluate(reloaded, seeds=(100, 101), two_object_n=48)
    report = {**result, **base, "localise_steps": args.localise_steps, "localise_train_seconds": round(localise_seconds),
              "attention_share": measure_localisation(reloaded), "scaling_factor": scaling_factor,
              "eval_steps": EVAL_STEPS, "eval_guidance": EVAL_GUIDANCE}
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    write_card(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


def write_card(out: Path, r: dict) -> None:
    (out / "README.md").write_text(f"""---
license: mit
library_name: diffusers
pipeline_tag: text-to-image
tags: [stable-diffusion, toy, procedural-shapes, diffusion-studio]
---
# toy-sd

A StableDiffusionPipeline-format text-to-image model of coloured shapes, the offline default of
Diffusion Studio, trained from scratch on 2 CPU cores by `scripts/train_toy_sd.py` (seed {SEED}).

- **Data**: `core/shapes/dataset.py`: 64×64 images of one or two filled circles, squares or
  triangles in six colours on a white, black or gray background, captioned
  `a {{color}} {{shape}} on a {{background}} background` or
  `a {{color}} {{shape}} and a {{color}} {{shape}} on a {{background}} background` (left first).
- **VAE**: AutoencoderKL 64×64×3 → 16×16×4, channels (16, 32, 64); {VAE_STEPS} steps of batch
  {VAE_BATCH} in {r.get('vae_precision', 'fp32')}, MSE + 1e-6·KL; scaling factor {r['scaling_factor']:.4f} (1/std of the latents).
- **Text encoder**: CLIPTextModel (3 layers, width 128) with the real CLIP BPE tokenizer,
  {config.TOY_TOKENIZER_LENGTH} tokens; initialised from `toy-clip`'s text tower, fine-tuned jointly.
- **UNet**: UNet2DConditionModel, channels (32, 64, 128), cross-attention at 16×16 and 8×8 and
  in the 4×4 middle block; ε-prediction, SD1.5's scaled-linear schedule, min-SNR-{MIN_SNR_GAMMA:g}
  weighting, {int(CAPTION_DROPOUT * 100)}% empty captions (classifier-free guidance), EMA {EMA_DECAY}.
  {r['unet_steps']} steps of batch {UNET_BATCH} on a pool of {POOL_SIZE} pre-encoded images.
- **Localisation stage**: {r['localise_steps']} more steps of batch {LOCALISE_BATCH} on fresh scenes with two
  auxiliary cross-attention losses from the scenes' object masks (`core/training/localisation.py`):
  {LOCALISE_WEIGHT}·(−log share of a colour/shape/background word's attention inside its region) and
  {ROUTING_WEIGHT}·(−log mass a pixel gives to BOS + the words naming it), so that word maps cover their
  objects and pixels read their content from those words, as Prompt-to-Prompt assumes.
- **CPU time**: VAE {r['vae_train_seconds']} s, UNet + text encoder {r['unet_train_seconds']} s,
  localisation {r['localise_train_seconds']} s.
- **Weights**: fp16 safetensors.

## Metrics

Measured by the trainer on the reloaded pipeline ({r['eval_steps']} DDIM steps, guidance
{r['eval_guidance']}, seeds 100 and 101) with the pixel reader `core/shapes/reader.py`:

| | |
|---|---|
| colour right (6 colours × 3 shapes × white/black, {r['n']} images) | {r['color_accuracy']:.3f} |
| shape right (same images) | {r['shape_accuracy']:.3f} |
| two-object prompts with the named colours left and right ({r['two_object_n']} images) | {r['two_object_left_right_accuracy']:.3f} |
| share of a grounded word's 16×16 attention inside its region (48 fresh scenes, t = 200/500/800; uniform ≈ 0.31) | {r['attention_share']:.3f} |

`metrics.json` beside this card holds these figures and the accuracy during training.
""")


if __name__ == "__main__":
    main()
