"""UniControl (Qin et al., 2023): one control model, many condition types; the task instruction
picks the input stem and, through the HyperNet, modulates the zero-convolutions.

Sampling is the engine's loop with the control model's residuals added to the frozen UNet at
every step, in both guidance branches (the official sampler conditions the unconditional branch
on the same hint).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import config
from ..conditions import EXTRACTORS, extract
from ..denoisers import TextGuided
from ..sampling import decode, denoise, encode_prompts, prepare_latents, square_image, to_unit_pixels
from ..tokenizer import TOKENIZER_LOCK
from ..unicontrol import INSTRUCTIONS
from ..validate import check_prompt, check_range, check_sampling

D = config.UniControlDefaults


def resolve_task(text: str, tasks: tuple[str, ...]) -> str:
    """A task given as its instruction ("canny edge to image"), its key ("control_canny") or short
    name ("canny") → the key; only the tasks this model has."""
    wanted = (text or "").strip().lower()
    for task in tasks:
        if wanted in (task, task.removeprefix("control_"), INSTRUCTIONS[task]):
            return task
    listing = "; ".join(f"{INSTRUCTIONS[t]!r}" for t in tasks)
    raise ValueError(f"unknown UniControl task {text!r}; this model's instructions: {listing}")


@torch.no_grad()
def instruction_features(pipe, instruction: str, task_token: str) -> torch.Tensor:
    """The instruction through the text encoder: its first token's state (the official checkpoint's
    `[:, :1]`) or the pooled end token ('pooled', ours: a causal encoder's first token is the same
    for every text, so only the pooled one can tell instructions apart)."""
    tokenizer = pipe.tokenizer
    with TOKENIZER_LOCK:
        ids = tokenizer([instruction], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(pipe.text_encoder.device)
    output = pipe.text_encoder(ids)
    return output.last_hidden_state[:, 0] if task_token == "first" else output.pooler_output


@dataclass
class UniControlParams:
    prompt: str = D.prompt
    task: str = D.task
    strength: float = D.strength
    extract: bool = D.extract
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    negative_prompt: str = ""

    def check(self) -> None:
        check_range("strength", self.strength, 0.0, D.max_strength)
        check_prompt(self.prompt, allow_empty=True)
        check_sampling(self.steps, self.guidance_scale, self.seed)


def condition_map(image: np.ndarray, task: str, size: int, run_extractor: bool) -> np.ndarray:
    squared = square_image(image, size)
    if not run_extractor:
        return squared
    kind = config.UNICONTROL_TASK_CONDITIONS.get(task)
    if kind not in EXTRACTORS:
        raise ValueError(f"{INSTRUCTIONS[task]!r} needs a {kind} map, which has no offline extractor here: "
                         "untick 'extract' and upload the map itself")
    return extract(kind, squared)


def control_residuals(control_model, hint: torch.Tensor, task: str, features: torch.Tensor, strength: float):
    """unet_kwargs_fn for core.denoisers.TextGuided: the control model's residuals at every step."""
    def unet_kwargs(step, timestep, model_input, context):
        down, mid = control_model(model_input, timestep, context, hint.expand(model_input.shape[0], -1, -1, -1),
                                  task, features, strength)
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    return unet_kwargs


@dataclass
class UniControlResult:
    image: np.ndarray
    condition: np.ndarray
    task: str


@torch.no_grad()
def generate(pipe, control_model, condition_image: np.ndarray, params: UniControlParams,
             on_step=None) -> UniControlResult:
    params.check()
    task = resolve_task(params.task, tuple(control_model.config.tasks))
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    condition = condition_map(condition_image, task, size, params.extract)
    parameter = next(control_model.parameters())
    hint = to_unit_pixels(condition[None]).to(parameter.device, parameter.dtype)
    features = instruction_features(pipe, INSTRUCTIONS[task], control_model.config.task_token)
    text, uncond = encode_prompts(pipe, [params.prompt]), encode_prompts(pipe, [params.negative_prompt])
    generator = torch.Generator().manual_seed(int(params.seed))
    latents = prepare_latents(pipe, 1, size, size, generator)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    model = TextGuided(pipe.unet, text, uncond, float(params.guidance_scale),
                       unet_kwargs_fn=control_residuals(control_model, hint, task, features, float(params.strength)))
    result = denoise(model, scheduler, latents, int(params.steps), generator=generator, on_step=on_step)
    return UniControlResult(decode(pipe, result.latents)[0], condition, task)
