"""Tab: FreeDoM training-free energy guidance (docs/METHODS.md §6) — endpoint /freedom."""
from __future__ import annotations

import cv2
import gradio as gr

from core import config
from core.guidance import clip_inputs
from core.methods import freedom
from core.validate import load_image

from .common import (unet_seconds, examples, CheckedSlider, engine_event, handler, header, image_output, image_upload, run_buttons, seed_input,
                     step_progress)

TITLE = "FreeDoM"
D = config.FreeDoMDefaults
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'prompt': 'a photo of a living room', 'energy': 'text', 'reference_text': 'a photo of a living room in the style of Van Gogh'},
    {'prompt': 'a photo of a dog on the beach', 'energy': 'mask', 'mask': 'mask_right.png', 'reference_text': ''},
]


def build(models) -> None:
    header(TITLE, "Steer sampling with an energy of the predicted clean image x̂0, built from off-the-shelf networks: "
                  "CLIP text, CLIP style (Gram matrix of the 3rd block's patch tokens), or a target mask. Inside the "
                  "guidance window x_{t−1} moves against ∇E; inside the time-travel window each step is redone r "
                  "times after re-noising. The unguided image from the same seed is shown beside the result.",
           "Face parsing and identity energies need their own networks and are not offered offline.")
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(D.prompt, label="prompt")
            energy = gr.Textbox(D.energy, label="energy", info="text, style, mask, or several: 'text+mask' or '{\"text\": 1, \"mask\": 0.5}'")
            reference_text = gr.Textbox(D.reference_text, label="reference_text (text energy)")
            with gr.Row():
                reference_image = image_upload("reference_image", "reference_image (style energy)")
                mask = image_upload("mask", "mask (mask energy: white = where the object should be)")
            with gr.Row():
                rho_scale = CheckedSlider(0, D.max_rho_scale, D.rho_scale, step=0.05, label="rho_scale")
                time_travel = CheckedSlider(1, D.max_time_travel, D.time_travel, step=1, precision=0, label="time_travel")
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                seed = seed_input(D.seed)
            with gr.Accordion("windows (fractions of the steps)", open=False):
                with gr.Row():
                    guidance_start = CheckedSlider(0, 1, D.guidance_start, step=0.05, label="guidance_start")
                    guidance_end = CheckedSlider(0, 1, D.guidance_end, step=0.05, label="guidance_end")
                    travel_start = CheckedSlider(0, 1, D.travel_start, step=0.05, label="travel_start")
                    travel_end = CheckedSlider(0, 1, D.travel_end, step=0.05, label="travel_end")
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
            run, stop = run_buttons("Generate with guidance")
        with gr.Column():
            with gr.Row():
                guided = image_output("guided")
                unguided = image_output("unguided (same seed)")
            plot = image_output("energy per step", send=False)
            energies = gr.JSON(label="final energies")

    # each step also differentiates the energy through the UNet (≈ 3 evaluations), repeated time_travel times
    @handler(gpu_seconds=lambda steps, time_travel, **_: unet_seconds(3 * steps * max(1, time_travel)))
    def generate(prompt: str, energy: str = D.energy, reference_image: str | None = None,
                 reference_text: str = D.reference_text, mask: str | None = None, rho_scale: float = D.rho_scale,
                 guidance_start: float = D.guidance_start, guidance_end: float = D.guidance_end,
                 time_travel: int = D.time_travel, travel_start: float = D.travel_start, travel_end: float = D.travel_end,
                 steps: int = D.steps, seed: int = D.seed, guidance_scale: float = D.guidance_scale,
                 progress=gr.Progress()):
        pipe = models.pipeline()
        side = pipe.unet.config.sample_size * pipe.vae_scale_factor
        ref = cv2.resize(load_image(reference_image, "reference_image"), (side, side)) if reference_image else None
        target = None
        if mask:
            target = cv2.resize(load_image(mask, "mask").mean(-1), (side, side), interpolation=cv2.INTER_NEAREST) > 127
        params = freedom.FreeDoMParams(prompt, energy, reference_text or "", ref, target, float(rho_scale),
                                       float(guidance_start), float(guidance_end), int(time_travel), float(travel_start),
                                       float(travel_end), int(steps), float(guidance_scale), int(seed))
        params.check()
        clip = None
        if set(params.weights()) & {"text", "style"}:
            model, tokenizer = models.clip()
            clip = (model, tokenizer, clip_inputs(model))
        result = freedom.run(pipe, params, clip, on_step=step_progress(progress, "unguided, then guided"))
        return result.guided, result.unguided, result.plot, {"guided": round(result.final_energy, 4),
                                                             "unguided": round(result.unguided_energy, 4)}

    inputs = [prompt, energy, reference_image, reference_text, mask, rho_scale, guidance_start, guidance_end,
              time_travel, travel_start, travel_end, steps, seed, guidance_scale]
    engine_event(run, stop, generate, inputs, [guided, unguided, plot, energies], api_name="freedom")
    examples(models.recommended("freedom"), EXAMPLES, generate, inputs[:5], [guided, unguided, plot, energies])
