"""No input or load breaks the app (issue 12): every endpoint through gradio_client with bad files,
bad text, bad numbers and path-traversal attempts gets a clear error (never the generic one, never a
traceback) and the server serves the next request; concurrent clients through the queue; auth."""
from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import threading
import time
from pathlib import Path

import gradio as gr
import httpx
import imageio_ffmpeg
import numpy as np
import psutil
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_calls import (CHEAP, EXAMPLE_IMAGE, EXAMPLE_VIDEO, EXTRA, GENERICS, IMAGE_INPUTS, LIST_INPUTS, VIDEO_COMPONENTS,
                       VIDEO_INPUTS, call, clear_error, raw_call)
from core import config
from core.video import write_video

@pytest.fixture()
def isolated_libraries(client, app_folders, tmp_path):
    """Tuned models and directions made by these tests go to a scratch folder."""
    tuned, directions = tmp_path / "tuned", tmp_path / "directions"
    tuned.mkdir()
    directions.mkdir()
    app_folders(tuned_video=tuned, directions=directions)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    (folder / "notes.txt").write_text("not an image")
    files["wrong type"] = folder / "notes.txt"
    (folder / "empty.png").write_bytes(b"")
    files["empty file"] = folder / "empty.png"
    good = open(EXAMPLE_IMAGE, "rb").read()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    files["truncated image"] = folder / "truncated.png"
    (folder / "text.png").write_bytes(b"GIF89a this is no picture at all")
    files["corrupt image"] = folder / "text.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(folder / "one.png")
    files["1×1 image"] = folder / "one.png"
    Image.new("1", (20_000, 20_000)).save(folder / "huge.png")  # a few KB on disk, 400 MP decoded
    files["20000×20000 image"] = folder / "huge.png"
    (folder / "empty.mp4").write_bytes(b"")
    files["empty video"] = folder / "empty.mp4"
    video = open(EXAMPLE_VIDEO, "rb").read()
    (folder / "truncated.mp4").write_bytes(video[: len(video) // 4])
    files["truncated video"] = folder / "truncated.mp4"
    (folder / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    files["corrupt video"] = folder / "random.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=8000:cl=mono", "-t", "1", "-c:a", "aac", str(folder / "no_frames.mp4")], check=True)
    files["0-frame video"] = folder / "no_frames.mp4"
    write_video(np.zeros((10_000, 16, 16, 3), np.uint8), folder / "long.mp4", fps=25)
    files["10,000-frame video"] = folder / "long.mp4"
    return files


def still_serving(client):
    image, _, _ = client.predict(prompt="a red circle on a white background", steps=1, snapshots=1, api_name="/sampler")
    assert image


@pytest.mark.parametrize("endpoint, name", IMAGE_INPUTS)
def test_bad_image_files_are_clear_errors(client, bad_files, isolated_libraries, endpoint, name):
    extra = EXTRA.get((endpoint, name), {})
    for label, path in bad_files.items():
        if "video" in label:
            continue
        value = [handle_file(str(path))] if name in LIST_INPUTS else handle_file(str(path))
        message = clear_error(client, endpoint, **{name: value}, **extra)
        print(f"{endpoint} {name} {label}: {message}")
    still_serving(client)


@pytest.mark.parametrize("endpoint, name, extra", VIDEO_INPUTS)
def test_bad_video_files_are_clear_errors(client, bad_files, isolated_libraries, endpoint, name, extra):
    for label, path in bad_files.items():
        if "image" in label and label != "corrupt image":
            continue
        value = [handle_file(str(path))] if name in LIST_INPUTS else handle_file(str(path))
        message = clear_error(client, endpoint, **{name: value}, **extra)
        print(f"{endpoint} {name} {label}: {message}")
    still_serving(client)


@pytest.mark.parametrize("endpoint, name, extra", [(e, n, {}) for e, n in IMAGE_INPUTS] + VIDEO_INPUTS)
def test_path_traversal_on_file_inputs_is_refused(app_url, client, isolated_libraries, endpoint, name, extra):
    """A file input naming a server path (absolute, relative, the app's own files) is refused before any
    handler reads it."""
    for path in ("/etc/passwd", "../../../../../../etc/passwd", str(config.ROOT / "app.py"), EXAMPLE_IMAGE):
        data = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.png"}
        value = [data] if name in LIST_INPUTS else {"video": data} if name in VIDEO_COMPONENTS else data
        cheap = {k: v for k, v in CHEAP.get(endpoint, {}).items() if str(config.ASSETS) not in str(v)}
        answer = raw_call(app_url, client, endpoint, **(cheap | extra | {name: value}))
        assert answer.startswith("event: error"), (endpoint, path, answer[:300])
        assert "root:" not in answer
    still_serving(client)


def test_raw_call_with_an_uploaded_file_works(app_url, client):
    """The control for the test above: the same plain-HTTP call with a file uploaded first is answered."""
    with open(EXAMPLE_IMAGE, "rb") as f:
        uploaded = httpx.post(f"{app_url}gradio_api/upload", files={"files": ("red.png", f, "image/png")}).json()[0]
    data = {"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": "red.png"}
    answer = raw_call(app_url, client, "/null_text", image=data, inversion="ddim", steps=2)
    assert "event: complete" in answer and "event: error" not in answer, answer[:300]  # after its progress events


# what API clients send: a Python client's None, JavaScript's NaN and ±Infinity, numbers far out of range
BAD_NUMBERS = (None, math.nan, math.inf, -math.inf, 1e9, -1e9)


def error_message(answer: str) -> str:
    """The message of a plain-HTTP call's error event ("event: error\ndata: {...}")."""
    data = json.loads(answer.split("data:", 1)[1].strip())
    return str(data.get("error") if isinstance(data, dict) else data)


def number_controls(client) -> dict:
    """{endpoint: [(parameter name, control's props)]} for every number input of every endpoint."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    components = {c["id"]: c for c in client.config["components"]}
    controls = {}
    for dependency in client.config["dependencies"]:
        endpoint = f"/{dependency.get('api_name')}"
        if endpoint not in api:
            continue
        parameters = api[endpoint]["parameters"]
        assert len(parameters) == len(dependency["inputs"]), endpoint
        controls[endpoint] = [(parameter["parameter_name"], components[i]["props"])
                              for parameter, i in zip(parameters, dependency["inputs"])
                              if components[i]["type"] in ("slider", "number")]
    return controls


def allowed(value, props) -> bool:
    """Is `value` a legal setting of the control (inside its range, whole where it takes whole numbers)?"""
    return (isinstance(value, (int, float)) and math.isfinite(value) and props["minimum"] <= value <= props["maximum"]
            and (props.get("precision") != 0 or value == int(value)))


def test_bad_numbers_on_every_numeric_parameter(app_url, client):
    """None, NaN, ±inf, ±1e9 in the numbers of every endpoint — two of them in each number, taken in turn so
    that each bad value reaches a third of all numbers (they share one check, tabs.common.check_number) — and 2.5
    in every whole-number one: each a clear error naming the parameter and its range (never the generic one,
    never Gradio's hidden-error text), before any work starts; the server serves on. A value that is a legal
    setting of its control (a seed of 1e9) is not sent: it would run the endpoint at its defaults."""
    refused, legal, parameters = 0, [], 0
    for endpoint, controls in number_controls(client).items():
        for name, props in controls:
            parameters += 1
            assert props["label"].split()[0] == name, (endpoint, name, props["label"])  # the errors name it so
            assert props["minimum"] is not None and props["maximum"] is not None, (endpoint, name)
            turn = [BAD_NUMBERS[(2 * parameters + k) % len(BAD_NUMBERS)] for k in range(2)]
            for value in turn + ([2.5] if props.get("precision") == 0 else []):
                if allowed(value, props):
                    legal.append((endpoint, name, value))
                    continue
                answer = raw_call(app_url, client, endpoint, **{name: value})
                assert answer.startswith("event: error"), (endpoint, name, value, answer[:200])
                message = error_message(answer)
                assert message.startswith(f"{name} must be a") and " from " in message, (endpoint, name, value, message)
                assert not any(g in message for g in GENERICS), (endpoint, name, value, message)
                refused += 1
    print(f"bad numbers: {refused} refused with a clear error over {parameters} number parameters; legal, not sent: {legal}")
    assert parameters > 80 and all(name == "seed" for _, name, _ in legal)
    still_serving(client)


@pytest.mark.parametrize("endpoint, name", [("/sampler", "prompt"), ("/p2p", "target_prompt"), ("/animatediff", "prompt"),
                                            ("/t2v_zero", "prompt"), ("/face0", "prompt"), ("/chatface", "instruction")])
def test_empty_and_very_long_prompts_are_clear_errors(client, endpoint, name):
    assert "empty" in clear_error(client, endpoint, **{name: "   "})
    assert "characters" in clear_error(client, endpoint, **{name: "a red circle " * 20_000})


def test_non_ascii_prompts_work(client):
    image, _, _ = client.predict(prompt="un cercle rouge — 一个红色的圆 🎈 on a white background", steps=2,
                                 snapshots=1, api_name="/sampler")
    assert image
    call(client, "/animatediff", prompt="ein roter Kreis, der sich nach rechts bewegt ✓")


@pytest.mark.parametrize("endpoint, overrides, message", [
    ("/animatediff", {"base_model": "nobody-here/no-such-model"}, "could not load"),
    ("/animatediff", {"motion_lora": "nobody-here/no-such-lora"}, "could not load the motion LoRA"),
    ("/animatediff", {"base_model": "../../etc"}, "neither an embedded model"),
    ("/t2v_zero", {"mode": "pix2pix", "source_video": EXAMPLE_VIDEO, "instruction": "make it blue"}, "could not load"),
])
def test_unknown_models_are_clear_errors(client, endpoint, overrides, message):
    assert message in clear_error(client, endpoint, **overrides)
    still_serving(client)


def test_a_non_safetensors_model_is_refused(tmp_path, tiny_pipe):
    from core.models import ModelLoadError, Models
    tiny_pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with pytest.raises(ModelLoadError, match="could not load"):
        Models(str(tmp_path / "pickled"), device="cpu", allow_local=True).pipeline()


LOAD_CLIENTS, LOAD_SECONDS, LOAD_WARM_UP_SECONDS = 8, 120, 30
LOAD_MIX = [("/sampler", {"prompt": "a red circle on a white background", "steps": 3, "snapshots": 1}),
            ("/p2p", {"source_prompt": "a red circle on a white background",
                      "target_prompt": "a blue circle on a white background", "steps": 3}),
            ("/face0", {"face_image": handle_file(EXAMPLE_IMAGE), "steps": 3}),
            ("/shiftddpm", {"steps": 3, "n": 1})]


def rss_mib() -> float:
    gc.collect()
    try:  # give freed heap pages back to the system, so RSS shows what is really held
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return psutil.Process().memory_info().rss / 2**20


def test_concurrent_clients_through_the_queue(app_url, client):
    """8 clients on four tabs for 2 minutes: every request answered or cleanly refused (queue full), none
    lost; the server's memory after the last 90 s of load within 10% of what it held after the first 30 s."""
    lock = threading.Lock()
    clients = [Client(app_url, verbose=False) for _ in range(LOAD_CLIENTS)]  # the same visitors in both phases

    def load(seconds: float) -> list[tuple[str, str]]:
        outcomes: list[tuple[str, str]] = []
        deadline = time.time() + seconds

        def worker(index: int) -> None:
            own = clients[index]
            endpoint, settings = LOAD_MIX[index % len(LOAD_MIX)]  # the clients spread over four tabs
            n = 0
            while time.time() < deadline and n < 200:  # bounded in time and count
                n += 1
                try:
                    output = own.predict(api_name=endpoint, seed=index * 1000 + n, **settings)
                    result = "answered" if output and output[0] else "empty"
                except Exception as error:  # noqa: BLE001
                    result = "refused" if "queue" in str(error).lower() else f"failed: {error}"
                with lock:
                    outcomes.append((endpoint, result))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(LOAD_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)
        assert not any(t.is_alive() for t in threads)
        return outcomes

    # the first 30 s allocate what any use of these tabs allocates once (client threads, connection pools,
    # the queue's structures, each tab's models and workspaces); the rest of the load must not add to it
    outcomes = load(LOAD_WARM_UP_SECONDS)
    baseline = rss_mib()
    outcomes += load(LOAD_SECONDS - LOAD_WARM_UP_SECONDS)
    after = rss_mib()
    counts = {k: [r for _, r in outcomes].count(k) for k in {r for _, r in outcomes}}
    answered = {e: [r for f, r in outcomes if f == e].count("answered") for e, _ in LOAD_MIX}
    print(f"load: {counts}, answered per tab {answered}; RSS after {LOAD_WARM_UP_SECONDS} s {baseline:.0f} MiB, "
          f"at the end {after:.0f} MiB ({after / baseline:.3f}×)")
    assert all(n >= 2 for n in answered.values()), answered
    assert set(counts) <= {"answered", "refused"}, counts
    assert after <= baseline * 1.10
    still_serving(client)


def test_auth_protects_page_and_api():
    import socket

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = app.parse_args(["--port", str(port), "--auth", "alice:secret"])
    assert server.auth == ("alice", "secret") and server.share is False
    assert app.parse_args(["--share"]).share is True
    demo = app.launch(server, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):
            Client(url, verbose=False).predict(prompt="a red circle", steps=1, api_name="/sampler")
        with pytest.raises(Exception):
            Client(url, auth=("alice", "wrong"), verbose=False)
        image, _, _ = Client(url, auth=("alice", "secret"), verbose=False).predict(
            prompt="a red circle on a white background", steps=1, snapshots=1, api_name="/sampler")
        assert image
    finally:
        demo.close()
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "no-colon"])


def test_only_app_reads_the_environment(monkeypatch, tmp_path):
    """ARCHITECTURE: app.py reads the environment and hands the tabs what they need (config.Folders)."""
    import app

    readers = [str(path.relative_to(config.ROOT)) for folder in ("core", "tabs") for path in (config.ROOT / folder).rglob("*.py")
               if "os.environ" in path.read_text() or "getenv" in path.read_text()]
    assert readers == []
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("STUDIO_DIRECTIONS", str(tmp_path / "directions"))
    monkeypatch.setenv("STUDIO_TUNED_VIDEO", str(tmp_path / "tuned"))
    assert app.parse_args([]).folders == config.Folders(outputs=tmp_path / "gradio" / "studio-outputs",
                                                        directions=tmp_path / "directions", tuned_video=tmp_path / "tuned")


def test_result_pictures_are_served_from_fresh_files():
    """Gradio 6.31 writes an array output into its content-addressed cache in place, so two requests
    with the same picture rewrite one file while it is served (a client once got 0 of 27,958 bytes in
    the load test above). Every result picture of every tab is written to a fresh file first, which
    Gradio copies atomically."""
    import app
    from core.models import Models
    from tabs.common import CheckedImage, FileGallery, FileImage

    demo = app.build_demo(Models("toy-sd", device="cpu"))
    blocks = list(demo.blocks.values())
    images = [b for b in blocks if isinstance(b, gr.Image)]
    galleries = [b for b in blocks if isinstance(b, gr.Gallery)]
    assert len(images) > 20 and len(galleries) > 5
    assert all(isinstance(b, (CheckedImage, FileImage)) for b in images), \
        [b.label for b in images if not isinstance(b, (CheckedImage, FileImage))]
    assert all(isinstance(b, FileGallery) for b in galleries), [b.label for b in galleries if not isinstance(b, FileGallery)]

    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image, gallery = next(b for b in images if isinstance(b, FileImage)), galleries[0]
    first, second = image.postprocess(picture).path, image.postprocess(picture).path
    assert first != second  # the same picture twice: two files, neither rewritten while served
    assert np.array_equal(np.asarray(Image.open(first)), picture)
    served = gallery.postprocess([(picture, "x̂0"), picture]).root
    assert served[0].caption == "x̂0" and len({item.image.path for item in served}) == 2
    assert all(np.array_equal(np.asarray(Image.open(item.image.path)), picture) for item in served)


def test_staged_outputs_are_pruned(tmp_path, monkeypatch, app_folders):
    """Result files staged for Gradio's cache do not pile up: old ones go when a new one is staged."""
    from tabs import common

    folder = tmp_path / "studio-outputs"
    app_folders(outputs=folder)
    monkeypatch.setattr(common, "_last_prune", [0.0])
    folder.mkdir()
    old, recent = folder / "old.png", folder / "recent.png"
    for path in (old, recent):
        path.write_bytes(b"x")
    stale = time.time() - config.OUTPUT_STAGING_MAX_AGE_S - 10
    os.utime(old, (stale, stale))
    fresh = common.output_path(".png")
    assert not old.exists() and recent.exists() and Path(fresh).parent == folder
    os.utime(recent, (stale, stale))
    common.output_path(".png")  # within the prune interval: no sweep yet
    assert recent.exists()
