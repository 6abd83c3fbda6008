"""Tab: Text2Video-Zero (docs/METHODS.md §15) — endpoint /t2v_zero."""
from __future__ import annotations

import gradio as gr
from diffusers import StableDiffusionInstructPix2PixPipeline

from core import config
from core.conditions import extract
from core.methods import t2v_zero
from core.video import resize_frames, sample_frames

from .common import (unet_seconds, examples, recommended_note, CheckedSlider, engine_event, gallery_output, handler, header,
                     read_video_input, run_buttons, save_video, seed_input, step_progress, video_upload, video_output,
                     UI_ONLY)
from .pointing import arrow_motion, first_frame, motion_pad



TITLE = "Text2Video-Zero"
D = config.T2VZeroDefaults
MODES = ("text", "controlnet", "pix2pix")
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'prompt': 'a horse galloping on a street'},
    {'prompt': 'a panda is playing guitar on times square'},
    {'prompt': 'an astronaut dancing in outer space'},
]


def build(models) -> None:
    recommendation = models.recommended("t2v_zero")
    V = recommendation.defaults(D)  # the starting values: the paper's, or what the base model recommends
    header(TITLE, "Zero-shot video from the image model: frame 1's noise is denoised a little, copied to every frame "
                  "and translated by k·(motion_x, motion_y), re-noised, and all frames are denoised together with "
                  "cross-frame attention (every frame reads frame 1's keys and values). Modes: text; ControlNet on "
                  "per-frame Canny edges of an uploaded video; Instruct-Pix2Pix editing of an uploaded video.",
           "ControlNet and Instruct-Pix2Pix modes need their Hub weights (a GPU machine with network); the "
           "text mode runs on the embedded toy model. Background smoothing is not included (it needs a salient-object "
           "detector that the official code does not ship either).")
    recommended_note(recommendation)
    with gr.Row():
        with gr.Column():
            mode = gr.Radio(list(MODES), value="text", label="mode")
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                frames = CheckedSlider(1, D.max_frames, D.frames, step=1, precision=0, label="frames")
                motion_x = CheckedSlider(-D.max_motion, D.max_motion, D.motion_x, step=1, label="motion_x",
                                         elem_id="t2v-motion-x",
                                         info="flow in px of a 512-px frame: frame k shows frame 1 at p + k·motion "
                                              "(as the official: positive moves the content left / up)")
                motion_y = CheckedSlider(-D.max_motion, D.max_motion, D.motion_y, step=1, label="motion_y",
                                         elem_id="t2v-motion-y")
            pad = motion_pad("motion: click where the content starts, then where it should end (over the clip)",
                             elem_id="t2v-motion")
            with gr.Row():
                t0 = CheckedSlider(0, D.schedule_steps - 2, V.t0, step=1, precision=0, label="t0",
                                   info=f"step counted from the end of {D.schedule_steps} (other step counts: the same fraction)")
                t1 = CheckedSlider(1, D.schedule_steps - 1, V.t1, step=1, precision=0, label="t1")
                steps = CheckedSlider(2, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                seed = seed_input(D.seed)
            with gr.Accordion("guidance, ablation, video modes", open=False):
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
                cross_frame = gr.Checkbox(True, label="cross_frame (attention to frame 1)")
                noise = gr.Radio(list(t2v_zero.NOISE_MODES), value=V.noise,
                                 label="noise (re-noising the moved frames: per-frame = the official code; warped = "
                                       "one noise moved with the content, steadier on small models)")
                control_video = video_upload("control_video", "control_video (controlnet mode: Canny edges per frame)")
                source_video = video_upload("source_video", "source_video (pix2pix mode)")
                instruction = gr.Textbox("", label="instruction (pix2pix mode)")
            run, stop = run_buttons("Generate video", "t2v-run")
        with gr.Column():
            video = video_output("video", elem_id="t2v-video")
            conditions = gallery_output("condition maps", columns=8)

    @handler(gpu_seconds=lambda frames, steps, **_: unet_seconds(frames * steps))
    def generate(prompt: str, frames: int = D.frames, motion_x: float = D.motion_x, motion_y: float = D.motion_y,
                 t0: int = D.t0, t1: int = D.t1, steps: int = D.steps, seed: int = D.seed, mode: str = "text",
                 control_video: str | None = None, source_video: str | None = None, instruction: str = "",
                 guidance_scale: float = D.guidance_scale, cross_frame: bool = True, noise: str = D.noise,
                 progress=gr.Progress()):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        params = t2v_zero.T2VZeroParams(prompt if mode != "pix2pix" else (instruction or prompt), int(frames),
                                        float(motion_x), float(motion_y), int(t0), int(t1), int(steps),
                                        float(guidance_scale), int(seed), bool(cross_frame), motion=mode == "text",
                                        noise=noise)
        params.check()
        on_step = step_progress(progress, mode)
        maps = []
        if mode == "text":
            out = t2v_zero.generate(models.pipeline(), params, on_step=on_step)
        elif mode == "controlnet":
            pipe = models.pipeline()
            size = pipe.unet.config.sample_size * pipe.vae_scale_factor
            clip = resize_frames(sample_frames(read_video_input(control_video, "control_video"), params.frames), size, size)
            maps = extract("canny", clip, low=D.canny_low, high=D.canny_high)
            out = t2v_zero.generate_controlled(pipe, models.controlnet(D.controlnet_model), maps, params,
                                               D.controlnet_scale, on_step=on_step)
        else:
            if not (instruction or "").strip():
                raise ValueError("pix2pix mode needs an instruction, e.g. 'make it blue'")
            clip = sample_frames(read_video_input(source_video, "source_video"), params.frames)
            pipe = models.pipeline(D.pix2pix_model, StableDiffusionInstructPix2PixPipeline)
            out = t2v_zero.edit_pix2pix(pipe, clip, instruction, params, D.image_guidance_scale, on_step=on_step)
        return save_video(out, D.fps), [m for m in maps]

    def motion_from_arrow(points, frames):
        """The clicked arrow as motion_x / motion_y: the content travels it over the clip (positive motion moves
        the content left / up, as the official), clipped to the sliders' range."""
        if len(points) < 2:
            return gr.update(), gr.update()
        dx, dy = arrow_motion(points, frames, t2v_zero.MOTION_REFERENCE)
        clip = lambda value: round(min(max(-value, -D.max_motion), D.max_motion), 1)  # noqa: E731
        return clip(dx), clip(dy)

    pad.picture.select(pad.click, [pad.background, pad.points], [pad.picture, pad.points], **UI_ONLY).then(
        motion_from_arrow, [pad.points, frames], [motion_x, motion_y], **UI_ONLY)
    video.change(lambda path, points: pad.set_background(first_frame(path), points), [video, pad.points],
                 [pad.picture, pad.background], **UI_ONLY)

    inputs = [prompt, frames, motion_x, motion_y, t0, t1, steps, seed, mode, control_video, source_video, instruction,
              guidance_scale, cross_frame, noise]
    engine_event(run, stop, generate, inputs, [video, conditions], api_name="t2v_zero")
    examples(recommendation, EXAMPLES, generate, inputs[:8], [video, conditions])
