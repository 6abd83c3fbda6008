"""Tab: ChatFace (docs/METHODS.md §4) — endpoints /chatface and /chatface_train."""
from __future__ import annotations

import re

import gradio as gr

from core import config
from core.methods import chatface
from core.plots import line_plot
from core.validate import load_image
from core.sampling import square_image

from .common import (unet_seconds, CheckedNumber, CheckedSlider, clip_bundle, engine_event, examples, folders, gallery_output,
                     handler, header, image_output, image_upload, run_buttons, step_progress, input_target)

TITLE = "ChatFace"
D = config.ChatFaceDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'image': 'red_circle_white.png', 'instruction': 'make it blue and a bit bigger', 'strength_scale': 1.0, 'steps': 25},
    {'image': 'green_triangle_white.png', 'instruction': 'turn it into a square, much smaller', 'strength_scale': 1.0, 'steps': 25},
    {'image': 'red_circle_white.png', 'instruction': 'make the background black', 'strength_scale': 1.0, 'steps': 25},
]


def stand_in(base_model: str) -> str:
    """The tab's line on what stands in for ChatFace's unpublished autoencoder on this base model."""
    if not chatface.uses_image_embedding(base_model):
        return ("ChatFace has no public code or weights: this is an open re-implementation. The chat is an offline rule "
                "parser (the paper uses ChatGPT); directions are diffae-style linear probes, or mappers you train. "
                "Embedded: toy-chatface, a diffusion autoencoder trained here over toy-sd on coloured shapes.")
    repo, filename = config.IP_ADAPTERS[base_model]["image"]
    return (f"On {base_model}: a CLIP-embedding autoencoder via IP-Adapter ({repo}, {filename.rsplit('/', 1)[-1]}), "
            "not DiffAE (whose weights exist only as pickles): z is the CLIP image embedding, the decoder is the base "
            "model reading z through IP-Adapter, x_T its DDIM inversion. Edits need a mapper per attribute, trained "
            "here with ChatFace's CLIP directional loss (\"train a mapper\"). The chat is an offline rule parser.")


def library(base_model: str):
    """The mappers trained for `base_model` (each base has its own code space)."""
    from core.directions import DirectionLibrary
    return DirectionLibrary(folders().directions / "chatface" / re.sub(r"\W", "_", base_model))


def saved_text(base_model: str) -> str:
    names = library(base_model).names()
    return "Trained mappers: " + (", ".join(f"`{n}`" for n in names) if names else "none yet")


def build(models) -> None:
    header(TITLE, "Edit by instruction in the semantic space of a diffusion autoencoder: the image is encoded into "
                  "a semantic code z and a noise code x_T; your words become an edit plan (shown as JSON), the plan "
                  "moves z (attribute directions, or mappers trained with a CLIP directional loss), and decoding "
                  "uses z_t, interpolated from z_edit at the start towards z at the end, so the identity stays.",
           stand_in(models.base_model))
    with gr.Tab("edit"):
        with gr.Row():
            with gr.Column():
                image = image_upload("image")
                input_target("image", "chatface", TITLE, image)
                instruction = gr.Textbox(D.instruction, label="instruction")
                with gr.Row():
                    strength_scale = CheckedSlider(0, D.max_strength_scale, D.strength_scale, step=0.1,
                                                   label="strength_scale")
                    steps = CheckedSlider(2, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                run, stop = run_buttons("Edit")
            with gr.Column():
                with gr.Row():
                    edited = image_output("edited")
                    reconstruction = image_output("reconstruction (z unchanged)")
                plan = gr.JSON(label="edit plan")
                schedule = image_output("z_t schedule", send=False)
    with gr.Tab("train a mapper"):
        with gr.Row():
            with gr.Column():
                train_image = image_upload("image")
                train_instruction = gr.Textbox(D.train_instruction, label="instruction (the one attribute it learns)")
                with gr.Row():
                    source_text = gr.Textbox(D.source_text, label="source_text")
                    target_text = gr.Textbox(D.target_text, label="target_text")
                iterations = CheckedSlider(1, D.max_iterations, D.iterations, step=1, precision=0, label="iterations")
                with gr.Accordion("more settings", open=False):
                    with gr.Row():
                        train_steps = CheckedSlider(2, D.max_train_steps, D.train_steps, step=1, precision=0,
                                                    label="train_steps")
                        lr = CheckedNumber(D.lr, minimum=D.min_lr, maximum=D.max_lr, label="lr")
                        lambda_clip = CheckedNumber(D.lambda_clip, minimum=0, maximum=D.max_lambda, label="lambda_clip")
                        lambda_l2 = CheckedNumber(D.lambda_l2, minimum=0, maximum=D.max_lambda, label="lambda_l2")
                listing = gr.Markdown(saved_text(models.base_model))
                train_button, train_stop = run_buttons("Train mapper")
            with gr.Column():
                trained = gallery_output("reconstruction · edited", columns=2)
                losses = image_output("loss", send=False)
                saved = gr.Textbox(label="saved mapper", interactive=False)

    def square(path: str, name: str = "image"):
        pipe = models.pipeline()
        return square_image(load_image(path, name), pipe.unet.config.sample_size * pipe.vae_scale_factor)

    @handler(exclusive=True, gpu_seconds=lambda steps, **_: unet_seconds(2 * steps))  # inversion, then decoding
    def edit(image: str, instruction: str = D.instruction, strength_scale: float = D.strength_scale,
             steps: int = D.steps, progress=gr.Progress()):
        pixels = square(image)
        progress(0, desc="loading models")
        result = chatface.edit(chatface.codec_for(models), pixels, instruction, float(strength_scale), int(steps),
                               mappers=library(models.base_model),
                               on_step=step_progress(progress, "inverting and decoding"))
        plot = line_plot(list(result.schedule), "share of Δz in z_t", "sampling step (T → 0)", "share")
        return result.edited, result.reconstruction, result.plan.as_json(), plot

    @handler(exclusive=True, gpu_seconds=lambda iterations, train_steps, **_: unet_seconds(iterations * train_steps,
                                                                                          training=True))
    def train(image: str, instruction: str = D.train_instruction, source_text: str = D.source_text,
              target_text: str = D.target_text, iterations: int = D.iterations, train_steps: int = D.train_steps,
              lr: float = D.lr, lambda_clip: float = D.lambda_clip, lambda_l2: float = D.lambda_l2,
              progress=gr.Progress()):
        params = chatface.MapperParams(instruction, source_text, target_text, int(iterations), int(train_steps),
                                       float(lr), float(lambda_clip), float(lambda_l2))
        params.check()
        pixels = square(image)
        progress(0, desc="loading models")
        result = chatface.train_mapper(chatface.codec_for(models), clip_bundle(models), pixels, params,
                                       library(models.base_model), on_step=step_progress(progress, "training"))
        plot = line_plot(result.losses, "training loss", "iteration", "loss")
        return ([(result.reconstruction, "reconstruction"), (result.edited, "edited")], plot,
                f"{result.name} ({result.seconds:.0f} s)", saved_text(models.base_model))

    inputs = [image, instruction, strength_scale, steps]
    outputs = [edited, reconstruction, plan, schedule]
    engine_event(run, stop, edit, inputs, outputs, api_name="chatface")
    train_inputs = [train_image, train_instruction, source_text, target_text, iterations, train_steps, lr, lambda_clip,
                    lambda_l2]
    engine_event(train_button, train_stop, train, train_inputs, [trained, losses, saved, listing],
                 api_name="chatface_train")
    examples(models.recommended("chatface"), EXAMPLES, edit, inputs, outputs)
