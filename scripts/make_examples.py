"""Write the example images and videos under assets/examples/ (procedural, reproducible).

    python scripts/make_examples.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere
from core.config import EXAMPLES_DIR  # noqa: E402
from core.shapes.dataset import Scene, ShapeObject, render  # noqa: E402
from core.video import write_video  # noqa: E402


def moving(color: str, shape: str, background: str, start: tuple[float, float], step: tuple[float, float],
           frames: int = 16, radius: float = 11) -> np.ndarray:
    return np.stack([render(Scene((ShapeObject(color, shape, start[0] + step[0] * k, start[1] + step[1] * k, radius),),
                                  background)) for k in range(frames)])


def main() -> None:
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render(Scene((ShapeObject("red", "circle", 30, 34, 16),), "white"))).save(EXAMPLES_DIR / "red_circle_white.png")
    Image.fromarray(render(Scene((ShapeObject("green", "triangle", 32, 34, 17),), "white"))).save(EXAMPLES_DIR / "green_triangle_white.png")
    Image.fromarray(render(Scene((ShapeObject("red", "circle", 16, 30, 10), ShapeObject("blue", "square", 46, 34, 10)),
                                 "white"))).save(EXAMPLES_DIR / "red_circle_blue_square_white.png")
    write_video(moving("red", "circle", "white", (16, 32), (2, 0)), EXAMPLES_DIR / "red_circle_moving_right.mp4", fps=8)
    write_video(moving("blue", "square", "black", (32, 48), (0, -2)), EXAMPLES_DIR / "blue_square_moving_up.mp4", fps=8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 36:60] = 255  # a square on the right: where the mask energy should put the object
    Image.fromarray(mask).save(EXAMPLES_DIR / "mask_right.png")
    print(f"wrote examples to {EXAMPLES_DIR}")


if __name__ == "__main__":
    main()
