"""What every tab shares: GPU entry points, turning engine errors into gr.Error, small widgets."""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import gradio as gr
import torch

from core.models import ModelLoadError
from core.video import read_video, write_video

log = logging.getLogger("studio")

try:  # HuggingFace ZeroGPU: GPU work must run inside spaces.GPU; elsewhere the package is absent
    import spaces  # type: ignore

    _gpu_decorator = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host
    _gpu_decorator = None


def handler(fn: Callable) -> Callable:
    """Wrap a tab's handler: user mistakes → gr.Error with the reason; out-of-memory → a clear
    message and freed memory; anything else → a generic error (logged here, no traceback to the page).
    Generator handlers (streamed updates, cancellable) stay generators."""

    @contextlib.contextmanager
    def errors_as_messages():
        try:
            yield
        except gr.Error:
            raise
        except (ValueError, ModelLoadError) as error:
            raise gr.Error(str(error)) from None
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise gr.Error("the GPU ran out of memory: use fewer steps, frames or a smaller size") from None
        except Exception:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error("something went wrong on the server while running this; the details are in its log") from None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with errors_as_messages():
                yield from fn(*args, **kwargs)
    else:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with errors_as_messages():
                return fn(*args, **kwargs)

    return _gpu_decorator(wrapped) if _gpu_decorator is not None else wrapped


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


def sampling_controls(defaults):
    """The row of knobs every sampler-driven tab has: steps, seed, guidance_scale (defaults from config)."""
    from core import config
    with gr.Row():
        steps = gr.Slider(1, config.MAX_STEPS, defaults.steps, step=1, label="steps")
        seed = gr.Number(defaults.seed, precision=0, label="seed", minimum=0, maximum=config.MAX_SEED)
        guidance_scale = gr.Slider(0, config.MAX_GUIDANCE, defaults.guidance_scale, step=0.5, label="guidance_scale")
    return steps, seed, guidance_scale


def output_path(suffix: str) -> str:
    """A fresh file in the app's temp folder (GRADIO_TEMP_DIR or the system's), never a request's path."""
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "studio-outputs"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{uuid.uuid4().hex}{suffix}")


def save_video(frames, fps: float) -> str:
    return str(write_video(frames, output_path(".mp4"), fps=fps))


def read_video_input(path, name: str = "video"):
    if not path:
        raise ValueError(f"no {name} given: upload one")
    frames, _ = read_video(path)
    return frames
