"""Point-and-click input: canvases to draw sketches and paint masks on, a picture to click motion on, prompts as
clickable words ("use as input" from a result into another tab is in tabs.common, beside the result widgets). Each
widget fills an endpoint's own plain input (an image file, a number, a string) through page-only events, so the
Python API is unchanged and typing or uploading keeps working beside it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import gradio as gr
import numpy as np

from .common import UI_ONLY, FileImage, image_file
SKETCH_COLOR = "#ffffff"  # sketches are white lines on black, as the extractors draw them
DRAW_COLORS = (SKETCH_COLOR, "#ff0000", "#00c000", "#0050ff", "#ffff00", "#808080")  # lines, then colour blocks
PAINT_COLOR = ("#ff00ff", 0.5)  # a painted region: half-transparent magenta over the picture
PAD_SIDE = 256  # a motion pad's picture, px square


# ---- drawing and painting

def model_side(models) -> int:
    """The app's base model's picture side: a drawing is made at the size the model reads it."""
    from core import config
    return config.TOY_IMAGE_SIZE if models.base_model == config.EMBEDDED_BASE_MODEL else 512


def sketch_canvas(label: str, side: int, elem_id: str | None = None, colors=(SKETCH_COLOR,)) -> gr.ImageEditor:
    """A black canvas `side` px square to draw on with a brush (white by default; `colors` for colour blocks)."""
    return gr.ImageEditor(
        value={"background": np.zeros((side, side, 3), np.uint8), "layers": [], "composite": None},
        canvas_size=(side, side), fixed_canvas=True, type="numpy", image_mode="RGB", layers=False, transforms=(),
        sources=("upload", "clipboard"), label=label, elem_id=elem_id, height=320,
        brush=gr.Brush(colors=list(colors), default_color=colors[0], default_size=max(2, side // 24),
                       color_mode="fixed" if len(colors) == 1 else "defaults"),
        eraser=gr.Eraser(default_size=max(4, side // 12)))


def paint_canvas(label: str, side: int, elem_id: str | None = None) -> gr.ImageEditor:
    """A canvas to paint a region on, over a picture (a result or a reference, set by the tab's events or
    uploaded); the brush fits a `side`-px picture."""
    return gr.ImageEditor(type="numpy", image_mode="RGBA", layers=False, transforms=(), sources=("upload", "clipboard"),
                          label=label, elem_id=elem_id, height=320,
                          brush=gr.Brush(colors=[PAINT_COLOR], default_size=max(2, side // 12), color_mode="fixed"))


def drawing(value) -> np.ndarray | None:
    """An ImageEditor's value → what is drawn: the composite as RGB uint8 (None before anything was drawn)."""
    if not value or value.get("composite") is None:
        return None
    picture = np.asarray(value["composite"])
    if picture.ndim == 3 and picture.shape[-1] == 4:  # strokes over a transparent canvas: over black
        picture = (picture[..., :3].astype(np.float32) * (picture[..., 3:] / 255.0)).round().astype(np.uint8)
    return picture[..., :3] if picture.ndim == 3 else np.repeat(picture[..., None], 3, -1)


def painted(value) -> np.ndarray | None:
    """An ImageEditor's value → the painted region (H, W) bool: every pixel any stroke covers (None: nothing
    painted)."""
    layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
    alpha = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4]
    if not alpha or not np.any(alpha):
        return None
    return np.logical_or.reduce(alpha)


def mask_file(region: np.ndarray | None) -> str | None:
    """A region (H, W) bool → a mask picture file: white where the region is, black elsewhere."""
    if region is None:
        return None
    return image_file(np.repeat((np.asarray(region, bool) * 255).astype(np.uint8)[..., None], 3, -1))


def read_mask(pixels: np.ndarray) -> np.ndarray:
    """A mask picture (H, W, 3) uint8 → (H, W) bool: white (bright) = inside."""
    return np.asarray(pixels).mean(-1) > 127


def canvas_over(picture, current=None):
    """An ImageEditor value whose background is `picture` (a path or array), nothing painted yet; no change when the
    canvas (`current`, its value) already shows that picture, so a painting survives a run that remade it."""
    if picture is None:
        return gr.update()
    if isinstance(picture, str):
        from core.validate import load_image
        picture = load_image(picture)
    picture = np.asarray(picture)
    shown = (current or {}).get("background")
    if shown is not None and np.asarray(shown)[..., :3].shape == picture[..., :3].shape and \
            np.array_equal(np.asarray(shown)[..., :3], picture[..., :3]):
        return gr.update()
    return {"background": picture, "layers": [], "composite": None}


# ---- motion by clicking

def blank_picture(side: int) -> np.ndarray:
    """A light grey canvas with a faint grid (where motion is clicked before there is a frame)."""
    picture = np.full((side, side, 3), 235, np.uint8)
    for offset in range(0, side, max(8, side // 8)):
        picture[offset, :] = picture[:, offset] = 210
    return picture


def first_frame(video_path: str | None) -> np.ndarray | None:
    """A video file's first frame (None when there is no video or it cannot be read)."""
    if not video_path:
        return None
    capture = cv2.VideoCapture(str(video_path))
    ok, frame = capture.read()
    capture.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None


def draw_arrows(picture: np.ndarray, points: list[tuple[float, float]], side: int = PAD_SIDE) -> np.ndarray:
    """`points` (x, y) in fractions of the picture, joined by arrows (a dot for a lone start), drawn over the
    picture shown `side` px square."""
    shown = cv2.resize(np.ascontiguousarray(picture[..., :3]), (side, side), interpolation=cv2.INTER_NEAREST)
    pixel = [(int(round(x * (side - 1))), int(round(y * (side - 1)))) for x, y in points]
    for start, end in zip(pixel, pixel[1:]):
        cv2.arrowedLine(shown, start, end, (255, 40, 40), max(2, side // 96), tipLength=0.25)
    if len(pixel) == 1:
        cv2.circle(shown, pixel[0], max(3, side // 48), (255, 40, 40), -1)
    return shown


@dataclass
class MotionPad:
    """A picture to click motion on: the first click starts an arrow, the next ends it; on a trajectory pad each
    further click adds the next arrow. `points` holds the clicks as fractions of the picture, `background` what the
    arrows are drawn over (a blank canvas, or a frame set by the tab)."""
    picture: gr.Image
    background: gr.State
    points: gr.State
    clear: gr.Button
    trajectory: bool

    def set_background(self, picture: np.ndarray | None, points=()):
        """Outputs [picture, background] for a new background (None: the blank canvas), the arrows kept."""
        background = blank_picture(PAD_SIDE) if picture is None else picture
        return draw_arrows(background, list(points)), background

    def click(self, background, points, event: gr.SelectData):
        """(picture with the arrows, the points) after a click."""
        points = [] if (not self.trajectory and len(points) >= 2) else list(points)
        points.append(clicked_point(event))
        return draw_arrows(background, points), points


def motion_pad(label: str, elem_id: str, trajectory: bool = False) -> MotionPad:
    """A motion pad (see MotionPad); the tab wires `picture.select` to `click` and what the points set."""
    background = blank_picture(PAD_SIDE)
    with gr.Group():
        picture = FileImage(background, label=label, interactive=False, elem_id=elem_id, height=PAD_SIDE,
                            format="png", buttons=[], type="numpy")
        clear = gr.Button("clear the arrows", size="sm", elem_id=f"{elem_id}-clear")
    pad = MotionPad(picture, gr.State(background), gr.State([]), clear, trajectory)
    clear.click(lambda b: (draw_arrows(b, []), []), pad.background, [picture, pad.points], **UI_ONLY)
    return pad


def clicked_point(event: gr.SelectData, side: int = PAD_SIDE) -> tuple[float, float]:
    """A click on a motion pad's picture (shown `side` px square) → (x, y) in fractions."""
    x, y = event.index
    return min(max(x / (side - 1), 0.0), 1.0), min(max(y / (side - 1), 0.0), 1.0)


def points_text(points) -> str:
    """Points as an endpoint's text: 'x, y; x, y; …' in fractions of the frame."""
    return "; ".join(f"{x:.3f}, {y:.3f}" for x, y in points)


def arrow_motion(points: list[tuple[float, float]], frames: int, reference: int) -> tuple[float, float]:
    """The last arrow (start → end, fractions of the frame) as motion per frame in pixels of a `reference`-px frame:
    the content travels the arrow over the clip's `frames` frames."""
    (x0, y0), (x1, y1) = points[-2], points[-1]
    steps = max(int(frames) - 1, 1)
    return (x1 - x0) * reference / steps, (y1 - y0) * reference / steps


def nearest_direction(point: tuple[float, float], directions: dict[str, tuple[float, float]]) -> str:
    """A click (fractions) → the named direction (dx, dy; (0, 0) = the centre, e.g. a zoom) nearest the click's
    offset from the picture's centre."""
    dx, dy = point[0] - 0.5, point[1] - 0.5
    if math.hypot(dx, dy) < 0.12:
        centred = [name for name, d in directions.items() if d == (0.0, 0.0)]
        if centred:
            return centred[0]
    angle = math.atan2(dy, dx)
    moving = {name: d for name, d in directions.items() if d != (0.0, 0.0)}
    return min(moving, key=lambda name: abs(math.remainder(angle - math.atan2(moving[name][1], moving[name][0]),
                                                           2 * math.pi)))


def direction_picture(directions: dict[str, tuple[float, float]], side: int = 192) -> np.ndarray:
    """A pad with an arrow per named direction (a ring for the centre's), to click a camera move on."""
    picture = blank_picture(side)
    centre = side // 2
    for name, (dx, dy) in directions.items():
        if (dx, dy) == (0.0, 0.0):
            cv2.circle(picture, (centre, centre), side // 10, (60, 60, 200), 2)
            continue
        norm = math.hypot(dx, dy) or 1.0
        end = (int(centre + dx / norm * side * 0.4), int(centre + dy / norm * side * 0.4))
        start = (int(centre + dx / norm * side * 0.15), int(centre + dy / norm * side * 0.15))
        cv2.arrowedLine(picture, start, end, (60, 60, 200), 2, tipLength=0.3)
    return picture


def direction_picker(label: str, directions: dict[str, tuple[float, float]], target, elem_id: str,
                     side: int = 192) -> gr.Image | None:
    """A pad of arrows, one per named direction ((dx, dy), screen axes; (0, 0) = the centre's ring): a click sets
    `target` (a dropdown of those names) to the nearest. None when there is nothing to pick."""
    if not directions:
        return None
    pad = FileImage(direction_picture(directions, side), label=label, interactive=False, elem_id=elem_id, height=side,
                    width=side, format="png", buttons=[], type="numpy")

    def pick(event: gr.SelectData) -> str:
        return nearest_direction(clicked_point(event, side), directions)

    pad.select(pick, None, target, **UI_ONLY)
    return pad


def camera_directions(names) -> dict[str, tuple[float, float]]:
    """Camera moves named like the motion LoRAs and Dreamix's cameras ("pan left", "…-tilt-up", "zoom in") → their
    direction on the pad; moves a pad cannot show (zoom out, rolling) are left to the list."""
    found = {}
    for name in names:
        plain = str(name).rsplit("/", 1)[-1].replace("-", " ")
        for words, direction in (("pan left", (-1.0, 0.0)), ("pan right", (1.0, 0.0)), ("tilt up", (0.0, -1.0)),
                                 ("pan up", (0.0, -1.0)), ("tilt down", (0.0, 1.0)), ("pan down", (0.0, 1.0)),
                                 ("zoom in", (0.0, 0.0))):
            if plain.endswith(words):
                found[name] = direction
    return found


# ---- words by clicking

def word_chips(prompt: str, roles: dict[str, str]) -> list[tuple[str, str | None]]:
    """A prompt as gr.HighlightedText items: each word labelled with the roles (e.g. reweight_words) whose text
    names it, spaces between them unlabelled; item 2·i is word i."""
    chosen = {role: {w.lower().strip(".,!?;:") for w in (text or "").replace(",", " ").split()}
              for role, text in roles.items()}
    items = []
    for index, word in enumerate((prompt or "").split()):
        key = word.lower().strip(".,!?;:")
        labels = [role for role, words in chosen.items() if key in words or str(index) in words]
        items += [(word, " + ".join(labels) or None), (" ", None)]
    return items[:-1]


def toggle_word(text: str, word: str) -> str:
    """`word` added to a space-separated word list, or taken out when it is there."""
    word = word.strip().strip(".,!?;:")
    words = [w for w in (text or "").replace(",", " ").split() if w]
    kept = [w for w in words if w.lower() != word.lower()]
    return " ".join(kept if len(kept) < len(words) else words + [word])


def clicked_word(event: gr.SelectData) -> str | None:
    """The word a click on word chips (or a heatmap's caption) chose."""
    value = event.value
    if isinstance(value, dict):  # a gallery item
        value = value.get("caption")
    elif isinstance(value, (list, tuple)):
        value = value[0]
    word = str(value or "").strip()
    return word or None
