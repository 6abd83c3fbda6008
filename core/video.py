"""Video in and out: read / write mp4 and GIF, resize, sample frames, motion vectors.

Frames are uint8 arrays (T, H, W, 3) everywhere in the app. The ffmpeg binary comes with
imageio-ffmpeg, so nothing needs a system ffmpeg.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from . import config

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif"}


def read_video(path, max_frames: int = config.MAX_VIDEO_FRAMES) -> tuple[np.ndarray, float]:
    """A video file → (frames (T, H, W, 3) uint8, fps). Refuses wrong types and oversize input."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path.suffix or 'this file'} is not a video type this app reads; use "
                         f"{', '.join(sorted(VIDEO_SUFFIXES))}")
    if not path.is_file() or path.stat().st_size == 0:
        raise ValueError("the video file is empty or missing")
    if path.stat().st_size > config.MAX_UPLOAD_BYTES:
        raise ValueError(f"the video is larger than {config.MAX_UPLOAD_BYTES // 2**20} MiB")
    try:
        is_gif = path.suffix.lower() == ".gif"
        meta = iio.immeta(path) if is_gif else iio.immeta(path, plugin="FFMPEG")
        fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else 8.0))
        frames = []
        # closed however the loop ends: a reader left open keeps its ffmpeg process running
        with contextlib.closing(iio.imiter(path) if is_gif else iio.imiter(path, plugin="FFMPEG")) as iterator:
            for frame in iterator:
                frames.append(np.asarray(frame)[..., :3])
                if len(frames) > max_frames:
                    raise ValueError(f"the video has more than {max_frames} frames; trim it first")
                if frames[0].shape[0] * frames[0].shape[1] > config.MAX_IMAGE_PIXELS:
                    raise ValueError("the video's frames are too large")
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"the video could not be decoded ({type(error).__name__})") from error
    if not frames:
        raise ValueError("the video has no frames")
    if len(frames) / max(fps, 1e-6) > config.MAX_VIDEO_SECONDS * 1.05:
        raise ValueError(f"the video is longer than {config.MAX_VIDEO_SECONDS} s; trim it first")
    return np.stack(frames).astype(np.uint8), fps


def write_video(frames: np.ndarray, path, fps: float = 8.0) -> Path:
    """uint8 frames → mp4 (h264, any size) or GIF (looping), chosen by the suffix."""
    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        # macro_block_size=1 keeps odd sizes as they are instead of silently resizing them
        even = frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0  # yuv420p (what browsers play) needs even sides
        iio.imwrite(path, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1,
                    pixelformat="yuv420p" if even else "yuv444p")
    return path


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if frames.shape[1] > height else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames evenly spread over the clip (repeats when it has fewer)."""
    index = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return frames[index]


def motion_vectors(frames: np.ndarray) -> np.ndarray:
    """Dense optical flow between consecutive frames (Farnebäck) → (T−1, H, W, 2) pixels/frame."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0) for a, b in zip(gray, gray[1:])])


def frame_motion(frames: np.ndarray) -> np.ndarray:
    """Motion vectors per frame (T, H, W, 2): how each pixel moved since the previous frame (the first
    frame's are zero), the layout VideoComposer's motion condition has."""
    if len(frames) < 2:
        return np.zeros((*frames.shape[:3], 2), np.float32)
    flow = motion_vectors(frames)
    return np.concatenate([np.zeros_like(flow[:1]), flow]).astype(np.float32)


def draw_motion(frame: np.ndarray, flow: np.ndarray, spacing: int = 8, min_speed: float = 0.5) -> np.ndarray:
    """The frame with the motion vectors drawn as arrows (one per `spacing` px cell, scaled ×2 to be
    seen), what the user is shown of the motion condition."""
    out = frame.copy()
    h, w = flow.shape[:2]
    thickness = max(1, min(h, w) // 128)
    for y in range(spacing // 2, h, spacing):
        for x in range(spacing // 2, w, spacing):
            cell = flow[y - spacing // 2:y + spacing // 2, x - spacing // 2:x + spacing // 2].reshape(-1, 2)
            dx, dy = cell.mean(axis=0)
            if np.hypot(dx, dy) < min_speed:
                continue
            end = (int(round(x + 2 * dx)), int(round(y + 2 * dy)))
            cv2.arrowedLine(out, (x, y), end, (255, 0, 255), thickness, tipLength=0.4)
    return out


def side_by_side(videos: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Videos of the same length and height (F, H, W, 3) → one video, left to right, white gaps."""
    f, h = videos[0].shape[:2]
    spacer = np.full((f, h, gap, 3), 255, np.uint8)
    parts = [part for video in videos for part in (video, spacer)][:-1]
    return np.concatenate(parts, axis=2)


def flow_to_rgb(flow: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) → an RGB picture: hue = direction, brightness = speed."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def path_motion(points, frames: int, side: int, radius: float | None = None) -> np.ndarray:
    """A drawn trajectory → motion vectors per frame (T, side, side, 2) in `frame_motion`'s layout: an object
    travels the path (points (x, y) in fractions of the frame, at constant speed along it) over the frames, and
    frame k's vectors are its last move, inside a disc of `radius` px (side / 8) around where it is; zero elsewhere
    and in frame 0."""
    path = np.asarray(points, np.float64).reshape(-1, 2) * (side - 1)
    if len(path) < 2:
        raise ValueError("a motion path needs at least two points (a start and an end)")
    lengths = np.r_[0.0, np.cumsum(np.hypot(*np.diff(path, axis=0).T))]
    where = np.linspace(0.0, lengths[-1], frames)
    at = np.stack([np.interp(where, lengths, path[:, 0]), np.interp(where, lengths, path[:, 1])], axis=1)
    radius = side / 8 if radius is None else radius
    ys, xs = np.mgrid[0:side, 0:side]
    flow = np.zeros((frames, side, side, 2), np.float32)
    for k in range(1, frames):
        inside = np.hypot(xs - at[k, 0], ys - at[k, 1]) <= radius
        flow[k][inside] = at[k] - at[k - 1]
    return flow
