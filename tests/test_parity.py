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


def _randomised(model, seed: int, std: float = 0.05):
    """Random weights everywhere (a new ControlNet's zero convolutions would make any residual path pass)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model.eval()


@pytest.fixture(scope="module")
def video_controls(tiny_pipe):
    from diffusers import ControlNetModel, SparseControlNetModel

    controlnet = _randomised(ControlNetModel.from_unet(tiny_pipe.unet, conditioning_embedding_out_channels=(16, 32)), 21)
    sparse = {simplified: _randomised(SparseControlNetModel(
        conditioning_channels=4 if simplified else 3, down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16, cross_attention_dim=32,
        attention_head_dim=(2, 4), conditioning_embedding_out_channels=(16, 32), motion_max_seq_length=8,
        motion_num_attention_heads=2, use_simplified_condition_embedding=simplified), 22)
        for simplified in (False, True)}
    return controlnet, sparse


def _condition_frames(frames: int = FRAMES) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8)


def test_animatediff_controlnet_matches_diffusers(tiny_pipe, motion_adapter, video_controls):
    from diffusers import AnimateDiffControlNetPipeline, DDIMScheduler
    from PIL import Image

    from core import video_control

    controlnet = video_controls[0]
    conditions = _condition_frames()
    motion_unet = inflate(tiny_pipe.unet, motion_adapter)
    params = video_control.ControlledVideoParams("a red circle", frames=FRAMES, steps=STEPS, guidance_scale=7.5, seed=SEED)
    ours = video_control.generate(tiny_pipe, motion_unet, params,
                                  [video_control.frame_control(controlnet, conditions, 0.8)])
    reference = AnimateDiffControlNetPipeline(
        vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer, unet=tiny_pipe.unet,
        motion_adapter=motion_adapter, controlnet=controlnet, scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config))
    reference.set_progress_bar_config(disable=True)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(SEED), frames=FRAMES)
    expected = reference("a red circle", num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=7.5,
                         conditioning_frames=[Image.fromarray(c) for c in conditions], controlnet_conditioning_scale=0.8,
                         latents=latents, output_type="np").frames[0]
    without = video_control.generate(tiny_pipe, motion_unet, params)
    delta = max_delta(ours, expected)
    print(f"AnimateDiff + ControlNet vs diffusers: max |Δ| = {delta:.2f}/255; "
          f"without the ControlNet {max_delta(without, expected):.1f}/255")
    assert delta <= 2 and max_delta(without, expected) > 2


@pytest.mark.parametrize("simplified", [False, True], ids=["scribble-like", "rgb-like"])
def test_sparsectrl_matches_diffusers(tiny_pipe, motion_adapter, video_controls, simplified):
    from diffusers import AnimateDiffSparseControlNetPipeline, DDIMScheduler
    from PIL import Image

    from core import video_control

    sparse = video_controls[1][simplified]
    key = _condition_frames(1)
    motion_unet = inflate(tiny_pipe.unet, motion_adapter)
    params = video_control.ControlledVideoParams("a red circle", frames=FRAMES, steps=STEPS, guidance_scale=7.5, seed=SEED)
    ours = video_control.generate(tiny_pipe, motion_unet, params,
                                  sparse=video_control.sparse_control(tiny_pipe, sparse, key, [0], FRAMES, 0.9))
    reference = AnimateDiffSparseControlNetPipeline(
        vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer, unet=tiny_pipe.unet,
        motion_adapter=motion_adapter, controlnet=sparse, scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config))
    reference.set_progress_bar_config(disable=True)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(SEED), frames=FRAMES)
    if simplified:  # diffusers samples the key frame's latents unseeded; make the posterior a point
        reference.vae = _PosteriorMean(tiny_pipe.vae)
    expected = reference("a red circle", num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=7.5,
                         conditioning_frames=[Image.fromarray(key[0])], controlnet_frame_indices=[0],
                         controlnet_conditioning_scale=0.9, latents=latents, output_type="np").frames[0]
    without = video_control.generate(tiny_pipe, motion_unet, params)
    delta = max_delta(ours, expected)
    print(f"SparseCtrl ({'rgb' if simplified else 'scribble'}) vs diffusers: max |Δ| = {delta:.2f}/255; "
          f"without it {max_delta(without, expected):.1f}/255")
    assert delta <= 2 and max_delta(without, expected) > 2


class _PosteriorMean(torch.nn.Module):
    """The tiny VAE, with encode's distribution collapsed to its mean (what our SparseCtrl path uses)."""

    def __init__(self, vae):
        super().__init__()
        self.vae, self.config = vae, vae.config

    def encode(self, pixels):
        out = self.vae.encode(pixels)
        out.latent_dist.std.zero_()
        return out

    def decode(self, *args, **kwargs):
        return self.vae.decode(*args, **kwargs)

    @property
    def dtype(self):
        return self.vae.dtype

    @property
    def device(self):
        return self.vae.device
