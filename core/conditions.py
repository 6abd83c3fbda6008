"""Condition maps extracted from images or video frames, offline with OpenCV.

Every extractor takes one uint8 RGB image (H, W, 3) and returns a uint8 RGB map of the same size,
the picture a control model (T2I-Adapter, UniControl, ControlNet) is conditioned on and the user
is shown. `extract(kind, images)` also takes a stack (F, H, W, 3) of frames. Depth, segmentation
and pose need models (transformers, on a GPU): their ids are in config, not here.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import config

D = config.ConditionDefaults


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def canny(image: np.ndarray, low: int = D.canny_low, high: int = D.canny_high) -> np.ndarray:
    """Canny edges: white one-pixel lines on black."""
    return _rgb(cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), low, high))


def sketch(image: np.ndarray) -> np.ndarray:
    """Soft edges (an HED/PiDiNet-like sketch without their networks): blurred gradient magnitude."""
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (3, 3), 0)
    magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    magnitude = magnitude / max(float(magnitude.max()), 1e-6)
    return _rgb((np.sqrt(magnitude) * 255).round().astype(np.uint8))


def palette(image: np.ndarray, blocks: int = D.palette_blocks) -> np.ndarray:
    """Colour blocks: the image averaged down to blocks × blocks cells and blown back up (the
    official colour adapter's 64× bicubic down, nearest up, scaled to our image sizes)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (blocks, blocks), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _background(image: np.ndarray) -> np.ndarray:
    """The border's median colour: what the scene's background is."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def mask(image: np.ndarray, threshold: float = D.mask_threshold) -> np.ndarray:
    """The foreground (everything that differs from the border's colour) as white on black: the
    condition of mask-to-image (segmentation-like, one class)."""
    distance = np.linalg.norm(image.astype(np.float32) - _background(image), axis=-1)
    foreground = cv2.morphologyEx((distance > threshold).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return _rgb(foreground * 255)


def inpaint(image: np.ndarray, box: float = D.hole_fraction) -> np.ndarray:
    """The image with a centred square hole (gray), to be filled in."""
    out = image.copy()
    h, w = image.shape[:2]
    side_h, side_w = int(h * box), int(w * box)
    top, left = (h - side_h) // 2, (w - side_w) // 2
    out[top:top + side_h, left:left + side_w] = 127
    return out


def outpaint(image: np.ndarray, keep: float = D.outpaint_keep) -> np.ndarray:
    """Only the centre `keep` fraction of the image kept; the rest gray, to be extended."""
    out = np.full_like(image, 127)
    h, w = image.shape[:2]
    top, left = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    out[top:h - top, left:w - left] = image[top:h - top, left:w - left]
    return out


def blur(image: np.ndarray, sigma: float = D.blur_sigma) -> np.ndarray:
    """A Gaussian-blurred image: the condition of deblurring."""
    return cv2.GaussianBlur(image, (0, 0), sigma)


def grayscale(image: np.ndarray) -> np.ndarray:
    """The luminance: the condition of colourisation."""
    return _rgb(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def pseudo_depth(image: np.ndarray, sigma: float = D.pseudo_depth_sigma) -> np.ndarray:
    """An offline stand-in for a depth model (labelled so in the UI): the foreground is near, nearest
    at its middle (distance to its outline), the background far. Right for flat-coloured scenes on a
    plain background (the embedded models' world); a real depth model is used on a GPU."""
    foreground = mask(image)[..., 0] > 0
    distance = cv2.distanceTransform(foreground.astype(np.uint8), cv2.DIST_L2, 5)
    near = np.sqrt(distance / max(float(distance.max()), 1e-6)) * foreground
    near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), sigma)
    return _rgb((near / max(float(near.max()), 1e-6) * 255).round().astype(np.uint8))


def model_depth(frames: np.ndarray, estimator) -> np.ndarray:
    """Frames (F, H, W, 3) → depth (F, H, W) in [0, 1], near = 1, from a transformers depth model
    (`estimator` = (image processor, model), Models.depth_estimator): relative inverse depth,
    normalised per clip so that frames stay comparable."""
    import torch

    processor, model = estimator
    maps = []
    for frame in np.asarray(frames):
        inputs = processor(images=frame, return_tensors="pt").to(model.device)
        with torch.no_grad():
            predicted = model(pixel_values=inputs["pixel_values"].to(model.dtype)).predicted_depth
        resized = torch.nn.functional.interpolate(predicted[:, None].float(), size=frame.shape[:2], mode="bicubic",
                                                  align_corners=False)
        maps.append(resized[0, 0].cpu().numpy())
    depth = np.stack(maps)
    return ((depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-6)).astype(np.float32)


def coarsen(image: np.ndarray, level: int) -> np.ndarray:
    """Gen-1's structure fidelity: halve the resolution `level` times and blow back up (blurred):
    level 0 keeps every detail; each level keeps only coarser structure."""
    if level <= 0:
        return image
    h, w = image.shape[:2]
    small = image
    for _ in range(level):
        small = cv2.resize(small, (max(1, small.shape[1] // 2), max(1, small.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


EXTRACTORS = {"canny": canny, "sketch": sketch, "palette": palette, "mask": mask, "inpaint": inpaint,
              "outpaint": outpaint, "blur": blur, "grayscale": grayscale, "pseudo_depth": pseudo_depth}


def extract(kind: str, images: np.ndarray, **kwargs) -> np.ndarray:
    """One image (H, W, 3) or frames (F, H, W, 3) → the `kind` condition map(s), same shape."""
    if kind not in EXTRACTORS:
        raise ValueError(f"no offline extractor for {kind!r}; available: {', '.join(EXTRACTORS)}")
    images = np.asarray(images)
    if images.ndim == 4:
        return np.stack([EXTRACTORS[kind](image, **kwargs) for image in images])
    return EXTRACTORS[kind](images, **kwargs)


def fill_outline(edge_map: np.ndarray) -> np.ndarray:
    """The filled region inside an edge map's outer contours (bool (H, W)): what a shape's edges enclose."""
    gray = edge_map[..., 0] if edge_map.ndim == 3 else edge_map
    closed = cv2.morphologyEx((gray > 127).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(closed)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)
