"""Tune-A-Video and AnimateDiff on the embedded models (issue 6), measured on frames."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import animatediff, tune_a_video
from core.models import Models
from core.shapes import reader
from core.shapes.metrics import direction_score
from core.video import read_video

EXAMPLE_VIDEO = config.EXAMPLES_DIR / "red_circle_moving_right.mp4"


@pytest.fixture(scope="module")
def models():
    return Models("toy-sd", device="cpu")


@pytest.fixture(scope="module")
def tuned(models):
    """Tuned on the example (a red circle moving right): 100 steps at the toy learning rate (~40 s here)."""
    video, _ = read_video(EXAMPLE_VIDEO)
    params = tune_a_video.TuneParams("a red circle moving right on a white background", steps=100,
                                     lr=models.recommended("tune_a_video_train").values["lr"], frames=8, seed=0)
    return tune_a_video.run_tuning(models.pipeline(), video, params)


def centroids(frames) -> list[reader.Blob]:
    blobs = [reader.read_single(f) for f in frames]
    assert all(b is not None for b in blobs), "a frame without an object"
    return blobs


# Measured (tuned as above, 25 steps): guidance 7.5 → every frame blue, centroid correlation 0.94;
# 6 → 0.94; 12.5 (the official value) mixes green into the blue frames on toy-sd.
@pytest.mark.parametrize("guidance_scale", [6.0, 7.5])
def test_tune_a_video_edit_follows_the_source_motion(models, tuned, guidance_scale):
    pipe = models.pipeline()
    unet = tune_a_video.tuned_unet(pipe, tuned)
    out = tune_a_video.generate(pipe, unet, tuned, tune_a_video.GenerateParams(
        "a blue circle moving right on a white background", steps=25, guidance_scale=guidance_scale))
    source, edited = centroids(tuned.source), centroids(out)
    path = np.corrcoef([b.cx for b in source], [b.cx for b in edited])[0, 1]
    print(f"Tune-A-Video w={guidance_scale}: {[(b.color, round(b.cx, 1)) for b in edited]}, correlation {path:.3f}")
    assert all(b.color == "blue" for b in edited)
    assert path >= 0.9


def animate(models, prompt, seed):
    pipe, unet = models.pipeline(), models.motion_unet()
    params = animatediff.AnimateDiffParams(prompt, frames=8, steps=25, seed=seed)
    return animatediff.generate(pipe, unet, params, loras={"domain": 1.0})


SCORES: dict[str, list[dict]] = {}


def animatediff_scores(models, direction):
    """Ten seeds of "a red circle moving {direction} …", read from pixels (computed once per direction)."""
    if direction not in SCORES:
        prompt = f"a red circle moving {direction} on a white background"
        SCORES[direction] = [direction_score(animate(models, prompt, seed), prompt) for seed in range(10)]
        print(f"AnimateDiff {direction}: displacements {[s['displacement'] for s in SCORES[direction]]}, "
              f"colour and shape kept {[s['kept'] for s in SCORES[direction]]}")
    return SCORES[direction]


# Measured with toy-motion (6,400 steps), seeds 0–9: the object moves (±10–17 px over 8 frames), but
# which way is set by the seed — for one seed "left" and "right" give mirror-image motion (+12.2 / −11.4
# px) — so each direction is right in 3–4 of 10 seeds; colour and shape held in every frame in 5/10
# (right) and 8/10 (left). Correlated frame noise (PYoCo-style shares 0.5, 0.9) did not change it.
# Why: the motion UNet is blind to frame order (scripts/probe_frame_order.py: a clip and its noise
# reversed in time cost the same ε-loss, ratio 0.990–1.004 at t = 200…950), so "right" and "left" are
# one clip played two ways to it.
@pytest.mark.xfail(strict=True, reason="measured: toy-motion moves the named way in 3–4 of 10 seeds (the seed sets "
                   "the sign) and keeps colour and shape in 5–8 of 10; both need ≥ 8")
@pytest.mark.parametrize("direction", ["right", "left"])
def test_animatediff_moves_the_way_the_prompt_says(models, direction):
    scores = animatediff_scores(models, direction)
    assert np.mean([s["moved"] for s in scores]) >= 0.8
    assert np.mean([s["kept"] for s in scores]) >= 0.8


def test_animatediff_animates(models):
    """What toy-motion does reach: the object moves (≥ 3 px over the clip) in most seeds, and the
    frames hold one object of the prompt's colour and shape in at least half of them."""
    scores = animatediff_scores(models, "right") + animatediff_scores(models, "left")
    assert np.mean([abs(s["displacement"]) >= 3 for s in scores]) >= 0.5
    assert np.mean([s["kept"] for s in scores]) >= 0.5


# ---- Imagen-Video-style cascade and Dreamix on toy-motion (issue 11) --------------------------------

def cascade(models, **kwargs):
    from core.methods import imagen_video
    params = imagen_video.CascadeParams(**{"prompt": "a red circle moving right on a white background",
                                           "base_frames": 4, "steps": 25, "seed": 0} | kwargs)
    return imagen_video.run(models.pipeline(), models.motion_unet(), params, loras={"domain": 1.0})


def test_cascade_stages_and_tsr_keeps_the_base_frames(models):
    from core.methods.null_text import psnr
    base, tsr, ssr = cascade(models)
    assert base.frames.shape == (4, 64, 64, 3)
    assert tsr.frames.shape == (8, 64, 64, 3)
    assert ssr.frames.shape == (8, 128, 128, 3)
    kept = [psnr(tsr.frames[2 * k], base.frames[k]) for k in range(4)]
    print(f"cascade: PSNR of the TSR's kept frames vs the base {[round(v, 1) for v in kept]}")
    assert min(kept) >= 25.0
    assert reader.read_single(ssr.frames[0]) is not None


def test_dynamic_thresholding_bounds_x0_and_saturates_less_than_clipping(models):
    """On the toy model's own x̂0 at a high guidance weight: dynamic thresholding keeps |x̂0| within the
    latent bound while plain clipping puts more values exactly at the bound."""
    import torch
    from diffusers import DDIMScheduler

    from core.denoisers import TextGuided
    from core.sampling import Snapshots, denoise, encode_prompts, frame_context, prepare_latents
    from core.thresholding import dynamic_threshold, saturated_share, static_clip
    pipe, unet = models.pipeline(), models.motion_unet()
    bound = config.CascadeDefaults.latent_bound
    text = frame_context(encode_prompts(pipe, ["a red circle moving right on a white background"]), 4)
    empty = frame_context(encode_prompts(pipe, [""]), 4)
    latents = prepare_latents(pipe, 1, 64, 64, torch.Generator().manual_seed(0), frames=4)
    snapshots = Snapshots(range(25))
    denoise(TextGuided(unet, text, empty, 20.0), DDIMScheduler.from_config(pipe.scheduler.config), latents, 25,
            hooks=[snapshots])
    x0 = torch.cat([s.x0 for s in snapshots.taken])
    over = float((x0.abs() > bound).float().mean())
    clipped, thresholded = static_clip(x0, bound), dynamic_threshold(x0, 0.995, bound)
    print(f"x̂0 at guidance 20: {over:.4f} past ±{bound}; saturated after clipping {saturated_share(clipped, bound):.4f}, "
          f"after dynamic thresholding {saturated_share(thresholded, bound):.4f}")
    assert over > 0
    assert float(thresholded.abs().max()) <= bound + 1e-4
    assert saturated_share(thresholded, bound) < saturated_share(clipped, bound)


def dreamix_run(models, media, **kwargs):
    from core.methods import dreamix
    params = dreamix.DreamixParams(**{"prompt": "a blue circle moving right on a white background", "seed": 0} | kwargs)
    return dreamix.run(models.pipeline(), models.motion_unet(), media, params, loras={"domain": 1.0})


def test_dreamix_edit_recolours_and_keeps_the_motion(models):
    video, _ = read_video(EXAMPLE_VIDEO)
    out, clip = dreamix_run(models, video)
    source, edited = centroids(clip), centroids(out)
    path = np.corrcoef([b.cx for b in source], [b.cx for b in edited])[0, 1]
    print(f"Dreamix edit: {[(b.color, round(b.cx, 1)) for b in edited]}, correlation {path:.3f}")
    assert all(b.color == "blue" for b in edited)
    assert path >= 0.9


def test_dreamix_larger_downsample_keeps_less_structure(models):
    video, _ = read_video(EXAMPLE_VIDEO)
    ious = {}
    for factor in (2, 16):
        out, clip = dreamix_run(models, video, downsample=factor, finetune_steps=0)
        ious[factor] = np.mean([reader.mask_iou(reader.foreground_mask(a), reader.foreground_mask(b))
                                for a, b in zip(out, clip)])
    print(f"Dreamix mask IoU with the source by downsample factor: {ious}")
    assert ious[2] > ious[16]


def test_dreamix_animates_a_still_image_panning_right(models):
    from PIL import Image
    image = np.asarray(Image.open(config.EXAMPLES_DIR / "red_circle_white.png").convert("RGB"))
    out, _ = dreamix_run(models, image[None], mode="animate", camera="pan right",
                         prompt="a red circle on a white background")
    blobs = centroids(out)
    print(f"Dreamix pan right: {[round(b.cx, 1) for b in blobs]}")
    assert blobs[-1].cx - blobs[0].cx >= 5
    assert all(b.color == "red" for b in blobs)
