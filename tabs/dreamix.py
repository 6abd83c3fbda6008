"""Tab: Dreamix (docs/METHODS.md §17) — endpoint /dreamix."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from core import config
from core.methods import dreamix
from core.sampling import square_image
from core.validate import load_image
from core.video import VIDEO_SUFFIXES

from .common import (unet_seconds, examples, CheckedSlider, engine_event, handler, header, read_video_input, run_buttons, save_video,
                     seed_input, step_progress, video_output, input_target)
from .pointing import camera_directions, direction_picker

TITLE = "Dreamix"
D = config.DreamixDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'video_or_image': ['red_circle_moving_right.mp4'], 'prompt': 'a blue circle moving right on a white background', 'mode': 'edit', 'downsample': 4, 'strength': 0.8, 'finetune_steps': 50, 'frame_loss_weight': 1.0, 'seed': 0, 'camera': 'pan right'},
    {'video_or_image': ['red_circle_white.png'], 'prompt': 'a red circle on a white background', 'mode': 'animate', 'downsample': 4, 'strength': 0.8, 'finetune_steps': 50, 'frame_loss_weight': 1.0, 'seed': 0, 'camera': 'pan right'},
]


def load_media(paths, mode: str) -> np.ndarray:
    """Edit: one video → its frames. Animate: one image. Subject: up to max_subject_images images."""
    paths = [p for p in (paths or []) if p]
    if not paths:
        raise ValueError("no video_or_image given: upload a video (edit) or images (animate, subject)")
    if mode == "edit":
        if len(paths) != 1 or Path(paths[0]).suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError("edit mode takes one video (mp4, webm, mov, avi, mkv or gif)")
        return read_video_input(paths[0], "video_or_image")
    if mode == "animate" and len(paths) != 1:
        raise ValueError("animate mode takes one image")
    if len(paths) > D.max_subject_images:
        raise ValueError(f"subject mode takes at most {D.max_subject_images} images")
    images = [load_image(p, "video_or_image") for p in paths]
    side = min(min(i.shape[:2]) for i in images)
    return np.stack([square_image(i, side) for i in images])


def build(models) -> None:
    header(TITLE, "Video editing with a video diffusion model: sampling starts from the input downsampled (only coarse "
                  "structure and colour survive) and noised, after mixed fine-tuning on the input — the clip as a video "
                  "and its frames as stills, with temporal attention masked on stills so temporal layers never learn "
                  "from images. Modes: edit a video, animate an image (camera pan / zoom), subject-driven (a few images).",
           "Open re-implementation: Dreamix's model is not public; this runs on the app's motion model "
           f"({models.motion_adapter_name()} over {models.base_model}).")
    with gr.Row():
        with gr.Column():
            media = gr.File(label=f"video_or_image (edit: one video ≤ {config.MAX_VIDEO_FRAMES} frames / "
                                  f"{config.MAX_VIDEO_SECONDS} s; animate: one image; subject: ≤ {D.max_subject_images} "
                                  "images)", file_count="multiple", file_types=["image", "video"])
            prompt = gr.Textbox(D.prompt, label="prompt")
            source_prompt = gr.Textbox("", label="source_prompt (the caption fine-tuning pairs with the input; "
                                                 "empty: none, so guidance pushes from the input to the prompt)")
            with gr.Row():
                mode = gr.Radio(list(dreamix.MODES), value="edit", label="mode")
                camera = gr.Dropdown(list(dreamix.CAMERAS), value="pan right", label="camera (animate)")
            direction_picker("camera (animate): click a direction", camera_directions(dreamix.CAMERAS), camera,
                             elem_id="dreamix-camera")
            with gr.Row():
                downsample = CheckedSlider(1, D.max_downsample, D.downsample, step=1, precision=0, label="downsample")
                strength = CheckedSlider(0, 1, D.strength, step=0.05, label="strength")
            with gr.Row():
                finetune_steps = CheckedSlider(0, D.max_finetune_steps, D.finetune_steps, step=1, precision=0, label="finetune_steps")
                frame_loss_weight = CheckedSlider(0, 10, D.frame_loss_weight, step=0.1, label="frame_loss_weight")
                seed = seed_input(D.seed)
            run, stop = run_buttons("Fine-tune and generate")
        with gr.Column():
            video = video_output("video")
            source = video_output("input clip (what was fine-tuned on)", send=False)

    input_target("image", "dreamix", TITLE, media, extra={mode: "animate"})
    input_target("video", "dreamix", TITLE, media, extra={mode: "edit"})

    @handler(exclusive=True, gpu_seconds=lambda finetune_steps, **_: unet_seconds(finetune_steps * D.frames, training=True)
                                                          + unet_seconds(D.steps * D.frames))
    def generate(video_or_image: list[str], prompt: str, mode: str = "edit", downsample: int = D.downsample,
                 strength: float = D.strength, finetune_steps: int = D.finetune_steps,
                 frame_loss_weight: float = D.frame_loss_weight, seed: int = D.seed, camera: str = "pan right",
                 source_prompt: str = "", progress=gr.Progress()):
        params = dreamix.DreamixParams(prompt, mode, int(downsample), float(strength), int(finetune_steps),
                                       float(frame_loss_weight), camera=camera, seed=int(seed),
                                       source_prompt=source_prompt or "")
        params.check()
        clip = load_media(video_or_image, mode)
        progress(0, desc="loading the base model and motion adapter")
        pipe, unet = models.pipeline(), models.motion_unet()
        out, used = dreamix.run(pipe, unet, clip, params, loras={"domain": 1.0},
                                on_step=step_progress(progress, "fine-tune, then sample"))
        return save_video(out, D.fps), save_video(used, D.fps)

    inputs = [media, prompt, mode, downsample, strength, finetune_steps, frame_loss_weight, seed, camera, source_prompt]
    engine_event(run, stop, generate, inputs, [video, source], api_name="dreamix")
    examples(models.recommended("dreamix"), EXAMPLES, generate, inputs[:9], [video, source])
