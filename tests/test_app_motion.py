"""/animatediff, /tune_a_video_train and /tune_a_video_generate through gradio_client (embedded models)."""
from __future__ import annotations

import pytest
from gradio_client import handle_file

from core import config
from core.shapes import reader
from core.video import read_video

EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")
EXAMPLE_IMAGE = str(config.EXAMPLES_DIR / "red_circle_white.png")


def test_animatediff_endpoint_gives_mp4_and_gif(client):
    video, gif = client.predict(prompt="a red circle moving right on a white background", frames=8, steps=10,
                                api_name="/animatediff")
    mp4_frames, _ = read_video(video["video"] if isinstance(video, dict) else video)
    gif_frames, _ = read_video(gif)
    assert mp4_frames.shape == (8, 64, 64, 3) and gif_frames.shape == (8, 64, 64, 3)
    assert reader.read_single(mp4_frames[0]) is not None


def test_animatediff_takes_an_embedded_camera_lora_by_name(client):
    """The tab's list offers the embedded camera LoRAs beside the Hub's; by name they load like the Hub's."""
    def frames(motion_lora):
        video, _ = client.predict(prompt="a red circle on a white background", motion_lora=motion_lora, frames=4,
                                  steps=4, seed=0, api_name="/animatediff")
        return read_video(video["video"] if isinstance(video, dict) else video)[0].astype(int)

    plain, panned = frames(""), frames(config.EMBEDDED_MOTION_LORAS[0])
    assert panned.shape == plain.shape and abs(panned - plain).max() > 10
    page = client.config if isinstance(client.config, dict) else {}
    listed = {str(choice[0] if isinstance(choice, (list, tuple)) else choice) for component in page.get("components", [])
              if component.get("props", {}).get("label", "").startswith("motion_lora")
              for choice in component["props"].get("choices", [])}
    assert set(config.EMBEDDED_MOTION_LORAS) <= listed and set(config.HUB_MOTION_LORAS) <= listed


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": 1000}, "frames must be a whole number from 2 to 32; got 1000"),
    ({"motion_lora": "../../etc/passwd"}, "motion LoRA|neither"),
    ({"base_model": "/tmp"}, "neither an embedded model"),
    ({"prompt": ""}, "prompt is empty"),
])
def test_animatediff_bad_input_is_a_clear_error(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(**{"prompt": "a red circle moving right on a white background", "steps": 2, **kwargs},
                       api_name="/animatediff")


def test_tune_a_video_train_then_generate(client, tmp_path, app_folders):
    app_folders(tuned_video=tmp_path)
    plot, status = client.predict(video=handle_file(EXAMPLE_VIDEO), prompt="a red circle moving right on a white "
                                  "background", steps=4, lr=1e-3, frames=4, seed=0, name="endpoint-test",
                                  api_name="/tune_a_video_train")
    assert "endpoint-test" in status and (tmp_path / "endpoint-test" / "weights.safetensors").is_file()
    video, info = client.predict(model="endpoint-test", prompt="a blue circle moving right on a white background",
                                 steps=4, api_name="/tune_a_video_generate")
    frames, _ = read_video(video["video"] if isinstance(video, dict) else video)
    assert frames.shape == (4, 64, 64, 3)
    assert info["prompt"].startswith("a red circle") and info["steps"] == 4


def test_tune_a_video_bad_inputs(client, tmp_path, app_folders):
    app_folders(tuned_video=tmp_path)
    with pytest.raises(Exception, match="not a video type"):
        client.predict(video=handle_file(EXAMPLE_IMAGE), prompt="a red circle", steps=2,
                       api_name="/tune_a_video_train")
    with pytest.raises(Exception, match="not a model name"):
        client.predict(video=handle_file(EXAMPLE_VIDEO), prompt="a red circle", steps=2, name="../outside",
                       api_name="/tune_a_video_train")
    with pytest.raises(Exception, match="no tuned model"):
        client.predict(model="never-tuned", prompt="a blue circle", api_name="/tune_a_video_generate")


def test_imagen_video_endpoint_shows_every_stage(client):
    base, tsr, ssr, shapes = client.predict(prompt="a red circle moving right on a white background", base_frames=2,
                                            steps=4, api_name="/imagen_video")
    sizes = [read_video(v["video"] if isinstance(v, dict) else v)[0].shape for v in (base, tsr, ssr)]
    assert sizes == [(2, 64, 64, 3), (4, 64, 64, 3), (4, 128, 128, 3)]
    assert "tsr: 4 × 64 × 64" in shapes


def test_dreamix_endpoint_modes(client):
    video, source = client.predict(video_or_image=[handle_file(EXAMPLE_VIDEO)], prompt="a blue circle moving right "
                                   "on a white background", finetune_steps=2, api_name="/dreamix")
    assert read_video(video["video"] if isinstance(video, dict) else video)[0].shape == (8, 64, 64, 3)
    video, source = client.predict(video_or_image=[handle_file(EXAMPLE_IMAGE)], prompt="a red circle", mode="animate",
                                   finetune_steps=1, api_name="/dreamix")
    assert read_video(source["video"] if isinstance(source, dict) else source)[0].shape == (8, 64, 64, 3)
    with pytest.raises(Exception, match="one video"):
        client.predict(video_or_image=[handle_file(EXAMPLE_IMAGE)], prompt="a red circle", mode="edit",
                       api_name="/dreamix")


def test_videocomposer_endpoint_gives_video_and_condition_views(client):
    video, views = client.predict(prompt="a blue square", reference_video=handle_file(EXAMPLE_VIDEO),
                                  conditions=["motion", "single_sketch"], frames=8, steps=6, api_name="/videocomposer")
    frames, _ = read_video(video["video"] if isinstance(video, dict) else video)
    shown, _ = read_video(views["video"] if isinstance(views, dict) else views)
    assert frames.shape == (8, 64, 64, 3)
    assert shown.shape[0] == 8 and shown.shape[2] > 2 * 64  # two condition views side by side


def test_videocomposer_without_conditions_and_with_a_style_image(client):
    video, views = client.predict(prompt="a circle", style_image=handle_file(EXAMPLE_IMAGE), conditions=[], frames=4,
                                  steps=4, api_name="/videocomposer")
    frames, _ = read_video(video["video"] if isinstance(video, dict) else video)
    assert frames.shape == (4, 64, 64, 3) and views is None


@pytest.mark.parametrize("kwargs, message", [
    ({"conditions": ["motion"], "reference_video": None}, "no reference_video given|reference video"),
    ({"conditions": ["telepathy"]}, "telepathy|not in the list|Value"),
    ({"frames": 1}, "less than minimum|frames"),
])
def test_videocomposer_bad_input_is_a_clear_error(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(**{"prompt": "a blue square", "reference_video": handle_file(EXAMPLE_VIDEO),
                          "steps": 2, **kwargs}, api_name="/videocomposer")


def test_gen1_endpoint_gives_video_and_depth(client):
    video, depth = client.predict(video=handle_file(EXAMPLE_VIDEO), prompt="a blue circle", structure_level=2,
                                  temporal_guidance=1.5, frames=4, steps=6, api_name="/gen1")
    frames, _ = read_video(video["video"] if isinstance(video, dict) else video)
    depth_frames, _ = read_video(depth["video"] if isinstance(depth, dict) else depth)
    assert frames.shape == (4, 64, 64, 3) and depth_frames.shape == (4, 64, 64, 3)
    with pytest.raises(Exception, match="structure_level|maximum"):
        client.predict(video=handle_file(EXAMPLE_VIDEO), prompt="a blue circle", structure_level=9,
                       steps=2, api_name="/gen1")
