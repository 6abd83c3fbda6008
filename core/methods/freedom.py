"""FreeDoM (Yu et al. 2023, docs/METHODS.md §6): training-free guidance by energy functions built from
off-the-shelf networks, with time travel in the "semantic" middle stage of sampling.

Energies offered here: "text" (CLIP text vs CLIP image of x̂0), "style" (Gram matrix of CLIP's
3rd-block patch tokens of a reference image), "mask" (the object fills a target mask; no
network). Several at once are a weighted sum. The unguided image from the same seed comes out
beside the guided one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config, plots
from ..denoisers import TextGuided
from ..guidance import ClipStyleEnergy, ClipTextEnergy, EnergyGuidance, MaskEnergy, WeightedEnergy
from ..sampling import decode, decode_pixels, denoise, encode_prompts, prepare_latents, to_model_pixels
from ..validate import check_prompt, check_range, check_sampling

ENERGIES = ("text", "style", "mask")
D = config.FreeDoMDefaults


@dataclass
class FreeDoMParams:
    prompt: str
    energy: str | dict = D.energy  # a name, or {"text": 1.0, "mask": 0.5} weights
    reference_text: str = ""
    reference_image: np.ndarray | None = None  # style reference (uint8 RGB)
    mask: np.ndarray | None = None  # target mask (bool H×W) for the mask energy
    rho_scale: float = D.rho_scale
    guidance_start: float = D.guidance_start
    guidance_end: float = D.guidance_end
    time_travel: int = D.time_travel
    travel_start: float = D.travel_start
    travel_end: float = D.travel_end
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed

    def weights(self) -> dict[str, float]:
        energy = self.energy
        if isinstance(energy, str):
            energy = energy.strip()
            energy = json.loads(energy) if energy.startswith("{") else {name.strip(): 1.0 for name in energy.split("+")}
        unknown = [name for name in energy if name not in ENERGIES]
        if unknown or not energy:
            raise ValueError(f"energy must name some of {', '.join(ENERGIES)} (e.g. 'text' or 'text+mask'), got {self.energy!r}")
        return {name: float(weight) for name, weight in energy.items()}

    def check(self) -> None:
        check_prompt(self.prompt)
        weights = self.weights()
        if "text" in weights:
            check_prompt(self.reference_text, "reference_text")
        if "style" in weights and self.reference_image is None:
            raise ValueError("the style energy needs a reference_image")
        if "mask" in weights and (self.mask is None or not np.asarray(self.mask).any()):
            raise ValueError("the mask energy needs a non-empty mask (draw it or upload a mask image)")
        check_range("rho_scale", self.rho_scale, 0.0, D.max_rho_scale)
        for name in ("guidance_start", "guidance_end", "travel_start", "travel_end"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        check_range("time_travel", self.time_travel, 1, D.max_time_travel)
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class FreeDoMResult:
    guided: np.ndarray
    unguided: np.ndarray
    energy_per_step: list[float] = field(default_factory=list)  # energy of x̂0 at each guided step
    final_energy: float = 0.0  # of the guided result
    unguided_energy: float = 0.0
    plot: np.ndarray | None = None


def build_energy(params: FreeDoMParams, clip=None) -> WeightedEnergy:
    terms = []
    for name, weight in params.weights().items():
        if name == "mask":
            terms.append((weight, MaskEnergy(np.asarray(params.mask, bool))))
            continue
        if clip is None:
            raise ValueError(f"the {name} energy needs a CLIP model")
        model, tokenizer, inputs = clip
        if name == "text":
            terms.append((weight, ClipTextEnergy(model, tokenizer, inputs, params.reference_text)))
        else:
            reference = to_model_pixels(params.reference_image[None]).to(model.device)
            terms.append((weight, ClipStyleEnergy(model, inputs, reference)))
    return WeightedEnergy(terms)


def run(pipe, params: FreeDoMParams, clip=None, on_step=None) -> FreeDoMResult:
    """clip: (CLIPModel, tokenizer, ClipInputs) for the text and style energies."""
    params.check()
    energy = build_energy(params, clip)
    steps = int(params.steps)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    cond, uncond = encode_prompts(pipe, [params.prompt]), encode_prompts(pipe, [""])

    def decode_differentiable(latents):
        return decode_pixels(pipe, latents).float()

    images = []
    guidance = EnergyGuidance(energy, decode_differentiable, DDIMScheduler.from_config(pipe.scheduler.config).alphas_cumprod,
                              params.rho_scale, (params.guidance_start, params.guidance_end),
                              (params.travel_start, params.travel_end), int(params.time_travel))
    for guided in (False, True):
        generator = torch.Generator().manual_seed(int(params.seed))
        latents = prepare_latents(pipe, 1, size, size, generator)
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        progress = None if on_step is None else (lambda done, total, g=guided: on_step(done + g * total, 2 * total))
        with torch.no_grad():
            result = denoise(TextGuided(pipe.unet, cond, uncond, params.guidance_scale), scheduler, latents, steps,
                             generator=generator, energy_guidance=guidance if guided else None, on_step=progress)
            images.append(decode(pipe, result.latents)[0])
    with torch.no_grad():
        finals = [float(energy(to_model_pixels(im[None]).to(pipe.unet.device))) for im in images]
    per_step = [guidance.per_step[k] for k in sorted(guidance.per_step)]
    plot = plots.line_plot(per_step, "energy of x̂0 at each guided step", "guided step", "energy") if per_step else None
    return FreeDoMResult(images[1], images[0], per_step, finals[1], finals[0], plot)
