"""T2I-Adapter (Mou et al., 2023): small networks turn condition maps into multi-scale features
added to a frozen UNet's encoder, computed once per image, not once per step.

Several adapters combine as the official `get_adapter_feature` does: each adapter's features times
its weight, summed (diffusers' MultiAdapter). The official `cond_tau` is kept: the features are
added only during the first `cond_tau` fraction of the steps, in the engine's one denoising loop
(the diffusers SD1 adapter pipeline has no such switch).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import config
from ..conditions import extract
from ..denoisers import TextGuided
from ..sampling import decode, denoise, encode_prompts, prepare_latents, square_image, to_unit_pixels
from ..validate import check_prompt, check_range, check_sampling

D = config.T2IAdapterDefaults


def make_adapter(unet_channels: tuple[int, ...], vae_scale_factor: int, num_res_blocks: int = 2, in_channels: int = 3):
    """An untrained full T2I-Adapter for a UNet whose down blocks have `unet_channels`: one feature per
    block, the first at latent resolution. (The official colour adapter is a `light_adapter`, whose
    last feature repeats the second-last width: SD's 1280, 1280; toy-sd's blocks all differ.)"""
    from diffusers import T2IAdapter
    return T2IAdapter(in_channels=in_channels, channels=list(unet_channels), num_res_blocks=num_res_blocks,
                      downscale_factor=vae_scale_factor, adapter_type="full_adapter")


@dataclass
class AdapterParams:
    prompt: str = D.prompt
    condition_types: list[str] = field(default_factory=lambda: list(D.condition_types))
    weights: list[float] = field(default_factory=lambda: [D.weight])
    cond_tau: float = D.cond_tau
    extract: bool = D.extract
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    negative_prompt: str = ""

    def check(self) -> None:
        if not self.condition_types:
            raise ValueError("choose at least one condition type")
        if len(self.condition_types) > D.max_adapters:
            raise ValueError(f"at most {D.max_adapters} adapters at once")
        if len(set(self.condition_types)) != len(self.condition_types):
            raise ValueError("each condition type once")
        if len(self.weights) != len(self.condition_types):
            raise ValueError(f"{len(self.condition_types)} condition types but {len(self.weights)} weights")
        for weight in self.weights:
            check_range("adapter weights", weight, 0.0, D.max_weight)
        check_range("cond_tau", self.cond_tau, 0.0, 1.0)
        check_prompt(self.prompt, allow_empty=True)
        check_sampling(self.steps, self.guidance_scale, self.seed)


def condition_maps(images: list[np.ndarray], kinds: list[str], size: int, run_extractor: bool) -> list[np.ndarray]:
    """Each upload squared to the model's size, then its condition extracted (or taken as the map)."""
    if len(images) != len(kinds):
        raise ValueError(f"{len(kinds)} condition types but {len(images)} condition images")
    squared = [square_image(image, size) for image in images]
    return [extract(kind, image) if run_extractor else image for kind, image in zip(kinds, squared)]


def adapter_input(adapter, condition_map: np.ndarray) -> torch.Tensor:
    """A map (H, W, 3) uint8 → the adapter's input in [0, 1] as diffusers takes it, with as many channels as its
    config says: the official canny and sketch adapters take one (a gray map), the others three."""
    parameter = next(adapter.parameters())
    pixels = to_unit_pixels(condition_map[None])
    if adapter.config.in_channels == 1:
        pixels = pixels.mean(dim=1, keepdim=True)
    return pixels.to(parameter.device, parameter.dtype)


@torch.no_grad()
def adapter_features(adapters: list, maps: list[np.ndarray], weights: list[float]) -> list[torch.Tensor]:
    """Σ wᵢ·Adapterᵢ(mapᵢ) per scale (diffusers MultiAdapter for several; one adapter times its weight)."""
    from diffusers import MultiAdapter
    pixels = [adapter_input(adapter, m) for adapter, m in zip(adapters, maps)]
    if len(adapters) == 1:
        return [weights[0] * feature for feature in adapters[0](pixels[0])]
    return MultiAdapter(adapters)(pixels, adapter_weights=list(weights))  # a list: it zips over its input


def active_steps(num_steps: int, cond_tau: float) -> int:
    """How many leading steps get the features: the official `index < int((1 − cond_tau)·T)` test,
    whose DDIM index counts down, read with our counting-up step."""
    return num_steps - int((1.0 - cond_tau) * num_steps)


def residuals_for_steps(features: list[torch.Tensor] | None, num_steps: int, cond_tau: float):
    """unet_kwargs_fn for core.denoisers.TextGuided: adapter residuals while the step is inside cond_tau."""
    cutoff = active_steps(num_steps, cond_tau)

    def unet_kwargs(step, timestep, model_input, context):
        if features is None or step >= cutoff:
            return {}
        # a fresh list each call: the UNet pops from it
        return {"down_intrablock_additional_residuals": [f.expand(model_input.shape[0], -1, -1, -1).to(model_input.dtype)
                                                         for f in features]}
    return unet_kwargs


@dataclass
class AdapterResult:
    image: np.ndarray
    maps: list[np.ndarray]


@torch.no_grad()
def generate(pipe, adapters: list, condition_images: list[np.ndarray], params: AdapterParams,
             on_step=None) -> AdapterResult:
    params.check()
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    maps = condition_maps(condition_images, params.condition_types, size, params.extract)
    features = adapter_features(adapters, maps, params.weights) if any(params.weights) else None
    text = encode_prompts(pipe, [params.prompt])
    uncond = encode_prompts(pipe, [params.negative_prompt])
    generator = torch.Generator().manual_seed(int(params.seed))
    latents = prepare_latents(pipe, 1, size, size, generator)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    model = TextGuided(pipe.unet, text, uncond, float(params.guidance_scale),
                       unet_kwargs_fn=residuals_for_steps(features, int(params.steps), float(params.cond_tau)))
    result = denoise(model, scheduler, latents, int(params.steps), generator=generator, on_step=on_step)
    return AdapterResult(decode(pipe, result.latents)[0], maps)
