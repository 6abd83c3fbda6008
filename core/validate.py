"""Checks on user input that raise ValueError with a message a person can act on.
(Tabs turn ValueError into gr.Error; core never imports gradio.)"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from . import config

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def check_prompt(prompt, name: str = "prompt", allow_empty: bool = False) -> str:
    if not isinstance(prompt, str):
        raise ValueError(f"{name} must be text")
    if not allow_empty and not prompt.strip():
        raise ValueError(f"{name} is empty: describe the image, e.g. 'a red circle on a white background'")
    if len(prompt) > config.MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is {len(prompt)} characters long; the limit is {config.MAX_PROMPT_CHARS}")
    return prompt


def check_range(name: str, value, low, high):
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def check_finite(tensors, what: str):
    """`tensors` (a tensor, or a dict of them) unchanged, or a ValueError when any value is NaN or ±inf:
    a diverged result is never returned as a picture (NaN casts to black) nor saved as weights."""
    import torch
    items = tensors.values() if isinstance(tensors, dict) else [tensors]
    if any(torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in items):
        raise ValueError(f"{what} came out non-finite (NaN or infinity): the run diverged; try a smaller learning "
                         "rate, guidance or loss weights, or fewer steps")
    return tensors


def check_sampling(steps, guidance_scale, seed=0) -> None:
    """The knobs every sampler-driven method has: steps, guidance scale, seed."""
    check_range("steps", steps, 1, config.MAX_STEPS)
    check_range("guidance_scale", guidance_scale, 0.0, config.MAX_GUIDANCE)
    check_range("seed", seed, 0, config.MAX_SEED)


def check_image_file(path, name: str = "image") -> tuple[int, int]:
    """An image file's (width, height), read from its header only; wrong types, empty, corrupt or too
    large files raise a ValueError saying which."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"the {name} file could not be found")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"the {name} file is empty")
    if size > config.MAX_UPLOAD_BYTES:
        raise ValueError(f"the {name} file is larger than {config.MAX_UPLOAD_BYTES // 2**20} MiB")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise ValueError(f"the {name} has far more than {config.MAX_IMAGE_PIXELS} pixels (the limit)") from None
    except Exception as error:
        raise ValueError(f"the {name} is not an image this app can read ({type(error).__name__}); "
                         f"use PNG, JPEG or WebP") from error
    if width * height > config.MAX_IMAGE_PIXELS:
        raise ValueError(f"the {name} is {width}×{height} pixels; the limit is {config.MAX_IMAGE_PIXELS} pixels")
    return width, height


def load_image(path, name: str = "image") -> np.ndarray:
    """An uploaded image file → uint8 RGB array, refusing wrong types and absurd sizes before decoding."""
    if path is None:
        raise ValueError(f"no {name} given: upload one")
    if isinstance(path, np.ndarray):
        image = path
    else:
        check_image_file(path, name)
        try:
            with Image.open(path) as img:
                image = np.asarray(img.convert("RGB"))
        except Exception as error:
            raise ValueError(f"the {name} is not an image this app can read ({type(error).__name__}); "
                             f"use PNG, JPEG or WebP") from error
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    if image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"the {name} is too small or empty ({image.shape}); it needs at least 8×8 pixels")
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))
