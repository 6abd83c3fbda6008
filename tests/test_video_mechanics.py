"""Text2Video-Zero and FateZero mechanics on tiny random components."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

from core.control.fusion import InversionMapStore
from core.methods import fatezero, t2v_zero
from core.shapes.dataset import moving_clip


def test_translate_moves_content_by_the_shift():
    latent = torch.zeros(1, 1, 8, 8)
    latent[0, 0, 2, 2] = 1
    moved = t2v_zero.translate(latent, [(2, 0), (0, -1)])
    assert torch.nonzero(moved[0, 0]).tolist() == [[2, 4]]
    assert [1, 2] in torch.nonzero(moved[1, 0]).tolist()  # moved up one row


def test_text_mode_runs_and_is_deterministic(tiny_pipe):
    params = dict(prompt="a red circle", frames=3, steps=6, t0=2, t1=4, seed=3)
    first = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    again = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    assert first.shape == (3, 32, 32, 3) and np.array_equal(first, again)


def test_warped_noise_without_motion_gives_identical_frames(tiny_pipe):
    params = dict(prompt="a red circle", frames=3, steps=6, t0=2, t1=4, seed=3, motion_x=0, motion_y=0)
    warped = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params))
    assert all(np.array_equal(frame, warped[0]) for frame in warped)
    per_frame = t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams(**params, noise="per-frame"))
    assert not np.array_equal(per_frame[1], per_frame[2])  # the official re-noising: its own noise per frame
    with pytest.raises(ValueError, match="noise"):
        t2v_zero.T2VZeroParams("a red circle", noise="pink")


def test_t0_t1_are_checked(tiny_pipe):
    with pytest.raises(ValueError, match="t1"):
        t2v_zero.generate(tiny_pipe, t2v_zero.T2VZeroParams("a red circle", steps=10))


def test_controlnet_mode_end_to_end(tiny_pipe, tiny_controlnet):
    conditions = np.zeros((3, 32, 32, 3), np.uint8)
    conditions[:, 8:24, 10:22] = 255
    out = t2v_zero.generate_controlled(tiny_pipe, tiny_controlnet, conditions,
                                       t2v_zero.T2VZeroParams("a red circle", frames=3, steps=4))
    assert out.shape == (3, 32, 32, 3)


@pytest.fixture(scope="module")
def tiny_pix2pix(tiny_pipe):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**tiny_pipe.unet.config, "in_channels": 8})
    pipe = StableDiffusionInstructPix2PixPipeline(vae=tiny_pipe.vae, text_encoder=tiny_pipe.text_encoder,
                                                  tokenizer=tiny_pipe.tokenizer, unet=unet, scheduler=tiny_pipe.scheduler,
                                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pix2pix_mode_end_to_end_and_matches_diffusers_for_one_frame(tiny_pix2pix):
    from PIL import Image

    video = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    out = t2v_zero.edit_pix2pix(tiny_pix2pix, video, "make it blue", t2v_zero.T2VZeroParams("", frames=3, steps=3))
    assert out.shape == (3, 32, 32, 3)
    ours = t2v_zero.edit_pix2pix(tiny_pix2pix, video[:1], "make it blue",
                                 t2v_zero.T2VZeroParams("", frames=1, steps=4, seed=3), image_guidance_scale=1.5)
    reference = tiny_pix2pix("make it blue", image=Image.fromarray(video[0]), num_inference_steps=4, guidance_scale=7.5,
                             image_guidance_scale=1.5, generator=torch.Generator().manual_seed(3), output_type="np").images[0]
    assert np.abs(ours[0] / 255 - reference).max() <= 0.5 / 255 + 1e-3


def test_pix2pix_mode_refuses_a_plain_model(tiny_pipe):
    with pytest.raises(ValueError, match="Instruct-Pix2Pix"):
        t2v_zero.edit_pix2pix(tiny_pipe, np.zeros((2, 32, 32, 3), np.uint8), "make it blue",
                              t2v_zero.T2VZeroParams("", frames=2, steps=2))


def test_fatezero_stores_small_fp16_maps_and_edits(tiny_pipe):
    video, caption = moving_clip(np.random.default_rng(0), frames=8, size=32)
    words = caption.split()
    target = caption.replace(words[1], "blue" if words[1] != "blue" else "red")
    params = fatezero.FateZeroParams(caption, target, frames=4, steps=5, blend_words=words[2])
    result = fatezero.run(tiny_pipe, video, params)
    assert result.edited.shape == result.reconstruction.shape == (4, 32, 32, 3)
    assert result.stored_bytes > 0
    assert not np.array_equal(result.edited, result.reconstruction)


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
