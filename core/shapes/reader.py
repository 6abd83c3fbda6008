"""Read colour, shape and masks back from pixels of a procedural-shapes image.

Used by the tests and model cards to measure what a generated or edited image shows.
Robust to what generators do: tinted backgrounds (taken from the border median, not the
nominal colour), soft edges, small specks (morphological opening, largest blobs only).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .dataset import BACKGROUNDS, PALETTE

FOREGROUND_DISTANCE = 60.0  # RGB distance from the background that counts as object
MIN_AREA_FRACTION = 0.004  # blobs smaller than this fraction of the image are noise
# Mean row width over the top third / over the bottom third of a blob: an upright triangle 0.2, a circle or a
# square 1.0 (a circle cut by the frame's edge stays near 1 or above).
TRIANGLE_TAPER = 0.7


@dataclass
class Blob:
    color: str
    shape: str
    mask: np.ndarray  # bool (H, W)
    cx: float
    cy: float
    area: int
    extent: float  # area / bounding-box area


def background_rgb(image: np.ndarray) -> np.ndarray:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
    return np.median(border, axis=0)


def background_name(image: np.ndarray) -> str:
    bg = background_rgb(image)
    return min(BACKGROUNDS, key=lambda k: np.linalg.norm(bg - np.array(BACKGROUNDS[k])))


def foreground_mask(image: np.ndarray, threshold: float = FOREGROUND_DISTANCE) -> np.ndarray:
    distance = np.linalg.norm(image.astype(np.float32) - background_rgb(image), axis=-1)
    mask = (distance > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


def nearest_color(rgb: np.ndarray) -> str:
    return min(PALETTE, key=lambda k: np.linalg.norm(rgb - np.array(PALETTE[k])))


def _ideal_shapes(h: int, w: int) -> dict[str, np.ndarray]:
    """Each shape of the grammar drawn to fill an h×w bounding box (pixel centres)."""
    y = (np.arange(h)[:, None] + 0.5) / h  # 0..1 top to bottom
    x = (np.arange(w)[None, :] + 0.5) / w
    return {
        "circle": (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25,
        "square": np.ones((h, w), bool),
        "triangle": np.abs(x - 0.5) <= y / 2,  # upright: apex at the top centre
    }


def taper(crop: np.ndarray) -> float:
    """Mean row width of the top third of a cropped mask over that of its bottom third."""
    widths = crop.sum(axis=1).astype(np.float64)
    third = max(1, len(widths) // 3)
    return float(widths[:third].mean() / max(widths[-third:].mean(), 1.0))


def classify_shape(blob_mask: np.ndarray) -> str:
    """A triangle when the blob narrows towards its top (TRIANGLE_TAPER), else the circle or square whose ideal
    drawing in the blob's bounding box overlaps it best (IoU). The taper comes first because a decoder rounds a small
    triangle's corners until its IoU with the ideal circle or square ties with the triangle's."""
    ys, xs = np.nonzero(blob_mask)
    crop = blob_mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if taper(crop) < TRIANGLE_TAPER:
        return "triangle"
    ideals = _ideal_shapes(*crop.shape)
    return max(("circle", "square"), key=lambda k: mask_iou(crop, ideals[k]))


def read_objects(image: np.ndarray, max_objects: int = 2) -> list[Blob]:
    """The largest `max_objects` blobs, left to right."""
    image = np.asarray(image)[..., :3]
    mask = foreground_mask(image).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = MIN_AREA_FRACTION * mask.size
    blobs = []
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        if area < min_area:
            continue
        blob_mask = labels == label
        # colour from the blob's core: edges are blended with the background
        core = cv2.erode(blob_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        pixels = image[core if core.sum() >= 4 else blob_mask].astype(np.float32)
        extent = float(area) / float(w * h)
        blobs.append(Blob(nearest_color(np.median(pixels, axis=0)), classify_shape(blob_mask), blob_mask,
                          float(centroids[label][0]), float(centroids[label][1]), int(area), extent))
    blobs = sorted(blobs, key=lambda b: -b.area)[:max_objects]
    return sorted(blobs, key=lambda b: b.cx)


def read_single(image: np.ndarray) -> Blob | None:
    """The largest object, or None when nothing stands out of the background."""
    blobs = read_objects(image, max_objects=1)
    return blobs[0] if blobs else None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def frame_ious(frames, masks) -> list[float]:
    """Per frame: IoU of the single object read from it with the expected mask (0 where none is read)."""
    return blob_ious([read_single(f) for f in frames], masks)


def blob_ious(blobs, masks) -> list[float]:
    """frame_ious for frames already read (read_single's blobs, None where nothing was read)."""
    return [0.0 if b is None else mask_iou(b.mask, m) for b, m in zip(blobs, masks)]
