"""Tab: Imagen-Video-style cascade (docs/METHODS.md §16) — endpoint /imagen_video."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import imagen_video

from .common import (unet_seconds, examples, CheckedSlider, engine_event, handler, header, run_buttons, save_video,
                     seed_input, step_progress, video_output)

TITLE = "Imagen Video (cascade)"
D = config.CascadeDefaults
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'prompt': 'a teddy bear washing the dishes'},
    {'prompt': 'an astronaut riding a horse, steampunk'},
]


def build(models) -> None:
    header(TITLE, "A cascade after Imagen Video: a base text-to-video stage at few frames, temporal super-resolution "
                  "(new frames inserted between the base frames, which condition them by replacement at every "
                  "step) and spatial super-resolution (the upsampled video denoised from part-way), with "
                  "noise-conditioning augmentation between stages, dynamic thresholding of x̂0 and oscillating "
                  "guidance as options. Every stage's video is shown.",
           "Open re-implementation: Imagen Video's weights are not public. Every stage runs the app's motion model "
           f"({models.motion_adapter_name()} over {models.base_model}) training-free.")
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                base_frames = CheckedSlider(2, D.max_frames, D.base_frames, step=1, precision=0, label="base_frames")
                tsr_factor = CheckedSlider(1, D.max_factor, D.tsr_factor, step=1, precision=0, label="tsr_factor")
                ssr_factor = CheckedSlider(1, D.max_factor, D.ssr_factor, step=1, precision=0, label="ssr_factor")
            with gr.Row():
                noise_aug = CheckedSlider(0, 1, D.noise_aug, step=0.05, label="noise_aug (conditioning noise between stages)")
                dynamic_threshold = CheckedSlider(0, 1, D.dynamic_threshold, step=0.005,
                                              label="dynamic_threshold (percentile; 0 = off)")
                oscillating_guidance = gr.Checkbox(False, label="oscillating_guidance")
            with gr.Row():
                seed = seed_input(D.seed)
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps (per stage)")
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
            run, stop = run_buttons("Run the cascade")
        with gr.Column():
            base = video_output("1. base")
            tsr = video_output("2. temporal super-resolution")
            ssr = video_output("3. spatial super-resolution")
            shapes = gr.Textbox(label="stage shapes (frames × height × width)", interactive=False)

    @handler(exclusive=True, gpu_seconds=lambda base_frames, tsr_factor, ssr_factor, steps, **_: unet_seconds(
        steps * base_frames * (1 + tsr_factor * (1 + ssr_factor ** 2))))  # base, TSR, SSR stages
    def cascade(prompt: str, base_frames: int = D.base_frames, tsr_factor: int = D.tsr_factor,
                ssr_factor: int = D.ssr_factor, noise_aug: float = D.noise_aug,
                dynamic_threshold: float = D.dynamic_threshold, oscillating_guidance: bool = False, seed: int = D.seed,
                steps: int = D.steps, guidance_scale: float = D.guidance_scale, progress=gr.Progress()):
        params = imagen_video.CascadeParams(prompt, int(base_frames), int(tsr_factor), int(ssr_factor),
                                            float(noise_aug), float(dynamic_threshold), bool(oscillating_guidance),
                                            int(seed), int(steps), float(guidance_scale))
        params.check()
        progress(0, desc="loading the base model and motion adapter")
        pipe, unet = models.pipeline(), models.motion_unet()
        stages = imagen_video.run(pipe, unet, params, loras={"domain": 1.0},
                                  on_step=step_progress(progress, "base → TSR → SSR"))
        fps = [D.fps / int(tsr_factor), D.fps, D.fps]  # the base spans the same time as the TSR clip
        described = "; ".join(f"{s.name}: {' × '.join(map(str, s.frames.shape[:3]))}" for s in stages)
        return (*[save_video(s.frames, f) for s, f in zip(stages, fps)], described)

    inputs = [prompt, base_frames, tsr_factor, ssr_factor, noise_aug, dynamic_threshold, oscillating_guidance, seed,
              steps, guidance_scale]
    engine_event(run, stop, cascade, inputs, [base, tsr, ssr, shapes], api_name="imagen_video")
    examples(models.recommended("imagen_video"), EXAMPLES, cascade, inputs[:8], [base, tsr, ssr, shapes])
