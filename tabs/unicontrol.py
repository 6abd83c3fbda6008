"""Tab: UniControl (docs/METHODS.md §7) — endpoint /unicontrol."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import unicontrol
from core.unicontrol import INSTRUCTIONS
from core.validate import load_image

from .common import (unet_seconds, examples, image_file, CheckedSlider, engine_event, handler, header, image_output, image_upload,
                     run_buttons, sampling_controls, step_progress, UI_ONLY, input_target)
from .pointing import DRAW_COLORS, drawing, model_side, sketch_canvas

TITLE = "UniControl"
D = config.UniControlDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'condition_image': 'blue_square_left_white.png', 'task': 'canny edge to image', 'prompt': 'a red object on a white background', 'strength': 1.0, 'extract': True, 'steps': 25, 'seed': 0},
    {'condition_image': 'green_triangle_white.png', 'task': 'segmentation map to image', 'prompt': 'a blue object on a white background', 'strength': 1.0, 'extract': True, 'steps': 25, 'seed': 1},
    {'condition_image': 'yellow_circle_black.png', 'task': 'color blocks to image', 'prompt': 'a square on a white background', 'strength': 1.0, 'extract': True, 'steps': 25, 'seed': 2},
]




def build(models) -> None:
    header(TITLE, "One control model for many kinds of condition. The task instruction (e.g. \"canny edge to "
                  "image\") picks the model's input stem for that condition (its mixture of experts) and, "
                  "encoded by the text encoder, drives a HyperNet that modulates every zero-convolution.",
           "Embedded: toy-unicontrol for toy-sd, three tasks (canny edge, segmentation map, colour blocks). "
           "On a GPU: the official checkpoint (Robert001/UniControl-Model, its safetensors file) converted "
           "on load into the same class.")
    with gr.Row():
        with gr.Column():
            condition_image = image_upload("condition_image")
            input_target("image", "unicontrol", TITLE, condition_image)
            with gr.Accordion("or draw the condition", open=False):
                canvas = sketch_canvas("drawing (white lines for edges and sketches; colours for maps and blocks)",
                                       model_side(models), elem_id="unicontrol-canvas", colors=DRAW_COLORS)
            task = gr.Dropdown(list(INSTRUCTIONS.values()), value=D.task, allow_custom_value=True,
                               label="task (instruction)")
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                strength = CheckedSlider(0, D.max_strength, D.strength, step=0.05, label="strength")
                extract = gr.Checkbox(D.extract, label="extract the condition from the upload")
            steps, seed, guidance_scale = sampling_controls(D)
            run, stop = run_buttons("Generate")
        with gr.Column():
            image = image_output("result")
            condition = image_output("condition map used")

    @handler(gpu_seconds=lambda steps, **_: unet_seconds(steps))
    def generate(condition_image: str, task: str = D.task, prompt: str = D.prompt, strength: float = D.strength,
                 extract: bool = D.extract, steps: int = D.steps, seed: int = D.seed,
                 guidance_scale: float = D.guidance_scale, progress=gr.Progress()):
        pixels = load_image(condition_image, "condition_image")
        params = unicontrol.UniControlParams(prompt, task, float(strength), bool(extract), int(steps),
                                             float(guidance_scale), int(seed))
        params.check()
        progress(0, desc="loading models")
        pipe = models.pipeline()
        model = models.unicontrol()
        result = unicontrol.generate(pipe, model, pixels, params, on_step=step_progress(progress, "sampling"))
        return result.image, result.condition

    def use_drawing(value, task):
        """The drawing as the condition: a map as it is, colour blocks through the task's extractor."""
        picture = drawing(value)
        if picture is None:
            return gr.update(), gr.update()
        return image_file(picture), "color" in str(task)

    canvas.input(use_drawing, [canvas, task], [condition_image, extract], **UI_ONLY)

    inputs = [condition_image, task, prompt, strength, extract, steps, seed, guidance_scale]
    engine_event(run, stop, generate, inputs, [image, condition], api_name="unicontrol")
    examples(models.recommended("unicontrol"), EXAMPLES, generate, inputs[:-1], [image, condition])
