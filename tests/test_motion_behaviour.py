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
                                     lr=config.TuneAVideoDefaults.toy_lr, frames=8, seed=0)
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


@pytest.mark.parametrize("direction", ["right", "left"])
def test_animatediff_moves_the_way_the_prompt_says(models, direction):
    prompt = f"a red circle moving {direction} on a white background"
    scores = [direction_score(animate(models, prompt, seed), prompt) for seed in range(10)]
    print(f"AnimateDiff {direction}: {[s['displacement'] for s in scores]}")
    assert np.mean([s["moved"] for s in scores]) >= 0.8
    assert np.mean([s["kept"] for s in scores]) >= 0.8
