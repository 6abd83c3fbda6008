"""Tab: AnimateDiff (docs/METHODS.md §14) — endpoint /animatediff."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import animatediff
from core.video import write_video

from .common import (unet_seconds, examples, recommended_note, CheckedSlider, engine_event, handler, header, image_prompt_controls,
                     load_image_prompt, output_path, run_buttons, save_video, seed_input,
                     step_progress, video_output)
from .pointing import camera_directions, direction_picker

TITLE = "AnimateDiff"
D = config.AnimateDiffDefaults
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'prompt': 'a golden retriever running on the beach at sunset, highly detailed'},
    {'prompt': 'a ship sailing on a stormy sea, oil painting', 'motion_lora': 'guoyww/animatediff-motion-lora-zoom-in'},
]


def build(models) -> None:
    embedded = models.base_model == config.EMBEDDED_BASE_MODEL
    recommendation = models.recommended("animatediff")
    V = recommendation.defaults(D)  # the starting values: the paper's, or what the base model recommends
    header(TITLE, "Animate a text-to-image model with a motion module trained once: temporal transformers are "
                  "inserted after every block of the base model's UNet (any SD1.5 fine-tune), optionally with "
                  "motion LoRAs for camera moves.",
           f"Motion adapter: {models.motion_adapter_name()} for the app's base model"
           + (" (trained here on moving shapes: 8-frame clips, 'a {color} {shape} moving {left|right|up|down} "
              "on a … background')." if embedded else "; other bases use "
              f"{config.HUB_MOTION_ADAPTER}."))
    recommended_note(recommendation)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                base_model = gr.Textbox(D.base_model, label="base_model (empty: the app's; or an SD1.5 fine-tune's Hub id)")
                toy_loras = [name for name in config.EMBEDDED_MOTION_LORAS if (config.MODELS_DIR / name).is_dir()]
                motion_lora = gr.Dropdown([""] + (toy_loras if embedded else []) + list(config.HUB_MOTION_LORAS),
                                          value=D.motion_lora, allow_custom_value=True,
                                          label="motion_lora (empty: none; toy-motion-lora-* for the embedded base, "
                                                "guoyww/* for SD1.5)")
                motion_lora_scale = CheckedSlider(0, D.max_motion_lora_scale, D.motion_lora_scale, step=0.05,
                                              label="motion_lora_scale")
            direction_picker("camera move: click a direction (the motion LoRA for it)",
                             camera_directions(motion_lora.choices and [value for _, value in motion_lora.choices]),
                             motion_lora, elem_id="animatediff-camera")
            with gr.Row():
                frames = CheckedSlider(2, D.max_frames, V.frames, step=1, precision=0, label="frames")
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
                seed = seed_input(D.seed)
            image_prompt, image_prompt_scale = image_prompt_controls(D, "every frame sees it")
            run, stop = run_buttons("Animate")
        with gr.Column():
            video = video_output("video")
            gif = gr.File(label="GIF")

    @handler(exclusive=True, gpu_seconds=lambda frames, steps, **_: unet_seconds(frames * steps))
    def animate(prompt: str, base_model: str = D.base_model, motion_lora: str = D.motion_lora,
                motion_lora_scale: float = D.motion_lora_scale, frames: int = D.frames, steps: int = D.steps,
                guidance_scale: float = D.guidance_scale, seed: int = D.seed, image_prompt: str | None = None,
                image_prompt_scale: float = D.image_prompt_scale, progress=gr.Progress()):
        params = animatediff.AnimateDiffParams(prompt, float(motion_lora_scale), int(frames), int(steps),
                                               float(guidance_scale), int(seed),
                                               image_prompt_scale=float(image_prompt_scale))
        params.check()
        base = (base_model or "").strip() or models.base_model
        progress(0, desc="loading the base model and motion adapter")
        pipe, unet = models.pipeline(base), models.motion_unet(base)
        loras = {"domain": 1.0}
        if (motion_lora or "").strip():
            loras[models.motion_lora(unet, motion_lora.strip())] = float(motion_lora_scale)
        image = load_image_prompt(models, image_prompt, params.image_prompt_scale)  # the app's base model's adapter
        clip = animatediff.generate(pipe, unet, params, loras, on_step=step_progress(progress, "animate"),
                                    image_prompt=image)
        return save_video(clip, D.fps), str(write_video(clip, output_path(".gif"), fps=D.fps))

    inputs = [prompt, base_model, motion_lora, motion_lora_scale, frames, steps, guidance_scale, seed]
    engine_event(run, stop, animate, inputs + [image_prompt, image_prompt_scale], [video, gif], api_name="animatediff")
    examples(recommendation, EXAMPLES, animate, inputs, [video, gif])
