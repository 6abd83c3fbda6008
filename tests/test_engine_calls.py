"""Engine calls (issue 39): concurrent requests on different tabs each get their solo result, a cancel stops
the engine within one step and leaves it as it was, one queue serves every tab."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from app_calls import CHEAP, EXAMPLE_IMAGE, call, wait_for_call
from core import calls
from core.video import read_video

# the concurrent mix: an edit with controllers on the cached UNet (P2P, local blend), a plain sampler, Face0's
# three-way guidance and a video tab with cross-frame attention
MIX = {
    "/p2p": {"source_prompt": "a red circle on a white background", "target_prompt": "a blue circle on a white background",
             "blend_words": "circle", "steps": 4, "seed": 3},
    "/sampler": {"prompt": "a green square on a black background", "steps": 4, "snapshots": 2, "seed": 5},
    "/face0": {"face_image": handle_file(EXAMPLE_IMAGE), "steps": 4, "seed": 7},
    "/t2v_zero": {"prompt": "a yellow triangle on a gray background", "frames": 3, "steps": 4, "t0": 1, "t1": 2,
                  "seed": 9},
}


def pictures(output):
    """Every picture in an endpoint's output as arrays (images, gallery items, video frames); text and
    numbers as they are."""
    if isinstance(output, (list, tuple)):
        return [pictures(item) for item in output]
    if isinstance(output, dict):
        if output.get("video"):
            return read_video(output["video"])[0]
        if output.get("image"):
            return pictures(output["image"])
        return {k: v for k, v in output.items() if k != "caption"}
    if isinstance(output, str) and output.lower().endswith((".png", ".webp", ".jpg", ".jpeg")):
        return np.asarray(Image.open(output).convert("RGB"))
    if isinstance(output, str) and output.lower().endswith((".mp4", ".gif")):
        return read_video(output)[0]
    return output


def largest_difference(a, b) -> float:
    """max |Δ| over every picture of two outputs (inf when their shapes differ). Text and numbers are not
    compared: some report timings or a cache hit (null-text's "inversion seconds")."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return float("inf")
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(initial=0))
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf")
        return max([largest_difference(x, y) for x, y in zip(a, b)], default=0.0)
    return 0.0


def engine_calls_since(start: float) -> list[calls.Call]:
    return [c for c in list(calls.history) if c.started >= start]


def test_concurrent_clients_on_four_tabs_get_their_solo_results(app_url):
    """Separate clients call P2P, the sampler, Face0 and Text2Video-Zero at the same moment, three times:
    every call answers with exactly its solo output, and the engine ran them one at a time."""
    solo = {endpoint: pictures(Client(app_url, verbose=False).predict(api_name=endpoint, **kwargs))
            for endpoint, kwargs in MIX.items()}
    for burst in range(3):
        clients = {endpoint: Client(app_url, verbose=False) for endpoint in MIX}
        start, barrier, results = time.monotonic(), threading.Barrier(len(MIX)), {}

        def run(endpoint):
            barrier.wait()
            try:
                results[endpoint] = pictures(clients[endpoint].predict(api_name=endpoint, **MIX[endpoint]))
            except Exception as error:  # noqa: BLE001 - reported below
                results[endpoint] = error

        threads = [threading.Thread(target=run, args=(endpoint,)) for endpoint in MIX]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        for endpoint in MIX:
            assert not isinstance(results.get(endpoint), Exception) and endpoint in results, (burst, endpoint, results.get(endpoint))
            assert largest_difference(results[endpoint], solo[endpoint]) == 0, (burst, endpoint)
        ran = sorted(engine_calls_since(start), key=lambda c: c.started)
        assert len(ran) == len(MIX)
        # one queue for the whole app: each engine call began after the one before it had ended
        assert all(later.started >= earlier.ended for earlier, later in zip(ran, ran[1:])), \
            [(c.name, c.started, c.ended) for c in ran]


# cheap settings of every endpoint, for "the next call on every tab gives its normal result"
def every_endpoint(client) -> dict:
    return {endpoint: pictures(call(client, endpoint)) for endpoint in CHEAP}


@pytest.fixture(scope="module")
def normal_results(app_url, tmp_path_factory):
    """Every endpoint's output before any cancel, with tuned models and directions in a scratch folder."""
    from dataclasses import replace

    from tabs import common

    saved = common._folders[0]
    scratch = tmp_path_factory.mktemp("libraries")
    common.use_folders(replace(saved, tuned_video=scratch / "tuned", directions=scratch / "directions"))
    try:
        yield every_endpoint(Client(app_url, verbose=False))
    finally:
        common.use_folders(saved)


@pytest.mark.parametrize("endpoint, name, long_call", [
    ("/p2p", "tabs.p2p.generate", {"source_prompt": "a red circle on a white background",
                                   "target_prompt": "a blue circle on a white background", "steps": 200}),
    ("/sampler", "tabs.sampler.sample", {"prompt": "a red circle on a white background", "steps": 200, "snapshots": 1}),
])
def test_a_cancel_stops_within_one_step_and_leaves_the_engine_as_it_was(app_url, normal_results, endpoint, name,
                                                                        long_call):
    client = Client(app_url, verbose=False)
    start = time.monotonic()
    job = client.submit(api_name=endpoint, **long_call)
    running = wait_for_call(name, start, steps=2)
    job.cancel()
    assert running.finished.wait(60), "the cancelled call did not end"
    print(f"{endpoint}: cancel at step {running.steps_at_cancel}, the engine stopped after {running.steps} of 200")
    assert running.steps_at_cancel is not None and running.steps <= running.steps_at_cancel + 1
    assert running.steps < 200
    after = every_endpoint(client)
    for endpoint_name in CHEAP:
        assert largest_difference(after[endpoint_name], normal_results[endpoint_name]) == 0, endpoint_name


def test_calls_run_concurrently_in_process_each_get_their_solo_result():
    """Without the app's queue (as ZeroGPU runs handlers, in threads of one process) two edits with different
    attention controllers and frame modes and a plain sampler share the cached UNet at the same time: each
    gets exactly its solo result, because the attention state belongs to the call."""
    from core.methods import p2p, sampler, t2v_zero
    from core.models import Models

    models = Models("toy-sd", device="cpu")
    pipe = models.pipeline()
    work = {
        "p2p": lambda: p2p.edit(pipe, p2p.P2PParams("a red circle on a white background",
                                                    "a blue circle on a white background", blend_words="circle",
                                                    steps=6, seed=3)).edited_image,
        "sampler": lambda: sampler.run(pipe, sampler.SamplerParams("a green square on a black background", steps=6,
                                                                  snapshots=1, seed=5)).image,
        "t2v_zero": lambda: t2v_zero.generate(pipe, t2v_zero.T2VZeroParams("a yellow triangle on a gray background",
                                                                          frames=3, steps=6, t0=1, t1=2, seed=9)),
    }

    def as_call(name, fn, out, barrier=None):
        call = calls.Call(name)
        if barrier is not None:
            barrier.wait()
        with calls.running(call):
            out[name] = fn()
        return call

    solo = {}
    for name, fn in work.items():
        as_call(name, fn, solo)
    # several rounds: the races this guards against (a shared attention state; a shared tokenizer's padding
    # settings, core.tokenizer.TOKENIZER_LOCK) showed in about 1 round of 4 before they were fixed
    for round_ in range(4):
        together, barrier, ran = {}, threading.Barrier(len(work)), []
        threads = [threading.Thread(target=lambda n=n, f=f: ran.append(as_call(n, f, together, barrier)))
                   for n, f in work.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        for name in work:
            assert np.array_equal(together[name], solo[name]), (round_, name)
        # they did overlap: every call started before every other one ended
        assert all(a.started < b.ended for a in ran for b in ran), [(c.name, c.started, c.ended) for c in ran]


def test_an_exclusive_call_waits_for_sharing_ones_and_they_wait_for_it():
    lock, events = calls.SharedOrExclusive(), []

    def shared(tag):
        with lock.shared():
            events.append(f"{tag}+")
            time.sleep(0.2)
            events.append(f"{tag}-")

    def exclusive():
        time.sleep(0.05)
        with lock.exclusive():
            with lock.shared():  # an exclusive holder may run shared engine code
                events.append("X+")
                time.sleep(0.1)
                events.append("X-")

    threads = [threading.Thread(target=shared, args=("a",)), threading.Thread(target=shared, args=("b",)),
               threading.Thread(target=exclusive)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert events.index("X+") > max(events.index("a-"), events.index("b-"))  # never beside a sharing call
    assert events.index("X-") == events.index("X+") + 1


def test_a_cancelled_call_stops_at_the_next_step_in_process(tiny_pipe):
    """The loop checks the call's signal before each step; its `finally` blocks leave nothing active."""
    from core.attention import active_state
    from core.methods import sampler

    call = calls.Call("test")
    stop_after = 3

    def on_step(done, total):
        if done == stop_after:
            call.cancel()

    with pytest.raises(calls.Cancelled), calls.running(call):
        sampler.run(tiny_pipe, sampler.SamplerParams("a red circle", steps=20, snapshots=1), on_step=on_step)
    assert call.steps == stop_after and call.steps_at_cancel == stop_after
    assert active_state() is None and calls.current() is None


def test_nothing_non_finite_is_returned_or_saved(tiny_pipe, tmp_path):
    """A diverged run (NaN or ±inf anywhere) is an error with a reason, never a black picture, and no weights
    file is written: DiffusionCLIP's directions, tuned videos, LoRAs."""
    from core.methods.diffusionclip import DirectionLibrary
    from core.methods.tune_a_video import TunedLibrary, TunedVideoModel
    from core.sampling import decode, pixels_to_uint8
    from core.training.lora import add_lora, save_lora

    latents = torch.zeros(1, 4, 16, 16)
    assert decode(tiny_pipe, latents).dtype == np.uint8  # the control: finite latents decode
    for bad in (float("nan"), float("inf"), -float("inf")):
        latents[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="non-finite"):
            decode(tiny_pipe, latents)
        with pytest.raises(ValueError, match="non-finite"):
            pixels_to_uint8(latents[:, :3])
    weights = {"down.lora_A.weight": torch.tensor([[1.0, float("nan")]])}
    library = DirectionLibrary(tmp_path / "directions")
    with pytest.raises(ValueError, match="non-finite"):
        library.save("diverged", weights, {})
    assert library.names() == []
    tuned = TunedLibrary(tmp_path / "tuned")
    with pytest.raises(ValueError, match="non-finite"):
        tuned.save("diverged", TunedVideoModel(weights, np.zeros((2, 8, 8, 3), np.uint8)))
    assert not (tmp_path / "tuned" / "diverged").exists()
    unet = copy.deepcopy(tiny_pipe.unet)
    add_lora(unet, "diverged", rank=2, targets=["to_k", "to_v"])
    next(p for n, p in unet.named_parameters() if "lora_B" in n).data.fill_(float("inf"))
    with pytest.raises(ValueError, match="non-finite"):
        save_lora(unet, "diverged", tmp_path / "lora")
    assert not (tmp_path / "lora").exists()


def test_the_model_cache_evicts_the_least_recently_used_companions_beyond_its_budget():
    """Companions (CLIP, a Face0 mapper, a ShiftDDPM …) stay within the cache's budget of weight bytes, least
    recently used out first; the base pipeline always stays; the one just asked for is always kept."""
    from core.methods import shiftddpm
    from core.models import Models, weight_bytes

    models = Models("toy-sd", device="cpu")
    pipe = models.pipeline()
    clip = models.clip("toy-clip")
    shift = shiftddpm.load_model(models)
    sizes = {"clip": weight_bytes(clip), "shift": weight_bytes(shift)}
    assert all(size > 0 for size in sizes.values()) and models.companion_bytes() == sum(sizes.values())
    models.companion_budget = max(sizes.values())  # room for one of the two
    assert models.clip("toy-clip") is clip  # asked for again: the most recently used, so the other goes
    assert list(models._aux) == [("CLIP", "toy-clip")] and models.companion_bytes() == sizes["clip"]
    assert shiftddpm.load_model(models) is not shift  # it was evicted: loaded anew, and now CLIP goes
    assert list(models._aux) == [("ShiftDDPM", "toy-shiftddpm")]
    models.companion_budget = 1  # smaller than anything: the one just asked for still stays
    assert models.clip("toy-clip") is not clip and list(models._aux) == [("CLIP", "toy-clip")]
    assert models.pipeline() is pipe  # the base pipeline is never evicted


def test_the_cached_pipeline_and_companions_are_frozen():
    """Methods train adapters or copies, never the cached weights: a backward through the UNet or VAE (FreeDoM's
    energy, DiffusionCLIP's loss) must not build weight gradients (a second UNet of memory; in float16 on a CPU a
    100× slower convolution backward)."""
    from core.models import Models

    models = Models("toy-sd", device="cpu")
    pipe = models.pipeline()
    clip_model, _ = models.clip()
    modules = [pipe.unet, pipe.vae, pipe.text_encoder, clip_model, models.motion_unet()]
    assert not any(p.requires_grad for module in modules for p in module.parameters())
