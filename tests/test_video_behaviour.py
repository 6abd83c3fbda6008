"""Text2Video-Zero and FateZero on the embedded toy-sd (issue 5), measured on frames."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import fatezero, t2v_zero
from core.methods.null_text import psnr
from core.models import Models
from core.shapes import reader
from core.video import read_video

EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")


@pytest.fixture(scope="module")
def pipe():
    return Models("toy-sd", device="cpu").pipeline()


def objects(frames):
    blobs = [reader.read_single(f) for f in frames]
    assert all(b is not None for b in blobs)
    return blobs


def recommended(tab: str) -> dict:
    """toy-sd's own starting values for a tab (its studio.json)."""
    return Models("toy-sd", device="cpu").recommended(tab).values


def generate(pipe, **kwargs):
    params = dict(prompt="a red circle on a white background", frames=8, steps=50, guidance_scale=6.0, seed=0)
    return t2v_zero.generate(pipe, t2v_zero.T2VZeroParams(**{**params, **kwargs}))


# With toy-sd's recommended settings (its studio.json): toy-sd fixes its layout later than SD, so frame 1's
# latent is moved half-way (t0 25, t1 28 of 50), and re-noised with warped noise. Measured with the official
# per-frame re-noising: the object wanders ±8 px with no motion and does not follow motion_x. The flow is the
# official's: frame k shows frame 1 at p + k·δ, so a positive motion_x moves the object left.
def test_t2v_zero_motion_x_moves_the_object(pipe):
    settings = recommended("t2v_zero")
    assert settings == {"noise": "warped", "t0": 25, "t1": 28}
    moving = objects(generate(pipe, motion_x=12, motion_y=0, **settings))
    still = objects(generate(pipe, motion_x=0, motion_y=0, **settings))
    print(f"T2V-Zero centroids: moving {[round(b.cx, 1) for b in moving]}, still {[round(b.cx, 1) for b in still]}")
    assert moving[0].cx - moving[-1].cx >= 4
    assert max(abs(b.cx - still[0].cx) for b in still) <= 2
    for blob in moving + still:
        assert (blob.color, blob.shape) == ("red", "circle")


# The ablation's setting (the official per-frame noise, where frames can differ), over 10 seeds:
# the object's area varies from frame to frame (std / mean) more without cross-frame attention.
# Measured: more in 9 of 10 seeds, mean 0.154 vs 0.119 (1.29×); one seed is not a measurement
# (an earlier single-seed test saw 0.186 vs 0.199). With the warped noise frames are translations of
# one latent and both modes give the same areas.
CROSS_FRAME_SEEDS = range(10)


def test_t2v_zero_cross_frame_attention_keeps_appearance(pipe):
    def area_variation(frames):
        areas = np.array([blob.area for blob in objects(frames)], float)
        return float(areas.std() / areas.mean())

    def variations(cross_frame):
        return np.array([area_variation(generate(pipe, motion_x=12, motion_y=0, seed=seed, noise="per-frame",
                                                 cross_frame=cross_frame)) for seed in CROSS_FRAME_SEEDS])

    with_attention, without = variations(True), variations(False)
    print(f"T2V-Zero area variation with {with_attention.round(3)}, without {without.round(3)}")
    # a paired sign test: 8 of 10 by chance has p ≈ 0.055; and the effect must be sizeable on average
    assert (without > with_attention).sum() >= 8, (with_attention, without)
    assert without.mean() >= 1.2 * with_attention.mean(), (with_attention.mean(), without.mean())


@pytest.fixture(scope="module")
def red_circle_video():
    frames, _ = read_video(EXAMPLE_VIDEO)
    return frames


def test_fatezero_recolours_every_frame_and_keeps_motion(pipe, red_circle_video):
    """With toy-sd's recommended unconditional prompt, the source (its studio.json). Measured: every frame blue, IoU
    0.81–0.92, reconstruction 28.7 dB (the VAE alone: 28.6 dB). With the official empty unconditional prompt the
    reconstruction at guidance 6 was 7.1 dB."""
    params = fatezero.FateZeroParams("a red circle moving right on a white background",
                                     "a blue circle moving right on a white background", frames=8, steps=25,
                                     **recommended("fatezero"))
    result = fatezero.run(pipe, red_circle_video, params)
    source, edited = objects(result.source), objects(result.edited)
    assert all(b.color == "blue" for b in edited)
    assert min(reader.mask_iou(a.mask, b.mask) for a, b in zip(source, edited)) >= 0.75
    assert edited[-1].cx - edited[0].cx >= 0.8 * (source[-1].cx - source[0].cx)
    recon = np.mean([psnr(a, b) for a, b in zip(result.reconstruction, result.source)])
    print(f"FateZero: IoU {[round(reader.mask_iou(a.mask, b.mask), 2) for a, b in zip(source, edited)]}, "
          f"reconstruction {recon:.1f} dB")
    assert recon >= 25.0, recon


@pytest.mark.parametrize("edit", [dict(target="a blue circle moving right on a white background", blend_words="circle"),
                                  dict(target="a red square moving right on a white background",
                                       cross_replace_steps=0.5, self_replace_steps=0.5)])
def test_fatezero_recomputed_maps_give_the_stored_maps_video_on_toy_sd(pipe, red_circle_video, edit):
    """On the embedded model: the source branch's recomputed maps give the video that replaying stored maps gives."""
    edit = dict(edit)
    target = edit.pop("target")
    params = dict(frames=2, steps=10, **recommended("fatezero"), **edit)
    source_prompt = "a red circle moving right on a white background"
    stored = fatezero.run(pipe, red_circle_video, fatezero.FateZeroParams(source_prompt, target, attention_maps="store",
                                                                          **params))
    recomputed = fatezero.run(pipe, red_circle_video, fatezero.FateZeroParams(source_prompt, target, **params))
    for a, b in [(stored.edited, recomputed.edited), (stored.reconstruction, recomputed.reconstruction)]:
        difference = np.abs(a.astype(int) - b.astype(int)).max()
        print(f"FateZero store vs recompute on toy-sd: max |Δ| = {difference}/255")
        assert difference <= 2
    assert recomputed.stored_bytes < stored.stored_bytes / 4
