"""FateZero (Qi et al. 2023, docs/METHODS.md §11): zero-shot text-driven video editing.

Invert the source video with DDIM, then sample the target prompt from the inverted noise, fusing the
inversion's attention maps in (cross-attention replaced for shared words, self-attention blended by
the binarised source mask of the edited words); frames attend to themselves and the middle frame
(spatial-temporal attention). The inversion's maps (layers of ≤ 32×32 queries) are recomputed while
editing by a source branch at each step's inverted latent (`attention_maps="recompute"`: kept between
the passes, one latent per step) or stored while inverting (`"store"`: fp16 on the CPU, the official
code's approach, 69 GiB at 8 frames × 50 steps on SD1.5 at 512²).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler

from .. import config
from ..attention import FrameMode, install
from ..attention import AttentionController
from ..control.alignment import token_positions
from ..control.edit import AttentionReweight, cross_edit
from ..control.fusion import (InversionMapStore, RecomputedSource, SourceBranch, SourceMask, SourceRegions,
                              inversion_step)
from ..control.schedule import check_steps, cross_replace_alpha, parse_steps, step_window
from ..denoisers import TextGuided
from ..inversion import DDIMSchedule, ddim_invert
from ..sampling import decode_frames, denoise, encode_images, encode_prompts
from ..validate import check_prompt, check_range, check_sampling
from ..video import resize_frames, sample_frames

D = config.FateZeroDefaults


@dataclass
class FateZeroParams:
    source_prompt: str
    target_prompt: str
    cross_replace_steps: object = D.cross_replace_steps
    self_replace_steps: object = D.self_replace_steps
    blend_words: str = D.blend_words  # source words whose region may change (self-attention blend)
    blend_threshold: float = D.blend_threshold
    amplify_words: str = D.amplify_words  # target words whose cross-attention is multiplied
    amplify_value: float = D.amplify_value
    frames: int = D.frames
    steps: int = D.steps
    guidance_scale: float = D.guidance_scale
    seed: int = D.seed
    unconditional: str = D.unconditional  # "source" (negative-prompt inversion) or "empty"
    attention_maps: str = D.attention_maps  # "recompute" (a source branch while editing) or "store"
    image_prompt_scale: float = D.image_prompt_scale  # the edit's image prompt (IP-Adapter), when one is given

    def check(self) -> None:
        if self.unconditional not in ("source", "empty"):
            raise ValueError(f"unconditional must be 'source' or 'empty', got {self.unconditional!r}")
        if self.attention_maps not in D.attention_maps_choices:
            raise ValueError(f"attention_maps must be one of {D.attention_maps_choices}, got {self.attention_maps!r}")
        check_prompt(self.source_prompt, "source_prompt")
        check_prompt(self.target_prompt, "target_prompt")
        self.cross_replace_steps = parse_steps(self.cross_replace_steps)
        self.self_replace_steps = parse_steps(self.self_replace_steps)
        check_steps("cross_replace_steps", self.cross_replace_steps)
        check_steps("self_replace_steps", self.self_replace_steps)
        check_range("blend_threshold", self.blend_threshold, 0.0, 1.0)
        check_range("amplify_value", self.amplify_value, 0.0, D.max_amplify)
        check_range("image_prompt_scale", self.image_prompt_scale, 0.0, D.max_image_prompt_scale)
        check_range("frames", self.frames, 1, D.max_frames)
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class FateZeroResult:
    edited: np.ndarray  # uint8 (F, H, W, 3)
    reconstruction: np.ndarray | None
    source: np.ndarray  # the resampled, resized input frames
    stored_bytes: int  # kept between inversion and editing: the stored maps, or the inverted latents (recompute)


def blend_positions(tokenizer, params: FateZeroParams) -> list[int]:
    blend = token_positions(tokenizer, params.source_prompt, params.blend_words) if params.blend_words.strip() else []
    if params.blend_words.strip() and not blend:
        raise ValueError(f"blend_words {params.blend_words!r} are not words of the source prompt")
    return blend


def build_fusion(tokenizer, source, regions: SourceRegions | None, params: FateZeroParams, target: str,
                 edit: bool = True) -> list[AttentionController]:
    """Prompt-to-Prompt's controllers over the inversion's maps (`source`: InversionMapStore or RecomputedSource):
    the cross edit the prompts call for (with attention blending by the source regions of blend_words), then
    amplification of amplify_words. `edit` False: the reconstruction (target = source), amplified only where those
    words are the source's too."""
    steps = int(params.steps)
    alpha = cross_replace_alpha(tokenizer, target, params.cross_replace_steps, steps)
    mask = SourceMask(regions, params.blend_threshold, steps) if regions is not None else None
    controllers = [cross_edit(tokenizer, params.source_prompt, target, cross_alpha=alpha,
                              self_window=step_window(params.self_replace_steps, steps),
                              max_self_queries=source.max_queries, prompts=1, source_maps=source, self_mask=mask)]
    positions = token_positions(tokenizer, target, params.amplify_words) if params.amplify_words.strip() else []
    if params.amplify_words.strip() and not positions and edit:
        raise ValueError(f"amplify_words {params.amplify_words!r} are not words of the target prompt")
    if positions:
        equalizer = torch.ones(tokenizer.model_max_length)
        equalizer[positions] = float(params.amplify_value)
        controllers.append(AttentionReweight(equalizer, alpha.any(dim=1), prompts=1, source_in_batch=False,
                                             max_queries=source.max_queries))
    return controllers


def run(pipe, video: np.ndarray, params: FateZeroParams, reconstruct: bool = True, on_step=None,
        image_prompt=None) -> FateZeroResult:
    """Invert the source frames, edit them towards the target (attention fusion), and reconstruct (target =
    source). `image_prompt` (core.ip_adapter.ImagePrompt): seen by the edit alone — not by the inversion, the
    source branch that recomputes its maps, or the reconstruction."""
    params.check()
    steps, guidance = int(params.steps), float(params.guidance_scale)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    frames = resize_frames(sample_frames(video, int(params.frames)), size, size)
    count = len(frames)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    schedule = DDIMSchedule.from_scheduler(scheduler, steps)
    state = install(pipe.unet)
    passes = 2 + int(reconstruct)
    blend = blend_positions(pipe.tokenizer, params)
    recompute = params.attention_maps == "recompute"

    def progress(index):
        return None if on_step is None else (lambda done, total: on_step(index * total + done, passes * total))

    with torch.no_grad():
        latents = torch.cat([encode_images(pipe, frames[i:i + 1]) for i in range(count)])
        source_embeds = encode_prompts(pipe, [params.source_prompt]).expand(count, -1, -1)
        regions = SourceRegions(blend, min(config.P2P_MAP_SIDE, pipe.unet.config.sample_size)) if blend else None
        source = RecomputedSource(config.MAX_SELF_ATTENTION_QUERIES) if recompute else \
            InversionMapStore(config.MAX_SELF_ATTENTION_QUERIES)
        recorders = [regions] + ([] if recompute else [source])
        with state.use(recorders, frames=count, frame_mode=FrameMode.MIDDLE):
            trajectory = ddim_invert(pipe.unet, latents, source_embeds, schedule, on_step=progress(0))
        noise = trajectory[-1]
        kept = (0 if regions is None else regions.nbytes()) + \
            (sum(t.numel() * t.element_size() for t in trajectory[:-1]) if recompute else source.nbytes())
        uncond = encode_prompts(pipe, [params.source_prompt if params.unconditional == "source" else ""])
        outputs = []
        for index, target in enumerate([params.target_prompt] + ([params.source_prompt] if reconstruct else [])):
            fusion = build_fusion(pipe.tokenizer, source, regions, params, target, edit=index == 0)
            unet = pipe.unet
            if recompute:  # the inversion's UNet input of each step that reads the source's maps, at its timestep
                unet = SourceBranch(pipe.unet, {int(t): trajectory[inversion_step(i, steps)]
                                                for i, t in enumerate(schedule.timesteps) if fusion[0].needs_source(i)},
                                    source_embeds)
            target_embeds = encode_prompts(pipe, [target]).expand(count, -1, -1)
            prompts = [image_prompt] if image_prompt is not None and index == 0 else []
            with state.use(fusion, frames=count, frame_mode=FrameMode.MIDDLE, image_prompts=prompts):
                result = denoise(TextGuided(unet, target_embeds, uncond, guidance), scheduler, noise.clone(),
                                 steps, on_step=progress(index + 1))
            outputs.append(decode_frames(pipe, result.latents[:count]))
    return FateZeroResult(outputs[0], outputs[1] if reconstruct else None, frames, kept)
