"""Tab: ChatFace (docs/METHODS.md §4) — endpoint /chatface."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import chatface
from core.plots import line_plot
from core.validate import load_image
from core.sampling import square_image

from .common import examples, CheckedSlider, engine_event, handler, header, image_output, image_upload, run_buttons, step_progress

TITLE = "ChatFace"
D = config.ChatFaceDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'image': 'red_circle_white.png', 'instruction': 'make it blue and a bit bigger', 'strength_scale': 1.0, 'steps': 25},
    {'image': 'green_triangle_white.png', 'instruction': 'turn it into a square, much smaller', 'strength_scale': 1.0, 'steps': 25},
    {'image': 'red_circle_white.png', 'instruction': 'make the background black', 'strength_scale': 1.0, 'steps': 25},
]


def build(models) -> None:
    header(TITLE, "Edit by instruction in the semantic space of a diffusion autoencoder: the image is encoded into "
                  "a semantic code z and a noise code x_T; your words become an edit plan (shown as JSON), the plan "
                  "moves z along attribute directions, and decoding uses z_t, interpolated from z_edit at the start "
                  "towards z at the end, so the identity stays.",
           "ChatFace has no public code or weights: this is an open re-implementation. The chat is an offline rule "
           "parser (the paper uses ChatGPT); directions are diffae-style linear probes. Embedded: toy-chatface, a "
           "diffusion autoencoder trained here over toy-sd on coloured shapes.")
    with gr.Row():
        with gr.Column():
            image = image_upload("image")
            instruction = gr.Textbox(D.instruction, label="instruction")
            with gr.Row():
                strength_scale = CheckedSlider(0, D.max_strength_scale, D.strength_scale, step=0.1, label="strength_scale")
                steps = CheckedSlider(2, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
            run, stop = run_buttons("Edit")
        with gr.Column():
            with gr.Row():
                edited = image_output("edited")
                reconstruction = image_output("reconstruction (z unchanged)")
            plan = gr.JSON(label="edit plan")
            schedule = image_output("z_t schedule")

    @handler(exclusive=True)
    def edit(image: str, instruction: str = D.instruction, strength_scale: float = D.strength_scale,
             steps: int = D.steps, progress=gr.Progress()):
        pixels = load_image(image)
        progress(0, desc="loading models")
        pipe = models.pipeline()
        model = chatface.load_model(models)
        pixels = square_image(pixels, pipe.unet.config.sample_size * pipe.vae_scale_factor)
        result = chatface.edit(pipe, model, pixels, instruction, float(strength_scale), int(steps),
                               on_step=step_progress(progress, "inverting and decoding"))
        plot = line_plot(list(result.schedule), "share of Δz in z_t", "sampling step (T → 0)", "share")
        return result.edited, result.reconstruction, result.plan.as_json(), plot

    inputs = [image, instruction, strength_scale, steps]
    outputs = [edited, reconstruction, plan, schedule]
    engine_event(run, stop, edit, inputs, outputs, api_name="chatface")
    examples(models.recommended("chatface"), EXAMPLES, edit, inputs, outputs)
