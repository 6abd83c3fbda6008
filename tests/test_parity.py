"""Parity with diffusers' own pipelines where diffusers ships the same computation: the same tiny components,
initial latents and settings; within 2/255 of the decoded pictures. (Plain sampling with every scheduler is in
test_sampling.py; Text2Video-Zero's three modes in test_video_mechanics.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core import config
from core.methods import animatediff, t2i_adapter as ta
from core.models import load_lora
from core.motion import inflate, new_motion_adapter, temporal_parameters
from core.sampling import prepare_latents
from core.training.lora import MOTION_ATTENTION, add_lora, save_lora

FRAMES, STEPS, SEED = 4, 5, 7


def max_delta(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest difference in 1/255 units between our uint8 pictures and diffusers' float ones in [0, 1]."""
    return float(np.abs(ours.astype(np.float64) / 255 - np.asarray(reference, np.float64)).max() * 255)


@pytest.fixture(scope="module")
def motion_adapter(tiny_pipe):
    torch.manual_seed(11)
    adapter = new_motion_adapter(tiny_pipe.unet, max_frames=8)
    for p in adapter.parameters():  # the temporal layers must do something (new ones start as identity)
        torch.nn.init.normal_(p, std=0.05)
    return adapter


@pytest.fixture(scope="module")
def motion_lora(tiny_pipe, motion_adapter, tmp_path_factory):
    torch.manual_seed(12)
    trainer = inflate(tiny_pipe.unet, motion_adapter)
    for p in add_lora(trainer, "pan", 4, MOTION_ATTENTION):
        torch.nn.init.normal_(p, std=0.2)
    folder = tmp_path_factory.mktemp("lora")
    save_lora(trainer, "pan", folder)
    return folder


@pytest.mark.parametrize("lora_scale", [None, 0.7])
def test_animatediff_matches_diffusers_animatediff_pipeline(tiny_pipe, motion_adapter, motion_lora, lora_scale):
    from diffusers import AnimateDiffPipeline, DDIMScheduler

    motion_unet = inflate(tiny_pipe.unet, motion_adapter)
    assert temporal_parameters(motion_unet)
    params = animatediff.AnimateDiffParams("a red circle moving right", frames=FRAMES, steps=STEPS, guidance_scale=7.5,
                                           seed=SEED)
    loras = {}
    reference = AnimateDiffPipeline(vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
                                    unet=tiny_pipe.unet, motion_adapter=motion_adapter,
                                    scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config))
    reference.set_progress_bar_config(disable=True)
    if lora_scale is not None:
        load_lora(motion_unet, str(motion_lora), "pan", local=True, weight_name=config.LORA_FILE)
        loras = {"pan": lora_scale}
        reference.load_lora_weights(str(motion_lora), adapter_name="pan", weight_name=config.LORA_FILE)
        reference.set_adapters(["pan"], [lora_scale])
    ours = animatediff.generate(tiny_pipe, motion_unet, params, loras=loras)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(SEED), frames=FRAMES)
    expected = reference("a red circle moving right", num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=7.5,
                         latents=latents, output_type="np").frames[0]
    delta = max_delta(ours, expected)
    print(f"AnimateDiff vs diffusers (motion LoRA {lora_scale}): max |Δ| = {delta:.2f}/255")
    assert ours.shape == expected.shape[:1] + (32, 32, 3) and delta <= 2


@pytest.fixture(scope="module")
def adapters(tiny_pipe):
    torch.manual_seed(13)
    made = [ta.make_adapter(tuple(tiny_pipe.unet.config.block_out_channels), tiny_pipe.vae_scale_factor, in_channels=c)
            for c in (1, 3)]
    for adapter in made:
        for p in adapter.parameters():
            torch.nn.init.normal_(p, std=0.05)
    return [adapter.eval() for adapter in made]


@pytest.mark.parametrize("kinds", [("canny",), ("canny", "palette")])
def test_t2i_adapter_matches_diffusers_adapter_pipeline(tiny_pipe, adapters, kinds):
    """One adapter (weight 0.8) against StableDiffusionAdapterPipeline, two (0.8, 0.5) against it with a MultiAdapter;
    cond_tau 1, where diffusers' adapter_conditioning_factor and the official cond_tau agree."""
    from diffusers import MultiAdapter, StableDiffusionAdapterPipeline

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in kinds]
    chosen = adapters[:len(kinds)] if len(kinds) > 1 else adapters[:1]
    weights = [0.8, 0.5][:len(kinds)]
    params = ta.AdapterParams("a red circle", list(kinds), weights, 1.0, False, STEPS, 7.5, SEED)
    ours = ta.generate(tiny_pipe, chosen, images, params).image
    pixels = [ta.adapter_input(adapter, image) for adapter, image in zip(chosen, images)]
    reference = StableDiffusionAdapterPipeline(
        vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer, unet=tiny_pipe.unet,
        adapter=chosen[0] if len(chosen) == 1 else MultiAdapter(chosen),
        scheduler=type(tiny_pipe.scheduler).from_config(tiny_pipe.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(SEED))
    expected = reference("a red circle", image=pixels[0] if len(pixels) == 1 else pixels, num_inference_steps=STEPS,
                         guidance_scale=7.5, latents=latents, adapter_conditioning_scale=weights[0] if len(weights) == 1
                         else weights, output_type="np").images[0]
    delta = max_delta(ours, expected)
    print(f"T2I-Adapter {'+'.join(kinds)} vs diffusers: max |Δ| = {delta:.2f}/255")
    assert delta <= 2
