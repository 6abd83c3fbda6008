"""Video IO round trips and motion vectors on procedural moving shapes."""
from __future__ import annotations

import numpy as np
import pytest

from core import video
from core.shapes.dataset import moving_clip


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_round_trip(tmp_path, suffix):
    frames, _ = moving_clip(np.random.default_rng(0), frames=12, size=64)
    path = video.write_video(frames, tmp_path / f"clip{suffix}", fps=8)
    back, fps = video.read_video(path)
    assert back.shape == frames.shape
    assert abs(fps - 8) < 0.5
    assert np.abs(back.astype(float) - frames).mean() < 6  # lossy codecs, but close


@pytest.mark.parametrize("height, width", [(50, 70), (51, 71)])
def test_sizes_are_kept(tmp_path, height, width):
    frames = np.random.default_rng(0).integers(0, 255, (5, height, width, 3), dtype=np.uint8)
    back, _ = video.read_video(video.write_video(frames, tmp_path / "clip.mp4"))
    assert back.shape[1:3] == (height, width)


def test_motion_vectors_follow_the_object():
    frames, caption = moving_clip(np.random.default_rng(1), frames=6, size=64, speed=3.0, direction="right")
    flow = video.motion_vectors(frames)
    moving = np.linalg.norm(flow, axis=-1) > 0.5
    assert flow.shape == (5, 64, 64, 2) and "moving right" in caption
    assert flow[..., 0][moving].mean() > 1.0  # rightwards
    assert video.flow_to_rgb(flow[0]).shape == (64, 64, 3)


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a video type"):
        video.read_video(tmp_path / "a.txt")
    (tmp_path / "b.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        video.read_video(tmp_path / "b.mp4")
    (tmp_path / "c.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="could not be decoded"):
        video.read_video(tmp_path / "c.mp4")


def test_sample_and_resize():
    frames = np.zeros((10, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(10)[:, None, None]
    picked = video.sample_frames(frames, 4)
    assert picked[:, 0, 0, 0].tolist() == [0, 3, 6, 9]
    assert video.resize_frames(picked, 16, 24).shape == (4, 16, 24, 3)


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_centred_paths_pass_the_image_centre_mid_clip(direction):
    from core.shapes import reader
    rng = np.random.default_rng(3)
    for _ in range(4):
        frames, _ = moving_clip(rng, frames=8, direction=direction, centred=2.0)
        centres = np.array([(b.cx, b.cy) for b in map(reader.read_single, frames)])
        midpoint = (centres[0] + centres[-1]) / 2
        assert np.abs(midpoint - 32).max() <= 3.0, (direction, centres)  # 2 px, plus the reader's rounding
