"""Tab: Tune-A-Video (docs/METHODS.md §10) — endpoints /tune_a_video_train and /tune_a_video_generate."""
from __future__ import annotations

import re

import gradio as gr

from core import config
from core.methods import tune_a_video
from core.plots import line_plot

from .common import (unet_seconds, examples, recommended_note, CheckedNumber, CheckedSlider, engine_event, folders, handler, header,
                     image_output, read_video_input, run_buttons, save_video, seed_input, step_progress, video_upload,
                     video_output, input_target)



TITLE = "Tune-A-Video"
D = config.TuneAVideoDefaults
# runs on every base model (the embedded model's example video); steps and lr as a tuning example
EXAMPLES = [{"video": "red_circle_moving_right.mp4", "prompt": D.prompt, "steps": 100, "frames": 8, "seed": 0,
             "name": "red-circle-right"}]


def library() -> tune_a_video.TunedLibrary:
    return tune_a_video.TunedLibrary(folders().tuned_video)


def default_name(prompt: str) -> str:
    return re.sub(r"[^\w]+", "-", prompt.lower()).strip("-")[:48] or "tuned"


def build(models) -> None:
    train_values = models.recommended("tune_a_video_train").defaults(D)  # the paper's, or the base model's own
    generate_values = models.recommended("tune_a_video_generate").defaults(D)
    header(TITLE, "One-shot video tuning: the image model is inflated with sparse-causal self-attention (each frame "
                  "reads the first and the previous frame) and zero-initialised temporal layers; only the query "
                  "projections and the temporal layers are tuned on your (video, prompt) pair. Then a new prompt is "
                  "sampled from the DDIM-inverted video.",
           "Temporal layers are AnimateDiff-style motion modules (shared with the AnimateDiff tab) rather than the "
           "official per-block attention, so the Hub's Tune-A-Video-library checkpoints (the official 3D-UNet "
           "layout) do not load here; tune a model in this tab instead."
           + (f" This base model recommends starting at lr {train_values.lr} (the paper's: {D.lr})."
              if train_values.lr != D.lr else ""))
    recommended_note(models.recommended("tune_a_video_train"))
    recommended_note(models.recommended("tune_a_video_generate"))
    with gr.Tab("1. Tune"):
        with gr.Row():
            with gr.Column():
                video = video_upload("video")
                input_target("video", "tune_a_video", TITLE, video)
                prompt = gr.Textbox(D.prompt, label="prompt (describes the video)")
                with gr.Row():
                    steps = CheckedSlider(1, D.max_train_steps, D.train_steps, step=1, precision=0, label="steps")
                    lr = CheckedNumber(train_values.lr, label="lr", minimum=1e-7, maximum=1e-2)
                    frames = CheckedSlider(2, D.max_frames, D.frames, step=1, precision=0, label="frames")
                    seed = seed_input(D.seed)
                name = gr.Textbox("", label="name in the model library (empty: from the prompt)")
                start, stop = run_buttons("Tune")
            with gr.Column():
                loss_plot = image_output("training loss", send=False)
                status = gr.Textbox(label="status", interactive=False)
    with gr.Tab("2. Generate"):
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(library().names(), label="model (a tuned name)", allow_custom_value=True)
                refresh = gr.Button("Refresh the model list", size="sm")
                target = gr.Textbox(D.target_prompt, label="prompt")
                inversion = gr.Checkbox(True, label="inversion (start from the DDIM-inverted video)")
                with gr.Row():
                    gen_steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
                    guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, generate_values.guidance_scale, step=0.5,
                                                   label="guidance_scale")
                    gen_seed = seed_input(D.seed)
                generate_button, generate_stop = run_buttons("Generate")
            with gr.Column():
                result = video_output("video")
                info = gr.JSON(label="tuned model")

    @handler(exclusive=True, gpu_seconds=lambda steps, frames, **_: unet_seconds(steps * frames, training=True))
    def train(video: str, prompt: str, steps: int = D.train_steps, lr: float = D.lr, frames: int = D.frames,
              seed: int = D.seed, name: str = "", progress=gr.Progress()):
        """A generator, so that Cancel stops the tuning between steps."""
        clip = read_video_input(video)
        params = tune_a_video.TuneParams(prompt, int(steps), float(lr), int(frames), int(seed))
        params.check()
        target_name = (name or "").strip() or default_name(prompt)
        lib = library()
        lib.path(target_name)  # a bad name fails before the work
        run = tune_a_video.tune(models.pipeline(), clip, params, base_model=models.base_model)
        losses = []

        def show(update):
            progress(update.step / update.total, desc=f"tuning: step {update.step}/{update.total}")
            if update.step % D.loss_plot_every == 0:
                return line_plot(losses, "ε-loss", "step", "loss"), f"step {update.step}/{update.total}"

        tuned = yield from tune_a_video.relay(run, losses, show)
        lib.save(target_name, tuned)
        yield (line_plot(losses, "ε-loss", "step", "loss"),
               f"saved as {target_name!r} ({tuned.settings['seconds']} s); choose it in 2. Generate")

    @handler(exclusive=True, gpu_seconds=lambda inversion, steps, **_: unet_seconds(
        steps * D.frames * (2 if inversion else 1)))
    def generate(model: str, prompt: str, inversion: bool = True, steps: int = D.steps,
                 guidance_scale: float = D.guidance_scale, seed: int = D.seed, progress=gr.Progress()):
        params = tune_a_video.GenerateParams(prompt, bool(inversion), int(steps), float(guidance_scale), int(seed))
        params.check()
        tuned = library().load((model or "").strip())
        if tuned.settings.get("base_model") not in ("", models.base_model):
            raise ValueError(f"{model!r} was tuned on {tuned.settings['base_model']!r}; the app runs "
                             f"{models.base_model!r}")
        pipe = models.pipeline()
        unet = tune_a_video.tuned_unet(pipe, tuned, models.fresh_motion_unet())
        clip = tune_a_video.generate(pipe, unet, tuned, params, on_step=step_progress(progress, "invert, generate"))
        settings = {k: v for k, v in tuned.settings.items() if k != "losses"}
        return save_video(clip, D.fps), settings

    engine_event(start, stop, train, [video, prompt, steps, lr, frames, seed, name], [loss_plot, status],
                 api_name="tune_a_video_train")
    refresh.click(lambda: gr.Dropdown(choices=library().names()), None, model, api_visibility="private",
                  concurrency_limit=None)  # UI only: outside the engine's queue
    inputs = [model, target, inversion, gen_steps, guidance_scale, gen_seed]
    engine_event(generate_button, generate_stop, generate, inputs, [result, info], api_name="tune_a_video_generate")
    examples(models.recommended("tune_a_video_train"), EXAMPLES, train, [video, prompt, steps, lr, frames, seed, name],
             [loss_plot, status])
