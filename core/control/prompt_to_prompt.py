"""Prompt-to-Prompt's editing (Hertz et al. 2022): generate a source prompt P and an edited prompt P* from the
same noise, injecting P's attention maps into P*'s. The P2P method (core.methods.p2p) and null-text inversion's
edits (core.methods.null_text) both run it.

`build_controllers` turns the parameters into the engine's controllers (edit → reweight → store
→ blend); `edit` runs both prompts in one batch through the one denoising loop, from fresh
noise or from inverted latents with per-step null-text embeddings (core.methods.null_text).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..attention import install
from ..denoisers import TextGuided
from ..heatmaps import token_heatmaps
from ..sampling import decode, denoise, encode_prompts, prepare_latents, square_mask
from ..tokenizer import TOKENIZER_LOCK
from ..validate import check_prompt, check_range, check_sampling
from .alignment import refinement_alignment, replacement_mapper, token_positions, word_tokens
from .blend import LocalBlend, overlay_source
from .edit import AttentionRefine, AttentionReplace, AttentionReweight, cross_edit, same_word_count
from .schedule import check_steps, cross_replace_alpha, parse_steps, step_window
from .store import AttentionStore

EDIT_MODES = ("auto", "replace", "refine", "reweight")
D = config.P2PDefaults


@dataclass
class P2PParams:
    source_prompt: str
    target_prompt: str
    edit_mode: str = D.edit_mode  # auto: replace when word counts match, else refine
    cross_replace_steps: object = D.cross_replace_steps  # fraction, (start, end) or {"default_": f, word: g}
    self_replace_steps: object = D.self_replace_steps
    blend_words: str = D.blend_words  # words whose region alone may change ("" = no local blend)
    blend_threshold: float = D.blend_threshold
    reweight_words: str = D.reweight_words  # words of the target whose attention is scaled
    reweight_value: float = D.reweight_value
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    blend_start: float = D.blend_start  # fraction of steps before local blend starts
    blend_exclude_words: str = D.blend_exclude_words  # words whose region may not change (official substruct_words)
    image_prompt_scale: float = D.image_prompt_scale  # an image prompt's weight (IP-Adapter), when one is given
    # a painted region (H, W) bool, any resolution: only there may the edit change the picture (local blend from a
    # painted mask, our addition to the paper; with blend_words, their region within it)
    blend_region: np.ndarray | None = None

    def check(self) -> None:
        check_prompt(self.source_prompt, "source_prompt")
        check_prompt(self.target_prompt, "target_prompt")
        if self.edit_mode not in EDIT_MODES:
            raise ValueError(f"edit_mode must be one of {', '.join(EDIT_MODES)}, got {self.edit_mode!r}")
        self.cross_replace_steps = parse_steps(self.cross_replace_steps)
        self.self_replace_steps = parse_steps(self.self_replace_steps)
        check_steps("cross_replace_steps", self.cross_replace_steps)
        check_steps("self_replace_steps", self.self_replace_steps)
        if isinstance(self.self_replace_steps, dict):
            raise ValueError("self_replace_steps takes a fraction or a (start, end) range, not per-word values")
        check_range("blend_threshold", self.blend_threshold, 0.0, 1.0)
        if self.blend_exclude_words.strip() and not self.blend_words.strip():
            raise ValueError("blend_exclude_words needs blend_words (it takes words out of local blend's region)")
        check_range("reweight_value", self.reweight_value, *D.reweight_range)
        check_sampling(self.steps, self.guidance_scale, self.seed)
        check_range("blend_start", self.blend_start, 0.0, 1.0)
        check_range("image_prompt_scale", self.image_prompt_scale, 0.0, D.max_image_prompt_scale)
        if self.blend_region is not None:
            region = np.asarray(self.blend_region)
            if region.ndim != 2 or not region.any():
                raise ValueError("blend_region is empty: paint the region the edit may change (or leave it out)")
            self.blend_region = region.astype(bool)


@dataclass
class Controllers:
    store: AttentionStore
    blend: LocalBlend | None
    edit: object | None
    reweight: AttentionReweight | None
    mode: str

    def as_list(self) -> list:
        """The edit first, then the store (it records the edited maps, as the official's store, which holds the
        very tensor the edit then changes in place), then the blend that reads the store."""
        return [c for c in (self.edit, self.reweight, self.store, self.blend) if c is not None]


@dataclass
class P2PResult:
    source_image: np.ndarray
    edited_image: np.ndarray
    heatmaps: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (token, overlay)
    blend_mask: np.ndarray | None = None
    mode: str = ""
    # "source" / "edited" → per word of that prompt, (word, its share of the attention the prompt's words get,
    # averaged over steps and layers): a reweighted word's share moves the asked way
    attention_shares: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


def resolve_mode(params: P2PParams) -> str:
    if params.edit_mode != "auto":
        return params.edit_mode
    if params.source_prompt.strip() == params.target_prompt.strip() and params.reweight_words.strip():
        return "reweight"
    return "replace" if same_word_count(params.source_prompt, params.target_prompt) else "refine"


def heatmap_side(unet) -> int:
    """The resolution whose cross-attention maps carry the layout: 16×16 (SD1.5 at 512 px), or the
    latent side itself when the latent is smaller (toy-sd: 16)."""
    latent = unet.config.sample_size
    return min(config.P2P_MAP_SIDE, latent)


def build_controllers(tokenizer, params: P2PParams, num_steps: int, map_side: int) -> Controllers:
    mode = resolve_mode(params)
    source, target = params.source_prompt, params.target_prompt
    store = AttentionStore(map_side)
    alpha = cross_replace_alpha(tokenizer, target, params.cross_replace_steps, num_steps)
    self_window = step_window(params.self_replace_steps, num_steps)
    common = dict(cross_alpha=alpha, self_window=self_window, max_self_queries=config.P2P_MAX_SELF_REPLACE_QUERIES)
    if mode == "replace":
        edit = AttentionReplace(replacement_mapper(tokenizer, source, target), **common)
    elif mode == "refine":
        edit = AttentionRefine(*refinement_alignment(tokenizer, source, target), **common)
    else:  # reweight alone: the target attends as the source does, then reweighting applies
        edit = cross_edit(tokenizer, source, target, **common)
    reweight = None
    if params.reweight_words.strip():
        positions = token_positions(tokenizer, target, params.reweight_words)
        if not positions:
            raise ValueError(f"reweight_words {params.reweight_words!r} are not words of the target prompt")
        equalizer = torch.ones(tokenizer.model_max_length)
        equalizer[positions] = float(params.reweight_value)
        reweight = AttentionReweight(equalizer, alpha.any(dim=1))
    elif mode == "reweight":
        raise ValueError("edit_mode 'reweight' needs reweight_words")
    blend = None
    if params.blend_region is not None and not params.blend_words.strip():
        blend = LocalBlend(store, None, params.blend_threshold, int(params.blend_start * num_steps),
                           region=params.blend_region)
    elif params.blend_words.strip():
        positions = [token_positions(tokenizer, p, params.blend_words) for p in (source, target)]
        if not any(positions):
            raise ValueError(f"blend_words {params.blend_words!r} are not words of either prompt")
        exclude = None
        if params.blend_exclude_words.strip():
            exclude = [token_positions(tokenizer, p, params.blend_exclude_words) for p in (source, target)]
            if not any(exclude):
                raise ValueError(f"blend_exclude_words {params.blend_exclude_words!r} are not words of either prompt")
        blend = LocalBlend(store, positions, params.blend_threshold, int(params.blend_start * num_steps), exclude,
                           region=params.blend_region)
    return Controllers(store, blend, edit, reweight, mode)


def edit(pipe, params: P2PParams, latents: torch.Tensor | None = None, uncond_embeds=None, on_step=None,
         heatmap_image: np.ndarray | None = None, image_prompt=None) -> P2PResult:
    """Run source and target prompts together with the edit's controllers.

    latents: the shared x_T (1, C, h, w); fresh noise from `seed` when None. uncond_embeds: a
    tensor or per-step list (null-text); the empty prompt's embedding when None. image_prompt: a
    core.ip_adapter.ImagePrompt both prompts also see (IP-Adapter), or None."""
    params.check()
    num_steps = int(params.steps)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if params.blend_region is not None:  # painted over the picture as given: cropped and resized as it is
        params = replace(params, blend_region=square_mask(params.blend_region, size))
    controllers = build_controllers(pipe.tokenizer, params, num_steps, heatmap_side(pipe.unet))
    if latents is None:
        latents = prepare_latents(pipe, 1, size, size, torch.Generator().manual_seed(int(params.seed)))
    cond = encode_prompts(pipe, [params.source_prompt, params.target_prompt])
    if uncond_embeds is None:
        uncond_embeds = encode_prompts(pipe, [""])
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the paper's sampler; inversion assumes it
    state = install(pipe.unet)
    with torch.no_grad(), state.use(controllers.as_list(), image_prompts=[image_prompt] if image_prompt else []):
        result = denoise(TextGuided(pipe.unet, cond, uncond_embeds, params.guidance_scale), scheduler,
                         latents.expand(2, *latents.shape[1:]).clone(), num_steps, on_step=on_step)
    images = decode(pipe, result.latents)
    with TOKENIZER_LOCK:
        source_tokens = pipe.tokenizer.tokenize(params.source_prompt)
    heatmaps = token_heatmaps(controllers.store.average()[0], source_tokens,
                              images[0] if heatmap_image is None else heatmap_image)
    mask = controllers.blend.last_mask[1].cpu().numpy() if controllers.blend and controllers.blend.last_mask is not None else None
    edited = images[1] if mask is None else overlay_source(images[0], images[1], mask, pipe.vae_scale_factor // 2)
    if params.blend_region is not None:  # the seam may not leave the painted region: the source's pixels outside it
        edited = np.where(params.blend_region[..., None], edited, images[0])
    maps = controllers.store.average()
    shares = {"source": attention_shares(pipe.tokenizer, params.source_prompt, maps[0]),
              "edited": attention_shares(pipe.tokenizer, params.target_prompt, maps[1])}
    return P2PResult(images[0], edited, heatmaps, mask, controllers.mode, shares)


def attention_shares(tokenizer, prompt: str, maps: torch.Tensor) -> list[tuple[str, float]]:
    """maps (side, side, sequence) of one prompt averaged over the steps → (word, its share of the attention the
    prompt's words get), per word of `prompt`."""
    spans, cursor = [], 1
    for ids in word_tokens(tokenizer, prompt):
        spans.append(list(range(cursor, min(cursor + len(ids), tokenizer.model_max_length - 1))))
        cursor += len(ids)
    mass = maps.float().sum(dim=(0, 1))  # (sequence,)
    total = float(mass[[i for span in spans for i in span]].sum()) or 1.0
    return [(word, float(mass[span].sum()) / total) for word, span in zip(prompt.split(), spans) if span]
