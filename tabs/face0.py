"""Tab: Face0 (docs/METHODS.md §1) — endpoint /face0."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import face0
from core.guidance import clip_inputs
from core.validate import load_image

from .common import (unet_seconds, examples, CheckedSlider, engine_event, handler, header, image_output, image_upload, run_buttons,
                     seed_input, step_progress, input_target)

TITLE = "Face0"
D = config.Face0Defaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'face_image': 'green_triangle_white.png', 'prompt': 'an object on a white background', 'c': 1.0, 'a': 0.5, 'steps': 25, 'seed': 0},
    {'face_image': 'red_circle_white.png', 'prompt': 'an object on a black background', 'c': 1.0, 'a': 0.5, 'steps': 25, 'seed': 1},
    {'face_image': 'green_triangle_white.png', 'prompt': 'a blue square on a gray background', 'c': 0.5, 'a': 0.5, 'steps': 25, 'seed': 2},
]


def identity_source(base_model: str) -> str | None:
    """How the face enters on this base model: "mapper" (a trained Face0 mapper), "ip-adapter" (IP-Adapter
    plus-face standing in), or None (neither is listed)."""
    if base_model in config.FACE0_MAPPERS:
        return "mapper"
    return "ip-adapter" if "plus-face" in config.IP_ADAPTERS.get(base_model, {}) else None


def stand_in(base_model: str) -> str:
    """The tab's one line on what stands in for Face0's unpublished weights on this base model."""
    source = identity_source(base_model)
    if source == "mapper":
        return ("Face0's weights are not public: this is an open re-implementation. The mapper here is trained by "
                "scripts/train_face0_mapper.py over a frozen base model (the paper also fine-tunes the UNet); "
                f"{config.FACE0_MAPPERS[base_model]}'s 'identity' is an object's colour and shape, embedded by CLIP.")
    if source == "ip-adapter":
        repo, filename = config.IP_ADAPTERS[base_model]["plus-face"]
        return (f"On {base_model}, IP-Adapter plus-face ({repo}, {filename.rsplit('/', 1)[-1]}) stands in for Face0's "
                "unpublished weights: the face enters through image cross-attention, not by replacing the last three "
                "text tokens (no public weights do that in safetensors); the three-way guidance is Face0's.")
    return f"No Face0 mapper or face IP-Adapter is listed for {base_model}: this tab gives a clear error there."


def build(models) -> None:
    header(TITLE, "Generate with an identity taken from one reference image, with no per-identity training: the "
                  "face (for the toy model: the object) is detected and cropped, embedded, mapped by an MLP into "
                  "the text encoder's space and written into the prompt's last three token slots "
                  "(SD's 75–77). Sampling mixes ε̂ = c·ε(text, face) + (1−c)·(a·ε(face) + (1−a)·ε(text)).",
           stand_in(models.base_model))
    with gr.Row():
        with gr.Column():
            face_image = image_upload("face_image", "face_image (reference)")
            input_target("image", "face0", TITLE, face_image)
            prompt = gr.Textbox(D.prompt, label="prompt")
            with gr.Row():
                c = CheckedSlider(0, 1, D.c, step=0.05, label="c (weight of text+face)")
                a = CheckedSlider(0, 1, D.a, step=0.05, label="a (face-only share of the rest)")
            with gr.Row():
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
                seed = seed_input(D.seed)
            run, stop = run_buttons("Generate")
        with gr.Column():
            image = image_output("result")
            crop = image_output("detected crop (the identity)")
            found = gr.Textbox(label="detected", interactive=False)

    @handler(gpu_seconds=lambda steps, **_: unet_seconds(steps))
    def generate(face_image: str, prompt: str = D.prompt, c: float = D.c, a: float = D.a,
                 steps: int = D.steps, seed: int = D.seed, guidance_scale: float = D.guidance_scale,
                 progress=gr.Progress()):
        pixels = load_image(face_image, "face_image")
        params = face0.Face0Params(prompt, float(c), float(a), float(guidance_scale), int(steps), int(seed))
        params.check()
        progress(0, desc="loading models")
        pipe = models.pipeline()
        if identity_source(models.base_model) == "ip-adapter":
            adapter, encoder, processor = models.ip_adapter("plus-face")
            result = face0.generate_with_image_prompt(pipe, adapter, encoder, processor, pixels, params,
                                                      on_step=step_progress(progress, "sampling"))
        else:
            mapper, _ = models.face0_mapper()
            clip_model, _ = models.clip()
            result = face0.generate(pipe, mapper, clip_model, clip_inputs(clip_model), pixels, params,
                                    on_step=step_progress(progress, "sampling"))
        x, y, w, h = result.box
        return result.image, result.crop, f"{result.found} at x={x}, y={y}, {w}×{h} px"

    inputs = [face_image, prompt, c, a, steps, seed, guidance_scale]
    engine_event(run, stop, generate, inputs, [image, crop, found], api_name="face0")
    examples(models.recommended("face0"), EXAMPLES, generate, inputs[:-1], [image, crop, found])
