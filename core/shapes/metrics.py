"""How well the embedded models follow the grammar, measured from pixels (model cards, tests)."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch

from ..sampling import to_model_pixels
from ..tokenizer import TOKENIZER_LOCK
from . import dataset, reader
from .dataset import DIRECTIONS

EVAL_BACKGROUNDS = ("white", "black")  # issue 3 measures colour and shape on these


def single_object_prompts(backgrounds=EVAL_BACKGROUNDS) -> list[tuple[str, str, str]]:
    return list(itertools.product(dataset.PALETTE, dataset.SHAPES, backgrounds))


def grade_single(images, expected: list[tuple[str, str, str]]) -> dict:
    """Fraction of images whose largest object has the asked colour / shape."""
    color_ok = shape_ok = 0
    for image, (color, shape, _) in zip(images, expected):
        blob = reader.read_single(np.asarray(image))
        color_ok += blob is not None and blob.color == color
        shape_ok += blob is not None and blob.shape == shape
    n = len(expected)
    return {"color_accuracy": color_ok / n, "shape_accuracy": shape_ok / n, "n": n}


def two_object_cases(rng: np.random.Generator, n: int) -> list[tuple[str, str, str, str]]:
    """(left colour, right colour, shapes…, background) with two different colours."""
    cases = []
    colors = list(dataset.PALETTE)
    for _ in range(n):
        left, right = rng.choice(colors, 2, replace=False)
        cases.append((str(left), str(rng.choice(dataset.SHAPES)), str(right), str(rng.choice(dataset.SHAPES)),
                      str(rng.choice(EVAL_BACKGROUNDS))))
    return cases


def two_object_prompt(case) -> str:
    left, left_shape, right, right_shape, background = case
    return f"a {left} {left_shape} and a {right} {right_shape} on a {background} background"


def grade_two_objects(images, cases) -> dict:
    """Fraction of images with two objects whose colours are the asked ones, left and right."""
    ok = 0
    for image, (left, _, right, _, _) in zip(images, cases):
        blobs = reader.read_objects(np.asarray(image), max_objects=2)
        ok += len(blobs) == 2 and blobs[0].color == left and blobs[1].color == right
    return {"left_right_accuracy": ok / len(cases), "n": len(cases)}


@torch.no_grad()
def clip_zero_shot(model, tokenizer, n: int = 600, seed: int = 0) -> dict:
    """Zero-shot colour / shape / background accuracy of a CLIPModel on fresh single-object images."""
    rng = np.random.default_rng(seed)
    scenes = [dataset.random_scene(rng, two_object_prob=0.0) for _ in range(n)]
    images = np.stack([dataset.render(s) for s in scenes])
    candidates = single_object_prompts(tuple(dataset.BACKGROUNDS))
    texts = [f"a {c} {s} on a {b} background" for c, s, b in candidates]
    with TOKENIZER_LOCK:
        ids = tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt").input_ids
    text = torch.nn.functional.normalize(model.get_text_features(input_ids=ids).pooler_output, dim=-1)
    image = torch.nn.functional.normalize(model.get_image_features(pixel_values=to_model_pixels(images)).pooler_output, dim=-1)
    best = (image @ text.T).argmax(1).tolist()
    color = shape = background = 0
    for scene, index in zip(scenes, best):
        c, s, b = candidates[index]
        obj = scene.objects[0]
        color += c == obj.color
        shape += s == obj.shape
        background += b == scene.background
    return {"color_accuracy": color / n, "shape_accuracy": shape / n, "background_accuracy": background / n, "n": n}


def named_direction(prompt: str) -> tuple[int, int] | None:
    """The unit (dx, dy) of 'moving {direction}' in a prompt of the video grammar."""
    words = prompt.lower().split()
    for index, word in enumerate(words[:-1]):
        if word == "moving" and words[index + 1] in DIRECTIONS:
            return DIRECTIONS[words[index + 1]]
    return None


def direction_score(frames, prompt: str, min_shift: float = 3.0) -> dict:
    """Read a generated clip: did the object move ≥ `min_shift` px the way the prompt names, and are
    every frame's colour and shape the prompt's?"""
    blobs = [reader.read_single(f) for f in frames]
    words = set(prompt.lower().split())
    if any(b is None for b in blobs):
        return {"moved": False, "kept": False, "displacement": 0.0}
    dx, dy = named_direction(prompt) or (0, 0)
    displacement = (blobs[-1].cx - blobs[0].cx) * dx + (blobs[-1].cy - blobs[0].cy) * dy
    kept = all(b.color in words and b.shape in words for b in blobs)
    return {"moved": bool(displacement >= min_shift), "kept": bool(kept), "displacement": round(float(displacement), 1)}


# The Hub's camera motion LoRAs by name → how the object moves in the frame: a pan or tilt carries it the named way
# (as the app's direction pads show it), a zoom about the centre grows ("in") or shrinks it ("out")
CAMERA_MOTIONS: dict[str, tuple[str, str]] = {"pan-left": ("pan", "left"), "pan-right": ("pan", "right"),
                                             "tilt-up": ("pan", "up"), "tilt-down": ("pan", "down"),
                                             "zoom-in": ("zoom", "in"), "zoom-out": ("zoom", "out")}
MIN_AREA_CHANGE = 0.10  # a zoom's object must grow or shrink by at least this share of its first frame's area


def drawn_still_prompts(rng: np.random.Generator, n: int) -> list[str]:
    """n single-object prompts drawn over the grammar (colours × shapes × backgrounds), without motion words: what a
    camera LoRA is asked to move."""
    prompts = []
    for _ in range(n):
        color, shape = str(rng.choice(list(dataset.PALETTE))), str(rng.choice(dataset.SHAPES))
        background = str(rng.choice(list(dataset.BACKGROUNDS)))
        prompts.append(f"a {color} {shape} on a {background} background")
    return prompts


def drawn_condition_cases(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, str, int]]:
    """n (a picture of one object of any colour, shape, place and size on white — what a control model's condition
    is made from; a colour for the prompt; a seed) drawn over the grammar."""
    return [(dataset.render(dataset.random_scene(rng, 64, two_object_prob=0.0, background="white")),
             str(rng.choice(list(dataset.PALETTE))), int(rng.integers(10**6))) for _ in range(n)]


def camera_motion_score(frames, prompt: str, motion: str, min_shift: float = 3.0) -> dict:
    """Read a generated clip under a camera motion (CAMERA_MOTIONS): did the object move ≥ `min_shift` px the
    pan's way, or its area change ≥ MIN_AREA_CHANGE the zoom's way, and are every frame's colour and shape the
    prompt's?"""
    kind, way = CAMERA_MOTIONS[motion]
    blobs = [reader.read_single(f) for f in frames]
    if any(b is None for b in blobs):
        return {"moved": False, "kept": False, "change": 0.0}
    words = set(prompt.lower().split())
    kept = all(b.color in words and b.shape in words for b in blobs)
    if kind == "pan":
        dx, dy = DIRECTIONS[way]
        change = (blobs[-1].cx - blobs[0].cx) * dx + (blobs[-1].cy - blobs[0].cy) * dy
        moved = change >= min_shift
    else:
        change = (blobs[-1].area / blobs[0].area - 1) * (1 if way == "in" else -1)
        moved = change >= MIN_AREA_CHANGE
    return {"moved": bool(moved), "kept": bool(kept), "change": round(float(change), 2)}


def shift_class_accuracy(model, sample, sampler: str, steps: int, per_class: int, seed: int) -> float:
    """ShiftDDPM (`model`, sampled by `sample`, core.methods.shiftddpm's): share of samples whose colour and shape
    (read from pixels) are their class's ("red circle"); every class in one batch (one UNet call per step), one row
    of class weights per sample."""
    names = [name for name in model.class_names for _ in range(per_class)]
    weights = torch.cat([model.class_weights(name) for name in names])
    images = sample(model, weights, n=len(names), sampler=sampler, steps=steps, seed=seed).images
    right = 0
    for name, image in zip(names, images):
        color, shape = name.split()
        blob = reader.read_single(cv2.resize(image, (64, 64), interpolation=cv2.INTER_LINEAR))
        right += blob is not None and blob.color == color and blob.shape == shape
    return right / len(names)
