"""Text2Video-Zero and FateZero mechanics on tiny random components."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

from core.control.fusion import InversionMapStore
from core.methods import fatezero, t2v_zero
from core.shapes.dataset import moving_clip


def test_translate_follows_the_official_flow_and_stays_rigid():
    """Frame k shows the latent at p + flow (flows in px of a 512-px frame), as the official warp: positive flow moves
    the content left / up. A flow that lands on half a latent pixel in the official's resized grid still moves
    every row and column by the same whole number of pixels."""
    latent = torch.zeros(1, 1, 8, 8)  # 64 px of a 512-px frame per latent pixel
    latent[0, 0, 2, 2] = 1
    moved = t2v_zero.translate(latent, [(128, 0), (0, -64)])
    assert torch.nonzero(moved[0, 0]).tolist() == [[2, 0]]  # sampled at p + 2: moved left 2
    assert torch.nonzero(moved[1, 0]).tolist() == [[3, 2]]  # sampled at p − 1: moved down 1
    ramp = (torch.arange(64).view(1, 64) + 100 * torch.arange(64).view(64, 1)).float().view(1, 1, 64, 64)
    half = 8 * 1.5 + 0.5  # (flow − ½)/8 = 1.5 latent pixels: the official's nearest rounds rows two ways there
    shifted = t2v_zero.translate(ramp, [(half, 0)])[0, 0]
    step = shifted[:, :-3] - ramp[0, 0, :, :-3]
    assert bool((step == step[0, 0]).all()) and float(step[0, 0]) in (1.0, 2.0)


def test_text_mode_runs_and_is_deterministic(tiny_pipe):
    params = dict(prompt="a red circle", frames=3, steps=6, t0=2, t1=4, seed=3)
    first = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    again = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    assert first.shape == (3, 32, 32, 3) and np.array_equal(first, again)


def test_warped_noise_without_motion_gives_identical_frames(tiny_pipe):
    params = dict(prompt="a red circle", frames=3, steps=50, seed=3, motion_x=0, motion_y=0)
    warped = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params, noise="warped"))
    assert all(np.array_equal(frame, warped[0]) for frame in warped)
    per_frame = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    assert t2v_zero.T2VZeroParams("x").noise == "per-frame"  # the official re-noising is the default
    assert not np.array_equal(per_frame[1], per_frame[2])  # its own noise per frame
    with pytest.raises(ValueError, match="noise"):
        t2v_zero.T2VZeroParams("a red circle", noise="pink")


def test_any_step_count_takes_the_default_t0_t1(tiny_pipe):
    """t0, t1 count from the end of a 50-step schedule; other step counts take the same fraction."""
    assert t2v_zero.motion_steps(44, 47, 50) == (44, 47)
    assert t2v_zero.motion_steps(44, 47, 25) == (22, 24)
    assert t2v_zero.motion_steps(44, 47, 2) == (0, 1)
    for steps in (2, 7, 60):
        out = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams("a red circle", frames=2, steps=steps))
        assert out.shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="t0"):
        t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams("a red circle", t0=47, t1=47))


def test_text_mode_matches_diffusers_text_to_video_zero(tiny_pipe):
    """diffusers' TextToVideoZeroPipeline (the official code's port) on the same components, seed and settings:
    per-frame noise, DDIM, classifier-free guidance, frame-1 cross-frame attention."""
    import copy

    from diffusers import DDIMScheduler
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import TextToVideoZeroPipeline

    reference = TextToVideoZeroPipeline(vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
                                        unet=copy.deepcopy(tiny_pipe.unet), safety_checker=None, feature_extractor=None,
                                        scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config),
                                        requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    for motion in ((12.0, 12.0), (-40.0, 24.0)):
        expected = reference("a red circle", video_length=3, num_inference_steps=50, guidance_scale=7.5,
                             motion_field_strength_x=motion[0], motion_field_strength_y=motion[1],
                             generator=torch.Generator().manual_seed(5), output_type="np").images
        ours = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams("a red circle", frames=3, steps=50, seed=5,
                                                                   motion_x=motion[0], motion_y=motion[1]))
        delta = np.abs(ours.astype(np.float64) / 255 - expected).max()
        print(f"Text2Video-Zero vs diffusers, motion {motion}: max |Δ| = {delta * 255:.2f}/255")
        assert delta <= 2 / 255


def cross_frame(module, groups: int):
    """A copy of `module` with diffusers' Text2Video-Zero cross-frame attention processor (`groups`: the batch's
    guidance branches, 2 or Instruct-Pix2Pix's 3)."""
    import copy

    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import CrossFrameAttnProcessor2_0

    module = copy.deepcopy(module)
    module.set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=groups))
    return module


def test_controlnet_mode_matches_diffusers_controlnet_with_cross_frame_attention(tiny_pipe, tiny_controlnet):
    """The official ControlNet mode: one x_T shared by every frame, DDIM, cross-frame attention in the UNet and
    the ControlNet; diffusers' ControlNet pipeline with its Text2Video-Zero processor is the reference."""
    from diffusers import DDIMScheduler, StableDiffusionControlNetPipeline

    from core.sampling import prepare_latents

    conditions = np.zeros((3, 32, 32, 3), np.uint8)
    for k in range(3):
        conditions[k, 8:24, 4 + 4 * k:16 + 4 * k] = 255
    params = t2v_zero.T2VZeroParams("a red circle", frames=3, steps=6, seed=2)
    ours = t2v_zero.generate_controlled(tiny_pipe, tiny_controlnet, conditions, params)
    reference = StableDiffusionControlNetPipeline(
        vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder, tokenizer=tiny_pipe.tokenizer,
        unet=cross_frame(tiny_pipe.unet, 2), controlnet=cross_frame(tiny_controlnet, 2),
        scheduler=DDIMScheduler.from_config(tiny_pipe.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(2)).repeat(3, 1, 1, 1)
    expected = reference(["a red circle"] * 3, image=torch.from_numpy(conditions).permute(0, 3, 1, 2).float() / 255,
                         num_inference_steps=6, guidance_scale=7.5, latents=latents, output_type="np").images
    delta = np.abs(ours.astype(np.float64) / 255 - expected).max()
    print(f"Text2Video-Zero ControlNet vs diffusers: max |Δ| = {delta * 255:.2f}/255")
    assert delta <= 2 / 255


@pytest.fixture(scope="module")
def tiny_pix2pix(tiny_pipe):
    from diffusers import EulerAncestralDiscreteScheduler

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**tiny_pipe.unet.config, "in_channels": 8})
    pipe = StableDiffusionInstructPix2PixPipeline(vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder,
                                                  tokenizer=tiny_pipe.tokenizer, unet=unet,
                                                  scheduler=EulerAncestralDiscreteScheduler.from_config(tiny_pipe.scheduler.config),
                                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pix2pix_mode_matches_diffusers_pix2pix_with_cross_frame_attention(tiny_pix2pix):
    """The official Video Instruct-Pix2Pix: Euler-ancestral sampling, each frame its own x_T, cross-frame attention
    over Instruct-Pix2Pix's three branches; diffusers' pipeline with its Text2Video-Zero processor is the reference."""
    from PIL import Image

    video = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    ours = t2v_zero.edit_pix2pix(tiny_pix2pix, video, "make it blue", t2v_zero.T2VZeroParams("", frames=3, steps=4, seed=3),
                                 image_guidance_scale=1.5)
    assert ours.shape == (3, 32, 32, 3)
    reference = StableDiffusionInstructPix2PixPipeline(**{**tiny_pix2pix.components, "unet": cross_frame(tiny_pix2pix.unet, 3)})
    reference.set_progress_bar_config(disable=True)
    expected = reference(["make it blue"] * 3, image=[Image.fromarray(frame) for frame in video], num_inference_steps=4,
                         guidance_scale=7.5, image_guidance_scale=1.5, generator=torch.Generator().manual_seed(3),
                         output_type="np").images
    delta = np.abs(ours.astype(np.float64) / 255 - expected).max()
    print(f"Video Instruct-Pix2Pix vs diffusers: max |Δ| = {delta * 255:.2f}/255")
    assert delta <= 2 / 255


def test_pix2pix_mode_refuses_a_plain_model(tiny_pipe):
    with pytest.raises(ValueError, match="Instruct-Pix2Pix"):
        t2v_zero.edit_pix2pix(tiny_pipe, np.zeros((2, 32, 32, 3), np.uint8), "make it blue",
                              t2v_zero.T2VZeroParams("", frames=2, steps=2))


def test_fatezero_stores_small_fp16_maps_and_edits(tiny_pipe):
    video, caption = moving_clip(np.random.default_rng(0), frames=8, size=32)
    words = caption.split()
    target = caption.replace(words[1], "blue" if words[1] != "blue" else "red")
    params = fatezero.FateZeroParams(caption, target, frames=4, steps=5, blend_words=words[2], attention_maps="store")
    result = fatezero.run(tiny_pipe, video, params)
    assert result.edited.shape == result.reconstruction.shape == (4, 32, 32, 3)
    assert result.stored_bytes > 0
    assert not np.array_equal(result.edited, result.reconstruction)


@pytest.mark.parametrize("frames, words", [(4, dict(blend_words="circle")), (3, dict(amplify_words="blue")),
                                           (2, dict(cross_replace_steps=0.4, self_replace_steps=0.6)),
                                           (fatezero.D.max_frames, dict(blend_words="circle"))])
def test_fatezero_recomputed_maps_give_the_stored_maps_video(tiny_pipe, frames, words):
    """The source branch at each step's inverted latent recomputes the inversion's maps: the same edit and
    reconstruction as replaying stored maps, for less memory. Without the source's maps the edit differs."""
    source, target = "a red circle moving right", "a blue circle moving right"
    video = moving_clip(np.random.default_rng(frames), frames=max(8, frames), size=32)[0]
    params = dict(frames=frames, steps=6 if frames <= 4 else 2, **words)
    stored = fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(source, target, attention_maps="store", **params))
    recomputed = fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(source, target, **params))
    for a, b in [(stored.edited, recomputed.edited), (stored.reconstruction, recomputed.reconstruction)]:
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    assert recomputed.stored_bytes < stored.stored_bytes
    unfused = fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(
        source, target, attention_maps="store", **{**params, "cross_replace_steps": 0.0, "self_replace_steps": 0.0}),
        reconstruct=False)
    assert np.abs(unfused.edited.astype(int) - recomputed.edited.astype(int)).max() > 2


def test_fatezero_amplifies_a_new_word_of_the_target(tiny_pipe):
    """amplify_words are the target's (the reconstruction, target = source, is not amplified where the source lacks
    them, rather than refused); the amplification changes the edit."""
    video, caption = moving_clip(np.random.default_rng(1), frames=6, size=32)
    words = caption.split()
    new = "blue" if words[1] != "blue" else "red"
    target = caption.replace(words[1], new)
    plain = fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(caption, target, frames=2, steps=3))
    amplified = fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(caption, target, frames=2, steps=3,
                                                                     amplify_words=new, amplify_value=8.0))
    assert not np.array_equal(plain.edited, amplified.edited)
    np.testing.assert_array_equal(plain.reconstruction, amplified.reconstruction)
    with pytest.raises(ValueError, match="amplify_words"):
        fatezero.run(tiny_pipe, video, fatezero.FateZeroParams(caption, target, frames=2, steps=3,
                                                               amplify_words="zebra"))


def test_inversion_store_keeps_only_small_layers_in_fp16():
    from core.attention import AttentionContext

    store = InversionMapStore(max_queries=256)
    big = AttentionContext("down_blocks.0.attentions.0.transformer_blocks.0.attn1", False, 1024, 0, 5, 4, 4, False)
    small = AttentionContext("up_blocks.1.attentions.0.transformer_blocks.0.attn1", False, 256, 0, 5, 4, 4, False)
    assert not store.wants(big) and store.wants(small)
    store.attention(torch.rand(4, 2, 256, 512), small)
    stored = store.maps[0][small.layer]
    assert stored.dtype == torch.float16 and stored.device.type == "cpu"
    assert store.nbytes() == 4 * 2 * 256 * 512 * 2
