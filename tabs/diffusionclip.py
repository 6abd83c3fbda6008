"""Tab: DiffusionCLIP (docs/METHODS.md §3) — endpoints /diffusionclip_train and /diffusionclip_edit."""
from __future__ import annotations

import gradio as gr
import numpy as np

from core import config
from core.methods import diffusionclip
from core.plots import line_plot
from core.sampling import square_image
from core.shapes import dataset
from core.validate import load_image

from .common import (unet_seconds, CheckedNumber, CheckedSlider, clip_bundle, engine_event, examples, folders, gallery_output, handler, header,
                     image_output, image_upload, run_buttons, step_progress)



TITLE = "DiffusionCLIP"
D = config.DiffusionCLIPDefaults
# training first: it makes the direction the edit example applies
EXAMPLES_TRAIN = [{"source_text": "a red circle", "target_text": "a blue circle", "t0": 400, "iterations": 30,
                   "direction_name": "red-to-blue"}]
EXAMPLES_EDIT = [[str(config.EXAMPLES_DIR / "red_circle_white.png"), "red-to-blue: 1.0", 400]]


def library() -> diffusionclip.DirectionLibrary:
    return diffusionclip.DirectionLibrary(folders().directions)


def saved_text() -> str:
    names = library().names()
    return "Saved directions: " + (", ".join(f"`{n}`" for n in names) if names else "none yet")


def build(models) -> None:
    header(TITLE, "Text-driven editing by fine-tuning: the image is DDIM-inverted to t0 with no text, then decoded "
                  "through a model tuned so that the CLIP-space change from `source_text` to `target_text` "
                  "appears (directional CLIP loss + L1 to the input). Each direction is a small LoRA saved to a "
                  "library, and the edit applies several directions at once with a weight each.",
           "Open re-implementation: the paper tunes the whole model per direction on face/church DDPMs; this "
           "tab tunes a LoRA of the app's base model (embedded: toy-sd with toy-clip).")
    with gr.Tab("train a direction"):
        with gr.Row():
            with gr.Column():
                image = image_upload("image", "image (optional: the toy model draws images of source_text)")
                with gr.Row():
                    source_text = gr.Textbox(D.source_text, label="source_text")
                    target_text = gr.Textbox(D.target_text, label="target_text")
                direction_name = gr.Textbox("red-to-blue", label="direction_name")
                with gr.Row():
                    t0 = CheckedSlider(1, 999, D.t0, step=1, precision=0, label="t0")
                    iterations = CheckedSlider(1, D.max_iterations, D.iterations, step=1, precision=0, label="iterations")
                with gr.Accordion("more settings", open=False):
                    with gr.Row():
                        inversion_steps = CheckedSlider(2, config.MAX_STEPS, D.inversion_steps, step=1, precision=0, label="inversion_steps")
                        train_steps = CheckedSlider(1, D.max_train_steps, D.train_steps, step=1, precision=0, label="train_steps")
                        lr = CheckedNumber(D.lr, minimum=D.min_lr, maximum=D.max_lr, label="lr")
                    with gr.Row():
                        lambda_clip = CheckedNumber(D.lambda_clip, minimum=0, maximum=D.max_lambda, label="lambda_clip")
                        lambda_l1 = CheckedNumber(D.lambda_l1, minimum=0, maximum=D.max_lambda, label="lambda_l1")
                        lambda_id = CheckedNumber(D.lambda_id, minimum=0, maximum=D.max_lambda,
                                                  label="lambda_id (CLIP-feature identity)")
                train_button, train_stop = run_buttons("Train direction")
            with gr.Column():
                results = gallery_output("original · reconstruction · edited", columns=3)
                losses = image_output("loss", send=False)
                saved = gr.Textbox(label="saved direction", interactive=False)
    with gr.Tab("edit with saved directions"):
        with gr.Row():
            with gr.Column():
                edit_image = image_upload("image")
                directions = gr.Textbox("red-to-blue: 1.0", label="directions (name: weight, …)")
                edit_t0 = CheckedSlider(1, 999, D.t0, step=1, precision=0, label="t0")
                listing = gr.Markdown(saved_text())
                edit_button, edit_stop = run_buttons("Edit")
            with gr.Column():
                edited = image_output("edited")

    @handler(exclusive=True, gpu_seconds=lambda iterations, inversion_steps, train_steps, **_: unet_seconds(
        inversion_steps) + unet_seconds(iterations * train_steps, training=True))
    def train(image: str | None = None, source_text: str = D.source_text, target_text: str = D.target_text,
              t0: int = D.t0, iterations: int = D.iterations, direction_name: str = "",
              inversion_steps: int = D.inversion_steps, train_steps: int = D.train_steps, lr: float = D.lr,
              lambda_clip: float = D.lambda_clip, lambda_l1: float = D.lambda_l1, lambda_id: float = D.lambda_id,
              progress=gr.Progress()):
        params = diffusionclip.DiffusionCLIPParams(source_text, target_text, int(t0), int(inversion_steps),
                                                   int(train_steps), int(iterations), float(lr), float(lambda_clip),
                                                   float(lambda_l1), float(lambda_id), D.lora_rank,
                                                   (direction_name or "").strip())
        params.check()
        if not params.direction_name:
            raise ValueError("direction_name is empty: the direction is saved under it")
        pipe = models.pipeline()
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        if image:
            images = square_image(load_image(image), size)[None]
        elif models.base_model == config.EMBEDDED_BASE_MODEL:
            rng = np.random.default_rng(0)
            images = np.stack([dataset.render(s, size) for s in dataset.scenes_matching(source_text, rng, D.n_train_img, size)])
        else:
            raise ValueError("upload an image (procedural training images exist only for the embedded toy model)")
        result = diffusionclip.train(pipe, clip_bundle(models), images, params, library(),
                                     on_step=step_progress(progress, "tuning"))
        gallery = []
        for k in range(min(4, len(images))):
            gallery += [(result.original[k], "original"), (result.reconstruction[k], "reconstruction"),
                        (result.edited[k], "edited")]
        plot = line_plot(result.losses, "training loss", "iteration", "loss")
        return gallery, plot, f"{params.direction_name} ({result.seconds:.0f} s)", saved_text()

    @handler(exclusive=True, gpu_seconds=lambda **_: unet_seconds(D.inversion_steps + D.edit_steps))
    def edit(image: str, directions: str = "red-to-blue: 1.0", t0: int = D.t0, progress=gr.Progress()):
        pixels = load_image(image)
        pipe = models.pipeline()
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        pixels = square_image(pixels, size)
        progress(0, desc="inverting and decoding")
        return diffusionclip.edit(pipe, pixels[None], library(), diffusionclip.parse_directions(directions), int(t0))[0]

    train_inputs = [image, source_text, target_text, t0, iterations, direction_name, inversion_steps, train_steps,
                    lr, lambda_clip, lambda_l1, lambda_id]
    engine_event(train_button, train_stop, train, train_inputs, [results, losses, saved, listing],
                 api_name="diffusionclip_train")
    engine_event(edit_button, edit_stop, edit, [edit_image, directions, edit_t0], edited, api_name="diffusionclip_edit")
    examples(models.recommended("diffusionclip_train"), EXAMPLES_TRAIN, train, train_inputs,
             [results, losses, saved, listing])
    gr.Examples(EXAMPLES_EDIT, [edit_image, directions, edit_t0], edited, fn=edit, cache_examples=False,
                label="Edit example (after the training example has made red-to-blue)")
