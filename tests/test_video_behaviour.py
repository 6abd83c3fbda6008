"""Text2Video-Zero and FateZero on the embedded toy-sd (issue 5), measured on frames."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import fatezero, t2v_zero
from core.methods.null_text import psnr
from core.models import Models
from core.shapes import reader
from core.shapes.dataset import PALETTE, moving_clip
from core.shapes.metrics import drawn_still_prompts
from core.video import read_video

EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")


@pytest.fixture(scope="module")
def pipe():
    return Models("toy-sd", device="cpu").pipeline()


def drawn_blobs(frames):
    """Each frame's one object, or None where a frame does not show exactly one."""
    return [reader.read_single(f) for f in frames]


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
# Drawn cases (prompts over colours × shapes × backgrounds, seeds, the sign of motion_x), read from pixels.
T2V_MOTION_CASES = 6


def test_t2v_zero_motion_x_moves_the_object(pipe):
    settings = recommended("t2v_zero")
    assert settings == {"noise": "warped", "t0": 25, "t1": 28}
    rng = np.random.default_rng(3605)
    followed, still_held, kept, report = [], [], [], []
    for prompt in drawn_still_prompts(rng, T2V_MOTION_CASES):
        seed, sign = int(rng.integers(10**6)), int(rng.choice([-1, 1]))
        moving = drawn_blobs(generate(pipe, prompt=prompt, seed=seed, motion_x=12 * sign, motion_y=0, **settings))
        still = drawn_blobs(generate(pipe, prompt=prompt, seed=seed, motion_x=0, motion_y=0, **settings))
        if any(b is None for b in moving + still):
            followed.append(False), still_held.append(False), kept.append(False), report.append((prompt, None))
            continue
        shift = sign * (moving[0].cx - moving[-1].cx)  # px the way motion_x asks (positive: left)
        followed.append(shift >= 4)
        still_held.append(max(abs(b.cx - still[0].cx) for b in still) <= 2)
        words = set(prompt.split())
        kept.append(all(b.color in words and b.shape in words for b in moving + still))
        report.append((prompt, round(float(shift), 1)))
    print(f"T2V-Zero motion_x on drawn cases: followed {np.mean(followed):.2f}, still held {np.mean(still_held):.2f}, "
          f"kept {np.mean(kept):.2f}; {report}")
    assert np.mean(followed) >= 0.8
    assert np.mean(still_held) >= 0.8
    assert np.mean(kept) >= 0.8


# The ablation's setting (the official per-frame noise, where frames can differ), over 10 drawn cases (before:
# one prompt, seeds 0–9):
# the object's area varies from frame to frame (std / mean) more without cross-frame attention.
# Measured: more in 9 of 10 seeds, mean 0.154 vs 0.119 (1.29×); one seed is not a measurement
# (an earlier single-seed test saw 0.186 vs 0.199). With the warped noise frames are translations of
# one latent and both modes give the same areas.
CROSS_FRAME_CASES = 10  # drawn prompts (colours × shapes × backgrounds) and seeds


def test_t2v_zero_cross_frame_attention_keeps_appearance(pipe):
    def area_variation(frames):  # NaN where a frame does not show one object
        blobs = drawn_blobs(frames)
        if any(b is None for b in blobs):
            return float("nan")
        areas = np.array([blob.area for blob in blobs], float)
        return float(areas.std() / areas.mean())

    rng = np.random.default_rng(3609)
    cases = [(prompt, int(rng.integers(10**6))) for prompt in drawn_still_prompts(rng, CROSS_FRAME_CASES)]

    def variations(cross_frame):
        return np.array([area_variation(generate(pipe, prompt=prompt, motion_x=12, motion_y=0, seed=seed,
                                                 noise="per-frame", cross_frame=cross_frame)) for prompt, seed in cases])

    with_attention, without = variations(True), variations(False)
    print(f"T2V-Zero area variation with {with_attention.round(3)}, without {without.round(3)}")
    readable = ~(np.isnan(with_attention) | np.isnan(without))
    assert readable.sum() >= 8, "fewer than 8 of the drawn cases show one object in every frame"
    with_attention, without = with_attention[readable], without[readable]
    # a paired sign test: 8 of 10 by chance has p ≈ 0.055; and the effect must be sizeable on average
    assert (without > with_attention).mean() >= 0.8, (with_attention, without)
    assert without.mean() >= 1.2 * with_attention.mean(), (with_attention.mean(), without.mean())


@pytest.fixture(scope="module")
def red_circle_video():
    frames, _ = read_video(EXAMPLE_VIDEO)
    return frames


def fatezero_recolour_held(pipe, clip, caption, new_color) -> tuple[bool, str]:
    old_color = caption.split()[1]
    params = fatezero.FateZeroParams(caption, caption.replace(f" {old_color} ", f" {new_color} ", 1), frames=8,
                                     steps=25, **recommended("fatezero"))
    result = fatezero.run(pipe, clip, params)
    source, edited = drawn_blobs(result.source), drawn_blobs(result.edited)
    recon = float(np.mean([psnr(a, b) for a, b in zip(result.reconstruction, result.source)]))
    if any(b is None for b in source + edited):
        return False, f"{caption} → {new_color}: not one object in every frame"
    ious = [reader.mask_iou(a.mask, b.mask) for a, b in zip(source, edited)]
    travel, kept_travel = np.hypot(source[-1].cx - source[0].cx, source[-1].cy - source[0].cy), \
        np.hypot(edited[-1].cx - edited[0].cx, edited[-1].cy - edited[0].cy)
    held = (all(b.color == new_color for b in edited) and min(ious) >= 0.75 and kept_travel >= 0.8 * travel
            and recon >= 25.0)
    return bool(held), f"{caption} → {new_color}: IoU ≥ {min(ious):.2f}, travel {kept_travel:.1f}/{travel:.1f} px, {recon:.1f} dB"


FATEZERO_CASES = 6


# On 6 drawn clips (draw 3608) none holds: reconstruction 30.2–32.1 dB in all, the path kept in 3 of 6, but the
# edited object's mask drifts (IoU down to 0.00–0.58 in some frame) — the toy-sd word-swap drift of P2P, per frame.
@pytest.mark.xfail(strict=True, reason="measured on drawn clips: 0 of 6 recolour every frame with the mask kept (IoU "
                   "≥ 0.75; min IoU 0.00–0.58), reconstruction ≥ 30 dB in all; the line is 80%")
def test_fatezero_recolours_every_frame_and_keeps_motion(pipe):
    """With toy-sd's recommended unconditional prompt, the source (its studio.json), on drawn clips (colour, shape,
    background, direction, place and speed) and drawn new colours. Measured on the example clip (a red circle moving
    right): every frame blue, IoU 0.81–0.92, reconstruction 28.7 dB (the VAE alone: 28.6 dB); with the official empty
    unconditional prompt the reconstruction at guidance 6 was 7.1 dB."""
    rng = np.random.default_rng(3608)
    results = []
    for _ in range(FATEZERO_CASES):
        clip, caption = moving_clip(rng, frames=8)
        color, background = caption.split()[1], caption.split()[-2]
        results.append(fatezero_recolour_held(pipe, clip, caption, str(rng.choice(
            [c for c in PALETTE if c not in (color, background)]))))
    print("FateZero on drawn clips:\n  " + "\n  ".join(line for _, line in results))
    assert np.mean([held for held, _ in results]) >= 0.8


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
