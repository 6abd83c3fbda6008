"""VideoComposer and Gen-1 on the embedded toy-videocomposer, read from pixels (issue 10's lines)."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import gen1, videocomposer
from core.models import Models
from core.shapes import reader
from core.shapes.dataset import moving_reference

SEEDS = range(100, 105)
STEPS = 20

# Measured on toy-videocomposer (3,000 steps of the plain ε-loss, then 1,500 + 2,000 with the x0-weighted
# loss; 105 min on 2 CPU cores in all), here (seeds 100–104, 20 steps, one thread as in the suite): "a blue
# square" + right-moving motion vectors moves right as a blue square in every frame in 5/5 (8/8 over seeds
# 100–107; 1,000 more training steps made 5 of those 8 take the source's circle shape, so they were not
# kept, though they lifted the single sketch to 0.72); Gen-1 seed 100: IoU 0.70–0.83 in every frame, all
# blue (frame 4 was purple before them); mean IoU at structure_level 0 / 4 / 5 over seeds 100–102:
# 0.797 / 0.732 / 0.319. Single sketch first-frame IoU over seeds 100–129: mean 0.643 at 20 steps (0.56 on
# 100–104 alone; 23 of 30 seeds ≥ 0.6), 0.708 at the app's 25; the low seeds draw the square ~10 px toward
# the centre. Over those 30 seeds the motion line holds too: a blue square in every frame moving right in
# 0.867 at 20 steps, 0.800 at 25.


@pytest.fixture(scope="module")
def models():
    return Models(config.EMBEDDED_BASE_MODEL, device="cpu")


@pytest.fixture(scope="module")
def reference():
    clip = moving_reference("red", "circle", "right")
    return clip, [reader.read_single(frame).mask for frame in clip]


def compose(models, reference, prompt, conditions, seed):
    unet, composer = models.videocomposer()
    params = videocomposer.VideoComposerParams(prompt, conditions, frames=len(reference), steps=STEPS, seed=seed)
    return videocomposer.generate(models.pipeline(), unet, composer, reference, params).frames


def edit(models, reference, level=0, seed=100, prompt="a blue circle"):
    unet, composer = models.videocomposer()
    params = gen1.Gen1Params(prompt, structure_level=level, frames=len(reference), steps=STEPS, seed=seed)
    return gen1.edit(models.pipeline(), unet, composer, reference, params).frames


def mean_iou(frames, masks):
    return float(np.mean(reader.frame_ious(frames, masks)))


def test_motion_vectors_move_a_blue_square_right(models, reference):
    clip, _ = reference
    moved = []
    for seed in SEEDS:
        blobs = [reader.read_single(f) for f in compose(models, clip, "a blue square", ["motion"], seed)]
        # the "moves the square right": a blue square in every frame, not the source's circle
        moved.append(all(b is not None and (b.color, b.shape) == ("blue", "square") for b in blobs)
                     and blobs[-1].cx - blobs[0].cx >= 3.0)
        print(f"seed {seed}: centre x {[None if b is None else round(b.cx, 1) for b in blobs]}, "
              f"{[None if b is None else (b.color, b.shape) for b in blobs][::7]}")
    assert np.mean(moved) >= 0.8, moved


def test_single_sketch_puts_the_shape_where_the_sketch_is(models, reference):
    # Thirty seeds: this figure spreads 0.12–0.79 from seed to seed, so five (mean 0.56) or eight (0.53)
    # were too small a sample of it (figures above)
    clip, masks = reference
    ious = [mean_iou(compose(models, clip, "a blue square", ["single_sketch"], seed)[:1], masks[:1])
            for seed in range(100, 130)]
    print("single sketch: first-frame IoU", [round(i, 2) for i in ious])
    assert np.mean(ious) >= 0.6


def test_gen1_recolours_every_frame_and_keeps_the_shapes(models, reference):
    clip, masks = reference
    frames = edit(models, clip)
    blobs = [reader.read_single(f) for f in frames]
    ious = reader.frame_ious(frames, masks)
    print("Gen-1: IoU", [round(i, 3) for i in ious], "colours", [None if b is None else b.color for b in blobs])
    assert min(ious) >= 0.7
    assert all(b.color == "blue" for b in blobs)


def test_gen1_structure_level_loosens_fidelity(models, reference):
    clip, masks = reference
    top = config.Gen1Defaults.max_structure_level  # the knob's whole range: coarsest depth (2×2) against full
    by_level = {level: np.mean([mean_iou(edit(models, clip, level, seed), masks) for seed in SEEDS[:3]])
                for level in (0, top)}
    print("Gen-1: mean mask IoU by structure_level", by_level)
    assert by_level[top] < by_level[0] - 0.1
