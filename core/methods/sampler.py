"""Score-based sampler inspector (docs/METHODS.md §5): sample with a chosen scheduler and show the
trajectory — x_t and the predicted x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t at evenly spaced steps."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import config, plots
from ..denoisers import TextGuided
from ..sampling import Snapshots, decode, denoise, encode_prompts, prepare_latents
from ..schedulers import make_scheduler
from ..validate import check_prompt, check_range, check_sampling


@dataclass
class SamplerParams:
    prompt: str = config.SamplerDefaults.prompt
    scheduler: str = config.SamplerDefaults.scheduler
    eta: float = config.SamplerDefaults.eta  # DDIM: 0 deterministic, 1 = DDPM-like noise
    steps: int = config.SamplerDefaults.steps
    guidance_scale: float = config.SamplerDefaults.guidance_scale
    seed: int = config.SamplerDefaults.seed
    snapshots: int = config.SamplerDefaults.snapshots  # how many steps of the trajectory to show

    def check(self) -> None:
        check_prompt(self.prompt)
        check_sampling(self.steps, self.guidance_scale, self.seed)
        check_range("eta", self.eta, 0.0, 1.0)
        check_range("snapshots", self.snapshots, 1, config.SamplerDefaults.max_snapshots)


@dataclass
class SamplerResult:
    image: np.ndarray  # uint8 (H, W, 3)
    trajectory: list[tuple[str, np.ndarray]]  # (caption, image): x_t and x̂0 per snapshot
    schedule_plot: np.ndarray


def snapshot_indices(num_steps: int, count: int) -> list[int]:
    """`count` step indices evenly spread over the run, the last step included."""
    count = min(count, num_steps)
    return sorted({int(round(i)) for i in np.linspace(0, num_steps - 1, count)})


def run(pipe, params: SamplerParams, on_step=None) -> SamplerResult:
    params.check()
    scheduler = make_scheduler(params.scheduler, pipe.scheduler.config)
    generator = torch.Generator().manual_seed(int(params.seed))
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    cond = encode_prompts(pipe, [params.prompt])
    uncond = encode_prompts(pipe, [""])
    # the initial noise is scaled by the scheduler actually used (σ_max for Euler-type ones)
    latents = prepare_latents(pipe, 1, size, size, generator) / pipe.scheduler.init_noise_sigma
    scheduler.set_timesteps(int(params.steps), device=latents.device)
    latents = latents * scheduler.init_noise_sigma
    snapshots = Snapshots(snapshot_indices(len(scheduler.timesteps), int(params.snapshots)))
    with torch.no_grad():
        result = denoise(TextGuided(pipe.unet, cond, uncond, params.guidance_scale), scheduler, latents,
                         eta=params.eta, generator=generator, hooks=[snapshots], on_step=on_step)
    trajectory = []
    for snap in snapshots.taken:
        trajectory.append((f"x_t after step {snap.step + 1} (t={snap.timestep})", decode(pipe, snap.latents)[0]))
        if snap.x0 is not None:
            trajectory.append((f"predicted x̂0 at step {snap.step + 1} (t={snap.timestep})", decode(pipe, snap.x0)[0]))
    alphas = pipe.scheduler.alphas_cumprod.float().cpu().numpy() if hasattr(pipe.scheduler, "alphas_cumprod") else \
        make_scheduler("DDPM", pipe.scheduler.config).alphas_cumprod.numpy()
    timesteps = [min(int(t), len(alphas) - 1) for t in result.timesteps]
    plot = plots.schedule_plot(alphas, timesteps, [s.timestep for s in snapshots.taken])
    return SamplerResult(decode(pipe, result.latents)[0], trajectory, plot)
