"""Tab: T2I-Adapter (docs/METHODS.md §9) — endpoint /t2i_adapter."""
from __future__ import annotations

import gradio as gr

from core import config
from core.conditions import EXTRACTORS
from core.methods import t2i_adapter
from core.validate import load_image

from .common import (unet_seconds, examples, image_file, CheckedSlider, engine_event, gallery_output, handler, header, image_output,
                     run_buttons, sampling_controls, step_progress, UI_ONLY, input_target)
from .pointing import DRAW_COLORS, drawing, model_side, sketch_canvas

TITLE = "T2I-Adapter"
D = config.T2IAdapterDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'conditions': ['blue_square_left_white.png'], 'condition_types': ['canny'], 'weights': '1.0', 'prompt': 'a red object on a white background', 'cond_tau': 1.0, 'extract': True, 'steps': 25, 'seed': 0},
    {'conditions': ['blue_square_left_white.png', 'yellow_circle_black.png'], 'condition_types': ['canny', 'palette'], 'weights': '1.0, 1.0', 'prompt': 'an object on a white background', 'cond_tau': 1.0, 'extract': True, 'steps': 25, 'seed': 1},
    {'conditions': ['yellow_circle_black.png'], 'condition_types': ['palette'], 'weights': '1.0', 'prompt': 'a square on a gray background', 'cond_tau': 0.5, 'extract': True, 'steps': 25, 'seed': 2},
]


# what can be drawn, in the order offered (the base model's adapters permitting), and the brush colours
DRAWN_KINDS = ("sketch", "canny", "palette")
EXTRACTED_DRAWINGS = {"palette"}  # drawn colours go through the extractor; line drawings are maps already


def parse_weights(text: str, count: int) -> list[float]:
    """'1.0, 0.5' → [1.0, 0.5]; one number is used for every adapter."""
    parts = [p.strip() for p in str(text or "").split(",") if p.strip()]
    try:
        weights = [float(p) for p in parts] or [D.weight]
    except ValueError:
        raise ValueError(f"weights must be numbers separated by commas, got {text!r}") from None
    return weights * count if len(weights) == 1 else weights


def build(models) -> None:
    header(TITLE, "Steer a frozen text-to-image model with condition maps (edges, colour blocks, …): one small "
                  "adapter per condition turns its map into features added to the UNet's encoder, computed once. "
                  "Several adapters add up, each times its weight; `cond_tau` keeps them for only the first "
                  "fraction of the steps (the official switch; 0 = no adapter).",
           "Upload one image per chosen condition type, in the same order. With 'extract' on, the condition "
           "is extracted from each upload (shown on the right); off, the uploads are used as condition maps. "
           "Embedded: toy-adapters (canny, palette) for toy-sd; on a GPU the TencentARC SD1.x adapters.")
    kinds = sorted({kind for adapters in config.T2I_ADAPTERS.values() for kind in adapters})
    drawable = [k for k in DRAWN_KINDS if k in config.T2I_ADAPTERS.get(models.base_model, {})] or list(DRAWN_KINDS)
    with gr.Row():
        with gr.Column():
            conditions = gr.File(label="conditions (one image per condition type)", file_count="multiple",
                                 file_types=["image"], type="filepath", elem_id="t2i-conditions")
            input_target("image", "t2i_adapter", TITLE, conditions)
            with gr.Accordion("or draw the condition", open=True):
                drawn_kind = gr.Radio(drawable, value=drawable[0], label="the drawing is a",
                                      info="sketch / canny: white lines on black, used as the map; palette: colour "
                                           "blocks, coarsened by the extractor. The drawing replaces the uploads.")
                canvas = sketch_canvas("drawing", model_side(models), elem_id="t2i-canvas", colors=DRAW_COLORS)
            condition_types = gr.Dropdown(kinds, value=list(D.condition_types), multiselect=True,
                                          label="condition_types (in upload order)")
            weights = gr.Textbox(str(D.weight), label="weights (one per condition type, comma-separated)")
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                cond_tau = CheckedSlider(0, 1, D.cond_tau, step=0.05, label="cond_tau")
                extract = gr.Checkbox(D.extract, label="extract conditions from the uploads")
            steps, seed, guidance_scale = sampling_controls(D, "t2i")
            run, stop = run_buttons("Generate", "t2i-run")
        with gr.Column():
            image = image_output("result", elem_id="t2i-result")
            maps = gallery_output("condition maps used", columns=4, format="png", elem_id="t2i-maps")

    @handler(gpu_seconds=lambda steps, **_: unet_seconds(steps))
    def generate(conditions: list[str], condition_types: list[str] = list(D.condition_types), weights: str = "1.0",
                 prompt: str = D.prompt, cond_tau: float = D.cond_tau, extract: bool = D.extract,
                 steps: int = D.steps, seed: int = D.seed, guidance_scale: float = D.guidance_scale,
                 progress=gr.Progress()):
        condition_types = list(condition_types or [])
        if not conditions:
            raise ValueError("no condition image given: upload one per condition type")
        unknown = [kind for kind in condition_types if kind not in EXTRACTORS and extract]
        if unknown:
            raise ValueError(f"no offline extractor for {', '.join(unknown)}: untick 'extract' and upload the map")
        images = [load_image(path, f"condition {i + 1}") for i, path in enumerate(conditions)]
        params = t2i_adapter.AdapterParams(prompt, condition_types, parse_weights(weights, len(condition_types)),
                                           float(cond_tau), bool(extract), int(steps), float(guidance_scale), int(seed))
        params.check()
        if len(images) != len(condition_types):
            raise ValueError(f"{len(condition_types)} condition types but {len(images)} condition images")
        progress(0, desc="loading models")
        pipe = models.pipeline()
        adapters = models.t2i_adapters(condition_types)
        result = t2i_adapter.generate(pipe, adapters, images, params, on_step=step_progress(progress, "sampling"))
        return result.image, [(m, kind) for m, kind in zip(result.maps, condition_types)]

    def use_drawing(value, kind):
        """The drawing as the one condition: a line map as it is (extract off), colour blocks through the palette
        extractor."""
        picture = drawing(value)
        if picture is None:
            return gr.update(), gr.update(), gr.update()
        return [image_file(picture)], [kind], kind in EXTRACTED_DRAWINGS

    canvas.input(use_drawing, [canvas, drawn_kind], [conditions, condition_types, extract], **UI_ONLY)
    drawn_kind.change(use_drawing, [canvas, drawn_kind], [conditions, condition_types, extract], **UI_ONLY)

    inputs = [conditions, condition_types, weights, prompt, cond_tau, extract, steps, seed, guidance_scale]
    engine_event(run, stop, generate, inputs, [image, maps], api_name="t2i_adapter")
    examples(models.recommended("t2i_adapter"), EXAMPLES, generate, inputs[:-1], [image, maps])
