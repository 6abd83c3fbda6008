"""Cross-attention maps as pictures: one heatmap per token, overlaid on the image."""
from __future__ import annotations

import cv2
import numpy as np
import torch

OVERLAY_SIDE = 256  # heatmaps are shown at least this big, whatever the model's resolution


def overlay(image: np.ndarray, heat: np.ndarray, side: int = OVERLAY_SIDE,
            value_range: tuple[float, float] | None = None) -> np.ndarray:
    """image uint8 (H, W, 3) + heat (h, w) → uint8 (side, side·W/H, 3) overlay. Heat is scaled from
    `value_range` (a mask: (0, 1)), or from its own min–max when None (attention maps in any range)."""
    height = max(side, image.shape[0])
    width = int(round(height * image.shape[1] / image.shape[0]))
    base = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    heat = heat.astype(np.float32)
    low, high = value_range if value_range is not None else (float(heat.min()), float(heat.max()))
    heat = (heat - low) / max(high - low, 1e-8)
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.45 * base + 0.55 * colored).astype(np.uint8)


def token_heatmaps(maps: torch.Tensor, tokens: list[str], image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """maps (side, side, sequence) of one prompt; tokens without specials → [(token, overlay)]."""
    maps = maps.float().cpu().numpy()
    out = []
    for index, token in enumerate(tokens, start=1):
        if index >= maps.shape[-1]:
            break
        out.append((token.replace("</w>", ""), overlay(image, maps[..., index])))
    return out
