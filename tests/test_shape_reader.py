"""The pixel reader every behaviour test and model card measures with (core.shapes.reader), measured itself on drawn
ground truth: rendered scenes and clips, and the same after the embedded VAE's round trip (the best a generator
that decodes through it could draw)."""
from __future__ import annotations

import numpy as np
import pytest

from core.models import Models
from core.sampling import decode, encode_images
from core.shapes import dataset, reader

DRAW_SEED = 3640


@pytest.fixture(scope="module")
def drawn():
    """(frames, colours, shapes) per set: single-object scenes, pans and zooms (in and out), with their labels."""
    rng = np.random.default_rng(DRAW_SEED)
    sets = {"scenes": ([], [], [])}
    for _ in range(48):
        scene = dataset.random_scene(rng, two_object_prob=0.0)
        obj = scene.objects[0]
        sets["scenes"][0].append(dataset.render(scene))
        sets["scenes"][1].append(obj.color)
        sets["scenes"][2].append(obj.shape)
    for kind in ("pan", "zoom"):
        frames, colours, shapes = sets.setdefault(kind, ([], [], []))
        for _ in range(8):
            clip, caption = (dataset.moving_clip(rng) if kind == "pan"
                             else dataset.zooming_clip(rng, zoom=str(rng.choice(list(dataset.ZOOMS)))))
            words = caption.split()
            frames += list(clip)
            colours += [words[1]] * len(clip)
            shapes += [words[2]] * len(clip)
    return sets


def vae_round_trip(pipe, frames):
    return list(decode(pipe, encode_images(pipe, np.stack(frames))))


def rates(frames, colours, shapes):
    blobs = [reader.read_single(f) for f in frames]
    return (np.mean([b is not None and b.color == c for b, c in zip(blobs, colours)]),
            np.mean([b is not None and b.shape == s for b, s in zip(blobs, shapes)]))


def test_the_reader_reads_rendered_ground_truth(drawn):
    for name, (frames, colours, shapes) in drawn.items():
        assert rates(frames, colours, shapes) == (1.0, 1.0), name


# Measured (this draw): colour 1.00 for scenes, pans and zooms; shape 1.00 / 1.00 / 0.95 (the misread zoom frames are a
# small circle the VAE decodes with a flat bottom, a square to the eye as well). Reading
# shape by bounding-box IoU alone read 0.98 / 0.89 of scenes / pans right (the VAE rounds a small triangle's corners).
def test_the_reader_reads_the_vae_round_trip_of_ground_truth(drawn):
    pipe = Models("toy-sd", device="cpu").pipeline()
    for name, (frames, colours, shapes) in drawn.items():
        colour_rate, shape_rate = rates(vae_round_trip(pipe, frames), colours, shapes)
        print(f"{name}: colour {colour_rate:.3f}, shape {shape_rate:.3f}")
        assert colour_rate >= 0.95 and shape_rate >= 0.95, name
