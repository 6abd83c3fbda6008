"""Tab: FateZero (docs/METHODS.md §11) — endpoint /fatezero."""
from __future__ import annotations

import gradio as gr

from core import config
from core.methods import fatezero

from .common import (unet_seconds, examples, recommended_note, CheckedSlider, engine_event, handler, header, image_prompt_controls,
                     load_image_prompt, read_video_input, run_buttons, save_video, seed_input, step_progress,
                     video_upload, video_output, input_target)



TITLE = "FateZero"
D = config.FateZeroDefaults
# runs on every base model (the embedded model's example files)
EXAMPLES = [
    {'video': 'red_circle_moving_right.mp4', 'source_prompt': 'a red circle moving right on a white background', 'target_prompt': 'a blue circle moving right on a white background', 'cross_replace_steps': 0.8, 'self_replace_steps': 0.8, 'blend_words': '', 'blend_threshold': 0.3, 'amplify_words': '', 'amplify_value': 10.0, 'frames': 8, 'steps': 25, 'seed': 0},
    {'video': 'red_circle_moving_right.mp4', 'source_prompt': 'a red circle moving right on a white background', 'target_prompt': 'a red square moving right on a white background', 'cross_replace_steps': 0.5, 'self_replace_steps': 0.5, 'blend_words': 'circle', 'blend_threshold': 0.3, 'amplify_words': '', 'amplify_value': 10.0, 'frames': 8, 'steps': 25, 'seed': 0},
]


def build(models) -> None:
    recommendation = models.recommended("fatezero")
    V = recommendation.defaults(D)  # the starting values: the paper's, or what the base model recommends
    header(TITLE, "Zero-shot video editing: the source video is DDIM-inverted; the target prompt is then sampled from "
                  "the inverted noise with the inversion's attention maps fused in (cross-attention of shared words "
                  "replaced, self-attention blended by the source mask of blend_words). Frames attend to themselves "
                  "and the middle frame.",
           f"The inversion's maps (layers with ≤ {config.MAX_SELF_ATTENTION_QUERIES} queries) are recomputed while "
           "editing by a source branch at each step's inverted latent — one latent per step is kept, not the maps "
           "(attention_maps = store: the official approach, fp16 maps on the CPU; see bench/).")
    recommended_note(recommendation)
    with gr.Row():
        with gr.Column():
            video = video_upload("video")
            input_target("video", "fatezero", TITLE, video)
            source_prompt = gr.Textbox(D.source_prompt, label="source_prompt")
            target_prompt = gr.Textbox(D.target_prompt, label="target_prompt")
            with gr.Row():
                cross = CheckedSlider(0, 1, D.cross_replace_steps, step=0.05, label="cross_replace_steps")
                self_ = CheckedSlider(0, 1, D.self_replace_steps, step=0.05, label="self_replace_steps")
            with gr.Row():
                blend_words = gr.Textbox(D.blend_words, label="blend_words (source words that may change)")
                blend_threshold = CheckedSlider(0, 1, D.blend_threshold, step=0.05, label="blend_threshold")
            with gr.Row():
                amplify_words = gr.Textbox(D.amplify_words, label="amplify_words")
                amplify_value = CheckedSlider(0, D.max_amplify, D.amplify_value, step=1, label="amplify_value")
            with gr.Row():
                frames = CheckedSlider(1, D.max_frames, D.frames, step=1, precision=0, label="frames",
                                       elem_id="fatezero-frames")
                steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps",
                                      elem_id="fatezero-steps")
                seed = seed_input(D.seed)
                guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
            unconditional = gr.Radio(["source", "empty"], value=V.unconditional,
                                     label="unconditional branch prompt (source: negative-prompt inversion; "
                                           "empty: the official code)")
            attention_maps = gr.Radio(list(D.attention_maps_choices), value=D.attention_maps,
                                      label="attention_maps (recompute: a source branch while editing; store: kept "
                                            "from the inversion — the same video, far more memory)")
            image_prompt, image_prompt_scale = image_prompt_controls(D, "the edit sees it")
            run, stop = run_buttons("Invert and edit", "fatezero-run")
        with gr.Column():
            edited = video_output("edited", elem_id="fatezero-edited")
            reconstruction = video_output("reconstruction (target = source)")
            memory = gr.Textbox(label="kept between inversion and editing", interactive=False)

    @handler(gpu_seconds=lambda frames, steps, **_: unet_seconds(3 * frames * steps))  # inversion, source, edit
    def edit(video: str, source_prompt: str, target_prompt: str, cross_replace_steps: float = D.cross_replace_steps,
             self_replace_steps: float = D.self_replace_steps, blend_words: str = D.blend_words,
             blend_threshold: float = D.blend_threshold, amplify_words: str = D.amplify_words,
             amplify_value: float = D.amplify_value, frames: int = D.frames, steps: int = D.steps, seed: int = D.seed,
             guidance_scale: float = D.guidance_scale, unconditional: str = D.unconditional,
             attention_maps: str = D.attention_maps, image_prompt: str | None = None,
             image_prompt_scale: float = D.image_prompt_scale, progress=gr.Progress()):
        clip = read_video_input(video)
        params = fatezero.FateZeroParams(
            source_prompt, target_prompt, float(cross_replace_steps), float(self_replace_steps), blend_words or "",
            float(blend_threshold), amplify_words or "", float(amplify_value), frames=int(frames), steps=int(steps),
            guidance_scale=float(guidance_scale), seed=int(seed), unconditional=unconditional,
            attention_maps=attention_maps, image_prompt_scale=float(image_prompt_scale))
        params.check()
        prompt = load_image_prompt(models, image_prompt, params.image_prompt_scale)
        result = fatezero.run(models.pipeline(), clip, params, on_step=step_progress(progress, "invert, edit, reconstruct"),
                              image_prompt=prompt)
        what = "inverted latents" if params.attention_maps == "recompute" else "stored attention maps"
        stored = f"{result.stored_bytes / 2**20:.1f} MiB of {what} for {len(result.edited)} frames × {params.steps} steps"
        return save_video(result.edited, D.fps), save_video(result.reconstruction, D.fps), stored

    inputs = [video, source_prompt, target_prompt, cross, self_, blend_words, blend_threshold, amplify_words,
              amplify_value, frames, steps, seed, guidance_scale, unconditional, attention_maps]
    engine_event(run, stop, edit, inputs + [image_prompt, image_prompt_scale], [edited, reconstruction, memory],
                 api_name="fatezero")
    examples(recommendation, EXAMPLES, edit, inputs[:12], [edited, reconstruction, memory])
