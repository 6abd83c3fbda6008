"""The embedded models do what their cards say (issue 3), measured from pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from transformers import CLIPModel, CLIPTokenizer

from core import config
from core.shapes import metrics

TOY_SD = config.MODELS_DIR / "toy-sd"
TOY_CLIP = config.MODELS_DIR / "toy-clip"


def folder_mib(path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


@pytest.fixture(scope="module")
def toy_sd():
    pipe = StableDiffusionPipeline.from_pretrained(TOY_SD, torch_dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_tokenizer_is_the_real_clip_bpe(toy_sd):
    tokenizer = toy_sd.tokenizer
    assert len(tokenizer) == 49408
    # the ids SD1.5's tokenizer gives (CLIP BPE): bos, "a", "red", "circle", eos
    assert tokenizer("a red circle").input_ids == [49406, 320, 736, 7117, 49407]
    assert tokenizer("children drawing of a castle").input_ids[:4] == [49406, 2153, 3610, 539]


def test_models_are_small_safetensors():
    shipped = sorted(p for p in config.MODELS_DIR.iterdir() if p.is_dir())
    assert {"toy-sd", "toy-clip", "toy-face0", "toy-shiftddpm"} <= {p.name for p in shipped}
    for folder in shipped:
        assert folder_mib(folder) <= 25, folder
        assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))


@torch.no_grad()
def test_toy_sd_follows_colour_and_shape(toy_sd):
    cases = metrics.single_object_prompts()  # 6 colours × 3 shapes × white/black
    images, expected = [], []
    for seed in (0, 1):
        out = toy_sd([f"a {c} {s} on a {b} background" for c, s, b in cases], num_inference_steps=25,
                     guidance_scale=6.0, generator=torch.Generator().manual_seed(seed), output_type="np").images
        images += list((out * 255).round().astype(np.uint8))
        expected += cases
    result = metrics.grade_single(images, expected)
    assert result["color_accuracy"] >= 0.90, result
    assert result["shape_accuracy"] >= 0.80, result


@torch.no_grad()
def test_toy_sd_puts_two_objects_left_and_right(toy_sd):
    cases = metrics.two_object_cases(np.random.default_rng(11), 30)
    out = toy_sd([metrics.two_object_prompt(c) for c in cases], num_inference_steps=25, guidance_scale=6.0,
                 generator=torch.Generator().manual_seed(5), output_type="np").images
    result = metrics.grade_two_objects((out * 255).round().astype(np.uint8), cases)
    assert result["left_right_accuracy"] >= 0.70, result


def test_toy_clip_zero_shot():
    model = CLIPModel.from_pretrained(TOY_CLIP, dtype=torch.float32, local_files_only=True)
    tokenizer = CLIPTokenizer.from_pretrained(TOY_CLIP, local_files_only=True)
    assert len(tokenizer) == 49408
    result = metrics.clip_zero_shot(model, tokenizer, n=300, seed=2024)
    assert result["color_accuracy"] >= 0.95, result
    assert result["shape_accuracy"] >= 0.90, result


def test_model_cards_report_the_metrics():
    for folder in (TOY_SD, TOY_CLIP):
        card = (folder / "README.md").read_text()
        figures = json.loads((folder / "metrics.json").read_text())
        assert f"{figures['color_accuracy']:.3f}" in card and f"{figures['shape_accuracy']:.3f}" in card


def finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def test_toy_sd_loads_and_generates_the_plain_diffusers_way():
    """What every diffusers user writes first: from_pretrained(folder), nothing else (fp16 files, fp32 load)."""
    pipe = StableDiffusionPipeline.from_pretrained(TOY_SD)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a white background", num_inference_steps=3, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all() and image.std() > 0.01


@pytest.mark.parametrize("folder, kind", [
    ("toy-motion", "MotionAdapter"), ("toy-adapters/canny", "T2IAdapter"), ("toy-adapters/palette", "T2IAdapter"),
    ("toy-shiftddpm/unet", "UNet2DModel"), ("toy-videocomposer/unet", "UNetMotionModel"),
    ("toy-videocomposer/composer", "VideoComposer"), ("toy-unicontrol", "UniControlModel"), ("toy-clip", "CLIPModel"),
])
def test_every_embedded_model_loads_with_its_class_the_plain_way(folder, kind):
    import diffusers

    from core.unicontrol import UniControlModel
    from core.videocomposer import VideoComposer
    classes = {"VideoComposer": VideoComposer, "UniControlModel": UniControlModel, "CLIPModel": CLIPModel}
    model = (classes.get(kind) or getattr(diffusers, kind)).from_pretrained(config.MODELS_DIR / folder).eval()
    assert json.loads((config.MODELS_DIR / folder / "config.json").read_text()).get("_class_name", kind) == kind
    assert all(p.dtype == torch.float32 for p in model.parameters()) and finite(model.parameters())
    torch.manual_seed(0)
    with torch.no_grad():
        if kind == "T2IAdapter":
            outputs = model(torch.rand(1, model.config.in_channels, 64, 64))
        elif kind == "UNet2DModel":
            outputs = [model(torch.randn(2, model.config.in_channels, 32, 32), torch.tensor([10, 500])).sample]
        elif kind == "UNetMotionModel":
            side = model.config.sample_size
            outputs = [model(torch.randn(1, model.config.in_channels, 2, side, side), 10,
                             encoder_hidden_states=torch.randn(2, 77, model.config.cross_attention_dim)).sample]
        elif kind == "CLIPModel":
            outputs = [model.text_model(input_ids=torch.tensor([[49406, 320, 1002, 49407]])).pooler_output]
        elif kind == "MotionAdapter":  # with toy-sd's UNet, the plain AnimateDiff way
            unet = diffusers.UNet2DConditionModel.from_pretrained(TOY_SD / "unet")
            motion = diffusers.UNetMotionModel.from_unet2d(unet, model)
            side = unet.config.sample_size
            outputs = [motion(torch.randn(1, 4, 2, side, side), 10,
                              encoder_hidden_states=torch.randn(2, 77, unet.config.cross_attention_dim)).sample]
        else:  # our own classes: their weights, loaded by diffusers' ModelMixin
            outputs = list(model.parameters())
    assert outputs and finite(outputs)
