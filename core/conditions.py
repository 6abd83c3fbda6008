"""Control maps extracted from images or frames (OpenCV, offline)."""
from __future__ import annotations

import cv2
import numpy as np


def canny(frames: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """uint8 frames (F, H, W, 3) → Canny edge maps as RGB (F, H, W, 3), white edges on black."""
    edges = [cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), low, high) for f in frames]
    return np.stack([np.repeat(e[..., None], 3, -1) for e in edges])


EXTRACTORS = {"canny": canny}


def extract(kind: str, frames: np.ndarray, **kwargs) -> np.ndarray:
    if kind not in EXTRACTORS:
        raise ValueError(f"no offline extractor for {kind!r}; available: {', '.join(EXTRACTORS)}")
    return EXTRACTORS[kind](frames, **kwargs)
