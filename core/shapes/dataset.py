"""The procedural captioned dataset of coloured shapes that the embedded models learn.

The grammar is fixed (issue 3): one or two filled shapes on a plain background,
captioned ``a {color} {shape} on a {background} background`` or
``a {color} {shape} and a {color} {shape} on a {background} background`` (left object
first), and moving single objects ``a {color} {shape} moving {direction} on a
{background} background`` for the video models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "orange": (240, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

# Radius range for one object, as a fraction of the image side (10–22 px at 64 px).
SINGLE_RADIUS = (10 / 64, 22 / 64)
# Two objects share the width, so each is smaller.
PAIR_RADIUS = (9 / 64, 14 / 64)
SUPERSAMPLE = 4  # draw big then downsample: anti-aliased edges like a photo's


@dataclass(frozen=True)
class ShapeObject:
    color: str
    shape: str
    cx: float  # centre, pixels
    cy: float
    radius: float  # circumradius, pixels


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: str

    def caption(self, hide: str | None = None) -> str:
        """The grammar's caption; hide="shape" says "object" instead, hide="color" drops the colour
        (what a control condition should supply rather than the prompt)."""
        def name(o: ShapeObject) -> str:
            return {"shape": f"a {o.color} object", "color": f"a {o.shape}"}.get(hide, f"a {o.color} {o.shape}")
        described = " and ".join(name(o) for o in sorted(self.objects, key=lambda o: o.cx))
        return f"{described} on a {self.background} background"


def _draw_object(draw: ImageDraw.ImageDraw, obj: ShapeObject, scale: int, fill=None) -> None:
    cx, cy, r = obj.cx * scale, obj.cy * scale, obj.radius * scale
    fill = PALETTE[obj.color] if fill is None else fill
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif obj.shape == "square":
        half = r * 0.8  # a square a little smaller than its circumcircle looks of equal weight
        draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=fill)
    elif obj.shape == "triangle":
        # upright equilateral triangle with its centre at (cx, cy)
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; expected one of {SHAPES}")


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Scene → uint8 array (size, size, 3)."""
    big = Image.new("RGB", (size * SUPERSAMPLE, size * SUPERSAMPLE), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(big)
    for obj in scene.objects:
        _draw_object(draw, obj, SUPERSAMPLE)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX))


def _place(rng: np.random.Generator, radius: float, x_range: tuple[float, float], size: int) -> tuple[float, float]:
    # triangles and squares lie inside the circumcircle, so keeping the circle inside keeps all inside
    lo, hi = x_range[0] + radius + 1, x_range[1] - radius - 1
    cx = rng.uniform(lo, max(lo, hi))
    cy = rng.uniform(radius + 1, size - radius - 1)
    return cx, cy


def random_object(rng: np.random.Generator, size: int, radius_range, x_range, color=None, shape=None) -> ShapeObject:
    radius = rng.uniform(*radius_range) * size
    cx, cy = _place(rng, radius, x_range, size)
    return ShapeObject(
        color=color or str(rng.choice(list(PALETTE))),
        shape=shape or str(rng.choice(SHAPES)),
        cx=cx, cy=cy, radius=radius,
    )


def random_scene(rng: np.random.Generator, size: int = 64, two_object_prob: float = 0.35,
                 color=None, shape=None, background=None) -> Scene:
    """A random one- or two-object scene; fixed attributes may be given."""
    background = background or str(rng.choice(list(BACKGROUNDS)))
    if rng.random() < two_object_prob:
        gap = size * 0.03
        left = random_object(rng, size, PAIR_RADIUS, (0, size / 2 - gap), color, shape)
        right = random_object(rng, size, PAIR_RADIUS, (size / 2 + gap, size))
        return Scene((left, right), background)
    return Scene((random_object(rng, size, SINGLE_RADIUS, (0, size), color, shape),), background)


def sample_batch(rng: np.random.Generator, n: int, size: int = 64, two_object_prob: float = 0.35):
    """n random scenes → (uint8 images (n, size, size, 3), captions)."""
    scenes = [random_scene(rng, size, two_object_prob) for _ in range(n)]
    return np.stack([render(s, size) for s in scenes]), [s.caption() for s in scenes]


def moving_clip(rng: np.random.Generator, frames: int = 8, size: int = 64, speed: float | None = None,
                direction: str | None = None, centred: float | None = None):
    """One object moving in a straight line → (uint8 frames (T, size, size, 3), caption). `centred`:
    the path's midpoint lies within this many px of the image centre (else anywhere that keeps the
    whole path inside)."""
    direction = direction or str(rng.choice(list(DIRECTIONS)))
    background = str(rng.choice(list(BACKGROUNDS)))
    radius = rng.uniform(*PAIR_RADIUS) * size
    speed = speed if speed is not None else rng.uniform(1.5, 3.0)
    dx, dy = DIRECTIONS[direction]
    travel = speed * (frames - 1)
    # choose a start so that the whole path stays inside the image
    lo_x, hi_x = radius + 1 + max(0, -dx * travel), size - radius - 1 - max(0, dx * travel)
    lo_y, hi_y = radius + 1 + max(0, -dy * travel), size - radius - 1 - max(0, dy * travel)
    if centred is None:
        cx0, cy0 = rng.uniform(lo_x, max(lo_x, hi_x)), rng.uniform(lo_y, max(lo_y, hi_y))
    else:
        cx0, cy0 = (np.clip(size / 2 - d * travel / 2 + rng.uniform(-centred, centred), lo, max(lo, hi))
                    for d, lo, hi in ((dx, lo_x, hi_x), (dy, lo_y, hi_y)))
    color, shape = str(rng.choice(list(PALETTE))), str(rng.choice(SHAPES))
    clip = [
        render(Scene((ShapeObject(color, shape, cx0 + dx * speed * t, cy0 + dy * speed * t, radius),), background), size)
        for t in range(frames)
    ]
    return np.stack(clip), f"a {color} {shape} moving {direction} on a {background} background"


ZOOMS: dict[str, float] = {"in": 1.0, "out": -1.0}  # the sign of log(scale) over a zooming clip


def zooming_clip(rng: np.random.Generator, frames: int = 8, size: int = 64, zoom: str = "in",
                 factor: float | None = None):
    """One object under a camera zoom about the image centre → (uint8 frames (T, size, size, 3), caption without
    the motion): its radius and its offset from the centre scale together by `factor` (1.4–1.8) over the clip,
    growing for "in", shrinking for "out"; the largest frame keeps the whole object inside."""
    factor = factor if factor is not None else rng.uniform(1.4, 1.8)
    scales = factor ** (ZOOMS[zoom] * (np.arange(frames) / (frames - 1) - (zoom == "out")))  # 1 → f, or f → 1
    largest = scales.max()
    radius = rng.uniform(6.0, min(PAIR_RADIUS[1] * size, (size / 2 - 2) / largest))
    reach = max(0.0, (size / 2 - 1) / largest - radius)  # the largest frame's centre offset keeps it inside
    offset_x, offset_y = rng.uniform(-reach, reach, size=2) * 0.8
    background = str(rng.choice(list(BACKGROUNDS)))
    color, shape = str(rng.choice(list(PALETTE))), str(rng.choice(SHAPES))
    clip = [render(Scene((ShapeObject(color, shape, size / 2 + offset_x * s, size / 2 + offset_y * s, radius * s),),
                         background), size) for s in scales]
    return np.stack(clip), f"a {color} {shape} on a {background} background"


def object_mask(obj: ShapeObject, size: int = 64) -> np.ndarray:
    """Float mask (size, size) in [0, 1] of one object's pixels (anti-aliased like `render`)."""
    big = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    _draw_object(draw, obj, SUPERSAMPLE, fill=255)
    return np.asarray(big.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def scenes_matching(text: str, rng: np.random.Generator, n: int, size: int = 64) -> list[Scene]:
    """n single-object scenes with the colour / shape / background words that `text` names
    (the rest random): training images "of the source text" for the toy models."""
    words = set(text.lower().replace(",", " ").split())
    color = next((c for c in PALETTE if c in words), None)
    shape = next((s for s in SHAPES if s in words), None)
    background = next((b for b in BACKGROUNDS if b in words and f"{b} background" in text.lower()), None)
    return [random_scene(rng, size, two_object_prob=0.0, color=color, shape=shape, background=background)
            for _ in range(n)]


def moving_reference(color: str = "red", shape: str = "circle", direction: str = "right", frames: int = 8,
                     seed: int = 0) -> np.ndarray:
    """A procedural reference clip: one object moving 2.5 px per frame."""
    rng = np.random.default_rng(seed)
    while True:
        clip, caption = moving_clip(rng, frames=frames, speed=2.5, direction=direction)
        if f"{color} {shape}" in caption and "white background" in caption:
            return clip
