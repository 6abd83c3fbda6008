"""VideoComposer / Gen-1 mechanics on tiny random components and procedural clips (issue 10)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from core import config
from core.conditions import coarsen, pseudo_depth
from core.shapes.dataset import moving_reference
from core.models import ModelLoadError, Models
from core.motion import inflate, new_motion_adapter
from core.shapes import reader
from core.video import draw_motion, frame_motion, side_by_side
from core.videocomposer import (CONDITION_CHANNELS, ComposedUNet, STCEncoder, VideoComposer, condition_sequences,
                                to_tensors, widen_input)


def make_tiny_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=16,
                                attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))


def make_tiny_motion_unet():
    unet = make_tiny_unet()
    adapter = new_motion_adapter(unet)
    for name, p in adapter.named_parameters():  # non-zero temporal layers, so frames interact
        if name.endswith("proj_out.weight"):
            torch.nn.init.normal_(p, std=0.1)
    return inflate(unet, adapter).eval()


@pytest.fixture(scope="module")
def tiny_motion_unet():
    return make_tiny_motion_unet()


def test_motion_vectors_of_a_right_moving_clip_point_right():
    clip = moving_reference("red", "circle", "right")
    flow = frame_motion(clip)
    assert flow.shape == (*clip.shape[:3], 2) and not flow[0].any()
    for frame, vectors in zip(clip[1:], flow[1:]):
        on_object = reader.read_single(frame).mask
        assert vectors[..., 0][on_object].mean() > 1.0  # 2.5 px per frame to the right
        assert abs(vectors[..., 1][on_object].mean()) < 0.5
    drawn = draw_motion(clip[3], flow[3])
    assert drawn.shape == clip[3].shape and (drawn != clip[3]).any()  # arrows were drawn


def test_condition_sequences_have_the_encoders_layout():
    clip = moving_reference("blue", "square", "down")
    sequences = condition_sequences(clip, list(CONDITION_CHANNELS))
    for kind, channels in CONDITION_CHANNELS.items():
        assert sequences[kind].shape == (8, 64, 64, channels), kind
        assert sequences[kind].dtype == np.float32
    for kind in ("depth", "sketch", "single_image", "single_sketch", "mask"):
        assert sequences[kind].min() >= -1 and sequences[kind].max() <= 1
    assert (sequences["single_image"] == sequences["single_image"][0]).all()  # one image repeated
    keep = sequences["mask"][..., 3]
    assert 0 < keep.mean() < 1 and (sequences["mask"][..., :3][keep == 0] == 0).all()  # the hole is blanked
    tensors = to_tensors(sequences)
    assert tensors["motion"].shape == (1, 8, 2, 64, 64)
    with pytest.raises(ValueError, match="unknown condition"):
        condition_sequences(clip, ["optical-illusion"])


def test_pseudo_depth_is_near_on_the_object_and_coarsening_loosens_it():
    frame = moving_reference("green", "triangle", "left")[0]
    depth = pseudo_depth(frame)[..., 0].astype(float)
    on_object = reader.read_single(frame).mask
    assert depth[on_object].mean() > 100 and depth[~on_object].mean() < 20
    assert (coarsen(depth, 0) == depth).all()
    errors = [np.abs(coarsen(depth, level) - depth).mean() for level in range(4)]
    assert errors[0] == 0 and all(a < b for a, b in zip(errors, errors[1:]))


def test_stc_encoder_mixes_frames_and_reaches_the_latent_grid():
    torch.manual_seed(0)
    encoder = STCEncoder(2, 16, 4, downsample_steps=2).eval()
    x = torch.randn(1, 5, 2, 32, 32)
    out = encoder(x)
    assert out.shape == (1, 4, 5, 8, 8)
    changed = x.clone()
    changed[:, 4] += 1  # change only the last frame
    assert not torch.allclose(encoder(changed)[:, :, 0], out[:, :, 0])  # the temporal transformer carries it


def test_features_sum_over_conditions_and_are_zero_without_any():
    torch.manual_seed(0)
    composer = VideoComposer(conditions=("motion", "depth"), hidden=16, downsample_steps=2).eval()
    conditions = {"motion": torch.randn(1, 3, 2, 16, 16), "depth": torch.randn(1, 3, 1, 16, 16)}
    shape = (1, 4, 3, 4, 4)
    both = composer.features(conditions, shape)
    alone = sum(composer.features({k: v}, shape) for k, v in conditions.items())
    torch.testing.assert_close(both, alone)
    assert not composer.features({}, shape).any()
    with pytest.raises(ValueError, match="no encoder for 'sketch'"):
        composer.features({"sketch": torch.zeros(1, 3, 1, 16, 16)}, shape)
    assert not composer.style_token(None, 2).any() and composer.style_token(torch.randn(2, 128), 2).shape == (2, 1, 128)


def test_widened_input_starts_as_the_base_and_composed_unet_guides(tiny_motion_unet):
    unet = tiny_motion_unet
    x = torch.randn(1, 4, 3, 8, 8)
    context = torch.randn(3, 7, 16)
    with torch.no_grad():
        before = unet(x, 10, encoder_hidden_states=context).sample
        widen_input(unet, 2)
        assert unet.config.in_channels == 6
        features = torch.randn(1, 2, 3, 8, 8)
        composed = ComposedUNet(unet, features)
        torch.testing.assert_close(composed(x, 10, encoder_hidden_states=context).sample, before)  # zero weights
        torch.nn.init.normal_(unet.conv_in.weight[:, 4:], std=0.5)
        video = composed(x, 10, encoder_hidden_states=context).sample
        assert not torch.allclose(video, before)  # now the features count
        # frame-wise prediction: each frame through the UNet alone
        single = torch.cat([x, features], 1).transpose(1, 2).reshape(3, 6, 1, 8, 8)
        frames = unet(single, 10, encoder_hidden_states=context).sample.view(1, 3, 4, 8, 8).transpose(1, 2)
        assert not torch.allclose(frames, video)  # the temporal layers mix frames
        torch.testing.assert_close(ComposedUNet(unet, features, 0.0)(x, 10, encoder_hidden_states=context).sample, frames)
        mixed = ComposedUNet(unet, features, 2.0)(x, 10, encoder_hidden_states=context).sample
        torch.testing.assert_close(mixed, frames + 2.0 * (video - frames))
    assert composed.attn_processors.keys() == unet.attn_processors.keys()


def test_the_frame_wise_prediction_has_no_cross_frame_attention():
    """Gen-1 runs the video with cross-frame attention; its temporal guidance's frame-wise branch must
    be each frame alone: no temporal layers and no keys/values from the first frame."""
    from core.attention import FrameMode, install
    unet = make_tiny_motion_unet()
    state = install(unet)
    x, context = torch.randn(1, 4, 3, 8, 8), torch.randn(3, 7, 16)
    features = torch.zeros(1, 0, 3, 8, 8)
    single = x.transpose(1, 2).reshape(3, 4, 1, 8, 8)
    with torch.no_grad():
        with state.use(frames=1):
            alone = unet(single, 10, encoder_hidden_states=context).sample.view(1, 3, 4, 8, 8).transpose(1, 2)
        with state.use(frames=3, frame_mode=FrameMode.FIRST):
            leaked = unet(single, 10, encoder_hidden_states=context).sample.view(1, 3, 4, 8, 8).transpose(1, 2)
            frame_wise = ComposedUNet(unet, features, 0.0)(x, 10, encoder_hidden_states=context).sample
            assert (state.frames, state.frame_mode) == (3, FrameMode.FIRST)  # restored for the next call
    assert not torch.allclose(leaked, alone)  # the mode would change the frame-wise branch
    torch.testing.assert_close(frame_wise, alone)


def test_side_by_side_and_missing_weights_are_clear():
    a, b = np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 5, 3), np.uint8)
    assert side_by_side([a, b]).shape == (3, 8, 15, 3)
    models = Models("stable-diffusion-v1-5/stable-diffusion-v1-5", device="cpu")
    with pytest.raises(ModelLoadError, match="no VideoComposer weights"):
        models.videocomposer()
    assert config.VIDEOCOMPOSER_MODELS[config.EMBEDDED_BASE_MODEL] == config.EMBEDDED_VIDEOCOMPOSER


def test_a_depth_model_feeds_the_depth_condition(tmp_path, monkeypatch):
    """The GPU path's depth (a transformers depth model, safetensors) on a tiny random DPT saved here."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    from core.methods.videocomposer import depth_for

    torch.manual_seed(0)
    tiny = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=32,
                     patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
                     fusion_hidden_size=16, head_hidden_size=8)
    DPTForDepthEstimation(tiny).save_pretrained(tmp_path, safe_serialization=True)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(tmp_path)
    models = Models(config.EMBEDDED_BASE_MODEL, device="cpu", allow_local=True)
    clip = moving_reference("red", "circle", "right")
    assert depth_for(models, clip, ["depth"], 4) is None  # the embedded model learnt the offline stand-in
    monkeypatch.setitem(config.VIDEOCOMPOSER_DEPTH_MODELS, config.EMBEDDED_VIDEOCOMPOSER, str(tmp_path))
    depth = depth_for(models, clip, ["depth", "motion"], 4)
    assert depth.shape == (4, 64, 64) and depth.dtype == np.float32 and 0 <= depth.min() <= depth.max() <= 1
    assert depth_for(models, clip, ["motion"], 4) is None
    sequences = condition_sequences(clip[:4], ["depth"], depth=depth)
    np.testing.assert_allclose((sequences["depth"][..., 0] + 1) / 2, depth, atol=1 / 255)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="could not load the depth model"):
        models.depth_estimator(str(tmp_path / "empty"))


def test_latent_like_widening_reads_features_as_extra_latent_signal():
    unet = make_tiny_unet().eval()
    x, features, context = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 7, 16)
    with torch.no_grad():
        expected = unet(x + 0.1 * features, 10, encoder_hidden_states=context).sample
        widen_input(unet, 4, latent_like=0.1)
        torch.testing.assert_close(unet(torch.cat([x, features], 1), 10, encoder_hidden_states=context).sample,
                                   expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="as many extra channels"):
        widen_input(unet, 3, latent_like=0.1)
