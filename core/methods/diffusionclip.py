"""DiffusionCLIP (Kim, Kwon & Ye, CVPR 2022) with a library of LoRA directions.

Static: DDIM-invert the image without a text condition to a small t0 (x_t0 keeps its layout).
Train: decode x_t0 with a few DDIM steps *through* the model being tuned and minimise
λ_clip·(−log((2 − L_dir)/2)) + λ_l1·‖x̂ − x‖₁ + λ_id·(1 − cos(E(x̂), E(x))), ΔI/ΔT the CLIP image/text
feature differences (edited − original, target − source), L_dir = 1 − cos(ΔI, ΔT). Where the paper tunes the whole model
once per direction, we tune a LoRA (peft) per direction and save it to a direction library, so
`edit` can apply several saved directions at once, each with its own weight; all weights 0 is the
plain inversion's reconstruction.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import config
from ..denoisers import TextGuided
from ..directions import DirectionLibrary  # noqa: F401 (the method's API)
from ..guidance import clip_image_features, directional_loss
from ..inversion import DDIMSchedule, ddim_invert
from ..sampling import decode_pixels, denoise, encode_images, encode_prompts, to_model_pixels
from ..sampling import pixels_to_uint8 as to_uint8
from ..training.lora import lora_config
from ..training.precision import MixedPrecision
from ..validate import check_prompt, check_range

D = config.DiffusionCLIPDefaults
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")


@dataclass
class DiffusionCLIPParams:
    source_text: str = D.source_text
    target_text: str = D.target_text
    t0: int = D.t0
    inversion_steps: int = D.inversion_steps
    train_steps: int = D.train_steps
    iterations: int = D.iterations
    lr: float = D.lr
    lambda_clip: float = D.lambda_clip
    lambda_l1: float = D.lambda_l1
    lambda_id: float = D.lambda_id
    lora_rank: int = D.lora_rank
    direction_name: str = ""

    def check(self) -> None:
        check_prompt(self.source_text, "source_text"), check_prompt(self.target_text, "target_text")
        check_range("t0", self.t0, 1, 999)  # of the model's 1000 training steps
        check_range("inversion_steps", self.inversion_steps, 2, config.MAX_STEPS)
        check_range("train_steps", self.train_steps, 1, D.max_train_steps)
        check_range("iterations", self.iterations, 1, D.max_iterations)
        check_range("lr", self.lr, D.min_lr, D.max_lr)
        for name in ("lambda_clip", "lambda_l1", "lambda_id"):
            check_range(name, getattr(self, name), 0.0, D.max_lambda)
        if self.direction_name and not NAME.fullmatch(self.direction_name):
            raise ValueError("direction_name may use letters, digits, '.', '_' and '-' (at most 64)")


def schedule(scheduler, t0: int, steps: int) -> DDIMSchedule:
    """DDIM steps from t0 down to 0 (`steps` of them), the clean end at ᾱ = 1 (as the official code)."""
    timesteps = np.linspace(0, int(t0), int(steps)).round().astype(int)
    timesteps = sorted({int(t) for t in timesteps}, reverse=True)
    return DDIMSchedule(scheduler.alphas_cumprod.float(), timesteps, 1.0, scheduler.config.get("prediction_type", "epsilon"))


def unconditional(pipe) -> torch.Tensor:
    return encode_prompts(pipe, [""])


@torch.no_grad()
def invert(pipe, images: np.ndarray, t0: int, steps: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) → the latents x_t0 of deterministic DDIM inversion, no text condition."""
    latents = encode_images(pipe, images)
    context = unconditional(pipe).expand(latents.shape[0], -1, -1)
    return ddim_invert(pipe.unet, latents, context, schedule(pipe.scheduler, t0, steps))[-1]


def generate(pipe, x_t0: torch.Tensor, t0: int, steps: int) -> torch.Tensor:
    """x_t0 → decoded pixels in [-1, 1] by DDIM, differentiable (gradients reach any LoRA)."""
    plan = schedule(pipe.scheduler, t0, steps)
    context = unconditional(pipe).expand(x_t0.shape[0], -1, -1)
    x = denoise(TextGuided(pipe.unet, context), plan, x_t0).latents
    return decode_pixels(pipe, x).float()




def _remove_adapters(unet) -> None:
    if getattr(unet, "peft_config", None):
        unet.delete_adapters(list(unet.peft_config))


# ---- train -----------------------------------------------------------------------------------

@dataclass
class TrainResult:
    name: str
    original: np.ndarray  # uint8 (B, H, W, 3)
    reconstruction: np.ndarray  # the inversion decoded by the untouched model
    edited: np.ndarray
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train(pipe, clip, images: np.ndarray, params: DiffusionCLIPParams, library: DirectionLibrary | None = None,
          on_step=None) -> TrainResult:
    """Tune a LoRA on `images` (uint8 (B, H, W, 3)) so that decoding their x_t0 moves source → target."""
    params.check()
    clip_model, tokenizer, inputs = clip
    started = time.time()
    _remove_adapters(pipe.unet)
    x_t0 = invert(pipe, images, params.t0, params.inversion_steps)
    original = to_model_pixels(images).to(pipe.unet.device)
    with torch.no_grad():
        reconstruction = to_uint8(generate(pipe, x_t0, params.t0, params.train_steps))
        original_features = clip_image_features(clip_model, inputs, original)
    name = params.direction_name or "direction"
    # the LoRA's gaussian start from its own seed, not from the process's random stream: the same request
    # trains the same direction whatever ran before it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe.unet.add_adapter(lora_config(int(params.lora_rank), LORA_TARGETS), adapter_name=name)
    trainable = [p for n, p in pipe.unet.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    precision = MixedPrecision(trainable)  # float32 masters of a float16 LoRA
    optimizer = torch.optim.Adam(precision.masters, lr=float(params.lr))
    losses = []
    try:
        for iteration in range(int(params.iterations)):
            edited = generate(pipe, x_t0, params.t0, params.train_steps)
            direction = directional_loss(clip_model, inputs, tokenizer, edited, original, params.source_text,
                                         params.target_text, D.templates)
            loss = params.lambda_clip * -torch.log((2 - direction) / 2)  # the official code's form of L_dir
            if params.lambda_l1:
                loss = loss + params.lambda_l1 * (edited - original).abs().mean()
            if params.lambda_id:
                identity = F.cosine_similarity(clip_image_features(clip_model, inputs, edited), original_features, dim=-1)
                loss = loss + params.lambda_id * (1 - identity).mean()
            losses.append(precision.minimise(optimizer, loss))
            if on_step is not None:
                on_step(iteration + 1, int(params.iterations))
        with torch.no_grad():
            edited = to_uint8(generate(pipe, x_t0, params.t0, params.train_steps))
        if library is not None and params.direction_name:
            from peft.utils import get_peft_model_state_dict
            weights = get_peft_model_state_dict(pipe.unet, adapter_name=name)
            library.save(params.direction_name, weights, {
                "source_text": params.source_text, "target_text": params.target_text, "t0": params.t0,
                "lora_rank": params.lora_rank, "iterations": params.iterations, "lr": params.lr,
                "train_steps": params.train_steps, "lambda_clip": params.lambda_clip, "lambda_l1": params.lambda_l1,
                "lambda_id": params.lambda_id, "images": int(len(images)), "seconds": round(time.time() - started, 1)})
    finally:
        for p in trainable:
            p.requires_grad_(False)
        _remove_adapters(pipe.unet)
    return TrainResult(name, images, reconstruction, edited, losses, time.time() - started)


# ---- edit with several directions ----------------------------------------------------------

@torch.no_grad()
def edit(pipe, images: np.ndarray, library: DirectionLibrary, directions: dict[str, float], t0: int = D.t0,
         inversion_steps: int = D.inversion_steps, steps: int = D.edit_steps) -> np.ndarray:
    """Invert once, then decode with every named direction's LoRA at its weight (0: left out)."""
    check_range("t0", t0, 1, 999)
    for name, weight in directions.items():
        check_range(f"the weight of {name!r}", weight, -D.max_direction_weight, D.max_direction_weight)
    x_t0 = invert(pipe, images, t0, inversion_steps)
    active = {name: float(w) for name, w in directions.items() if float(w) != 0.0}
    _remove_adapters(pipe.unet)
    try:
        for name in active:
            weights, metadata = library.load(name)
            pipe.unet.add_adapter(lora_config(int(metadata["lora_rank"]), LORA_TARGETS), adapter_name=name)
            from peft.utils import set_peft_model_state_dict
            set_peft_model_state_dict(pipe.unet, weights, adapter_name=name)
        if active:
            pipe.unet.set_adapters(list(active), weights=list(active.values()))
        return to_uint8(generate(pipe, x_t0, t0, steps))
    finally:
        _remove_adapters(pipe.unet)


def parse_directions(text: str) -> dict[str, float]:
    """"colour: 1, size: 0.5" → {"colour": 1.0, "size": 0.5}; a bare name has weight 1."""
    directions = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition(":")
        try:
            directions[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"directions: {part!r} is not 'name: weight'") from None
    if not directions:
        raise ValueError("directions is empty: give 'name: weight, …' of saved directions")
    return directions
