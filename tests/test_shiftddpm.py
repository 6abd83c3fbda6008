"""ShiftDDPM: the schedule maths and samplers on tiny/ideal models, class accuracy on toy-shiftddpm,
and /shiftddpm through gradio_client."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from core.methods import shiftddpm
from core.shapes.metrics import shift_class_accuracy

NAMES = ["red circle", "blue square"]


def tiny_model(variant="quadratic_shift") -> shiftddpm.ShiftModel:
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    return shiftddpm.ShiftModel(unet.eval(), shiftddpm.ShiftPredictor(len(NAMES), 3, 8, width=8), NAMES, variant)


def test_shift_coefficients_follow_the_paper():
    alphas = shiftddpm.linear_alphas_cumprod(1000, 1e-4, 0.02)
    root = alphas.sqrt()
    quadratic = shiftddpm.shift_coefficients(alphas, "quadratic_shift")
    assert torch.allclose(quadratic, root * (1 - root))
    assert quadratic[0] < 0.01 and quadratic[-1] < 0.01 and 0.24 < quadratic.max() <= 0.25
    assert torch.allclose(shiftddpm.shift_coefficients(alphas, "prior_shift"), 1 - root)
    assert torch.allclose(shiftddpm.shift_coefficients(alphas, "data_normalization"), -root)
    with pytest.raises(ValueError, match="variant"):
        shiftddpm.shift_coefficients(alphas, "cubic")


class IdealUNet(torch.nn.Module):
    """The exact ShiftDDPM network for a one-image data set: ε_θ(x_t) = (x_t − √ᾱ_t·x0)/√(1−ᾱ_t).

    It learns the whole offset, shift included, so the sampler must subtract k_t·E(c)/√(1−ᾱ_t)."""

    def __init__(self, model: shiftddpm.ShiftModel, x0: torch.Tensor):
        super().__init__()
        self.model, self.x0 = model, x0
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # dtype/device probe

    def forward(self, x, t):
        a = self.model.alphas_cumprod[t.cpu()].view(-1, 1, 1, 1)
        return type("Out", (), {"sample": (x - a.sqrt() * self.x0) / (1 - a).sqrt()})


@pytest.mark.parametrize("variant", shiftddpm.VARIANTS)
@pytest.mark.parametrize("sampler, steps", [("DDIM", 20), ("DDPM", 50)])
def test_samplers_recover_the_data_point_of_an_ideal_model(variant, sampler, steps):
    model = tiny_model(variant)
    x0 = torch.rand(1, 3, 8, 8) * 1.6 - 0.8
    model.unet = IdealUNet(model, x0)
    result = shiftddpm.sample(model, model.class_weights("blue square"), n=2, sampler=sampler, steps=steps, seed=3)
    expected = shiftddpm.to_uint8(x0)[0]
    assert np.abs(result.images.astype(int) - expected).max() <= 2  # every variant, both samplers


def test_unet_gets_no_class_input_and_roundtrip(tmp_path):
    model = tiny_model()
    calls = []
    forward = model.unet.forward

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model.unet

        def forward(self, *args, **kwargs):
            calls.append((len(args), sorted(kwargs)))
            return forward(*args, **kwargs)

    spied = shiftddpm.ShiftModel(Spy(), model.predictor, NAMES, model.variant)
    shiftddpm.sample(spied, spied.class_weights("red circle"), n=1, steps=3)
    assert calls and all(call == (2, []) for call in calls)  # (x_t, t) and nothing else
    assert model.unet.config.num_class_embeds is None and model.unet.config.class_embed_type is None
    model.save(tmp_path)
    loaded = shiftddpm.ShiftModel.load(tmp_path)
    a = shiftddpm.sample(model, model.class_weights("red circle"), n=2, steps=5, seed=1).images
    b = shiftddpm.sample(loaded, loaded.class_weights("red circle"), n=2, steps=5, seed=1).images
    assert np.array_equal(a, b)


def test_training_loss_uses_the_shift():
    model = tiny_model()
    x0 = torch.zeros(4, 3, 8, 8)
    weights = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1]), 2).float()
    loss = shiftddpm.training_loss(model, x0, weights, torch.Generator().manual_seed(0))
    loss.backward()
    assert model.predictor.embedding.grad is not None and model.predictor.embedding.grad.abs().sum() > 0


def test_interpolation_mixes_the_shift():
    model = tiny_model()
    a = model.predictor(model.class_weights("red circle"))
    b = model.predictor(model.class_weights("blue square"))
    mid = model.predictor(model.class_weights("red circle", "blue square", 0.5))
    assert not torch.allclose(a, b)
    assert torch.allclose(model.class_weights("red circle", "blue square", 0.5), torch.tensor([[0.5, 0.5]]))
    assert mid.shape == a.shape
    with pytest.raises(ValueError, match="unknown class"):
        model.class_weights("pink cube")


# ---- behaviour on the embedded toy-shiftddpm ----------------------------------------------

@pytest.fixture(scope="module")
def toy_model():
    return shiftddpm.ShiftModel.load(shiftddpm.default_folder())


def test_toy_shiftddpm_takes_no_class_input_and_has_one_shift_per_class(toy_model):
    assert toy_model.unet.config.num_class_embeds is None and toy_model.unet.config.class_embed_type is None
    shifts = torch.stack([toy_model.predictor(toy_model.class_weights(n)).float() for n in toy_model.class_names])
    spread = (shifts - shifts.mean(dim=0)).abs().mean() / shifts.abs().mean()
    assert spread > 0.1  # E(c) differs between classes


# Measured on the shipped toy-shiftddpm (20,000 steps at lr 5e-4, then 5,000 more at 2e-4; batch 32; E(c) fixed at
# 3 × the class mean image + a shape texture). The first shipped model (3,500 steps, mean image only) was at 0.40:
# the mean carries the colour, not the shape; at 12,000 steps DDIM-50 still trailed DDPM by 0.11 pooled. The card's
# probes (seed 1000): DDPM-1000 0.903; DDIM-50 at 8 per class, seeds 1000 / 7 / 500: 0.861 / 0.847 / 0.868. This
# probe's seed (2026) is none of the card's: DDIM-50 0.868, DDPM-1000 0.875; over the four seeds DDIM-50 0.861 (576
# samples), DDPM-1000 0.889 (144). The misses are wrong or two shapes, neighbouring palette colours (blue ↔ purple,
# yellow ↔ orange) and domes between a circle and a triangle. Reading shapes by bounding-box IoU alone gave DDPM-1000
# 0.847 here and DDIM-50 0.875 / 0.868 / 0.896 on the card's seeds: it took soft triangles for circles both ways.
@pytest.fixture(scope="module")
def accuracies(toy_model):
    result = {"DDPM-1000": shift_class_accuracy(toy_model, shiftddpm.sample, "DDPM", 1000, per_class=4, seed=2026),
              "DDIM-50": shift_class_accuracy(toy_model, shiftddpm.sample, "DDIM", 50, per_class=8, seed=2026)}
    print(f"toy-shiftddpm class accuracy: {result}")
    return result


def test_toy_shiftddpm_class_accuracy_shifted_ddim(accuracies):
    """The default variant (prior shift), every class × 8 samples at a seed the card did not use."""
    assert accuracies["DDIM-50"] >= 0.85


# DDPM-1000 here (4 per class, seed 2026): 0.875; 72 samples measure it to about ±4 points.
def test_toy_shiftddpm_class_accuracy_ddpm(accuracies):
    assert accuracies["DDPM-1000"] >= 0.85


def test_shifted_ddim_matches_ddpm_within_ten_points(accuracies):
    assert abs(accuracies["DDIM-50"] - accuracies["DDPM-1000"]) <= 0.10


def test_shiftddpm_endpoint(client):
    samples, shift_map, curves, trajectory = client.predict(class_name="yellow triangle", sampler="DDIM", steps=20,
                                                            n=2, interpolate_to="blue circle", mix=0.25,
                                                            api_name="/shiftddpm")
    assert len(samples) == 2 and len(trajectory) >= 2
    with pytest.raises(Exception, match="unknown class"):
        client.predict(class_name="pink cube", steps=2, api_name="/shiftddpm")
    with pytest.raises(Exception, match="no ShiftDDPM with the quadratic_shift variant"):
        client.predict(variant="quadratic_shift", steps=2, api_name="/shiftddpm")
