"""Tab: structure- and content-guided video, Gen-1 style (docs/METHODS.md §12) — endpoint /gen1."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import gen1, videocomposer
from core.validate import load_image

from .common import (unet_seconds, examples, CheckedSlider, engine_event, handler, header, image_upload, read_video_input,
                     run_buttons, sampling_controls, save_video, step_progress, video_upload, video_output, input_target)


TITLE = "Gen-1 (structure + content)"
D = config.Gen1Defaults
EXAMPLE_CONTENT = str(config.EXAMPLES_DIR / "yellow_circle_black.png")
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'video': 'red_circle_moving_right.mp4', 'prompt': 'a blue circle on a white background', 'content_image': None, 'structure_level': 0, 'temporal_guidance': 1.0, 'frames': 8, 'steps': 25, 'seed': 0},
    {'video': 'red_circle_moving_right.mp4', 'prompt': 'a green square on a white background', 'content_image': None, 'structure_level': 3, 'temporal_guidance': 1.0, 'frames': 8, 'steps': 25, 'seed': 0},
    {'video': 'red_circle_moving_right.mp4', 'prompt': 'a circle', 'content_image': 'yellow_circle_black.png', 'structure_level': 0, 'temporal_guidance': 1.5, 'frames': 8, 'steps': 25, 'seed': 1},
]


def stand_in(models) -> str:
    """The tab's line on whose weights edit the video on this base model."""
    base = models.base_model
    if not models.uses_public_video_controls():
        return ("Open re-implementation: Gen-1 has no public weights. It runs on this app's VideoComposer model (its "
                "depth encoder); offline the depth is a stand-in read from the foreground, and the content image goes "
                f"through {config.VIDEOCOMPOSER_STYLE_ENCODER}'s image tower. The embedded model is undertrained: the "
                "depth is followed only loosely so far (figures on its model card).")
    return (f"Gen-1 has no public weights. On {base}, {models.motion_adapter_name(base)} (AnimateDiff) with the depth "
            f"ControlNet {config.VIDEO_CONTROLNETS[base]['depth']} per frame stands in, on depth maps from "
            f"{config.CONDITION_MODELS['depth']}; the content image enters through IP-Adapter "
            f"({config.HUB_IP_ADAPTER_REPO}); the frame-wise prediction of temporal_guidance is the same UNet with its "
            "motion modules bypassed.")


def build(models) -> None:
    header(TITLE, "Edit a video by its structure and a new content: the source's depth sequence fixes the shapes "
                  "(structure_level coarsens it: higher keeps less of the source's shape), the text and an optional "
                  "content image say what to show. Frames read the first frame's attention keys and values, and "
                  "temporal_guidance pushes the video prediction away from the frame-by-frame one (1: video model "
                  "alone; higher: steadier).",
           stand_in(models))
    with gr.Row():
        with gr.Column():
            with gr.Row():
                video_in = video_upload("video")
                input_target("video", "gen1", TITLE, video_in)
                content_image = image_upload("content_image", label="content_image (optional)")
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                structure_level = CheckedSlider(0, D.max_structure_level, D.structure_level, step=1, precision=0, label="structure_level")
                temporal_guidance = CheckedSlider(0, D.max_temporal_guidance, D.temporal_guidance, step=0.1,
                                              label="temporal_guidance")
                frames = CheckedSlider(2, D.max_frames, D.frames, step=1, precision=0, label="frames")
            steps, seed, guidance_scale = sampling_controls(D)
            run, stop = run_buttons("Edit the video")
        with gr.Column():
            video = video_output("video")
            depth = video_output("depth sequence (as used, after structure_level)", send=False)

    @handler(gpu_seconds=lambda frames, steps, temporal_guidance, **_: unet_seconds(
        frames * steps * (1 if temporal_guidance == 1 else 2)))
    def edit(video: str, prompt: str, content_image: str | None = None, structure_level: int = D.structure_level,
             temporal_guidance: float = D.temporal_guidance, frames: int = D.frames, steps: int = D.steps,
             seed: int = D.seed, guidance_scale: float = D.guidance_scale, progress=gr.Progress()):
        params = gen1.Gen1Params(prompt, int(structure_level), float(temporal_guidance), int(frames), int(steps),
                                 float(guidance_scale), int(seed))
        params.check()
        source = read_video_input(video, "video")
        content = load_image(content_image, "content_image") if content_image else None
        depth = videocomposer.depth_for(models, source, ["depth"], params.frames)
        if models.uses_public_video_controls():
            progress(0, desc="loading AnimateDiff and the depth ControlNet")
            out = gen1.edit_with_controls(models.pipeline(), models.motion_unet(), models.video_controls(["depth"])["depth"],
                                          source, params, content=videocomposer.style_prompt(models, content),
                                          depth=depth, on_step=step_progress(progress, "edit"))
        else:
            progress(0, desc="loading the model")
            unet, composer = models.videocomposer()
            out = gen1.edit(models.pipeline(), unet, composer, source, params,
                            content=videocomposer.style_embedding(models, content), depth=depth,
                            on_step=step_progress(progress, "edit"))
        return save_video(out.frames, D.fps), save_video(out.condition_views["depth"], D.fps)

    inputs = [video_in, prompt, content_image, structure_level, temporal_guidance, frames, steps, seed, guidance_scale]
    engine_event(run, stop, edit, inputs, [video, depth], api_name="gen1")
    examples(models.recommended("gen1"), EXAMPLES, edit, inputs[:8], [video, depth])
