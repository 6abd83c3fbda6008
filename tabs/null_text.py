"""Tab: Null-text inversion for real-image editing (docs/METHODS.md §13) — endpoint /null_text."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import null_text
from core.validate import load_image

from .common import (unet_seconds, examples, CheckedNumber, CheckedSlider, engine_event, gallery_output, handler, header,
                     image_output, image_upload, run_buttons, step_progress, input_target)
from .pointing import model_side


from .p2p import edit_controls, gallery, make_params, region_tools, word_tools

TITLE = "Null-text inversion"
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'image': 'red_circle_white.png', 'source_prompt': 'a red circle on a white background', 'target_prompt': 'a blue circle on a white background', 'inversion': 'null-text', 'num_inner_steps': 10, 'early_stop_epsilon': 1e-05, 'edit_mode': 'auto', 'cross_replace_steps': 0.8, 'self_replace_steps': 0.4, 'blend_words': '', 'blend_threshold': 0.3, 'reweight_words': '', 'reweight_value': 2.0, 'steps': 25, 'guidance_scale': 6.0, 'seed': 0, 'cross_replace_words': '', 'blend_exclude_words': ''},
    {'image': 'red_circle_white.png', 'source_prompt': 'a red circle on a white background', 'target_prompt': 'a green circle on a white background', 'inversion': 'negative-prompt', 'num_inner_steps': 10, 'early_stop_epsilon': 1e-05, 'edit_mode': 'auto', 'cross_replace_steps': 0.8, 'self_replace_steps': 0.4, 'blend_words': 'circle', 'blend_threshold': 0.3, 'reweight_words': '', 'reweight_value': 2.0, 'steps': 25, 'guidance_scale': 6.0, 'seed': 0, 'cross_replace_words': '', 'blend_exclude_words': ''},
]
D, P = config.NullTextDefaults, config.P2PDefaults


def build(models) -> None:
    header(TITLE, "Edit a real image: invert it with its caption (DDIM pivots, then per-step optimisation of the "
                  "unconditional 'null-text' embedding — or the fast negative-prompt inversion), check the "
                  "reconstruction, then edit with all Prompt-to-Prompt controls. The inversion is cached, so "
                  "further edits of the same image and caption skip it.")
    cache = null_text.InversionCache()
    with gr.Row():
        with gr.Column():
            image = image_upload("image", elem_id="nt-image")
            input_target("image", "null_text", TITLE, image)
            source_prompt = gr.Textbox(P.source_prompt, label="source_prompt (caption of the image)")
            target_prompt = gr.Textbox(P.target_prompt, label="target_prompt")
            words = word_tools(source_prompt, target_prompt, "nt")
            with gr.Row():
                inversion = gr.Dropdown(list(null_text.INVERSIONS), value=D.inversion, label="inversion",
                                        elem_id="nt-inversion")
                num_inner_steps = CheckedSlider(0, D.max_inner_steps, D.num_inner_steps, step=1, precision=0, label="num_inner_steps")
                early_stop_epsilon = CheckedNumber(D.early_stop_epsilon, minimum=0, maximum=1, label="early_stop_epsilon")
            controls = edit_controls("nt")
            run, stop = run_buttons("Invert and edit", "nt-run")
        with gr.Column():
            with gr.Row():
                reconstruction = image_output("reconstruction", elem_id="nt-reconstruction")
                edited = image_output("edited")
            with gr.Row():
                psnr = gr.Number(label="reconstruction PSNR (dB)", precision=2)
                seconds = gr.Number(label="inversion seconds (0 = cached)", precision=2)
            heatmaps = gallery_output("cross-attention per caption token (click one to choose its word)", columns=6)
            shares = words.connect(controls, heatmaps, "nt")
            blend_region = region_tools(image, model_side(models), "nt")

    @handler(exclusive=True, gpu_seconds=lambda inversion, num_inner_steps, steps, **_: unet_seconds(
        steps * (1 + (2 * num_inner_steps if inversion == "null-text" else 0) + 2)))
    def invert_and_edit(image: str, source_prompt: str, target_prompt: str, inversion: str = D.inversion,
                        num_inner_steps: int = D.num_inner_steps, early_stop_epsilon: float = D.early_stop_epsilon,
                        edit_mode: str = P.edit_mode, cross_replace_steps: float = P.cross_replace_steps,
                        self_replace_steps: float = P.self_replace_steps, blend_words: str = P.blend_words,
                        blend_threshold: float = P.blend_threshold, reweight_words: str = P.reweight_words,
                        reweight_value: float = P.reweight_value, steps: int = P.steps,
                        guidance_scale: float = P.guidance_scale, seed: int = P.seed, cross_replace_words: str = "",
                        blend_exclude_words: str = P.blend_exclude_words, blend_region: str | None = None,
                        progress=gr.Progress()):
        pixels = load_image(image)
        edit = make_params(source_prompt, target_prompt, edit_mode, cross_replace_steps, self_replace_steps,
                           blend_words, blend_threshold, reweight_words, reweight_value, steps, guidance_scale, seed,
                           cross_replace_words, blend_exclude_words, blend_region=blend_region)
        params = null_text.NullTextParams(edit, inversion, int(num_inner_steps), float(early_stop_epsilon))
        params.check()
        progress(0, desc="loading model")
        result = null_text.run(models.pipeline(), pixels, params, cache, models.base_model,
                               on_step=step_progress(progress, f"{inversion} inversion"))
        return (result.reconstruction, result.edited, round(result.psnr, 2), round(result.seconds, 2),
                gallery(result.heatmaps, result.blend_mask, result.reconstruction), result.attention_shares)

    inputs = [image, source_prompt, target_prompt, inversion, num_inner_steps, early_stop_epsilon, *controls.inputs()]
    outputs = [reconstruction, edited, psnr, seconds, heatmaps, shares]  # the shares: page only (a State)
    engine_event(run, stop, invert_and_edit, inputs + [blend_region], outputs, api_name="null_text")
    examples(models.recommended("null_text"), EXAMPLES, invert_and_edit, inputs, outputs)
