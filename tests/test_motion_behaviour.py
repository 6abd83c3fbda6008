"""Tune-A-Video and AnimateDiff on the embedded models (issue 6), measured on frames."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import animatediff, tune_a_video
from core.models import Models
from core.shapes import reader
from core.shapes.dataset import DIRECTIONS, PALETTE, moving_clip, random_scene, render
from core.shapes.metrics import direction_score, drawn_still_prompts



@pytest.fixture(scope="module")
def models():
    return Models("toy-sd", device="cpu")


def drawn_clips(seed: int, n: int) -> list[tuple[np.ndarray, str, str]]:
    """n (clip, its caption, a new colour for it) drawn over the grammar: a moving object of any colour, shape,
    background, direction, place and speed (8 frames, 64²)."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        clip, caption = moving_clip(rng, frames=8)
        if all(reader.read_single(f) is not None for f in clip):
            color, background = caption.split()[1], caption.split()[-2]
            cases.append((clip, caption, str(rng.choice([c for c in PALETTE if c not in (color, background)]))))
    return cases


def recoloured(caption: str, new_color: str) -> str:
    return caption.replace(f" {caption.split()[1]} ", f" {new_color} ", 1)


def follows(source, edited, new_color: str) -> tuple[bool, float]:
    """Every edited frame shows one object of the new colour, and its path along the source's motion correlates
    with the source's (≥ 0.9)."""
    if any(b is None for b in source + edited):
        return False, float("nan")
    axis = np.array([source[-1].cx - source[0].cx, source[-1].cy - source[0].cy])
    axis = axis / max(np.linalg.norm(axis), 1e-6)
    along = [[b.cx * axis[0] + b.cy * axis[1] for b in blobs] for blobs in (source, edited)]
    path = float(np.corrcoef(*along)[0, 1])
    return bool(all(b.color == new_color for b in edited) and path >= 0.9), path


TUNED_CLIPS, EDITS_PER_CLIP = 2, 3  # 6 drawn cases: two drawn clips tuned, three drawn new colours and seeds each


@pytest.fixture(scope="module")
def tuned_clips(models):
    """Tune-A-Video tuned on drawn clips: 100 steps each at the toy learning rate (~40 s each here)."""
    runs = []
    for clip, caption, _ in drawn_clips(3614, TUNED_CLIPS):
        params = tune_a_video.TuneParams(caption, steps=100, lr=models.recommended("tune_a_video_train").values["lr"],
                                         frames=8, seed=0)
        runs.append((tune_a_video.run_tuning(models.pipeline(), clip, params), caption))
    return runs


# Measured on the example clip (a red circle moving right, tuned as above, 25 steps): guidance 7.5 → every frame
# blue, centroid correlation 0.94; 6 → 0.94; 12.5 (the official value) mixes green into the blue frames on toy-sd.
# On 6 drawn cases (two drawn clips tuned, three new colours each) 1 of 6 hold at either guidance: the orange circle
# moving down loses its path (correlation −0.66…0.55), the yellow square keeps it (0.94–0.99) but turns red, not
# orange or blue, in two of three: tuned on one clip, toy-sd's colour words do not carry over to the new colour.
@pytest.mark.xfail(strict=True, reason="measured on drawn cases: 1 of 6 edits recolour every frame and follow the "
                   "source's path (both guidance values); the line is 80%")
@pytest.mark.parametrize("guidance_scale", [6.0, 7.5])
def test_tune_a_video_edit_follows_the_source_motion(models, tuned_clips, guidance_scale):
    pipe = models.pipeline()
    rng = np.random.default_rng(3615)
    held = []
    for tuned, caption in tuned_clips:
        unet = tune_a_video.tuned_unet(pipe, tuned)
        color, background = caption.split()[1], caption.split()[-2]
        for new_color in rng.choice([c for c in PALETTE if c not in (color, background)], EDITS_PER_CLIP, replace=False):
            out = tune_a_video.generate(pipe, unet, tuned, tune_a_video.GenerateParams(
                recoloured(caption, str(new_color)), steps=25, guidance_scale=guidance_scale,
                seed=int(rng.integers(10**6))))
            ok, path = follows([reader.read_single(f) for f in tuned.source], [reader.read_single(f) for f in out],
                               str(new_color))
            held.append(ok)
            print(f"Tune-A-Video w={guidance_scale} {caption} → {new_color}: correlation {path:.3f}, held {ok}")
    assert np.mean(held) >= 0.8, held


def animate(models, prompt, seed):
    pipe, unet = models.pipeline(), models.motion_unet()
    params = animatediff.AnimateDiffParams(prompt, frames=8, steps=25, seed=seed)
    return animatediff.generate(pipe, unet, params, loras={"domain": 1.0})


SCORES: dict[str, list[dict]] = {}


def animatediff_scores(models, direction):
    """Ten drawn cases of "a {color} {shape} moving {direction} on a {background} background" (colours × shapes ×
    backgrounds × seeds), read from pixels (computed once per direction)."""
    if direction not in SCORES:
        rng = np.random.default_rng([3606, list(DIRECTIONS).index(direction)])
        prompts = [p.replace(" on a ", f" moving {direction} on a ", 1) for p in drawn_still_prompts(rng, 10)]
        SCORES[direction] = [direction_score(animate(models, prompt, int(rng.integers(10**6))), prompt)
                             for prompt in prompts]
        print(f"AnimateDiff {direction}: displacements {[s['displacement'] for s in SCORES[direction]]}, "
              f"colour and shape kept {[s['kept'] for s in SCORES[direction]]}")
    return SCORES[direction]


# Measured with toy-motion (6,400 steps) on drawn cases (10 per direction: colours × shapes × backgrounds × seeds,
# draw 3606): the object moves (|shift| ≥ 3 px in 16 of 20), but which way is set by the seed — "right" moved right
# in 1 of 10 (shifts −27.7…+16.2 px), "left" left in 6 of 10; colour and shape held in every frame in 6/10 (right)
# and 7/10 (left). Before, on one prompt (a red circle) and seeds 0–9: 3–4 of 10 each way; for one seed "left" and
# "right" gave mirror-image motion (+12.2 / −11.4 px). Correlated frame noise (PYoCo-style shares 0.5, 0.9) did not
# change it. Why: the motion UNet is blind to frame order (scripts/probe_frame_order.py: a clip and its noise
# reversed in time cost the same ε-loss, ratio 0.990–1.004 at t = 200…950), so "right" and "left" are one clip
# played two ways to it. Real users steer the camera with motion LoRAs: the embedded ones are measured in
# tests/test_motion_lora_behaviour.py.
@pytest.mark.xfail(strict=True, reason="measured on drawn cases: toy-motion moves the named way in 1 (right) and 6 "
                   "(left) of 10 (the seed sets the sign) and keeps colour and shape in 6–7 of 10; both need ≥ 8")
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


DREAMIX_CASES = 6


# On 6 drawn clips: the path is kept in all (correlation 0.80–0.99) but the new colour in every frame in 3 of 6
# (orange → purple, yellow → orange, red → blue missed: neighbouring palette colours or dark backgrounds).
@pytest.mark.xfail(strict=True, reason="measured on drawn clips: 3 of 6 edits recolour every frame and keep the path; "
                   "the line is 80%")
def test_dreamix_edit_recolours_and_keeps_the_motion(models):
    held = []
    for clip, caption, new_color in drawn_clips(3616, DREAMIX_CASES):
        out, source = dreamix_run(models, clip, prompt=recoloured(caption, new_color))
        ok, path = follows([reader.read_single(f) for f in source], [reader.read_single(f) for f in out], new_color)
        held.append(ok)
        print(f"Dreamix edit {caption} → {new_color}: correlation {path:.3f}, held {ok}")
    assert np.mean(held) >= 0.8, held


def test_dreamix_larger_downsample_keeps_less_structure(models):
    looser = []
    for clip, caption, new_color in drawn_clips(3617, DREAMIX_CASES):
        ious = {}
        for factor in (2, 16):
            out, source = dreamix_run(models, clip, prompt=recoloured(caption, new_color), downsample=factor,
                                      finetune_steps=0)
            ious[factor] = np.mean([reader.mask_iou(reader.foreground_mask(a), reader.foreground_mask(b))
                                    for a, b in zip(out, source)])
        looser.append(ious[2] > ious[16])
        print(f"Dreamix mask IoU with the source by downsample factor, {caption}: {ious}")
    assert np.mean(looser) >= 0.8, looser


def test_dreamix_animates_a_still_image_the_camera_way(models):
    rng = np.random.default_rng(3618)
    held = []
    for prompt in drawn_still_prompts(rng, DREAMIX_CASES):
        _, color, shape, _, _, background, _ = prompt.split()
        image = render(random_scene(rng, 64, two_object_prob=0.0, color=color, shape=shape, background=background))
        way = str(rng.choice(["left", "right"]))
        out, _ = dreamix_run(models, image[None], mode="animate", camera=f"pan {way}", prompt=prompt,
                             seed=int(rng.integers(10**6)))
        blobs = [reader.read_single(f) for f in out]
        shift = 0.0 if any(b is None for b in blobs) else (blobs[-1].cx - blobs[0].cx) * DIRECTIONS[way][0]
        held.append(shift >= 5 and all(b is not None and b.color == color for b in blobs))
        print(f"Dreamix pan {way}, {prompt}: {round(shift, 1)} px its way")
    assert np.mean(held) >= 0.8, held
