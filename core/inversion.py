"""Inverting an image into the noise that regenerates it.

- `ddim_invert`: DDIM inversion with guidance 1 (Song et al. 2021; the pivot trajectory of
  null-text inversion): z*_0 … z*_T.
- `null_text_optimize`: Mokady et al. 2022 — at each step optimise only the unconditional
  embedding so that guided sampling (w = 7.5) lands on the pivot z*_{t−1}. Adam, learning rate
  1e-2·(1 − i/100), `num_inner_steps` iterations, early stop at `epsilon + i·2e-5`.
- `negative_prompt_embeddings`: Miyake et al. 2023 — no optimisation, the source prompt's own
  embedding serves as the unconditional one at every step.
All work in ε-space; v-prediction models are converted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import calls
from .attention import ensure_active, install
from .training.precision import MixedPrecision


@dataclass
class DDIMSchedule:
    """The ᾱ values of a DDIM sampling run: timesteps (descending) and the model's prediction type."""
    alphas_cumprod: torch.Tensor
    timesteps: list[int]
    final_alpha: float
    prediction_type: str

    @classmethod
    def from_scheduler(cls, scheduler, num_steps: int) -> "DDIMSchedule":
        scheduler.set_timesteps(num_steps)
        final = scheduler.final_alpha_cumprod if hasattr(scheduler, "final_alpha_cumprod") else scheduler.alphas_cumprod[0]
        return cls(scheduler.alphas_cumprod.float(), [int(t) for t in scheduler.timesteps], float(final),
                   scheduler.config.get("prediction_type", "epsilon"))

    def alpha(self, timestep: int) -> torch.Tensor:
        return self.alphas_cumprod[timestep] if timestep >= 0 else torch.tensor(self.final_alpha)

    def previous(self, index: int) -> int:
        """The timestep after step `index` (−1 past the last)."""
        return self.timesteps[index + 1] if index + 1 < len(self.timesteps) else -1

    # the scheduler interface of core.sampling.denoise: deterministic DDIM over these timesteps
    init_noise_sigma = 1.0

    @property
    def config(self) -> dict:
        return {"prediction_type": self.prediction_type}

    def scale_model_input(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        return sample

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = True) -> DDIMStep:
        """One step from `timestep` to the next of `timesteps` (to final_alpha after the last)."""
        t = int(timestep)
        alpha = self.alpha(t).to(sample)
        epsilon = to_epsilon(model_output, sample, alpha, self.prediction_type)
        return DDIMStep(ddim_move(sample, epsilon, alpha, self.alpha(self.previous(self.timesteps.index(t)))),
                        (sample - (1 - alpha).sqrt() * epsilon) / alpha.sqrt())


@dataclass
class DDIMStep:
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def to_epsilon(output: torch.Tensor, sample: torch.Tensor, alpha: torch.Tensor, prediction_type: str) -> torch.Tensor:
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha.sqrt() * output + (1 - alpha).sqrt() * sample
    raise ValueError(f"inversion supports epsilon and v-prediction models, not {prediction_type!r}")


def ddim_move(sample: torch.Tensor, epsilon: torch.Tensor, alpha_from: torch.Tensor, alpha_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM update between two noise levels (either direction)."""
    alpha_from, alpha_to = alpha_from.to(sample), alpha_to.to(sample)
    x0 = (sample - (1 - alpha_from).sqrt() * epsilon) / alpha_from.sqrt()
    return alpha_to.sqrt() * x0 + (1 - alpha_to).sqrt() * epsilon


def _epsilon(unet, sample, timestep: int, context, schedule: DDIMSchedule) -> torch.Tensor:
    output = unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]
    return to_epsilon(output, sample, schedule.alpha(timestep).to(sample), schedule.prediction_type)


def guided_epsilon(unet, sample, timestep: int, cond, uncond, guidance_scale: float, schedule: DDIMSchedule):
    both = _epsilon(unet, torch.cat([sample, sample]), timestep, torch.cat([uncond, cond]), schedule)
    eps_uncond, eps_cond = both.chunk(2)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


@torch.no_grad()
def ddim_invert(unet, latents: torch.Tensor, cond: torch.Tensor, schedule: DDIMSchedule,
                on_step: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
    """z*_0 → [z*_0, z*_{t_1}, …, z*_T] (ascending noise), conditional model at guidance 1.

    Active attention controllers see inversion step i (ascending noise) as the step index."""
    trajectory = [latents]
    ascending = schedule.timesteps[::-1]
    install(unet)
    with ensure_active() as state:
        for i, t in enumerate(ascending):
            calls.step()
            state.step_begin(i, len(ascending))
            t_from = ascending[i - 1] if i > 0 else -1
            eps = _epsilon(unet, trajectory[-1], t, cond, schedule)
            trajectory.append(ddim_move(trajectory[-1], eps, schedule.alpha(t_from), schedule.alpha(t)))
            state.step_end(trajectory[-1], i)
            if on_step:
                on_step(i + 1, len(ascending))
    return trajectory


def null_text_optimize(unet, trajectory: list[torch.Tensor], cond: torch.Tensor, uncond: torch.Tensor,
                       schedule: DDIMSchedule, guidance_scale: float = 7.5, num_inner_steps: int = 10,
                       early_stop_epsilon: float = 1e-5, learning_rate: float = 1e-2,
                       on_step: Callable[[int, int], None] | None = None) -> tuple[list[torch.Tensor], list[float]]:
    """Per-step unconditional embeddings that make guided DDIM sampling follow `trajectory`.

    Returns the embeddings (one per step, in sampling order) and the final loss of each step."""
    embeddings, losses = [], []
    latent = trajectory[-1]
    num_steps = len(schedule.timesteps)
    requires_grad = [p.requires_grad for p in unet.parameters()]
    unet.requires_grad_(False)
    try:
        for i, t in enumerate(schedule.timesteps):
            calls.step()
            target = trajectory[num_steps - i - 1]
            alpha_t, alpha_prev = schedule.alpha(t), schedule.alpha(schedule.previous(i))
            with torch.no_grad():
                eps_cond = _epsilon(unet, latent, t, cond, schedule)
            embedding = uncond.detach().clone().requires_grad_(True)
            precision = MixedPrecision([embedding])  # a float32 master when the model runs in float16
            optimizer = torch.optim.Adam(precision.masters, lr=learning_rate * (1.0 - i / 100.0))
            loss_value = float("nan")
            for _ in range(num_inner_steps):
                eps_uncond = _epsilon(unet, latent, t, embedding, schedule)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                loss = F.mse_loss(ddim_move(latent, eps, alpha_t, alpha_prev), target)
                loss_value = precision.minimise(optimizer, loss)
                if loss_value < early_stop_epsilon + i * 2e-5:
                    break
            uncond = embedding.detach()
            embeddings.append(uncond)
            losses.append(loss_value)
            with torch.no_grad():
                eps = guided_epsilon(unet, latent, t, cond, uncond, guidance_scale, schedule)
                latent = ddim_move(latent, eps, alpha_t, alpha_prev)
            if on_step:
                on_step(i + 1, num_steps)
    finally:
        for p, flag in zip(unet.parameters(), requires_grad):
            p.requires_grad_(flag)
    return embeddings, losses


def negative_prompt_embeddings(cond: torch.Tensor, num_steps: int) -> list[torch.Tensor]:
    """Negative-prompt inversion: the source prompt's embedding as every step's unconditional one."""
    return [cond] * num_steps
