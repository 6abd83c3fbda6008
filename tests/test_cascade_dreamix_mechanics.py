"""Imagen-Video-style cascade, dynamic thresholding and Dreamix mechanics on tiny random components (issue 11)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.attention import FrameMode
from core.methods import dreamix, imagen_video
from core.motion import inflate, new_motion_adapter, temporal_parameters
from core.denoisers import TextGuided
from core.sampling import Snapshots, denoise, encode_prompts, prepare_latents
from core.thresholding import RewrittenX0, dynamic_threshold, saturated_share, static_clip
from core.training.video_tuning import TEMPORAL, run_to_end, tune_on_clip


@pytest.fixture(scope="module")
def motion_unet(tiny_pipe):
    torch.manual_seed(3)
    unet = inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=16))
    for p in temporal_parameters(unet).values():
        torch.nn.init.normal_(p, std=0.02)
    return unet


def test_cascade_stage_shapes(tiny_pipe, motion_unet):
    params = imagen_video.CascadeParams("a red circle", base_frames=2, tsr_factor=2, ssr_factor=2, steps=3,
                                       guidance_scale=4.0, oscillating_guidance=True)
    base, tsr, ssr = imagen_video.run(tiny_pipe, motion_unet, params, max_frames=16)
    assert base.frames.shape == (2, 32, 32, 3)
    assert tsr.frames.shape == (4, 32, 32, 3)
    assert ssr.frames.shape == (4, 64, 64, 3)


def test_oscillating_guidance_alternates_then_holds():
    params = imagen_video.CascadeParams("x", guidance_scale=7.0, oscillating_guidance=True)
    schedule = imagen_video.guidance_schedule(params, 10)
    assert schedule[:4] == [7.0, 1.0, 7.0, 1.0] and schedule[-3:] == [7.0, 7.0, 7.0]


def test_dynamic_threshold_keeps_the_bound_and_saturates_less():
    torch.manual_seed(0)
    x0 = torch.randn(2, 4, 8, 8) * 2.5  # a guided x̂0 that overshoots the bound of 3 in places
    dynamic, static = dynamic_threshold(x0, 0.995, bound=3.0), static_clip(x0, 3.0)
    assert dynamic.abs().max() <= 3.0 + 1e-5
    assert saturated_share(dynamic, 3.0) < saturated_share(static, 3.0)
    inside = torch.randn(1, 4, 8, 8) * 0.5  # nothing past the bound: left as it is
    assert torch.allclose(dynamic_threshold(inside, 0.995, bound=3.0), inside)


def test_the_loop_moves_towards_the_rewritten_x0(tiny_pipe):
    """RewrittenX0: every step's reported x̂0 is the transformed one."""
    from diffusers import DDIMScheduler
    scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(0))
    text = encode_prompts(tiny_pipe, ["a red circle"])
    snapshots = Snapshots(range(4))
    denoise(TextGuided(tiny_pipe.unet, text, encode_prompts(tiny_pipe, [""]), 20.0),
            RewrittenX0(scheduler, lambda x0: static_clip(x0, 0.5)), latents * 30, 4, hooks=[snapshots])
    assert len(snapshots.taken) == 4 and all(s.x0.abs().max() <= 0.5 + 1e-4 for s in snapshots.taken)


def test_still_frame_loss_leaves_temporal_layers_untouched(tiny_pipe, motion_unet):
    """Dreamix's masked temporal attention: stills train the spatial layers only."""
    import copy
    unet = copy.deepcopy(motion_unet)
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    clip = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    trained = run_to_end(tune_on_clip(tiny_pipe, unet, clip, "a red circle", steps=2, lr=1e-2, seed=0,
                                      video_weight=0.0, still_weight=1.0))
    after = dict(unet.named_parameters())
    temporal = [n for n in trained if TEMPORAL.search(n)]
    spatial = [n for n in trained if not TEMPORAL.search(n)]
    assert temporal and spatial
    assert all(torch.equal(before[n], after[n]) for n in temporal)
    assert any(not torch.equal(before[n], after[n]) for n in spatial)
    # the video loss does reach them
    run_to_end(tune_on_clip(tiny_pipe, unet, clip, "a red circle", steps=1, lr=1e-2, seed=0, video_weight=1.0))
    assert any(not torch.equal(before[n], after[n]) for n in temporal)


@pytest.mark.parametrize("frame_mode", [FrameMode.NONE, FrameMode.SPARSE_CAUSAL])
def test_gradient_checkpointing_trains_the_same_weights(tiny_pipe, motion_unet, frame_mode):
    """Recomputing activations in the backward pass (in the step's frame mode) changes memory, not the result:
    both losses, Tune-A-Video's sparse-causal attention and Dreamix's stills, train the same weights."""
    import copy
    clip = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    trained = {}
    for checkpointing in (False, True):
        unet = copy.deepcopy(motion_unet)
        names = run_to_end(tune_on_clip(tiny_pipe, unet, clip, "a red circle", steps=2, lr=1e-2, seed=0,
                                        still_weight=0.5, frame_mode=frame_mode,
                                        gradient_checkpointing=checkpointing))
        parameters = dict(unet.named_parameters())
        trained[checkpointing] = {n: parameters[n].detach().clone() for n in names}
        assert not unet.is_gradient_checkpointing  # left as it was found
    moved = [n for n in trained[True] if not torch.equal(trained[True][n], dict(motion_unet.named_parameters())[n])]
    assert moved
    for name in trained[True]:
        torch.testing.assert_close(trained[True][name], trained[False][name], rtol=1e-3, atol=1e-5)  # Adam steps ~1e-2


@pytest.mark.parametrize("mode", dreamix.MODES)
def test_dreamix_modes_run(tiny_pipe, motion_unet, mode):
    rng = np.random.default_rng(1)
    media = rng.integers(0, 255, (6 if mode == "edit" else 2, 40, 40, 3), dtype=np.uint8)
    params = dreamix.DreamixParams("a blue circle", mode=mode, finetune_steps=1, frames=4, steps=3, guidance_scale=3.0)
    out, clip = dreamix.run(tiny_pipe, motion_unet, media, params)
    assert out.shape == (4, 32, 32, 3)
    assert clip.shape[1:] == (32, 32, 3)


def test_camera_move_pans_right():
    image = np.full((32, 32, 3), 245, np.uint8)
    image[12:20, 4:12] = (220, 40, 40)
    frames = dreamix.camera_move(image, 5, "pan right", amount=0.25)
    columns = [np.nonzero((f[..., 1] < 100).any(0))[0].mean() for f in frames]
    assert np.all(np.diff(columns) > 0) and columns[-1] - columns[0] == pytest.approx(8, abs=1)


def test_degrade_keeps_less_with_a_larger_factor():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    errors = [np.abs(dreamix.degrade(frames, f).astype(int) - frames).mean() for f in (1, 2, 8)]
    assert errors[0] == 0 and errors[1] < errors[2]
