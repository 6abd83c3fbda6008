"""What the app-level tests share: cheap settings for every endpoint and calls through gradio_client or
plain HTTP."""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file

from core import calls, config

# what a request gets when nobody checked its input: our handler's catch-all, Gradio's own, a traceback
GENERICS = ("something went wrong on the server", "has not enabled verbose error reporting", "Traceback")
EXAMPLE_IMAGE = str(config.EXAMPLES_DIR / "red_circle_white.png")
EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")

# cheap settings per endpoint, so a request that is (rightly) accepted finishes in seconds
CHEAP = {
    "/p2p": {"steps": 2}, "/null_text": {"image": EXAMPLE_IMAGE, "inversion": "ddim", "steps": 2},
    "/t2v_zero": {"frames": 2, "steps": 4, "t0": 1, "t1": 2}, "/fatezero": {"video": EXAMPLE_VIDEO, "frames": 2, "steps": 2},
    "/tune_a_video_train": {"video": EXAMPLE_VIDEO, "steps": 1, "frames": 2, "name": "reliability"},
    "/tune_a_video_generate": {"model": "reliability", "steps": 2},
    "/animatediff": {"frames": 2, "steps": 2}, "/t2i_adapter": {"conditions": [EXAMPLE_IMAGE], "steps": 2},
    "/unicontrol": {"condition_image": EXAMPLE_IMAGE, "steps": 2}, "/freedom": {"steps": 2},
    "/diffusionclip_train": {"iterations": 1, "inversion_steps": 2, "train_steps": 1, "direction_name": "reliability"},
    "/diffusionclip_edit": {"image": EXAMPLE_IMAGE, "directions": "reliability: 1.0", "t0": 100},
    "/chatface": {"image": EXAMPLE_IMAGE, "steps": 2},
    # a mapper the /chatface call above does not use: its result stays the same before and after this one
    "/chatface_train": {"image": EXAMPLE_IMAGE, "instruction": "make the background gray", "iterations": 1,
                        "train_steps": 2}, "/face0": {"face_image": EXAMPLE_IMAGE, "steps": 2},
    "/shiftddpm": {"steps": 2, "n": 1}, "/sampler": {"steps": 2, "snapshots": 1},
    "/imagen_video": {"base_frames": 2, "steps": 2},
    "/dreamix": {"video_or_image": [EXAMPLE_VIDEO], "finetune_steps": 0, "strength": 0.1},
    "/videocomposer": {"reference_video": EXAMPLE_VIDEO, "frames": 2, "steps": 2},
    "/gen1": {"video": EXAMPLE_VIDEO, "frames": 2, "steps": 2},
}
LIST_INPUTS = {"conditions", "video_or_image"}  # gr.File(file_count="multiple"): a list of files
VIDEO_COMPONENTS = {"video", "control_video", "source_video", "reference_video"}  # gr.Video: {"video": file}
IMAGE_INPUTS = [("/null_text", "image"), ("/unicontrol", "condition_image"), ("/freedom", "reference_image"),
                ("/freedom", "mask"), ("/diffusionclip_train", "image"), ("/diffusionclip_edit", "image"),
                ("/chatface", "image"), ("/chatface_train", "image"), ("/face0", "face_image"), ("/t2i_adapter", "conditions"),
                ("/dreamix", "video_or_image"), ("/videocomposer", "style_image"), ("/gen1", "content_image")]
VIDEO_INPUTS = [("/fatezero", "video", {}), ("/tune_a_video_train", "video", {}),
                ("/t2v_zero", "control_video", {"mode": "controlnet"}),
                ("/t2v_zero", "source_video", {"mode": "pix2pix", "instruction": "make it blue"}),
                # a video the chosen mode does not use is still checked, never silently dropped
                ("/t2v_zero", "control_video", {}), ("/t2v_zero", "source_video", {}),
                ("/dreamix", "video_or_image", {"mode": "edit"}), ("/videocomposer", "reference_video", {}),
                ("/gen1", "video", {})]
EXTRA = {("/freedom", "reference_image"): {"energy": "style"}, ("/freedom", "mask"): {"energy": "mask"},
         ("/dreamix", "video_or_image"): {"mode": "animate"}}


def call(client, endpoint, **overrides):
    kwargs = dict(CHEAP.get(endpoint, {}))
    kwargs.update(overrides)
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith(str(config.ASSETS)):
            kwargs[key] = handle_file(value)
        elif isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith(str(config.ASSETS)):
            kwargs[key] = [handle_file(v) for v in value]
    return client.predict(api_name=endpoint, **kwargs)


def clear_error(client, endpoint, **overrides) -> str:
    """The request must fail with a specific message (not the generic one, no traceback)."""
    with pytest.raises(Exception) as caught:
        call(client, endpoint, **overrides)
    message = str(caught.value)
    assert message.strip() and not any(g in message for g in GENERICS), (endpoint, overrides, message)
    return message


def raw_call(app_url, client, endpoint, **overrides) -> str:
    """An API call over plain HTTP (gradio_client would upload a local path itself: an attacker does not)."""
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"][endpoint]["parameters"]
    data = [overrides.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]
    body = json.dumps({"data": data})  # NaN and ±Infinity as JavaScript writes them (httpx's json= refuses them)
    event = httpx.post(f"{app_url}gradio_api/call{endpoint}", content=body, headers={"content-type": "application/json"},
                       timeout=60).json()["event_id"]
    return httpx.get(f"{app_url}gradio_api/call{endpoint}/{event}", timeout=300).text


def wait_for_call(name: str, start: float, steps: int, timeout: float = 120) -> calls.Call:
    """The engine call `name` begun after `start`, once it has started `steps` steps (the app runs in-process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in list(calls.history) if c.name == name and c.started >= start]
        if found and found[-1].steps >= steps:
            return found[-1]
        time.sleep(0.01)
    raise AssertionError(f"{name} did not reach {steps} steps")


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # screenshots the browser tests leave
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium_page(profile: Path):
    """A page in Debian's headless Chromium at 1280×800 (a laptop), driven by Playwright; `page.errors` collects the
    page's JavaScript errors."""
    playwright = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).exists(), "install Debian's chromium package (see README)"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, viewport={"width": 1280, "height": 800},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        try:
            yield page
        finally:
            browser.close()
