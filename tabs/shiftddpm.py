"""Tab: ShiftDDPM (docs/METHODS.md §2) — endpoint /shiftddpm."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import shiftddpm
from core.plots import curves_plot

from .common import (unet_seconds, examples, CheckedSlider, engine_event, gallery_output, handler, header, image_output, run_buttons,
                     seed_input, step_progress)

TITLE = "ShiftDDPM"
D = config.ShiftDDPMDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'class_name': 'red circle', 'variant': 'prior_shift', 'sampler': 'DDIM', 'steps': 50, 'seed': 0, 'n': 8, 'interpolate_to': '', 'mix': 0.5},
    {'class_name': 'blue triangle', 'variant': 'prior_shift', 'sampler': 'DDPM', 'steps': 1000, 'seed': 1, 'n': 4, 'interpolate_to': '', 'mix': 0.5},
    {'class_name': 'green square', 'variant': 'prior_shift', 'sampler': 'DDIM', 'steps': 50, 'seed': 2, 'n': 8, 'interpolate_to': 'yellow circle', 'mix': 0.5},
]


def build(models) -> None:
    header(TITLE, "Class-conditional generation where the class enters **only through the forward process**: "
                  "q(x_t | x₀, c) = N(√ᾱ_t·x₀ + k_t·E(c), (1−ᾱ_t)·I). The UNet takes no class input; a learned "
                  "image E(c) shifts each class's diffusion trajectory. Shifted DDPM follows the official code; "
                  "shifted DDIM is ours (the official code has none).",
           "Embedded: toy-shiftddpm (prior shift), trained here on 32×32 coloured shapes (18 classes "
           "\"colour shape\"); a variant without a trained model says so.")
    classes = shiftddpm.toy_class_names()
    with gr.Row():
        with gr.Column():
            class_name = gr.Dropdown(classes, value=D.class_name, label="class_name", allow_custom_value=True)
            with gr.Row():
                variant = gr.Dropdown(list(shiftddpm.VARIANTS), value=D.variant, label="variant (k_t)")
                sampler = gr.Dropdown(list(shiftddpm.SAMPLERS), value=D.sampler, label="sampler")
            with gr.Row():
                steps = CheckedSlider(1, D.max_steps, D.steps, step=1, precision=0, label="steps (1000 = full DDPM)")
                n = CheckedSlider(1, D.max_n, D.n, step=1, precision=0, label="n (samples)")
                seed = seed_input(D.seed)
            with gr.Accordion("interpolate E(c) towards a second class", open=False):
                interpolate_to = gr.Dropdown([""] + classes, value=D.interpolate_to, label="interpolate_to",
                                             allow_custom_value=True)
                mix = CheckedSlider(0, 1, D.mix, step=0.05, label="mix (0: class_name, 1: interpolate_to)")
            run, stop = run_buttons("Sample")
        with gr.Column():
            samples = gallery_output("samples", columns=4)
            with gr.Row():
                shift_map = image_output("E(c): the learned shift", send=False)
                curves = image_output("k_t of the three variants", send=False)
    trajectory = gallery_output("trajectory of the first sample: x_t", columns=8)

    @handler(gpu_seconds=lambda steps, n, **_: unet_seconds(steps * n / 16))  # a 32-px pixel model
    def generate(class_name: str = D.class_name, variant: str = D.variant, sampler: str = D.sampler,
                 steps: int = D.steps, seed: int = D.seed, n: int = D.n, interpolate_to: str = D.interpolate_to,
                 mix: float = D.mix, progress=gr.Progress()):
        if variant not in config.SHIFTDDPM_VARIANT_MODELS:
            raise ValueError(f"variant must be one of {', '.join(shiftddpm.VARIANTS)}")
        shiftddpm.check_request(steps, n, seed)
        progress(0, desc="loading model")
        model = shiftddpm.load_model(models, config.SHIFTDDPM_VARIANT_MODELS[variant])
        weights = model.class_weights(class_name, interpolate_to or None, float(mix))
        result = shiftddpm.sample(model, weights, n=int(n), sampler=sampler, steps=int(steps), seed=int(seed),
                                  snapshots=D.snapshots, on_step=step_progress(progress, sampler))
        plot = curves_plot(shiftddpm.k_curves(model.num_train_timesteps, model.beta_start, model.beta_end),
                           "shift coefficient k_t", "timestep t", "k_t", highlight=model.variant)
        label = class_name if not interpolate_to else f"{1 - mix:.2f}·{class_name} + {mix:.2f}·{interpolate_to}"
        return ([(image, label) for image in result.images], shiftddpm.shift_image(result.shift), plot,
                [(image, f"t={t}") for t, image in result.trajectory])

    inputs = [class_name, variant, sampler, steps, seed, n, interpolate_to, mix]
    outputs = [samples, shift_map, curves, trajectory]
    engine_event(run, stop, generate, inputs, outputs, api_name="shiftddpm")
    examples(models.recommended("shiftddpm"), EXAMPLES, generate, inputs, outputs)
