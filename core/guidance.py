"""Energies for training-free guidance (FreeDoM) and CLIP losses, and the guidance step itself.

An energy maps decoded images (B, 3, H, W) in [-1, 1] to one value per image, differentiably.
`EnergyGuidance` plugs into `core.sampling.denoise`: inside its window it takes the gradient of
the energy of x̂0(x_t) with respect to x_t and moves the scheduler's x_{t−1} against it (step
size ρ_t normalised to the classifier-free guidance term, as FreeDoM's SD code), and asks the
loop to "time travel" (re-noise x_{t−1} back to x_t and redo the step) r times.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .tokenizer import TOKENIZER_LOCK

# OpenAI CLIP's normalisation (its models' processor configs): for a CLIP folder that has no processor config
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipInputs:
    """How a CLIP model wants its pixels: side and normalisation."""
    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = (images + 1) / 2  # [-1, 1] → [0, 1]
        x = F.interpolate(x, size=(self.side, self.side), mode="bicubic", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype)[None, :, None, None]
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype)[None, :, None, None]
        return (x - mean) / std


def clip_inputs(clip_model) -> ClipInputs:
    """How `clip_model` wants its pixels, for every CLIP use of the app: its vision tower's side, and the
    mean and std of its own image-processor config (preprocessor_config.json beside its weights: 0.5 for
    toy-clip, OpenAI's values for the Hub's CLIP); OpenAI's when the model has no such file."""
    mean, std = _processor_normalisation(clip_model.config._name_or_path)
    return ClipInputs(clip_model.config.vision_config.image_size, mean, std)


@functools.lru_cache(maxsize=16)
def _processor_normalisation(location: str) -> tuple[tuple, tuple]:
    path = Path(location) / "preprocessor_config.json"
    if not path.is_file() and location and not Path(location).exists():  # a Hub id: the cached (or fetched) file
        try:
            from huggingface_hub import hf_hub_download
            path = Path(hf_hub_download(location, "preprocessor_config.json"))
        except Exception:  # noqa: BLE001 - a repo without one (or offline without it cached): OpenAI's values
            path = None
    if path is None or not path.is_file():
        return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    processor = json.loads(path.read_text())
    return (tuple(float(v) for v in processor.get("image_mean", OPENAI_CLIP_MEAN)),
            tuple(float(v) for v in processor.get("image_std", OPENAI_CLIP_STD)))


def clip_text_features(model, tokenizer, texts: list[str]) -> torch.Tensor:
    with TOKENIZER_LOCK:
        ids = tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt").input_ids.to(model.device)
    return F.normalize(model.get_text_features(input_ids=ids).pooler_output.float(), dim=-1)


def clip_image_features(model, inputs: ClipInputs, images: torch.Tensor) -> torch.Tensor:
    pixels = inputs(images).to(model.dtype)
    return F.normalize(model.get_image_features(pixel_values=pixels).pooler_output.float(), dim=-1)


def text_direction(clip_model, tokenizer, source_text: str, target_text: str,
                   templates: tuple[str, ...] = ("{}",)) -> torch.Tensor:
    """E_T(target) − E_T(source), unit, averaged over prompt templates (DiffusionCLIP's official code)."""
    source = clip_text_features(clip_model, tokenizer, [t.format(source_text) for t in templates]).mean(dim=0)
    target = clip_text_features(clip_model, tokenizer, [t.format(target_text) for t in templates]).mean(dim=0)
    return F.normalize(target - source, dim=-1)


def directional_loss(clip_model, inputs: ClipInputs, tokenizer, edited: torch.Tensor, original: torch.Tensor,
                     source_text: str, target_text: str, templates: tuple[str, ...] = ("{}",)) -> torch.Tensor:
    """CLIP's directional loss (DiffusionCLIP, StyleGAN-NADA, ChatFace's mappers): 1 − cos(E_I(edited) −
    E_I(original), ΔT), mean over the batch."""
    wanted = text_direction(clip_model, tokenizer, source_text, target_text, templates)
    image_direction = clip_image_features(clip_model, inputs, edited) - clip_image_features(clip_model, inputs, original)
    return (1 - F.cosine_similarity(image_direction, wanted[None], dim=-1)).mean()


class ClipTextEnergy:
    """‖f_text − f_image(x)‖ with unit CLIP features: low when the image matches the text."""

    def __init__(self, model, tokenizer, inputs: ClipInputs, text: str):
        self.model, self.inputs = model, inputs
        with torch.no_grad():
            self.target = clip_text_features(model, tokenizer, [text])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (clip_image_features(self.model, self.inputs, images) - self.target.to(images.device)).norm(dim=-1)


def gram(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) patch tokens → (B, C, C) Gram matrices."""
    return tokens.transpose(1, 2) @ tokens / tokens.shape[1]


class ClipStyleEnergy:
    """‖G(reference) − G(x)‖ of the CLIP image encoder's 3rd-block patch tokens (FreeDoM style)."""

    BLOCK = 3

    def __init__(self, model, inputs: ClipInputs, reference: torch.Tensor):
        self.model, self.inputs = model, inputs
        with torch.no_grad():
            self.target = self._gram(reference)

    def _gram(self, images):
        out = self.model.vision_model(pixel_values=self.inputs(images).to(self.model.dtype), output_hidden_states=True)
        return gram(out.hidden_states[self.BLOCK][:, 1:].float())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (self._gram(images) - self.target.to(images.device)).flatten(1).norm(dim=-1)


class MaskEnergy:
    """Distance between the image's soft foreground (pixels unlike its border colour) and a target
    mask: low when the object fills the mask and nothing else. Needs no network at all."""

    def __init__(self, mask: np.ndarray, softness: float = 0.1, threshold: float = 0.25):
        self.mask = torch.from_numpy(mask.astype(np.float32))
        self.softness, self.threshold = softness, threshold

    def foreground(self, images: torch.Tensor) -> torch.Tensor:
        border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
        background = border.median(dim=-1).values[..., None, None]  # (B, 3, 1, 1)
        distance = (images - background).norm(dim=1) / 2  # (B, H, W), about [0, 1.7]
        return torch.sigmoid((distance - self.threshold) / self.softness)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mask = F.interpolate(self.mask[None, None], size=images.shape[-2:], mode="nearest")[:, 0].to(images)
        return (self.foreground(images) - mask).flatten(1).pow(2).mean(1).sqrt() * 10


class WeightedEnergy:
    """Several conditions at once: Σ wᵢ·Eᵢ."""

    def __init__(self, terms: list[tuple[float, object]]):
        self.terms = terms

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return sum(weight * energy(images) for weight, energy in self.terms)


@dataclass
class EnergyGuidance:
    """FreeDoM's guidance for `denoise`: windows are fractions of the sampling steps."""
    energy: object
    decode: object  # latents → images in [-1, 1], differentiable
    alphas_cumprod: torch.Tensor
    rho_scale: float = 0.2
    window: tuple[float, float] = (0.3, 0.7)
    travel_window: tuple[float, float] = (0.4, 0.7)
    time_travel: int = 3
    energies: list[float] = field(default_factory=list)  # energy of x̂0 at each guided evaluation, last per step
    per_step: dict[int, float] = field(default_factory=dict)

    def active(self, step: int, num_steps: int) -> bool:
        return self.window[0] * num_steps <= step < self.window[1] * num_steps

    def repeats(self, step: int, num_steps: int) -> int:
        inside = self.travel_window[0] * num_steps <= step < self.travel_window[1] * num_steps
        return max(1, int(self.time_travel)) if inside else 1

    def apply(self, step: int, timestep, x_t: torch.Tensor, x0: torch.Tensor, prev: torch.Tensor,
              guidance_term: torch.Tensor | None) -> torch.Tensor:
        """x_{t−1} − ρ_t ∇_{x_t} E(decode(x̂0(x_t))); x_t requires grad and x0 depends on it."""
        energy = self.energy(self.decode(x0))
        grad = torch.autograd.grad(energy.sum(), x_t)[0].float()
        self.per_step[step] = float(energy.detach().mean())
        # ρ_t: the energy step is as large as rho_scale times the classifier-free guidance step. In float32: in
        # float16 a gradient's square under- or overflows (0 or inf), and ρ became inf or 0, the latents NaN
        reference = (guidance_term if guidance_term is not None else x_t.detach()).float()
        alpha = self.alphas_cumprod.to(x_t.device)[int(timestep)]
        rho = self.rho_scale * reference.pow(2).mean().sqrt() * (1 - alpha).sqrt() / grad.pow(2).mean().sqrt().clamp(min=1e-12)
        return (prev.float() - rho * grad).to(prev.dtype).detach()

    def renoise(self, prev: torch.Tensor, timestep, prev_timestep, generator) -> torch.Tensor:
        """Time travel: q(x_t | x_{t−1}) = N(√(ᾱ_t/ᾱ_{t−1})·x_{t−1}, (1 − ᾱ_t/ᾱ_{t−1})·I)."""
        alphas = self.alphas_cumprod.to(prev.device)
        alpha_t = alphas[int(timestep)]
        alpha_prev = alphas[int(prev_timestep)] if int(prev_timestep) >= 0 else alphas[0]
        ratio = alpha_t / alpha_prev
        noise = torch.randn(prev.shape, generator=generator, dtype=prev.dtype).to(prev.device)
        return ratio.sqrt() * prev + (1 - ratio).sqrt() * noise
