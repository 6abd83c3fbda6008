"""AnimateDiff under control (core.video_control), the SD1.5 path of VideoComposer and Gen-1: Gen-1's frame-wise
prediction is the same motion UNet with its motion modules bypassed, which is the image UNet it was inflated from;
temporal_guidance 0 is that prediction, 1 the video one. (Parity with diffusers' AnimateDiff ControlNet and
SparseCtrl pipelines: tests/test_parity.py.)"""
from __future__ import annotations

import numpy as np
import torch

from core import video_control
from core.motion import inflate, motion_bypassed, new_motion_adapter
from core.sampling import encode_images, frame_context, encode_prompts

FRAMES = 3


def _random(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model.eval()


def _inputs(pipe):
    torch.manual_seed(5)
    sample = torch.randn(2, 4, FRAMES, 16, 16)
    context = frame_context(encode_prompts(pipe, ["", "a red circle"]), FRAMES)
    return sample, context


def _fold(sample):
    b, c, f, h, w = sample.shape
    return sample.transpose(1, 2).reshape(b * f, c, h, w)


def _unfold(x, b):
    return x.view(b, -1, *x.shape[1:]).transpose(1, 2)


def test_bypassed_motion_modules_give_the_base_unet(tiny_pipe):
    motion_unet = inflate(tiny_pipe.unet, _random(new_motion_adapter(tiny_pipe.unet, max_frames=8), 1))
    sample, context = _inputs(tiny_pipe)
    with torch.no_grad():
        video = motion_unet(sample, 10, encoder_hidden_states=context).sample
        with motion_bypassed():
            bypassed = motion_unet(sample, 10, encoder_hidden_states=context).sample
        base = _unfold(tiny_pipe.unet(_fold(sample), 10, encoder_hidden_states=context).sample, 2)
        again = motion_unet(sample, 10, encoder_hidden_states=context).sample  # the bypass ends with its block
    assert (bypassed - base).abs().max() < 1e-5
    assert (video - base).abs().max() > 1e-2 and torch.equal(video, again)


def test_temporal_guidance_mixes_the_video_and_the_framewise_prediction(tiny_pipe):
    from diffusers import ControlNetModel

    motion_unet = inflate(tiny_pipe.unet, _random(new_motion_adapter(tiny_pipe.unet, max_frames=8), 1))
    controlnet = _random(ControlNetModel.from_unet(tiny_pipe.unet, conditioning_embedding_out_channels=(16, 32)), 2)
    conditions = np.random.default_rng(0).integers(0, 256, (FRAMES, 32, 32, 3), dtype=np.uint8)
    control = video_control.frame_control(controlnet, conditions, 0.7)
    sample, context = _inputs(tiny_pipe)
    with torch.no_grad():
        predict = {w: video_control.ControlledMotionUNet(motion_unet, [control], temporal_guidance=w)(
            sample, 10, context).sample for w in (0.0, 1.0, 2.5)}
        down, mid = controlnet(_fold(sample), 10, encoder_hidden_states=context,
                               controlnet_cond=control.frames.repeat(2, 1, 1, 1), conditioning_scale=0.7,
                               return_dict=False)
        framewise = _unfold(tiny_pipe.unet(_fold(sample), 10, encoder_hidden_states=context,
                                           down_block_additional_residuals=down,
                                           mid_block_additional_residual=mid).sample, 2)
        video = motion_unet(sample, 10, encoder_hidden_states=context, down_block_additional_residuals=down,
                            mid_block_additional_residual=mid).sample
    assert (predict[0.0] - framewise).abs().max() < 1e-5  # w = 0: the frame-wise prediction, controls included
    assert torch.equal(predict[1.0], video)  # w = 1: the video model alone
    assert (predict[2.5] - (framewise + 2.5 * (video - framewise))).abs().max() < 1e-5
    assert (video - framewise).abs().max() > 1e-2


def test_inpainting_keeps_the_reference_outside_the_hole(tiny_pipe, monkeypatch):
    motion_unet = inflate(tiny_pipe.unet, _random(new_motion_adapter(tiny_pipe.unet, max_frames=8), 1))
    reference = np.random.default_rng(1).integers(0, 256, (FRAMES, 32, 32, 3), dtype=np.uint8)
    keep = np.ones((16, 16), np.float32)
    keep[4:12, 4:12] = 0
    captured = {}
    params = video_control.ControlledVideoParams("a red circle", frames=FRAMES, steps=3, seed=0)
    original = video_control.KeepOutside.__call__

    def spy(self, step, timestep, latents, x0):
        captured["latents"] = original(self, step, timestep, latents, x0)
        return captured["latents"]

    monkeypatch.setattr(video_control.KeepOutside, "__call__", spy)  # the blended latents of the last step
    video_control.generate(tiny_pipe, motion_unet, params, inpaint=(reference, keep))
    expected = encode_images(tiny_pipe, reference).transpose(0, 1)[None]
    final = captured["latents"]
    outside = torch.from_numpy(keep).bool()
    assert torch.equal(final[..., outside], expected[..., outside])  # the last step lands on the reference
    assert (final[..., ~outside] - expected[..., ~outside]).abs().max() > 0.1  # the hole is generated


def test_a_caller_controller_sees_every_step_of_a_controlled_video(tiny_pipe, step_log):
    """Image prompts are added to the running call's attention state, not a new one: a controller the caller made
    active still sees every step (AnimateDiff's loop is this one)."""
    from core.attention import install

    motion_unet = inflate(tiny_pipe.unet, _random(new_motion_adapter(tiny_pipe.unet, max_frames=8), 1))
    params = video_control.ControlledVideoParams("a red circle", frames=FRAMES, steps=3, seed=0)
    with install(motion_unet).use([step_log]):
        video_control.generate(tiny_pipe, motion_unet, params, image_prompts=[None])
    assert step_log.steps == [(i, 3) for i in range(3)]
