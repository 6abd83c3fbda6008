"""Tune-A-Video (Wu et al. 2023, docs/METHODS.md §10): one-shot tuning of an image model on one video.

The UNet is inflated (core.motion) with zero-initialised temporal attention layers and its spatial
self-attention made sparse-causal (each frame's queries read the keys/values of the first and the
previous frame: core.attention's frame mode). Only the query projections of spatial self- and
cross-attention and the temporal layers are trained on the (video, prompt) pair; everything else
stays frozen. Generation DDIM-inverts the source video (the structure) and samples the new prompt
from that noise with the tuned UNet.

Where we differ from the official code: its temporal attention is one extra attention per
transformer block; ours are AnimateDiff-style motion modules (one temporal transformer after each
resnet/attention pair, the same zero start), so Tune-A-Video and AnimateDiff share one inflation.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file, save_file

from .. import config
from ..attention import FrameMode, install
from ..denoisers import TextGuided
from ..inversion import DDIMSchedule, ddim_invert
from ..motion import inflate, new_motion_adapter
from ..sampling import decode_video, denoise, encode_prompts, frame_context, prepare_latents
from ..training.epsilon import video_latents
from ..training.video_tuning import TRAINABLE, run_to_end, tune_on_clip
from ..validate import check_finite, check_prompt, check_range, check_sampling
from ..video import resize_frames, sample_frames

D = config.TuneAVideoDefaults
NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")


@dataclass
class TuneParams:
    prompt: str  # describes the source video
    steps: int = D.train_steps
    lr: float = D.lr
    frames: int = D.frames
    seed: int = D.seed

    def check(self) -> None:
        check_prompt(self.prompt)
        check_range("steps", self.steps, 1, D.max_train_steps)
        check_range("lr", self.lr, 1e-7, 1e-2)
        check_range("frames", self.frames, 2, D.max_frames)
        check_range("seed", self.seed, 0, config.MAX_SEED)


@dataclass
class GenerateParams:
    prompt: str
    inversion: bool = True  # start from the DDIM-inverted source video (False: fresh noise)
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed

    def check(self) -> None:
        check_prompt(self.prompt)
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class TunedVideoModel:
    """What tuning produces: the changed weights and what generation needs to reuse them."""
    weights: dict[str, torch.Tensor]  # trainable parameters only, by UNet (UNetMotionModel) name
    source: np.ndarray  # uint8 (F, H, W, 3) frames it was tuned on (inverted at generation)
    settings: dict = field(default_factory=dict)  # prompt, base model, steps, lr, frames, seconds, losses


def tuning_unet(pipe):
    """The inflated UNet Tune-A-Video trains: `pipe`'s UNet with fresh zero-initialised temporal layers."""
    unet = inflate(pipe.unet, new_motion_adapter(pipe.unet, max_frames=D.max_frames))
    unet.requires_grad_(False)
    return unet


def prepare_frames(pipe, video: np.ndarray, frames: int) -> np.ndarray:
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return resize_frames(sample_frames(video, frames), size, size)


def tune(pipe, video: np.ndarray, params: TuneParams, base_model: str = ""):
    """Tune on (video, prompt). A generator: yields StepReport after every step (stop iterating to
    cancel), then returns the TunedVideoModel (StopIteration.value; see `run_tuning`)."""
    params.check()
    frames = prepare_frames(pipe, video, int(params.frames))
    torch.manual_seed(int(params.seed))
    unet = tuning_unet(pipe)
    started = time.time()
    losses = []
    steps = tune_on_clip(pipe, unet, frames, params.prompt, int(params.steps), float(params.lr), int(params.seed),
                         frame_mode=FrameMode.SPARSE_CAUSAL)
    names = yield from relay(steps, losses)
    settings = asdict(params) | {"base_model": base_model, "seconds": round(time.time() - started, 1),
                                 "losses": [round(v, 5) for v in losses], "frames": len(frames)}
    parameters = dict(unet.named_parameters())
    weights = {n: parameters[n].detach().to("cpu", torch.float32).clone() for n in names}
    return TunedVideoModel(weights, frames, settings)


def relay(steps, losses: list, show=lambda report: report):
    """Pass a tuning generator's reports on as `show(report)` (None: nothing this step), keeping their
    losses; returns the generator's return value."""
    while True:
        try:
            report = next(steps)
        except StopIteration as done:
            return done.value
        losses.append(report.loss)
        shown = show(report)
        if shown is not None:
            yield shown


def run_tuning(pipe, video, params: TuneParams, base_model: str = "", on_step=None) -> TunedVideoModel:
    """`tune` run to the end; `on_step(StepReport)` after every step."""
    return run_to_end(tune(pipe, video, params, base_model), on_step)


def tuned_unet(pipe, model: TunedVideoModel, unet=None):
    """An inflated UNet carrying the tuned weights (every saved tensor must find its place): `unet`
    (Models.fresh_motion_unet, reused across requests: the load overwrites every tunable weight) or a
    new inflation of `pipe`'s UNet."""
    unet = unet if unet is not None else tuning_unet(pipe)
    unet.requires_grad_(False).eval()
    expected = {n for n, _ in unet.named_parameters() if TRAINABLE.search(n)}
    if set(model.weights) != expected:
        raise ValueError("these tuned weights were made for another base model (their layers do not match); "
                         "tune again on this one")
    unet.load_state_dict({n: w.to(unet.dtype) for n, w in model.weights.items()}, strict=False)
    return unet


def generate(pipe, unet, model: TunedVideoModel, params: GenerateParams, on_step=None) -> np.ndarray:
    """New prompt → uint8 frames (F, H, W, 3), structure from the DDIM-inverted source video."""
    params.check()
    steps, guidance = int(params.steps), float(params.guidance_scale)
    frames = model.source
    count = len(frames)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    state = install(unet)
    passes = 2 if params.inversion else 1
    with torch.no_grad(), state.use(frames=count, frame_mode=FrameMode.SPARSE_CAUSAL):
        # inversion and the unconditional branch use the empty prompt, as the official code (measured on
        # toy-sd: the tuning prompt there instead, i.e. negative-prompt inversion, turned blue edits green)
        uncond = frame_context(encode_prompts(pipe, [""]), count)
        if params.inversion:
            latents = video_latents(pipe, frames[None]).to(unet.dtype)
            schedule = DDIMSchedule.from_scheduler(scheduler, steps)
            latents = ddim_invert(unet, latents, uncond, schedule,
                                  on_step=None if on_step is None else lambda d, t: on_step(d, passes * t))[-1]
        else:
            size = pipe.unet.config.sample_size * pipe.vae_scale_factor
            latents = prepare_latents(pipe, 1, size, size, torch.Generator().manual_seed(int(params.seed)), count)
        cond = frame_context(encode_prompts(pipe, [params.prompt]), count)
        progress = None if on_step is None else (lambda d, t: on_step((passes - 1) * t + d, passes * t))
        result = denoise(TextGuided(unet, cond, uncond, guidance), scheduler, latents, steps, on_step=progress)
    return decode_video(pipe, result.latents)


class TunedLibrary:
    """Tuned models on disk: `<root>/<name>/weights.safetensors` (+ the source frames) and
    `settings.json`. Names are plain words, so a request never becomes a path outside `root`."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"{name!r} is not a model name: use letters, digits, '-', '_' or '.' (≤ 64)")
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "settings.json").is_file())

    def save(self, name: str, model: TunedVideoModel) -> Path:
        folder = self.path(name)
        check_finite(model.weights, f"the tuned model {name!r}")
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {n: w.contiguous() for n, w in model.weights.items()}
        tensors["source_frames"] = torch.from_numpy(np.ascontiguousarray(model.source))
        save_file(tensors, str(folder / "weights.safetensors"))
        (folder / "settings.json").write_text(json.dumps(model.settings, indent=1))
        return folder

    def load(self, name: str) -> TunedVideoModel:
        folder = self.path(name)
        if not (folder / "settings.json").is_file():
            known = ", ".join(self.names()) or "none yet"
            raise ValueError(f"no tuned model called {name!r} (tuned models: {known}); tune one first")
        tensors = load_file(str(folder / "weights.safetensors"))
        source = tensors.pop("source_frames").numpy()
        return TunedVideoModel(tensors, source, json.loads((folder / "settings.json").read_text()))
