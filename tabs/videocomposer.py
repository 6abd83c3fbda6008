"""Tab: VideoComposer (docs/METHODS.md §8) — endpoint /videocomposer."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import videocomposer
from core.validate import load_image
from core.video_composition import parse_motion_path
from core.video import side_by_side
from core.videocomposer import CONDITION_CHANNELS

from .common import (unet_seconds, UI_ONLY, examples, image_file, input_target, recommended_note, CheckedSlider, engine_event, handler,
                     header, image_upload, read_video_input, run_buttons, sampling_controls, save_video, step_progress,
                     video_upload, video_output)
from .pointing import (canvas_over, drawing, first_frame, mask_file, model_side, motion_pad, paint_canvas, painted,
                       points_text, read_mask, sketch_canvas)


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
                reference_video = video_upload("reference_video", elem_id="vc-reference")
                input_target("video", "videocomposer", TITLE, reference_video)
                style_image = image_upload("style_image", label="style_image (optional)")
            preset = gr.Dropdown(list(config.VIDEOCOMPOSER_PRESETS), value=None, label="preset (task recipe)")
            conditions = gr.CheckboxGroup(list(CONDITION_CHANNELS), value=list(D.conditions),
                                          label="conditions (extracted from reference_video)", elem_id="vc-conditions")
            with gr.Accordion("draw, paint or click conditions (they replace what the reference gives)", open=False):
                with gr.Row():
                    sketch_drawing = sketch_canvas("single_sketch: draw it (white on black)", model_side(models),
                                                   elem_id="vc-sketch")
                    hole_painting = paint_canvas("mask: paint the hole to fill in, over the reference's first frame",
                                                 model_side(models), elem_id="vc-mask")
                with gr.Row():
                    sketch_image = image_upload("sketch_image", "sketch_image (single_sketch: white lines on black)")
                    mask_image = image_upload("mask_image", "mask_image (mask: white = the hole to fill in)",
                                              elem_id="vc-mask-image")
                pad = motion_pad("motion: click a start, then each next point of the path the object travels",
                                 elem_id="vc-motion", trajectory=True)
                motion_path = gr.Textbox("", label="motion_path",
                                         info="motion: the path as 'x, y; x, y; …' in fractions of the frame (0–1), "
                                              "instead of the reference's motion vectors")
            frames = CheckedSlider(2, D.max_frames, V.frames, step=1, precision=0, label="frames", elem_id="vc-frames")
            steps, seed, guidance_scale = sampling_controls(D, "vc")
            run, stop = run_buttons("Compose", "vc-run")
        with gr.Column():
            video = video_output("video")
            views = gr.Video(label="conditions as used, left to right in the order of `conditions` "
                                   "(motion vectors as arrows)", autoplay=True, loop=True, elem_id="vc-views")
    preset.change(lambda name: list(config.VIDEOCOMPOSER_PRESETS.get(name, D.conditions)), preset, conditions,
                  **UI_ONLY)

    def with_condition(kind: str):
        """Drawing a condition chooses it too (once there is a drawing)."""
        return lambda given, chosen: sorted(set(chosen or []) | {kind}, key=list(CONDITION_CHANNELS).index) \
            if given else gr.update()

    sketch_drawing.input(lambda value: image_file(drawing(value)), sketch_drawing, sketch_image, **UI_ONLY).then(
        with_condition("single_sketch"), [sketch_image, conditions], conditions, **UI_ONLY)
    hole_painting.input(lambda value: mask_file(painted(value)), hole_painting, mask_image, **UI_ONLY).then(
        with_condition("mask"), [mask_image, conditions], conditions, **UI_ONLY)
    pad.picture.select(pad.click, [pad.background, pad.points], [pad.picture, pad.points], **UI_ONLY).then(
        points_text, pad.points, motion_path, **UI_ONLY).then(
        with_condition("motion"), [motion_path, conditions], conditions, **UI_ONLY)
    pad.clear.click(lambda: "", None, motion_path, **UI_ONLY)

    def show_reference(path, points):
        frame = first_frame(path)
        return (canvas_over(frame), *pad.set_background(frame, points))

    reference_video.change(show_reference, [reference_video, pad.points], [hole_painting, pad.picture, pad.background],
                           **UI_ONLY)

    @handler(gpu_seconds=lambda frames, steps, **_: unet_seconds(frames * steps))
    def compose(prompt: str, reference_video: str | None = None, style_image: str | None = None,
                conditions: list[str] | None = None, frames: int = D.frames, steps: int = D.steps,
                seed: int = D.seed, guidance_scale: float = D.guidance_scale, sketch_image: str | None = None,
                mask_image: str | None = None, motion_path: str = "", progress=gr.Progress()):
        conditions = list(D.conditions if conditions is None else conditions)
        params = videocomposer.VideoComposerParams(prompt, conditions, int(frames), int(steps), float(guidance_scale),
                                                   int(seed))
        params.check()
        reference = read_video_input(reference_video, "reference_video") if conditions or reference_video else None
        style = load_image(style_image, "style_image") if style_image else None
        depth = videocomposer.depth_for(models, reference, conditions, params.frames) if reference is not None else None
        for given, kind in ((sketch_image, "single_sketch"), (mask_image, "mask"), ((motion_path or "").strip(), "motion")):
            if given and kind not in conditions:
                raise ValueError(f"a drawn {kind} was given but {kind!r} is not among the conditions: add it")
        drawn = dict(sketch=load_image(sketch_image, "sketch_image").mean(-1).astype("uint8") if sketch_image else None,
                     hole=read_mask(load_image(mask_image, "mask_image")) if mask_image else None,
                     motion_path=parse_motion_path(motion_path))
        if models.uses_public_video_controls():
            progress(0, desc="loading AnimateDiff and the control models")
            out = videocomposer.generate_with_controls(models.pipeline(), models.motion_unet(),
                                                       models.video_controls(conditions), reference, params,
                                                       depth=depth, image_prompts=[videocomposer.style_prompt(models, style)],
                                                       on_step=step_progress(progress, "compose"), **drawn)
        else:
            progress(0, desc="loading the VideoComposer model")
            unet, composer = models.videocomposer()
            out = videocomposer.generate(models.pipeline(), unet, composer, reference, params,
                                         style=videocomposer.style_embedding(models, style), depth=depth,
                                         on_step=step_progress(progress, "compose"), **drawn)
        shown = [out.condition_views[c] for c in conditions if c in out.condition_views]
        return save_video(out.frames, D.fps), save_video(side_by_side(shown), D.fps) if shown else None

    inputs = [prompt, reference_video, style_image, conditions, frames, steps, seed, guidance_scale]
    engine_event(run, stop, compose, inputs + [sketch_image, mask_image, motion_path], [video, views],
                 api_name="videocomposer")
    examples(recommendation, EXAMPLES, compose, inputs[:7], [video, views])
