"""VideoComposer and Gen-1 on the embedded toy-videocomposer, read from pixels (issue 10's lines)."""
from __future__ import annotations

import numpy as np
import pytest

from core import config
from core.methods import gen1, videocomposer
from core.models import Models
from core.shapes import reader
from core.shapes.dataset import DIRECTIONS, PALETTE, SHAPES, moving_clip

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


def drawn_references(seed: int, n: int) -> list[tuple[np.ndarray, list, tuple[int, int], str, int]]:
    """n (reference clip, its masks, its direction, a prompt for another colour and shape, a seed), drawn over the
    grammar: colour, shape, background, direction, place and speed of the reference; the prompt's colour and shape."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        clip, caption = moving_clip(rng, frames=8, speed=2.5)
        masks = [reader.read_single(frame) for frame in clip]
        if any(m is None for m in masks):
            continue
        _, color, shape, _, direction, _, _, background, _ = caption.split()
        new_color = str(rng.choice([c for c in PALETTE if c not in (color, background)]))
        new_shape = str(rng.choice([s for s in SHAPES if s != shape]))
        cases.append((clip, [m.mask for m in masks], DIRECTIONS[direction], f"a {new_color} {new_shape}",
                      int(rng.integers(10**6))))
    return cases


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


# Drawn references (draw 3610): the object moves the reference's way in 6 of 6 (15.6–26.0 px), but the prompt's
# colour and shape hold in every frame in 3 of 6 (the reference's shape or a neighbouring colour leaks in).
@pytest.mark.xfail(strict=True, reason="measured on drawn references: moves its way in 6 of 6, the prompt's object in "
                   "every frame in 3 of 6; the line is 80%")
def test_motion_vectors_move_the_prompt_object_the_references_way(models):
    moved = []
    for clip, _, (dx, dy), prompt, seed in drawn_references(3610, 6):
        blobs = [reader.read_single(f) for f in compose(models, clip, prompt, ["motion"], seed)]
        color, shape = prompt.split()[1:]
        # the "moves the square right": the prompt's object in every frame, not the source's, moving its way
        shift = 0.0 if any(b is None for b in blobs) else (blobs[-1].cx - blobs[0].cx) * dx + (blobs[-1].cy - blobs[0].cy) * dy
        moved.append(all(b is not None and (b.color, b.shape) == (color, shape) for b in blobs) and shift >= 3.0)
        print(f"{prompt}, seed {seed}: {round(shift, 1)} px its way, "
              f"{[None if b is None else (b.color, b.shape) for b in blobs][::7]}")
    assert np.mean(moved) >= 0.8, moved


# Drawn references (draw 3611, any shape, size and place): mean first-frame IoU 0.51 (0.20–0.78); before, on the
# centred red circle at seeds 100–129: 0.64.
@pytest.mark.xfail(strict=True, reason="measured on 30 drawn references: mean first-frame IoU 0.51; the line is 0.6")
def test_single_sketch_puts_the_shape_where_the_sketch_is(models):
    # Thirty drawn cases: this figure spreads 0.12–0.79 from seed to seed, so five (mean 0.56) or eight (0.53)
    # were too small a sample of it (figures above)
    ious = [mean_iou(compose(models, clip, prompt, ["single_sketch"], seed)[:1], masks[:1])
            for clip, masks, _, prompt, seed in drawn_references(3611, 30)]
    print("single sketch: first-frame IoU", [round(i, 2) for i in ious])
    assert np.mean(ious) >= 0.6


# Drawn references (draw 3612): recoloured in every frame in 6 of 6, but the lowest frame IoU is 0.44–0.69 (≥ 0.7
# in none); before, on the example (a red circle): 0.70–0.83.
@pytest.mark.xfail(strict=True, reason="measured on drawn references: every frame recoloured in 6 of 6, every frame's "
                   "IoU ≥ 0.7 in 0 of 6 (lowest 0.44–0.69); the line is 80%")
def test_gen1_recolours_every_frame_and_keeps_the_shapes(models):
    held = []
    for clip, masks, _, prompt, seed in drawn_references(3612, 6):
        new_color = prompt.split()[1]
        prompt = f"a {new_color} {reader.read_single(clip[0]).shape}"  # the reference's shape, another colour
        frames = edit(models, clip, seed=seed, prompt=prompt)
        blobs = [reader.read_single(f) for f in frames]
        ious = reader.frame_ious(frames, masks)
        print(f"Gen-1 {prompt}: IoU", [round(i, 3) for i in ious], "colours", [None if b is None else b.color for b in blobs])
        held.append(min(ious) >= 0.7 and all(b is not None and b.color == new_color for b in blobs))
    assert np.mean(held) >= 0.8, held


def test_gen1_structure_level_loosens_fidelity(models):
    top = config.Gen1Defaults.max_structure_level  # the knob's whole range: coarsest depth (2×2) against full
    cases = drawn_references(3613, 6)
    by_level = {level: np.mean([mean_iou(edit(models, clip, level, seed, f"a {prompt.split()[1]} {reader.read_single(clip[0]).shape}"), masks)
                                for clip, masks, _, prompt, seed in cases]) for level in (0, top)}
    print("Gen-1: mean mask IoU by structure_level", by_level)
    assert by_level[top] < by_level[0] - 0.1
