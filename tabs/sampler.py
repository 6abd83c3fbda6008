"""Tab: score-based sampler inspector (docs/METHODS.md §5) — endpoint /sampler."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import sampler
from core.schedulers import SCHEDULERS

from .common import (unet_seconds, examples, CheckedSlider, engine_event, gallery_output, handler, header, image_output, run_buttons,
                     seed_input, step_progress)

TITLE = "Sampler inspector"
D = config.SamplerDefaults
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'prompt': 'a photograph of an astronaut riding a horse', 'scheduler': 'DDIM', 'eta': 0.0},
    {'prompt': 'a painting of a fox in the snow, oil on canvas', 'scheduler': 'DDIM', 'eta': 1.0},
]


def build(models) -> None:
    header(TITLE, "Sample with a chosen scheduler and watch the trajectory: the noisy latent x_t and the "
                  "model's prediction of the clean image x̂0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t at evenly spaced steps, "
                  "with the noise schedule ᾱ_t and its signal-to-noise ratio.")
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(D.prompt, label="prompt", elem_id="sampler-prompt")
            scheduler = gr.Dropdown(list(SCHEDULERS), value=D.scheduler, label="scheduler")
            with gr.Row():
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps",
                                      elem_id="sampler-steps")
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
            with gr.Row():
                eta = CheckedSlider(0, 1, D.eta, step=0.05, label="eta (DDIM: 0 deterministic, 1 ≈ DDPM)")
                snapshots = CheckedSlider(1, D.max_snapshots, D.snapshots, step=1, precision=0, label="snapshots")
                seed = seed_input(D.seed)
            run, stop = run_buttons("Sample", "sampler-run")
        with gr.Column():
            image = image_output("final image", elem_id="sampler-image")
            plot = image_output("noise schedule", send=False)
    trajectory = gallery_output("trajectory: x_t and predicted x̂0", columns=8)

    @handler(gpu_seconds=lambda steps, **_: unet_seconds(steps))
    def sample(prompt: str, scheduler: str = D.scheduler, eta: float = D.eta, steps: int = D.steps,
               guidance_scale: float = D.guidance_scale, seed: int = D.seed, snapshots: int = D.snapshots,
               progress=gr.Progress()):
        params = sampler.SamplerParams(prompt, scheduler, float(eta), int(steps), float(guidance_scale),
                                       int(seed), int(snapshots))
        params.check()
        progress(0, desc="loading model")
        result = sampler.run(models.pipeline(), params, on_step=step_progress(progress, "sampling"))
        return result.image, [(img, caption) for caption, img in result.trajectory], result.schedule_plot

    inputs = [prompt, scheduler, eta, steps, guidance_scale, seed, snapshots]
    engine_event(run, stop, sample, inputs, [image, trajectory, plot], api_name="sampler")
    examples(models.recommended("sampler"), EXAMPLES, sample, inputs, [image, trajectory, plot])
