"""The embedded camera motion LoRAs (toy-motion-lora-*, issue 36) on toy-motion, measured on drawn cases: prompts over
colours × shapes × backgrounds and seeds drawn here (not the cards' draw), loaded by the code that loads the Hub's."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core import config
from core.methods import animatediff
from core.models import Models
from core.shapes.metrics import CAMERA_MOTIONS, camera_motion_score, drawn_still_prompts

CASES_PER_LORA, DRAW_SEED = 16, 2036


@pytest.fixture(scope="module")
def models():
    return Models("toy-sd", device="cpu")


def test_the_embedded_loras_are_the_hub_format_and_the_tab_lists_them():
    from safetensors.torch import load_file

    for name in config.EMBEDDED_MOTION_LORAS:
        assert name.removeprefix("toy-motion-lora-") in CAMERA_MOTIONS
        folder = config.MODELS_DIR / name
        weights = load_file(folder / config.LORA_FILE)
        assert weights and all(".motion_modules." in key and "lora" in key for key in weights)
        assert all(bool(value.isfinite().all()) for value in weights.values())
        figures = json.loads((folder / "metrics.json").read_text())
        card = (folder / "README.md").read_text()
        assert f"{figures['moved_rate']:.2f}" in card and f"{figures['kept_rate']:.2f}" in card
        assert figures["motion"] == name.removeprefix("toy-motion-lora-")


def test_an_embedded_lora_loads_into_a_plain_diffusers_animatediff_pipeline():
    """What a diffusers user writes for the Hub's motion LoRAs (load_lora_weights on an AnimateDiffPipeline) works
    on the embedded ones and changes the clip."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

    adapter = MotionAdapter.from_pretrained(config.MODELS_DIR / config.EMBEDDED_MOTION_ADAPTER)
    pipe = AnimateDiffPipeline.from_pretrained(config.MODELS_DIR / config.EMBEDDED_BASE_MODEL, motion_adapter=adapter)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def clip():
        return pipe("a red circle on a white background", num_frames=4, num_inference_steps=3, height=64, width=64,
                    output_type="np", generator=torch.Generator().manual_seed(0)).frames[0]

    plain = clip()
    name = config.EMBEDDED_MOTION_LORAS[0]
    pipe.load_lora_weights(str(config.MODELS_DIR / name), adapter_name="camera")
    moved = clip()
    assert moved.shape == plain.shape and np.isfinite(moved).all()
    assert np.abs(moved - plain).max() > 0.01


@pytest.fixture(scope="module", params=config.EMBEDDED_MOTION_LORAS)
def lora_scores(request, models):
    """The LoRA at 1.0 beside the domain LoRA on drawn prompts and seeds, read from pixels (once per LoRA)."""
    name = request.param
    motion = name.removeprefix("toy-motion-lora-")
    pipe, unet = models.pipeline(), models.motion_unet()
    adapter = models.motion_lora(unet, name)
    rng = np.random.default_rng([DRAW_SEED, config.EMBEDDED_MOTION_LORAS.index(name)])
    scores = []
    for prompt in drawn_still_prompts(rng, CASES_PER_LORA):
        params = animatediff.AnimateDiffParams(prompt, frames=8, steps=25, seed=int(rng.integers(10**6)))
        frames = animatediff.generate(pipe, unet, params, loras={"domain": 1.0, adapter: 1.0})
        scores.append(camera_motion_score(frames, prompt, motion) | {"prompt": prompt})
    print(f"{name}: moved its way {np.mean([s['moved'] for s in scores]):.2f}, kept "
          f"{np.mean([s['kept'] for s in scores]):.2f}; {[(s['prompt'], s['change']) for s in scores]}")
    return scores


# Measured (draw 2036, 16 cases each): moved its way pan-left 0.94, pan-right 0.94 (+1…+30 px), zoom-in 1.00.
def test_camera_lora_moves_the_object_its_way(lora_scores):
    assert np.mean([s["moved"] for s in lora_scores]) >= 0.8


# Colour and shape in every frame, same draws: pan-left 0.88, pan-right 0.81, zoom-in 0.88 (the cards' draw, 12 cases:
# 1.00 / 0.92 / 0.83). The misses are the motion module's: an object whose shape or colour drifts in some frame
# (red ↔ purple, yellow ↔ orange), as toy-motion does without a LoRA (test_motion_behaviour). 16 cases, not 8: at a
# true rate near 0.9, 8 cases fall under 0.8 one time in five (the first 8-case draw read 0.88 / 0.75 / 0.75).
def test_camera_lora_keeps_colour_and_shape(lora_scores):
    assert np.mean([s["kept"] for s in lora_scores]) >= 0.8
