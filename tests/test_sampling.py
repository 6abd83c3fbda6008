"""The one denoising loop computes what StableDiffusionPipeline computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.methods.sampler import snapshot_indices
from core.denoisers import TextGuided
from core.sampling import Snapshots, decode, denoise, encode_prompts, prepare_latents
from core.schedulers import SCHEDULERS, make_scheduler

PROMPT = "a red circle on a white background"


# every scheduler the sampler tab offers (LMS needs scipy: a requirement, not a server error)
@pytest.mark.parametrize("scheduler_name, eta", [("DDIM", 0.0), ("DDIM", 1.0)] + [(name, 0.0) for name in SCHEDULERS
                                                                                 if name != "DDIM"])
@torch.no_grad()
def test_denoise_reproduces_the_pipeline(tiny_pipe, scheduler_name, eta):
    pipe = tiny_pipe
    pipe.scheduler = make_scheduler(scheduler_name, pipe.scheduler.config)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    expected = pipe(PROMPT, num_inference_steps=6, guidance_scale=7.5, eta=eta, height=size, width=size,
                    generator=torch.Generator().manual_seed(3), output_type="np").images[0]

    generator = torch.Generator().manual_seed(3)
    latents = prepare_latents(pipe, 1, size, size, generator)
    model = TextGuided(pipe.unet, encode_prompts(pipe, [PROMPT]), encode_prompts(pipe, [""]), guidance_scale=7.5)
    result = denoise(model, pipe.scheduler, latents, num_steps=6, eta=eta, generator=generator)
    ours = decode(pipe, result.latents)[0].astype(np.float32) / 255
    # the pipeline returns floats; ours is rounded to uint8, so allow half a grey level
    assert np.abs(ours - expected).max() <= 0.5 / 255 + 1e-4
    pipe.scheduler = make_scheduler("DDIM", pipe.scheduler.config)


@torch.no_grad()
def test_denoise_latents_match_pipeline_latents(tiny_pipe):
    pipe = tiny_pipe
    expected = pipe(PROMPT, num_inference_steps=5, guidance_scale=5.0, height=32, width=32,
                    generator=torch.Generator().manual_seed(1), output_type="latent").images
    generator = torch.Generator().manual_seed(1)
    result = denoise(TextGuided(pipe.unet, encode_prompts(pipe, [PROMPT]), encode_prompts(pipe, [""]), 5.0),
                     pipe.scheduler, prepare_latents(pipe, 1, 32, 32, generator), 5)
    assert (result.latents - expected).abs().max().item() < 1e-4


@torch.no_grad()
def test_snapshots_hooks_and_per_step_uncond(tiny_pipe):
    pipe = tiny_pipe
    generator = torch.Generator().manual_seed(0)
    latents = prepare_latents(pipe, 1, 32, 32, generator)
    cond, uncond = encode_prompts(pipe, [PROMPT]), encode_prompts(pipe, [""])
    seen = []
    snapshots = Snapshots(snapshot_indices(8, 4))
    result = denoise(TextGuided(pipe.unet, cond, [uncond] * 8, 7.5), pipe.scheduler, latents, 8,
                     hooks=[lambda i, t, x, x0: seen.append(i), snapshots])
    assert seen == list(range(8))
    assert [s.step for s in snapshots.taken] == [0, 2, 5, 7]
    assert all(s.x0 is not None and s.x0.shape == latents.shape for s in snapshots.taken)
    same = denoise(TextGuided(pipe.unet, cond, uncond, 7.5), pipe.scheduler, latents, 8)
    assert torch.allclose(result.latents, same.latents, atol=1e-6)  # a list of equal embeddings = one embedding


def test_snapshot_indices():
    assert snapshot_indices(50, 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    assert snapshot_indices(3, 8) == [0, 1, 2]
