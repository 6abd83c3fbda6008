"""Tab: Prompt-to-Prompt (docs/METHODS.md §0) — endpoint /p2p. Also the edit controls /null_text reuses."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr

from core import config
from core.control.alignment import word_alignment
from core.control.schedule import parse_steps
from core.heatmaps import overlay
from core.methods import p2p

from .common import (unet_seconds, UI_ONLY, examples, CheckedSlider, engine_event, gallery_output, handler, header, image_output,
                     image_prompt_controls, load_image_prompt, run_buttons, seed_input, step_progress, image_upload)
from .pointing import (canvas_over, clicked_word, mask_file, model_side, paint_canvas, painted, read_mask, toggle_word,
                       word_chips)

TITLE = "Prompt-to-Prompt"
# the papers' real-world prompts (SD1.5); the embedded model's own are in its studio.json
EXAMPLES = [
    {'source_prompt': 'a cat riding a bicycle', 'target_prompt': 'a cat riding a car'},
    {'source_prompt': 'a painting of a squirrel eating a burger', 'target_prompt': 'a painting of a squirrel eating a lasagne', 'blend_words': 'burger lasagne'},
    {'source_prompt': 'a photo of a house on a mountain', 'target_prompt': 'a photo of a house on a snowy mountain'},
    {'source_prompt': 'a smiling bunny doll', 'target_prompt': 'a smiling bunny doll', 'edit_mode': 'reweight', 'reweight_words': 'smiling', 'reweight_value': -5.0},
]
D = config.P2PDefaults


@dataclass
class EditControls:
    """The P2P widgets, in the order of the endpoint's parameters after the prompts."""
    edit_mode: gr.Dropdown
    cross_replace_steps: gr.Slider
    self_replace_steps: gr.Slider
    blend_words: gr.Textbox
    blend_threshold: gr.Slider
    reweight_words: gr.Textbox
    reweight_value: gr.Slider
    steps: gr.Slider
    guidance_scale: gr.Slider
    seed: gr.Number
    cross_replace_words: gr.Textbox
    blend_exclude_words: gr.Textbox  # last: added after the endpoint's first release

    def inputs(self) -> list:
        return [self.edit_mode, self.cross_replace_steps, self.self_replace_steps, self.blend_words,
                self.blend_threshold, self.reweight_words, self.reweight_value, self.steps, self.guidance_scale,
                self.seed, self.cross_replace_words, self.blend_exclude_words]


def edit_controls(elem_prefix: str) -> EditControls:
    edit_mode = gr.Dropdown(list(p2p.EDIT_MODES), value=D.edit_mode, label="edit_mode",
                            info="auto: replace when the prompts have as many words, else refine",
                            elem_id=f"{elem_prefix}-edit-mode")
    with gr.Row():
        cross = CheckedSlider(0, 1, D.cross_replace_steps, step=0.05, label="cross_replace_steps",
                          info="fraction of steps whose cross-attention comes from the source")
        self_ = CheckedSlider(0, 1, D.self_replace_steps, step=0.05, label="self_replace_steps",
                          info=f"fraction of steps whose self-attention comes from the source (≤{int(config.P2P_MAX_SELF_REPLACE_QUERIES ** 0.5)}² layers)")
    with gr.Row():
        blend_words = gr.Textbox(D.blend_words, label="blend_words",
                                 info="local blend: only these words' region may change; outside it the source's pixels are kept")
        blend_exclude_words = gr.Textbox(D.blend_exclude_words, label="blend_exclude_words",
                                         info="words whose region must stay, taken out of the blend region "
                                              "(the official LocalBlend's substruct_words)")
        blend_threshold = CheckedSlider(0, 1, D.blend_threshold, step=0.05, label="blend_threshold")
    with gr.Row():
        reweight_words = gr.Textbox(D.reweight_words, label="reweight_words", info="words of the target to strengthen/weaken",
                                    elem_id=f"{elem_prefix}-reweight-words")
        reweight_value = CheckedSlider(*D.reweight_range, D.reweight_value, step=0.25, label="reweight_value")
    with gr.Accordion("sampling and per-word schedules", open=False):
        with gr.Row():
            steps = CheckedSlider(1, config.MAX_STEPS, D.steps, step=1, precision=0, label="steps")
            guidance_scale = CheckedSlider(0, config.MAX_GUIDANCE, D.guidance_scale, step=0.5, label="guidance_scale")
            seed = seed_input(D.seed)
        words = gr.Textbox("", label="cross_replace_words",
                           info="per-word cross_replace_steps, e.g. 'circle: 0.3; red: 0.1, 0.5' (a fraction or a start, end range)")
    return EditControls(edit_mode, cross, self_, blend_words, blend_threshold, reweight_words, reweight_value, steps,
                        guidance_scale, seed, words, blend_exclude_words)


def make_params(source_prompt, target_prompt, edit_mode, cross_replace_steps, self_replace_steps, blend_words,
                blend_threshold, reweight_words, reweight_value, steps, guidance_scale, seed,
                cross_replace_words="", blend_exclude_words="", image_prompt_scale=D.image_prompt_scale,
                blend_region: str | None = None) -> p2p.P2PParams:
    cross = float(cross_replace_steps)
    if cross_replace_words and cross_replace_words.strip():
        per_word = parse_steps(cross_replace_words)
        if not isinstance(per_word, dict):
            raise ValueError("cross_replace_words takes 'word: fraction' pairs separated by ';'")
        cross = {"default_": cross, **{k: v for k, v in per_word.items() if k != "default_"}}
    if seed is None:
        raise ValueError("seed must be a whole number")
    return p2p.P2PParams(source_prompt, target_prompt, edit_mode, cross, float(self_replace_steps), blend_words or "",
                         float(blend_threshold), reweight_words or "", float(reweight_value), int(steps),
                         float(guidance_scale), int(seed), blend_exclude_words=blend_exclude_words or "",
                         image_prompt_scale=float(image_prompt_scale), blend_region=region_of(blend_region))


def region_of(path: str | None):
    """A blend_region mask file (white = where the edit may change the picture) → (H, W) bool, or None."""
    from core.validate import load_image
    return read_mask(load_image(path, "blend_region")) if path else None


def gallery(heatmaps, blend_mask=None, image=None) -> list:
    """Per-token heatmaps, then local blend's final mask over `image` when there was one."""
    items = [(picture, token) for token, picture in heatmaps]
    if blend_mask is not None:
        # a fixed 0–1 scale: a mask covering the whole picture must not be drawn as an empty one
        items.append((overlay(image, blend_mask, value_range=(0.0, 1.0)), "local-blend mask (last step)"))
    return items


# the word lists a click on a word can fill, in the order offered
WORD_ROLES = ("reweight_words", "blend_words", "blend_exclude_words")
ROLE_COLORS = {"reweight_words": "#f59e0b", "blend_words": "#10b981", "blend_exclude_words": "#ef4444"}
ALIGNMENT_COLORS = {"kept": "#d1d5db", "added": "#10b981", "changed": "#f59e0b"}


CLIP_CONTEXT = 77  # CLIP's text context in tokens


@functools.cache
def alignment_tokenizer():
    """CLIP's BPE, which every base model here shares, built on first use."""
    from core.tokenizer import clip_tokenizer
    return clip_tokenizer(CLIP_CONTEXT)


def alignment_items(source: str, target: str, edit_mode: str) -> list:
    if not (source or "").strip() or not (target or "").strip():
        return []
    mode = edit_mode if edit_mode in ("replace", "refine") else "auto"
    items = []
    for word, what in word_alignment(alignment_tokenizer(), source, target, mode):
        items += [(word, what), (" ", None)]
    return items[:-1]


def shares_table(shares) -> str:
    """The attention shares of a run as a table: per word position, the source's word and share, the edit's."""
    if not shares:
        return ""
    source, edited = shares.get("source", []), shares.get("edited", [])
    rows = ["| source word | share | edited word | share |", "|---|---|---|---|"]
    for index in range(max(len(source), len(edited))):
        left = source[index] if index < len(source) else ("", None)
        right = edited[index] if index < len(edited) else ("", None)
        cell = lambda share: "" if share is None else f"{100 * share:.1f}%"  # noqa: E731
        rows.append(f"| {left[0]} | {cell(left[1])} | {right[0]} | {cell(right[1])} |")
    return "\n".join(rows)


@dataclass
class WordTools:
    """The prompts as clickable words (a click adds or removes one in the chosen word list) and what the edit will
    do to each target word (before running); after a run (`connect`), each word's share of the attention."""
    source_prompt: gr.Textbox
    target_prompt: gr.Textbox
    click_sets: gr.Radio
    source_chips: gr.HighlightedText
    chips: gr.HighlightedText
    alignment: gr.HighlightedText
    shares: gr.State | None = None

    def connect(self, controls: EditControls, heatmaps, elem_prefix: str) -> gr.State:
        """Wire the words to `controls`' word lists (typing keeps working) and to the heatmap gallery (a click on a
        heatmap chooses its word); the attention shares' view goes where this is called. Returns the State a run
        fills with its shares (an output the API does not see)."""
        roles = [controls.reweight_words, controls.blend_words, controls.blend_exclude_words]
        self.shares = gr.State(None)
        shares_view = gr.Markdown("", elem_id=f"{elem_prefix}-shares")

        def refresh_chips(target, *texts):
            return word_chips(target, dict(zip(WORD_ROLES, texts)))

        for prompt, chips in ((self.source_prompt, self.source_chips), (self.target_prompt, self.chips)):
            for component in [prompt, *roles]:
                component.change(refresh_chips, [prompt, *roles], chips, **UI_ONLY)
        for component in (self.source_prompt, self.target_prompt, controls.edit_mode):
            component.change(alignment_items, [self.source_prompt, self.target_prompt, controls.edit_mode],
                             self.alignment, **UI_ONLY)

        def on_click(role, reweight, blend, exclude, event: gr.SelectData):
            """The clicked word (or heatmap's) added to, or taken out of, the chosen word list."""
            word = clicked_word(event)
            texts = (reweight, blend, exclude)
            if not word:
                return [gr.update()] * len(texts)
            return [toggle_word(text, word) if name == role else gr.update() for name, text in zip(WORD_ROLES, texts)]

        self.source_chips.select(on_click, [self.click_sets, *roles], roles, **UI_ONLY)
        self.chips.select(on_click, [self.click_sets, *roles], roles, **UI_ONLY)
        heatmaps.select(on_click, [self.click_sets, *roles], roles, **UI_ONLY)
        self.shares.change(shares_table, self.shares, shares_view, **UI_ONLY)
        return self.shares


def word_tools(source_prompt, target_prompt, elem_prefix: str) -> WordTools:
    """The clickable words, shown where this is called (under the prompts); `WordTools.connect` wires them."""
    with gr.Group():
        click_sets = gr.Radio(list(WORD_ROLES), value=WORD_ROLES[0], label="a click on a word adds it to (or takes it "
                              "out of)", elem_id=f"{elem_prefix}-click-sets")
        chosen = {"reweight_words": D.reweight_words, "blend_words": D.blend_words,
                  "blend_exclude_words": D.blend_exclude_words}
        source_chips = gr.HighlightedText(word_chips(source_prompt.value, chosen),
                                          label="source_prompt's words: click to choose (blend words may be either "
                                                "prompt's)", combine_adjacent=False, show_legend=False,
                                          color_map=ROLE_COLORS, elem_id=f"{elem_prefix}-source-words")
        chips = gr.HighlightedText(word_chips(target_prompt.value, chosen),
                                   label="target_prompt's words: click to choose", combine_adjacent=False,
                                   show_legend=True, color_map=ROLE_COLORS, elem_id=f"{elem_prefix}-words")
        alignment = gr.HighlightedText(alignment_items(source_prompt.value, target_prompt.value, D.edit_mode),
                                       label="what the edit does to each target word (swap ← source word, added, kept)",
                                       combine_adjacent=False, show_legend=False, color_map=ALIGNMENT_COLORS,
                                       elem_id=f"{elem_prefix}-alignment")
    return WordTools(source_prompt, target_prompt, click_sets, source_chips, chips, alignment)


def region_tools(picture, side: int, elem_prefix: str):
    """A canvas over `picture` (the tab's source image, once there is one) to paint the region the edit may change,
    and the mask file it makes (the endpoint's `blend_region`; uploading a mask works too)."""
    with gr.Accordion("paint the region the edit may change (an addition to the paper: local blend from a painted "
                      "mask instead of, or within, blend_words' region)", open=False):
        canvas = paint_canvas("paint over the source picture (once there is one)", side,
                              elem_id=f"{elem_prefix}-region-canvas")
        region = image_upload("blend_region", "blend_region (white = where the edit may change the picture)",
                              elem_id=f"{elem_prefix}-region")
    canvas.input(lambda value: mask_file(painted(value)), canvas, region, **UI_ONLY)
    picture.change(canvas_over, [picture, canvas], canvas, **UI_ONLY)
    return region


def build(models) -> None:
    header(TITLE, "Edit a generated image by editing its prompt: the edited prompt is generated from the same noise "
                  "while the source prompt's attention maps are injected, so the layout stays. Word swap, refinement "
                  "(added words), reweighting and local blending, as in Hertz et al. 2022.")
    with gr.Row():
        with gr.Column():
            source_prompt = gr.Textbox(D.source_prompt, label="source_prompt", elem_id="p2p-source")
            target_prompt = gr.Textbox(D.target_prompt, label="target_prompt", elem_id="p2p-target")
            words = word_tools(source_prompt, target_prompt, "p2p")
            controls = edit_controls("p2p")
            image_prompt, image_prompt_scale = image_prompt_controls(D, "both prompts also see it")
            run, stop = run_buttons("Generate and edit", "p2p-run")
        with gr.Column():
            with gr.Row():
                source_image = image_output("source", elem_id="p2p-source-image")
                edited_image = image_output("edited", elem_id="p2p-edited")
            heatmaps = gallery_output("cross-attention per source token (averaged over steps; click one to choose its "
                                      "word)", columns=6, elem_id="p2p-heatmaps")
            shares = words.connect(controls, heatmaps, "p2p")
            blend_region = region_tools(source_image, model_side(models), "p2p")

    @handler(gpu_seconds=lambda steps, **_: unet_seconds(2 * steps))  # source and edit
    def generate(source_prompt: str, target_prompt: str, edit_mode: str = D.edit_mode,
                 cross_replace_steps: float = D.cross_replace_steps, self_replace_steps: float = D.self_replace_steps,
                 blend_words: str = D.blend_words, blend_threshold: float = D.blend_threshold,
                 reweight_words: str = D.reweight_words, reweight_value: float = D.reweight_value,
                 steps: int = D.steps, guidance_scale: float = D.guidance_scale, seed: int = D.seed,
                 cross_replace_words: str = "", blend_exclude_words: str = D.blend_exclude_words,
                 image_prompt: str | None = None, image_prompt_scale: float = D.image_prompt_scale,
                 blend_region: str | None = None, progress=gr.Progress()):
        params = make_params(source_prompt, target_prompt, edit_mode, cross_replace_steps, self_replace_steps,
                             blend_words, blend_threshold, reweight_words, reweight_value, steps, guidance_scale,
                             seed, cross_replace_words, blend_exclude_words, image_prompt_scale, blend_region)
        params.check()
        progress(0, desc="loading model")
        pipe = models.pipeline()
        prompt = load_image_prompt(models, image_prompt, params.image_prompt_scale)
        result = p2p.edit(pipe, params, on_step=step_progress(progress, f"{p2p.resolve_mode(params)}"),
                          image_prompt=prompt)
        return (result.source_image, result.edited_image, gallery(result.heatmaps, result.blend_mask, result.source_image),
                result.attention_shares)

    inputs = [source_prompt, target_prompt, *controls.inputs()]
    outputs = [source_image, edited_image, heatmaps, shares]  # the shares: page only (a State)
    engine_event(run, stop, generate, inputs + [image_prompt, image_prompt_scale, blend_region], outputs,
                 api_name="p2p")
    examples(models.recommended("p2p"), EXAMPLES, generate, inputs, outputs)
