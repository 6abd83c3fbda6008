"""Tab: VideoComposer (docs/METHODS.md §8) — endpoint /videocomposer."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import videocomposer
from core.validate import load_image
from core.video import side_by_side
from core.videocomposer import CONDITION_CHANNELS

from .common import (examples, recommended_note, CheckedSlider, engine_event, handler, header, image_upload, read_video_input, run_buttons,
                     sampling_controls, save_video, step_progress, video_upload)


TITLE = "VideoComposer"
D = config.VideoComposerDefaults
EXAMPLE_STYLE = str(config.EXAMPLES_DIR / "yellow_circle_black.png")
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'prompt': 'a blue square', 'reference_video': 'red_circle_moving_right.mp4', 'style_image': None, 'conditions': ['motion'], 'frames': 8, 'steps': 25, 'seed': 0},
    {'prompt': 'a green triangle on a white background', 'reference_video': 'red_circle_moving_right.mp4', 'style_image': None, 'conditions': ['single_sketch', 'motion'], 'frames': 8, 'steps': 25, 'seed': 1},
    {'prompt': 'a circle', 'reference_video': 'red_circle_moving_right.mp4', 'style_image': 'yellow_circle_black.png', 'conditions': ['depth'], 'frames': 8, 'steps': 25, 'seed': 2},
    {'prompt': 'a red circle on a white background', 'reference_video': 'red_circle_moving_right.mp4', 'style_image': None, 'conditions': ['mask'], 'frames': 8, 'steps': 25, 'seed': 3},
]


def stand_in(models) -> str:
    """The tab's line on whose weights compose the video on this base model."""
    base = models.base_model
    if not models.uses_public_video_controls():
        return ("Open re-implementation (our encoders and weights, trained on moving shapes for the embedded model: "
                f"{config.EMBEDDED_VIDEOCOMPOSER}); the official weights are a non-commercial pickle and are not loaded. "
                "Offline, depth is a stand-in read from the foreground, not a depth model. The embedded model is "
                "undertrained: it follows its conditions only loosely so far (figures on its model card).")
    frame, key = config.VIDEO_CONTROLNETS[base], config.VIDEO_SPARSE_CONTROLNETS.get(base, {})
    return (f"On {base}, public models stand in for VideoComposer's condition encoders (its weights are a "
            f"non-commercial pickle): motion from {models.motion_adapter_name(base)}; depth, sketch and mask sequences "
            f"through ControlNet v1.1 per frame ({', '.join(frame.values())}; depth maps from "
            f"{config.CONDITION_MODELS['depth']}); a single image or sketch through SparseCtrl on frame 0 "
            f"({', '.join(key.values())}); the style image through IP-Adapter ({config.HUB_IP_ADAPTER_REPO}). No public "
            "SD1.5 model reads motion vectors: here they only carry the initial noise along the reference's motion.")


def build(models) -> None:
    recommendation = models.recommended("videocomposer")
    V = recommendation.defaults(D)  # the starting values: the paper's, or what the base model recommends
    header(TITLE, "Compose a video from text, a style image and conditions extracted from a reference video: motion "
                  "vectors, depth, sketch and mask sequences, or one image / sketch repeated over the frames. Each "
                  "condition has its own spatio-temporal encoder (per-frame convolutions, then attention over frames); "
                  "their features are summed into extra input channels of a motion UNet, and guidance runs on text + "
                  "style. The presets are the paper's task recipes.",
           stand_in(models))
    recommended_note(recommendation)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                reference_video = video_upload("reference_video")
                style_image = image_upload("style_image", label="style_image (optional)")
            preset = gr.Dropdown(list(config.VIDEOCOMPOSER_PRESETS), value=None, label="preset (task recipe)")
            conditions = gr.CheckboxGroup(list(CONDITION_CHANNELS), value=list(D.conditions),
                                          label="conditions (extracted from reference_video)")
            frames = CheckedSlider(2, D.max_frames, V.frames, step=1, precision=0, label="frames")
            steps, seed, guidance_scale = sampling_controls(D)
            run, stop = run_buttons("Compose")
        with gr.Column():
            video = gr.Video(label="video", autoplay=True, loop=True)
            views = gr.Video(label="conditions as used, left to right in the order of `conditions` "
                                   "(motion vectors as arrows)", autoplay=True, loop=True)
    preset.change(lambda name: list(config.VIDEOCOMPOSER_PRESETS.get(name, D.conditions)), preset, conditions,
                  api_visibility="private", concurrency_limit=None)  # UI only: outside the engine's queue

    @handler
    def compose(prompt: str, reference_video: str | None = None, style_image: str | None = None,
                conditions: list[str] | None = None, frames: int = D.frames, steps: int = D.steps,
                seed: int = D.seed, guidance_scale: float = D.guidance_scale, progress=gr.Progress()):
        conditions = list(D.conditions if conditions is None else conditions)
        params = videocomposer.VideoComposerParams(prompt, conditions, int(frames), int(steps), float(guidance_scale),
                                                   int(seed))
        params.check()
        reference = read_video_input(reference_video, "reference_video") if conditions or reference_video else None
        style = load_image(style_image, "style_image") if style_image else None
        depth = videocomposer.depth_for(models, reference, conditions, params.frames) if reference is not None else None
        if models.uses_public_video_controls():
            progress(0, desc="loading AnimateDiff and the control models")
            out = videocomposer.generate_with_controls(models.pipeline(), models.motion_unet(),
                                                       models.video_controls(conditions), reference, params,
                                                       depth=depth, image_prompts=[videocomposer.style_prompt(models, style)],
                                                       on_step=step_progress(progress, "compose"))
        else:
            progress(0, desc="loading the VideoComposer model")
            unet, composer = models.videocomposer()
            out = videocomposer.generate(models.pipeline(), unet, composer, reference, params,
                                         style=videocomposer.style_embedding(models, style), depth=depth,
                                         on_step=step_progress(progress, "compose"))
        shown = [out.condition_views[c] for c in conditions if c in out.condition_views]
        return save_video(out.frames, D.fps), save_video(side_by_side(shown), D.fps) if shown else None

    inputs = [prompt, reference_video, style_image, conditions, frames, steps, seed, guidance_scale]
    engine_event(run, stop, compose, inputs, [video, views], api_name="videocomposer")
    examples(recommendation, EXAMPLES, compose, inputs[:7], [video, views])
