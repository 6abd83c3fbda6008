"""float16, the GPU configuration, rehearsed with torch's CPU float16 (issue 30): whatever the app trains or
optimises keeps float32 master values (core.training.precision), so after several steps every trained value is
finite (before, Adam's ε rounded to 0 and one step made them NaN); null-text's float16 reconstruction is as
good as float32's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_pipe
from core.methods import diffusionclip, dreamix, null_text, p2p, tune_a_video
from core.guidance import clip_inputs
from core.models import Models
from core.motion import inflate, new_motion_adapter, temporal_parameters
from core.shapes.dataset import Scene, ShapeObject, render
from core.training.precision import MixedPrecision
from core.training.video_tuning import TRAINABLE, run_to_end

STEPS = 3  # optimisation steps: one is enough to make an fp16 Adam step NaN


def all_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t.float()).all()) for t in tensors)


@pytest.fixture(scope="module")
def half_pipe():
    return make_tiny_pipe().to(dtype=torch.float16)


def clip_frames(count: int = 2, side: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)


def test_the_precision_helper_leaves_float32_alone():
    weight = torch.nn.Parameter(torch.ones(3))
    precision = MixedPrecision([weight])
    assert precision.masters[0] is weight and precision.scale == 1.0
    half = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    precision = MixedPrecision([half])
    assert precision.masters[0].dtype == torch.float32 and precision.scale > 1


def test_tune_a_video_in_float16_keeps_its_tuned_layers_finite(half_pipe):
    params = tune_a_video.TuneParams("a red circle moving right", steps=STEPS, lr=1e-3, frames=2, seed=0)
    model = run_to_end(tune_a_video.tune(half_pipe, clip_frames(), params))
    weights = list(model.weights.values())
    assert weights and all_finite(weights)
    assert any(float(w.abs().max()) > 0 for n, w in model.weights.items() if "motion_modules" in n)  # it learned


def test_dreamix_in_float16_keeps_its_tuned_layers_finite(half_pipe):
    torch.manual_seed(3)
    motion_unet = inflate(half_pipe.unet, new_motion_adapter(half_pipe.unet, max_frames=16))
    for p in temporal_parameters(motion_unet).values():
        torch.nn.init.normal_(p, std=0.02)
    params = dreamix.DreamixParams("a blue circle", finetune_steps=STEPS, frames=2, lr=1e-3)
    tuned = dreamix.finetune(half_pipe, motion_unet, clip_frames(), params)
    before = dict(motion_unet.named_parameters())
    trained = {n: p for n, p in tuned.named_parameters() if TRAINABLE.search(n)}
    assert trained and all(p.dtype == torch.float16 for p in trained.values())
    assert all_finite(trained.values())
    assert any(not torch.equal(p, before[n]) for n, p in trained.items())  # it learned


def test_diffusionclip_in_float16_saves_a_finite_direction(tmp_path):
    models = Models("toy-sd", device="cpu")  # its own: the cached models are turned to float16 here
    pipe = models.pipeline().to(dtype=torch.float16)
    clip_model, tokenizer = models.clip()
    clip_model = clip_model.to(torch.float16)
    images = np.stack([render(Scene((ShapeObject("red", "circle", 32, 32, 14),), "white"))])
    params = diffusionclip.DiffusionCLIPParams("a red circle", "a blue circle", t0=200, inversion_steps=2,
                                               train_steps=1, iterations=STEPS, direction_name="fp16_direction")
    library = diffusionclip.DirectionLibrary(tmp_path)
    result = diffusionclip.train(pipe, (clip_model, tokenizer, clip_inputs(clip_model)), images, params, library)
    weights, _ = library.load("fp16_direction")
    assert all(np.isfinite(result.losses)) and all_finite(weights.values())
    assert any(float(w.abs().max()) > 0 for n, w in weights.items() if "lora_B" in n)  # it learned (B starts at 0)


def test_null_text_in_float16_reconstructs_as_well_as_float32():
    image = render(Scene((ShapeObject("red", "circle", 30, 34, 16),), "white"))
    caption = "a red circle on a white background"
    psnrs = {}
    for dtype in (torch.float32, torch.float16):
        pipe = Models("toy-sd", device="cpu").pipeline().to(dtype=dtype)
        params = null_text.NullTextParams(p2p.P2PParams(caption, caption, steps=10, guidance_scale=7.5),
                                          inversion="null-text", num_inner_steps=5)
        inversion = null_text.invert(pipe, image, caption, params)
        assert all_finite(inversion.uncond), dtype
        psnrs[dtype] = null_text.run(pipe, image, params).psnr
    print(f"null-text reconstruction PSNR: float32 {psnrs[torch.float32]:.2f} dB, float16 {psnrs[torch.float16]:.2f} dB")
    assert abs(psnrs[torch.float16] - psnrs[torch.float32]) <= 1.0, psnrs
