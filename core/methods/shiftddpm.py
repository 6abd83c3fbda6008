"""ShiftDDPM (Zhang et al., AAAI 2023): the condition enters only through the forward process.

q(x_t | x_0, c) = N(√ᾱ_t·x_0 + k_t·E(c), (1−ᾱ_t)·I): a learned per-class image E(c) shifts the
diffusion trajectory, and the UNet takes no condition at all. With y_t = x_t − k_t·E(c) the
process is a plain DDPM on y, so both samplers here are the textbook DDPM/DDIM steps on y with
the shift added back: this is how we get the shifted DDIM that the official code lacks.
The network learns ε_θ(x_t, t) ≈ ε + k_t·E(c)/√(1−ᾱ_t) (ε̂ = ε_θ − k_t·E(c)/√(1−ᾱ_t)).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .. import config
from ..sampling import denoise
from ..sampling import pixels_to_uint8 as to_uint8
from ..validate import check_finite, check_range

D = config.ShiftDDPMDefaults

VARIANTS = ("quadratic_shift", "prior_shift", "data_normalization")
SAMPLERS = ("DDPM", "DDIM")


def shift_coefficients(alphas_cumprod: torch.Tensor, variant: str) -> torch.Tensor:
    """k_t for each training step t (paper §3.3; quadratic is every official config's default)."""
    root = alphas_cumprod.sqrt()
    if variant == "quadratic_shift":
        return root * (1 - root)  # zero at both ends, the condition acts mid-trajectory
    if variant == "prior_shift":
        return 1 - root  # the prior becomes N(E(c), I)
    if variant == "data_normalization":
        return -root  # diffuse x_0 − E(c)
    raise ValueError(f"unknown ShiftDDPM variant {variant!r}; expected one of {VARIANTS}")


def linear_alphas_cumprod(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


class ShiftPredictor(torch.nn.Module):
    """E(c): class → an image-shaped shift (as the official MNIST predictor: MLP, then upsampling).

    Takes class *weights* (B, num_classes), so a mix of two classes interpolates the shift. Beside the
    MLP branch sits one image per class (`base`), which the trainer starts at a multiple of the class's
    mean image: a random E(c) is only ~0.15 per pixel apart between classes, too faint for the UNet's
    local convolutions to read the class, and the network learned to cancel it instead."""

    def __init__(self, num_classes: int, channels: int = 3, size: int = 32, width: int = 64):
        super().__init__()
        self.num_classes, self.channels, self.size, self.width = num_classes, channels, size, width
        # N(0, 1) like nn.Embedding: a tiny init lets E(c) collapse to one class-independent shift
        self.embedding = torch.nn.Parameter(torch.randn(num_classes, width))
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, width * (size // 4) ** 2))
        self.up = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.ConvTranspose2d(width // 2, channels, 4, stride=2, padding=1))
        self.base = torch.nn.Parameter(torch.zeros(num_classes, channels, size, size))

    def forward(self, class_weights: torch.Tensor) -> torch.Tensor:
        class_weights = class_weights.to(self.embedding.dtype)
        hidden = self.mlp(class_weights @ self.embedding)
        base = (class_weights @ self.base.flatten(1)).view(-1, self.channels, self.size, self.size)
        return self.up(hidden.view(-1, self.width, self.size // 4, self.size // 4)) + base

    @torch.no_grad()
    def start_from(self, class_images: torch.Tensor, scale: float) -> None:
        """Set the per-class images to `scale` × (C, channels, H, W) class means (before training)."""
        self.base.copy_(scale * class_images.to(self.base))

    def config(self) -> dict:
        return {"num_classes": self.num_classes, "channels": self.channels, "size": self.size, "width": self.width}


@dataclass
class ShiftModel:
    """A trained ShiftDDPM: an unconditional UNet2DModel, E(c), the class names and the schedule."""
    unet: torch.nn.Module
    predictor: ShiftPredictor
    class_names: list[str]
    variant: str
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        self.alphas_cumprod = linear_alphas_cumprod(self.num_train_timesteps, self.beta_start, self.beta_end)
        self.shifts = shift_coefficients(self.alphas_cumprod, self.variant)

    @property
    def image_size(self) -> int:
        return self.predictor.size

    def class_weights(self, class_name: str, other: str | None = None, mix: float = 0.0) -> torch.Tensor:
        """One-hot (1, C) for `class_name`, or (1−mix, mix) between it and `other`."""
        check_range("mix", mix, 0.0, 1.0)
        weights = torch.zeros(1, len(self.class_names))
        weights[0, self.class_index(class_name)] += 1.0 - (mix if other else 0.0)
        if other:
            weights[0, self.class_index(other)] += mix
        return weights

    def class_index(self, name: str) -> int:
        if name not in self.class_names:
            raise ValueError(f"unknown class {name!r}; this model knows {', '.join(self.class_names)}")
        return self.class_names.index(name)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        check_finite(self.unet.state_dict(), "the UNet"), check_finite(self.predictor.state_dict(), "the shift predictor")
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.predictor.state_dict().items()},
                  str(folder / "shift_predictor.safetensors"))
        (folder / "shift_config.json").write_text(json.dumps({
            "class_names": self.class_names, "variant": self.variant, "predictor": self.predictor.config(),
            "num_train_timesteps": self.num_train_timesteps, "beta_start": self.beta_start,
            "beta_end": self.beta_end}, indent=2))

    @classmethod
    def load(cls, folder: Path, dtype=torch.float32) -> "ShiftModel":
        from diffusers import UNet2DModel
        folder = Path(folder)
        settings = json.loads((folder / "shift_config.json").read_text())
        predictor = ShiftPredictor(**settings["predictor"])
        predictor.load_state_dict(load_file(str(folder / "shift_predictor.safetensors")))
        unet = UNet2DModel.from_pretrained(folder / "unet", use_safetensors=True)
        # a convolution-only UNet: channels-last weights sample 13 % faster on a CPU (72 samples, 32², one thread)
        unet = unet.to(dtype=dtype, memory_format=torch.channels_last)
        return cls(unet.eval(), predictor.to(dtype).eval(), settings["class_names"], settings["variant"],
                   settings["num_train_timesteps"], settings["beta_start"], settings["beta_end"])


def q_sample(model: ShiftModel, x0: torch.Tensor, shift: torch.Tensor, t: torch.Tensor, noise: torch.Tensor):
    """x_t = √ᾱ_t·x_0 + k_t·E(c) + √(1−ᾱ_t)·ε."""
    a = model.alphas_cumprod[t.cpu()].view(-1, 1, 1, 1).to(x0.device)
    k = model.shifts[t.cpu()].view(-1, 1, 1, 1).to(x0.device)
    return a.sqrt() * x0 + k * shift + (1 - a).sqrt() * noise


def training_loss(model: ShiftModel, x0: torch.Tensor, class_weights: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """‖ε − ε̂‖² with ε̂ = ε_θ(x_t, t) − k_t·E(c)/√(1−ᾱ_t); UNet and E(c) train jointly."""
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # CPU generator: same on any device
    t = torch.randint(0, model.num_train_timesteps, (x0.shape[0],), generator=generator)
    shift = model.predictor(class_weights.to(x0.device))
    x_t = q_sample(model, x0, shift, t, noise)
    eps = model.unet(x_t, t.to(x0.device)).sample - shift_term(model, shift, t)
    return F.mse_loss(eps, noise)


def shift_term(model: ShiftModel, shift: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """k_t·E(c)/√(1−ᾱ_t): what the network's output carries besides the noise."""
    t = t.cpu()
    k = (model.shifts[t] / (1 - model.alphas_cumprod[t]).sqrt()).view(-1, 1, 1, 1)
    return k.to(shift.device) * shift


def timesteps(num_train: int, steps: int) -> list[int]:
    """Evenly spaced training steps, last (noisiest) first; `steps` = num_train gives full DDPM."""
    steps = max(1, min(int(steps), num_train))
    return sorted({int(round(v)) for v in np.linspace(0, num_train - 1, steps)}, reverse=True)


@dataclass
class ShiftSample:
    images: np.ndarray  # uint8 (n, H, W, 3)
    trajectory: list[tuple[int, np.ndarray]]  # (t, uint8 x_t of the first sample) at a few steps
    shift: np.ndarray  # E(c) of the request, (C, H, W) float




class ShiftedEpsilon:
    """The model function of the one loop: ε of the shifted process, the UNet's output less the shift's term."""
    guided = False

    def __init__(self, model: ShiftModel, shift: torch.Tensor):
        self.model, self.shift, self.unet = model, shift, model.unet
        parameter = next(model.unet.parameters())
        self.dtype, self.device = parameter.dtype, parameter.device

    def __call__(self, x: torch.Tensor, step: int, timestep) -> torch.Tensor:
        t = torch.full((x.shape[0],), int(timestep))
        return (self.unet(x.to(self.dtype), t.to(self.device)).sample.float()
                - shift_term(self.model, self.shift, t).to(self.device))


@dataclass
class ShiftedStep:
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class ShiftedSchedule:
    """Shifted DDPM (ancestral, respaced when steps < T) or shifted DDIM (η = 0 deterministic), as a scheduler of
    the one loop: each step works on y_t = x_t − k_t·E(c) — the plain DDPM/DDIM update with x̂0 clipped to
    [−1, 1] — then adds k_{t'}·E(c) back."""
    init_noise_sigma = 1.0
    config = {"prediction_type": "epsilon"}

    def __init__(self, model: ShiftModel, shift: torch.Tensor, timesteps: list[int], sampler: str):
        self.model, self.shift, self.timesteps, self.sampler = model, shift, timesteps, sampler
        self.alphas_cumprod = model.alphas_cumprod

    def scale_model_input(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        return sample

    def step(self, epsilon: torch.Tensor, timestep, sample: torch.Tensor, eta: float = 0.0,
             generator: torch.Generator | None = None, return_dict: bool = True) -> ShiftedStep:
        model, t = self.model, int(timestep)
        index = self.timesteps.index(t)
        t_prev = self.timesteps[index + 1] if index + 1 < len(self.timesteps) else -1
        a_t = model.alphas_cumprod[t]
        a_prev = model.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        k_prev = model.shifts[t_prev] if t_prev >= 0 else torch.tensor(0.0)
        y = sample - model.shifts[t] * self.shift
        x0 = ((y - (1 - a_t).sqrt() * epsilon) / a_t.sqrt()).clamp(-1, 1)
        epsilon = (y - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # consistent with the clipped x̂0
        if self.sampler == "DDIM":
            sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).clamp_min(0).sqrt()
        else:  # DDPM posterior variance of the (respaced) step
            sigma = ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).clamp_min(0).sqrt()
        y_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp_min(0).sqrt() * epsilon
        if t_prev >= 0:
            y_prev = y_prev + sigma * torch.randn(y.shape, generator=generator).to(y.device)
        return ShiftedStep(y_prev + k_prev * self.shift, x0)


def check_request(steps: int, n: int, seed: int) -> None:
    """A request's limits (the tab's): a batch of at most max_n samples, at most the training schedule's steps."""
    check_range("steps", steps, 1, D.max_steps)
    check_range("n", n, 1, D.max_n)
    check_range("seed", seed, 0, config.MAX_SEED)


@torch.no_grad()
def sample(model: ShiftModel, class_weights: torch.Tensor, n: int = 8, sampler: str = "DDIM", steps: int = 50,
           seed: int = 0, eta: float = 0.0, snapshots: int = 6, on_step=None) -> ShiftSample:
    """n samples of the class mix `class_weights` by the one loop over ShiftedSchedule; a few x_t of the first."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    generator = torch.Generator().manual_seed(int(seed))  # CPU noise: the same samples on any device
    parameter = next(model.unet.parameters())
    shift = model.predictor(class_weights.to(parameter.device, parameter.dtype)).float()  # one row, or one per sample
    shift = shift.expand(n, -1, -1, -1) if shift.shape[0] == 1 else shift
    size, channels = model.image_size, model.predictor.channels
    ts = timesteps(model.num_train_timesteps, steps)
    x = torch.randn(n, channels, size, size, generator=generator).to(parameter.device) + model.shifts[ts[0]] * shift
    keep = set(np.linspace(0, len(ts) - 1, min(snapshots, len(ts))).round().astype(int).tolist())
    trajectory = []

    def keep_trajectory(step, timestep, latents, x0):
        if step in keep:
            trajectory.append((int(timestep), to_uint8(latents[:1])[0]))

    x = denoise(ShiftedEpsilon(model, shift), ShiftedSchedule(model, shift, ts, sampler), x, eta=eta,
                generator=generator, hooks=[keep_trajectory], on_step=on_step).latents
    return ShiftSample(to_uint8(x), trajectory, shift[0].cpu().numpy())


def toy_class_names() -> list[str]:
    """The embedded model's classes: "{color} {shape}" over the procedural palette and shapes."""
    from ..shapes.dataset import PALETTE, SHAPES
    return [f"{color} {shape}" for color in PALETTE for shape in SHAPES]


def toy_batch(rng: np.random.Generator, class_names: list[str], n: int, size: int):
    """n procedural single-object images of random classes → (pixels in [−1, 1], class indices)."""
    from ..sampling import to_model_pixels
    from ..shapes import dataset
    labels = rng.integers(0, len(class_names), n)
    images = []
    for label in labels:
        color, shape = class_names[label].split()
        images.append(dataset.render(dataset.random_scene(rng, size, two_object_prob=0.0, color=color, shape=shape), size))
    return to_model_pixels(np.stack(images)), torch.from_numpy(labels)


def default_folder() -> Path:
    return config.MODELS_DIR / "toy-shiftddpm"


def shift_image(shift: np.ndarray, scale: int = 4) -> np.ndarray:
    """E(c) (C, H, W) → a viewable uint8 RGB picture, min–max stretched and enlarged."""
    picture = shift.transpose(1, 2, 0)
    picture = (picture - picture.min()) / max(float(picture.max() - picture.min()), 1e-8)
    picture = (picture * 255).round().astype(np.uint8)
    return picture.repeat(scale, axis=0).repeat(scale, axis=1)


def k_curves(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> dict[str, np.ndarray]:
    alphas = linear_alphas_cumprod(num_train_timesteps, beta_start, beta_end)
    return {variant: shift_coefficients(alphas, variant).numpy() for variant in VARIANTS}


def load_model(models, name: str | None = None) -> ShiftModel:
    """A trained ShiftDDPM folder through the app's model cache (`models`): toy-shiftddpm by default."""
    from ..models import ModelLoadError, resolve

    name = name or config.EMBEDDED_SHIFTDDPM_MODEL
    variants = {model: variant for variant, model in config.SHIFTDDPM_VARIANT_MODELS.items()}
    if name in variants and not (config.MODELS_DIR / name).is_dir():
        raise ModelLoadError(f"no ShiftDDPM with the {variants[name]} variant is trained here ({name!r} is missing): "
                             f"train it with scripts/train_toy_shiftddpm.py --variant {variants[name]} "
                             f"--out assets/models/{name}")

    def load():
        source = resolve(name, models.allow_local)
        if source.kind == "hub":
            raise ModelLoadError(f"{name!r}: ShiftDDPM models load from a local folder (train one with "
                                 "scripts/train_toy_shiftddpm.py --data FOLDER)")
        model = ShiftModel.load(Path(source.location), dtype=models.dtype)
        model.unet.to(models.device), model.predictor.to(models.device)
        return model

    return models.cached(("ShiftDDPM", name), load)
