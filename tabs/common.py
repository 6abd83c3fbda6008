"""What every tab shares: engine calls (one GPU queue, a worker per call, cancel, progress), turning engine
errors into gr.Error, checked inputs, small widgets."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import functools
import inspect
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
import torch
from gradio.processing_utils import _convert  # Gradio's own array → uint8 (private; gradio is pinned)
from PIL import Image

from core import calls, config
from core.models import ModelLoadError
from core.validate import check_image_file
from core.video import read_video, write_video

log = logging.getLogger("studio")

# Every event that runs the engine is in this concurrency group: Gradio's queue runs at most
# `queue(default_concurrency_limit=)` of them at once over all tabs (app.py: one per device); UI-only
# events stay outside it.
ENGINE_QUEUE = "engine"
UI_ONLY = dict(api_visibility="private", concurrency_limit=None)  # page-only events: outside the engine's queue

try:  # HuggingFace ZeroGPU: GPU work must run inside spaces.GPU; elsewhere the package is absent, and on a host
    # that is not a ZeroGPU Space spaces.GPU returns the function unchanged
    import spaces  # type: ignore
except ImportError:  # pragma: no cover - depends on the host
    spaces = None

Z = config.ZeroGPUDefaults


@contextlib.contextmanager
def user_errors(name: str = "handler"):
    """Engine errors → gr.Error: user mistakes (ValueError, ModelLoadError) with their reason;
    out-of-memory with a clear message and freed memory; anything else generic (logged here, no
    traceback to the page). A cancel passes through."""
    try:
        yield
    except (gr.Error, calls.Cancelled):
        raise
    except (ValueError, ModelLoadError) as error:
        raise gr.Error(str(error)) from None
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise gr.Error("the GPU ran out of memory: use fewer steps, frames or a smaller size") from None
    except Exception:
        log.exception("%s failed", name)
        raise gr.Error("something went wrong on the server while running this; the details are in its log") from None


def unet_seconds(evaluations: float, training: bool = False) -> float:
    """GPU seconds for `evaluations` guided UNet steps of one 512² picture or frame (a training step counts as
    config.ZeroGPUDefaults.train_factor of them): what a handler's `gpu_seconds` estimate adds up."""
    return float(evaluations) * Z.unit_step_s * (Z.train_factor if training else 1.0)


@dataclass(frozen=True)
class EngineTask:
    """What one handler runs on the GPU: its function, whether it streams, its GPU-seconds estimate, whether it
    needs the engine to itself."""
    fn: Callable
    streams: bool
    gpu_seconds: Callable | None
    exclusive: bool = False


# handler key → its task: module-level, so a ZeroGPU worker (a fork of this process) finds it by its key and only the
# call's plain arguments cross to it
ENGINE_TASKS: dict[str, EngineTask] = {}
_LATEST: dict[str, str] = {}  # handler name → the key of the last page's handler of that name
# where engine calls run: here (None), or on a pool of engine workers (serving.RemoteEngine, app.py --workers)
_remote_engine = [None]


def latest_task(name: str) -> str:
    """The key of the last built page's handler `name` (an engine worker builds one page)."""
    return _LATEST[name]


def bound_arguments(fn: Callable, args, kwargs) -> dict:
    """A call of `fn` as {parameter: value}, its defaults filled in."""
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def call_arguments(name: str, args, kwargs) -> dict:
    """A call of the handler `name` (the last page's) as {parameter: value}, its defaults filled in."""
    return bound_arguments(ENGINE_TASKS[latest_task(name)].fn, args, kwargs)


def use_remote_engine(engine) -> None:
    """Send every engine call to `engine` (serving.RemoteEngine) instead of running it in this process."""
    _remote_engine[0] = engine


def gpu_seconds(key: str, args, kwargs) -> int:
    """spaces.GPU's duration for one call: the handler's estimate from the call's own arguments (steps, frames …)
    plus the overhead, with a margin, at most the ceiling. A call whose estimate is over the ceiling is refused
    with the hardware it needs (raised before ZeroGPU schedules it)."""
    task = ENGINE_TASKS[key]
    estimate = Z.overhead_s
    if task.gpu_seconds is not None:
        arguments = bound_arguments(task.fn, args, kwargs)
        estimate += task.gpu_seconds(**{name: value for name, value in arguments.items() if name != "progress"})
    if estimate > Z.ceiling_s:
        raise gr.Error(f"this run needs about {estimate:.0f} s of GPU time and a ZeroGPU call may take at most "
                       f"{Z.ceiling_s} s: use fewer steps or frames, or run the app on a dedicated GPU (an A10G or "
                       "larger; docs/SERVING.md)")
    return int(math.ceil(min(estimate * Z.margin, Z.ceiling_s)))


def engine_task(key: str, args, kwargs):
    """One call's engine work as ("update" | "result", value) pairs: the handler's function with its errors made
    gr.Error. On a ZeroGPU Space it runs in the GPU worker (spaces.GPU with `gpu_seconds`); its results are arrays
    and file paths, never CUDA tensors."""
    task = ENGINE_TASKS[key]
    with user_errors(task.fn.__name__):
        if task.streams:
            for update in task.fn(*args, **kwargs):
                yield "update", update
        else:
            yield "result", task.fn(*args, **kwargs)


gpu_task = spaces.GPU(duration=gpu_seconds)(engine_task) if spaces is not None else engine_task


def handler(fn: Callable | None = None, *, exclusive: bool = False, gpu_seconds: Callable | None = None) -> Callable:
    """A tab's handler as an engine call. `fn` (a function, or a generator of intermediate outputs) runs
    in a worker thread as one `core.calls.Call`; the handler Gradio sees is an async generator that
    relays its outputs. When Gradio cancels the event (the Stop button, a client's cancel) the call's
    cancel signal is set at once, the engine stops before its next step, and the handler returns only
    after the worker has left the engine as it found it. `exclusive`: the method changes shared
    weights (LoRA adapters, tuned layers, gradient flags), so no other call may run beside it.
    `gpu_seconds(**arguments)`: the GPU seconds the call's work needs (`unet_seconds`), which sets its ZeroGPU
    duration; without it a call asks for the overhead alone."""
    if fn is None:
        return functools.partial(handler, exclusive=exclusive, gpu_seconds=gpu_seconds)
    name = f"{fn.__module__}.{fn.__name__}"
    key = f"{name}@{id(fn):x}"  # this handler of this page (a process may build more than one)
    ENGINE_TASKS[key] = task = EngineTask(fn, inspect.isgeneratorfunction(fn), gpu_seconds, exclusive)
    _LATEST[name] = key

    def work(call: calls.Call, post: Callable, args, kwargs) -> None:
        remote = _remote_engine[0]
        try:
            # on a pool of engine workers the engine is theirs: this process holds no engine lock
            with calls.running(call, exclusive and remote is None), user_errors(fn.__name__):
                outputs = remote.stream(name, args, kwargs, call) if remote is not None else gpu_task(key, args, kwargs)
                for kind, value in outputs:
                    post(kind, value)
                if task.streams:
                    post("done")
        except calls.Cancelled:
            post("done")
        except BaseException as error:  # noqa: BLE001 - handed to the event loop, raised there
            post("error", error)

    @functools.wraps(fn)
    async def run(*args, **kwargs):
        call, loop, updates = calls.Call(name), asyncio.get_running_loop(), asyncio.Queue()

        def post(kind: str, value=None) -> None:
            loop.call_soon_threadsafe(updates.put_nowait, (kind, value))

        # the worker sees this request's context (gr.Progress, gr.Request) as the handler would
        worker = threading.Thread(target=contextvars.copy_context().run, args=(work, call, post, args, kwargs),
                                  name=name, daemon=True)
        ended = False
        worker.start()
        try:
            while True:
                kind, value = await updates.get()
                if kind == "error":
                    ended = True
                    raise value
                if kind != "done":
                    yield value
                if kind != "update":
                    ended = True
                    return
        finally:
            if not ended:  # cancelled (or the client went away): stop the engine before its next step
                call.cancel()
            await asyncio.shield(asyncio.to_thread(worker.join))

    return run


def engine_event(button: gr.Button, stop: gr.Button | None, fn: Callable, inputs, outputs, api_name: str):
    """`button` runs `fn` (a `handler`) as an API endpoint in the engine's queue; `stop` cancels it."""
    event = button.click(fn, inputs, outputs, api_name=api_name, concurrency_id=ENGINE_QUEUE)
    if stop is not None:
        stop.click(None, None, None, cancels=[event], api_visibility="private")
    return event


def run_buttons(label: str, elem_id: str | None = None) -> tuple[gr.Button, gr.Button]:
    """A tab's Run button and the Stop button beside it (which cancels the run)."""
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=elem_id, scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{elem_id}-stop" if elem_id else None, scale=1)
    return run, stop


def step_progress(progress: gr.Progress, label: str):
    """A callback for core.sampling.denoise that moves a Gradio progress bar."""
    def on_step(done: int, total: int) -> None:
        progress(done / total, desc=f"{label}: step {done}/{total}")
    return on_step


def header(title: str, summary: str, note: str | None = None) -> None:
    text = f"### {title}\n{summary}"
    if note:
        text += f"\n\n*{note}*"
    gr.Markdown(text)


def examples(recommendation, paper: list[dict], fn: Callable, inputs: list, outputs, **kwargs) -> gr.Examples:
    """The tab's examples as dicts of its endpoint's parameters: the base model's own (its studio.json,
    core.recommended) or, when it recommends none, the paper's real-world ones; a parameter an example leaves
    out takes the widget's starting value."""
    from core.recommended import example_file

    chosen = recommendation.examples or paper
    names = list(inspect.signature(fn).parameters)[:len(inputs)]
    unknown = {key for example in chosen for key in example} - set(names)
    if unknown:
        raise ValueError(f"examples name parameters the endpoint does not have: {', '.join(sorted(unknown))}")
    rows = [[example_file(example.get(name, component.value)) for name, component in zip(names, inputs)]
            for example in chosen]
    label = (f"Examples recommended for {recommendation.model}" if recommendation.examples else
             "Examples (the paper's prompts)")
    shown = gr.Examples(rows, inputs, outputs, fn=fn, cache_examples=False, label=label, **kwargs)
    key = fn.__module__.rsplit(".", 1)[-1]
    FIRST_EXAMPLES[key] = FirstExample(fn, names, rows[0])
    example_result(key, recommendation.base_model)
    return shown


@dataclass(frozen=True)
class FirstExample:
    """A tab's first example: its handler and the values of its parameters (scripts/render_examples.py)."""
    fn: Callable
    names: list
    values: list


# tab key → its first example, filled as the page is built (the first `examples` call of a tab)
FIRST_EXAMPLES: dict[str, FirstExample] = {}
EXAMPLE_RESULTS = config.EXAMPLES_DIR / "results"
EXAMPLE_MANIFEST = EXAMPLE_RESULTS / "manifest.json"


def example_result(key: str, base_model: str) -> None:
    """What the tab's first example makes, pre-rendered (scripts/render_examples.py) on the base model the app runs
    on: shown before anyone presses Run."""
    try:
        entry = json.loads(EXAMPLE_MANIFEST.read_text()).get(key)
    except (OSError, ValueError):
        return
    if not entry or entry["base_model"] != base_model or not (EXAMPLE_RESULTS / entry["file"]).is_file():
        return
    path, label = str(EXAMPLE_RESULTS / entry["file"]), f"what the first example makes (made beforehand on {base_model})"
    if path.endswith(".mp4"):
        gr.Video(path, label=label, interactive=False, autoplay=True, loop=True, height=288,
                 elem_id=f"example-result-{key}")
    else:
        image_output(label, send=False, value=path, interactive=False, elem_id=f"example-result-{key}")


def recommended_note(recommendation) -> None:
    """A line under a tab's header when its starting values come from the base model's studio.json."""
    if recommendation.values:
        listed = ", ".join(f"{k} = {v}" for k, v in recommendation.values.items())
        gr.Markdown(f"*Starting values recommended for this model ({recommendation.model}): {listed}; the papers' "
                    "defaults otherwise.*", elem_classes="studio-recommended")


def clip_bundle(models):
    """(CLIP model, its tokenizer, its pixel inputs) of the app's CLIP (losses, energies)."""
    from core.guidance import clip_inputs
    model, tokenizer = models.clip()
    return model, tokenizer, clip_inputs(model)


def seed_input(value: int = 0) -> CheckedNumber:
    """The seed box every sampling tab has (0 … MAX_SEED, whole numbers)."""
    return CheckedNumber(value, precision=0, minimum=0, maximum=config.MAX_SEED, label="seed")


def sampling_controls(defaults, elem_prefix: str | None = None):
    """The row of knobs every sampler-driven tab has: steps, seed, guidance_scale (defaults from config)."""
    with gr.Row():
        steps = CheckedSlider(1, config.MAX_STEPS, defaults.steps, step=1, precision=0, label="steps",
                              elem_id=f"{elem_prefix}-steps" if elem_prefix else None)
        seed = seed_input(defaults.seed)
        guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, defaults.guidance_scale, step=0.5, label="guidance_scale")
    return steps, seed, guidance_scale


_last_prune = [0.0]  # when output_path last swept the staging folder (time.time())
# where the app writes: app.py sets it (use_folders) as it builds the page; one app per process, as the
# environment it comes from was (a second build_demo in the same process moves both apps' files)
_folders = [config.Folders()]


def use_folders(folders: config.Folders) -> None:
    """Set where results are staged and where the libraries live (app.py, from the environment)."""
    _folders[0] = folders


def folders() -> config.Folders:
    return _folders[0]


def output_path(suffix: str) -> str:
    """A fresh file in the app's staging folder (config.Folders.outputs), never a request's path."""
    folder = folders().outputs
    folder.mkdir(parents=True, exist_ok=True)
    prune_staged_outputs(folder)
    return str(folder / f"{uuid.uuid4().hex}{suffix}")


def prune_staged_outputs(folder: Path) -> None:
    """Delete staged results older than config.OUTPUT_STAGING_MAX_AGE_S. Gradio copies each one into its
    own cache in the request that made it, so a staged file is never needed later; without this a
    long-running public demo's folder would only grow (one file per result picture and video)."""
    now = time.time()
    if now - _last_prune[0] < config.OUTPUT_PRUNE_INTERVAL_S:
        return
    _last_prune[0] = now
    for path in folder.iterdir():
        with contextlib.suppress(OSError):  # another worker may have removed it already
            if now - path.stat().st_mtime > config.OUTPUT_STAGING_MAX_AGE_S:
                path.unlink()


def save_video(frames, fps: float) -> str:
    return str(write_video(frames, output_path(".mp4"), fps=fps))


def read_video_input(path, name: str = "video"):
    if not path:
        raise ValueError(f"no {name} given: upload one")
    frames, _ = read_video(path)
    return frames


def limits_note() -> str:
    return (f"≤ {config.MAX_IMAGE_PIXELS / 1e6:.1f} MP, ≤ {config.MAX_UPLOAD_BYTES // 2**20} MiB")


class CheckedImage(gr.Image):
    """An image upload (a file path) checked before Gradio decodes it: a file that is no image, is
    empty or is too large gets a clear error (Gradio's own decoding would fail with a generic one).
    Made by `image_upload`: its own __init__ would hide gr.Image's parameters from the page's config
    (Gradio reads them from the signature; measured: `sources` undefined, a JS error in Chromium)."""
    is_template = True  # drawn by Gradio's Image component in the page
    input_name = "image"

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            with user_errors():
                check_image_file(payload.path, self.input_name)
        with user_errors():
            return super().preprocess(payload)


def check_number(value, name: str, minimum, maximum, integer: bool):
    """A number from the page or an API client, checked once: present, finite, a whole number where the
    control takes one, inside the control's range; anything else is a gr.Error naming it and its range."""
    kind = "a whole number" if integer else "a number"
    wanted = f"{name} must be {kind} from {minimum:g} to {maximum:g}"
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise gr.Error(f"{wanted}; got {value!r}")
    if not math.isfinite(value):
        raise gr.Error(f"{wanted}; got {value}")
    if integer and value != int(value):
        raise gr.Error(f"{wanted}; got {value:g}")
    if not minimum <= value <= maximum:
        raise gr.Error(f"{wanted}; got {value:g}")
    return int(value) if integer else float(value)


def checked_number_input(self, payload):
    """`preprocess` of CheckedNumber and CheckedSlider: the value checked by `check_number` before the handler
    sees it (Gradio's own conversion fails on NaN and None with a generic error, and rounds 2.5 silently).
    The control's name is its label's first word (the API parameter's name); precision=0 makes it whole.
    Inputs need a minimum and a maximum."""
    return check_number(payload, self.label.split()[0], self.minimum, self.maximum, self.precision == 0)


# a template's first base names the page's component (Gradio's get_block_name), so no mixin: the one
# function is each class's preprocess
class CheckedNumber(gr.Number):
    is_template = True  # drawn by Gradio's Number component in the page
    preprocess = checked_number_input


class CheckedSlider(gr.Slider):
    is_template = True  # drawn by Gradio's Slider component in the page
    preprocess = checked_number_input


class CheckedVideo(gr.Video):
    """A video upload decoded once before the handler sees it: an empty, corrupt, too long or too large
    file is a clear error wherever a video is given, even where the chosen mode would not use it."""
    is_template = True  # drawn by Gradio's Video component in the page

    def preprocess(self, payload):
        if payload is not None and payload.path:
            with user_errors():
                try:
                    read_video(payload.path)
                except ValueError as error:
                    raise ValueError(f"{self.label.split()[0]}: {error}") from None
        with user_errors():
            return super().preprocess(payload)


def image_upload(name: str, label: str | None = None, **kwargs) -> CheckedImage:
    """A checked image upload whose label states the limits."""
    kwargs.setdefault("sources", ["upload", "clipboard"])
    image = CheckedImage(label=f"{label or name} ({limits_note()})", type="filepath", **kwargs)
    image.input_name = name
    return image


def image_prompt_controls(defaults, who_sees_it: str) -> tuple[CheckedImage, "CheckedSlider"]:
    """An optional image prompt (IP-Adapter) and its scale, folded away: (image_prompt, image_prompt_scale), the
    scale's range the method's (`defaults.image_prompt_scale`, `max_image_prompt_scale`)."""
    with gr.Accordion("image prompt (IP-Adapter; on a base model that has one)", open=False):
        with gr.Row():
            image = image_upload("image_prompt", f"image_prompt ({who_sees_it})")
            scale = CheckedSlider(0, defaults.max_image_prompt_scale, defaults.image_prompt_scale, step=0.05,
                                  label="image_prompt_scale")
    return image, scale


def load_image_prompt(models, path: str | None, scale: float):
    """The uploaded image as an image prompt at `scale` through the base model's IP-Adapter; None without an image
    or at scale 0 (no image: nothing is loaded)."""
    from core.validate import load_image
    if not path or scale <= 0:
        return None
    return models.image_prompt(load_image(path, "image_prompt"), scale)


def video_upload(name: str, label: str | None = None, **kwargs) -> gr.Video:
    """A video upload whose label states the limits that read_video enforces."""
    limits = (f"≤ {config.MAX_VIDEO_FRAMES} frames, ≤ {config.MAX_VIDEO_SECONDS} s, "
              f"≤ {config.MAX_UPLOAD_BYTES // 2**20} MiB")
    return CheckedVideo(label=f"{label or name} ({limits})", sources=["upload"], **kwargs)


# Gradio 6.31 writes an array or PIL output into its content-addressed cache in place, not atomically:
# two requests with the same picture (two people running one example; the sampler's noise-schedule
# plot, the same for every request with the same steps) rewrite one file while it is being served,
# and a client gets a short body (measured: 0 of 27,958 bytes, once in ~640 requests of the load
# test; a writer and a reader of one cached PNG: 4,471 short reads in 5 s). A file path instead goes
# through Gradio's copy under a temporary name and rename, so outputs are written to fresh files first.
def image_file(image) -> str | None:
    """An output picture (array, PIL image or path) as a path: arrays and PIL images written to a fresh PNG."""
    if image is None or isinstance(image, (str, Path)):
        return image
    # arrays converted to uint8 as Gradio itself converts them (floats scaled, not cast)
    picture = image if isinstance(image, Image.Image) else Image.fromarray(_convert(np.asarray(image), np.uint8))
    path = output_path(".png")
    picture.save(path)
    return path


class FileImage(gr.Image):
    """An output image served from a fresh file (see image_file); made by `image_output`."""
    is_template = True  # drawn by Gradio's Image component in the page

    def postprocess(self, value):
        return super().postprocess(image_file(value))


class FileGallery(gr.Gallery):
    """An output gallery whose pictures are served from fresh files (see image_file); made by `gallery_output`."""
    is_template = True  # drawn by Gradio's Gallery component in the page

    def postprocess(self, value):
        if value is not None:
            value = [(image_file(item[0]), *item[1:]) if isinstance(item, (tuple, list)) else image_file(item)
                     for item in value]
        return super().postprocess(value)


def image_output(label: str, send: bool = True, **kwargs) -> FileImage:
    """A result image (PNG) in a box 288 px high: the embedded models' 64-px pictures are drawn enlarged
    (pixelated, app.py's CSS), SD's 512-px ones shrunk to fit beside each other. `send`: a picture people may take
    into another tab ("use as input" under it; plots and examples have none)."""
    kwargs.setdefault("format", "png")
    kwargs.setdefault("height", 288)
    kwargs.setdefault("elem_classes", ["studio-result"])
    kwargs.setdefault("interactive", False)  # an output (that "use as input" also reads: Gradio would offer an upload)
    if not send:
        return FileImage(label=label, type="numpy", **kwargs)
    with gr.Column(min_width=160):
        image = FileImage(label=label, type="numpy", **kwargs)
        send_row(image, "image")
    return image


def video_output(label: str, send: bool = True, **kwargs) -> gr.Video:
    """A result video, looping; `send` as for `image_output`."""
    kwargs.setdefault("interactive", False)
    if not send:
        return gr.Video(label=label, autoplay=True, loop=True, **kwargs)
    with gr.Column(min_width=160):
        video = gr.Video(label=label, autoplay=True, loop=True, **kwargs)
        send_row(video, "video")
    return video


def gallery_output(label: str, **kwargs) -> FileGallery:
    """A result gallery: pictures or (picture, caption) pairs."""
    kwargs.setdefault("height", "auto")
    return FileGallery(label=label, **kwargs)


# Results into other tabs: "use as input" under every result picture and video loads it into a chosen tab's input
# and opens that tab.

@dataclass
class Target:
    """An input of a tab that a result can be sent to: `extra` sets other inputs of that tab at the same time."""
    key: str
    title: str
    component: gr.components.Component
    listed: bool  # a gr.File(file_count="multiple"): takes a list of files
    extra: dict = field(default_factory=dict)


@dataclass
class Source:
    result: gr.components.Component
    kind: str
    choice: gr.Dropdown
    button: gr.Button


# filled while a page is built (app.build_demo calls reset_sends first): one page at a time per process
TARGETS: dict[str, list[Target]] = {"image": [], "video": []}
SOURCES: list[Source] = []


def reset_sends() -> None:
    """Forget the last page's results and inputs (a new page is being built)."""
    TARGETS.update(image=[], video=[])
    SOURCES.clear()


def input_target(kind: str, key: str, title: str, component, extra: dict | None = None) -> None:
    """Register `component` of the tab `key` as where an `kind` ("image" / "video") result can be loaded."""
    listed = getattr(component, "file_count", None) == "multiple"
    TARGETS[kind] = [t for t in TARGETS[kind] if t.key != key] + [Target(key, title, component, listed, extra or {})]


def send_row(result, kind: str) -> Source:
    """Under a result: a list of the tabs that take it and a "use as input" button (filled in by `connect_sends`)."""
    own = getattr(result, "elem_id", None)
    with gr.Row(elem_classes="studio-send"):
        choice = gr.Dropdown([], value=None, label="send to", show_label=False, container=False, scale=3,
                             elem_classes="studio-send-to", elem_id=f"{own}-send-to" if own else None)
        button = gr.Button("use as input", size="sm", scale=1, elem_classes="studio-send-button",
                           elem_id=f"{own}-send" if own else None)
    source = Source(result, kind, choice, button)
    SOURCES.append(source)
    return source


def connect_sends(groups: gr.Tabs, inner: dict[str, gr.Tabs], group_of) -> None:
    """Wire every registered result to the tabs that take its kind: the button loads it into the chosen tab's input
    and opens that tab (its group, then the tab). Called once the page's tabs are built."""
    for source in SOURCES:
        targets = TARGETS[source.kind]
        source.choice.choices = [(t.title, t.key) for t in targets]
        source.choice.value = targets[0].key if targets else None
        extras = [c for t in targets for c in t.extra]
        outputs = [t.component for t in targets] + extras + [groups] + list(inner.values())

        def send(value, key, targets=targets, extras=extras, kind=source.kind):
            if value is None:
                raise gr.Error(f"there is no {kind} to send yet: run this tab first")
            chosen = next((t for t in targets if t.key == key), None)
            if chosen is None:
                raise gr.Error("choose the tab to send it to")
            path = value if isinstance(value, str) else image_file(value)
            updates = [([path] if t.listed else path) if t is chosen else gr.update() for t in targets]
            updates += [chosen.extra.get(c, gr.update()) for c in extras]
            group = group_of(chosen.key)
            updates.append(gr.Tabs(selected=group))
            updates += [gr.Tabs(selected=chosen.key) if name == group else gr.update() for name in inner]
            return updates

        source.button.click(send, [source.result, source.choice], outputs, **UI_ONLY)
