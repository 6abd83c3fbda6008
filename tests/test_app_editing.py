"""/p2p and /null_text through gradio_client against the app launched in-process (embedded model)."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from core import config
from core.shapes import reader

EXAMPLE = str(config.EXAMPLES_DIR / "red_circle_white.png")


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_p2p_endpoint(client):
    source, edited, heatmaps = client.predict(source_prompt="a red circle on a white background",
                                              target_prompt="a blue circle on a white background", steps=25,
                                              guidance_scale=6.0, api_name="/p2p")
    assert reader.read_single(load(edited)).color == "blue"
    assert load(source).shape == (64, 64, 3)
    tokens = [item["caption"] for item in heatmaps]
    assert tokens == ["a", "red", "circle", "on", "a", "white", "background"]
    assert load(heatmaps[1]["image"]).shape[0] >= 256


def test_p2p_endpoint_per_word_schedule_and_blend(client):
    source, edited, _ = client.predict(
        source_prompt="a red circle and a blue square on a white background",
        target_prompt="a red circle and a green square on a white background", edit_mode="replace",
        blend_words="square", cross_replace_words="square: 0.5", steps=10, api_name="/p2p")
    assert load(edited).shape == (64, 64, 3)
    heatmaps = client.predict(source_prompt="a red circle and a blue square on a white background",
                              target_prompt="a red circle and a green square on a white background",
                              blend_words="square", blend_exclude_words="circle", steps=4, api_name="/p2p")[2]
    assert heatmaps[-1]["caption"].startswith("local-blend mask") and len(heatmaps) == 12  # 11 words + the mask


def test_null_text_endpoint_and_cache(client):
    kwargs = dict(image=handle_file(EXAMPLE), source_prompt="a red circle on a white background",
                  target_prompt="a blue circle on a white background", inversion="negative-prompt", steps=10,
                  api_name="/null_text")
    reconstruction, edited, psnr, seconds, heatmaps = client.predict(**kwargs)
    assert psnr > 15 and seconds > 0
    assert len(heatmaps) == 7
    again = client.predict(**{**kwargs, "target_prompt": "a green circle on a white background"})
    assert again[3] == 0  # the cached inversion was reused


@pytest.mark.parametrize("kwargs, message", [
    ({"source_prompt": "a red circle", "target_prompt": ""}, "target_prompt is empty"),
    ({"source_prompt": "a red circle", "target_prompt": "a red circle", "edit_mode": "reweight"}, "reweight_words"),
    ({"source_prompt": "a red circle", "target_prompt": "a blue circle", "cross_replace_words": "nonsense: x"},
     "replace steps|cross_replace"),
    ({"source_prompt": "a red circle", "target_prompt": "a blue circle", "blend_words": "dog"}, "blend_words"),
    ({"source_prompt": "a red circle", "target_prompt": "a blue circle", "blend_exclude_words": "red"}, "needs blend_words"),
])
def test_p2p_bad_input(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(api_name="/p2p", steps=2, **kwargs)


def test_null_text_without_image_is_a_clear_error(client):
    with pytest.raises(Exception, match="no image given"):
        client.predict(image=None, source_prompt="a", target_prompt="b", api_name="/null_text")


def test_t2v_zero_endpoint(client):
    from core.video import read_video

    video, conditions = client.predict(prompt="a red circle on a white background", frames=4, steps=20, t0=14, t1=17,
                                       motion_y=0, api_name="/t2v_zero")
    frames, _ = read_video(video)
    assert frames.shape == (4, 64, 64, 3) and conditions == []


def test_t2v_zero_controlnet_offline_is_a_clear_error(client):
    with pytest.raises(Exception, match="no control_video given"):
        client.predict(prompt="a red circle", mode="controlnet", steps=4, api_name="/t2v_zero")


def test_fatezero_endpoint(client):
    from core.video import read_video
    EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")

    edited, reconstruction, memory = client.predict(
        video=handle_file(EXAMPLE_VIDEO), source_prompt="a red circle moving right on a white background",
        target_prompt="a blue circle moving right on a white background", frames=4, steps=10, api_name="/fatezero")
    frames, _ = read_video(edited)
    assert frames.shape == (4, 64, 64, 3) and "MiB" in memory


def test_fatezero_rejects_a_non_video(client):
    with pytest.raises(Exception):
        client.predict(video=handle_file(EXAMPLE), source_prompt="a", target_prompt="b", api_name="/fatezero")
