"""FreeDoM: mechanics on tiny components + toy-clip; behaviour on toy-sd (issue 8's FreeDoM lines)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.guidance import MaskEnergy, clip_inputs
from core.methods import freedom
from core.models import Models
from core.denoisers import TextGuided
from core.sampling import denoise, encode_prompts, prepare_latents
from core.shapes import reader
from core.shapes.dataset import PALETTE
from core.shapes.metrics import drawn_still_prompts


@pytest.fixture(scope="module")
def clip():
    model, tokenizer = Models("toy-sd", device="cpu").clip("toy-clip")
    return model, tokenizer, clip_inputs(model)


def test_mask_energy_is_low_on_its_mask():
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    inside = -torch.ones(1, 3, 32, 32)
    inside[:, 0, 8:20, 8:20] = 1.0  # a red square on black, exactly on the mask
    outside = -torch.ones(1, 3, 32, 32)
    outside[:, 0, 18:30, 18:30] = 1.0
    energy = MaskEnergy(mask)
    assert energy(inside).item() < 0.5 * energy(outside).item()


def test_guidance_off_is_the_plain_loop(tiny_pipe):
    """With an empty guidance window the loop is unchanged."""
    from core.guidance import EnergyGuidance

    generator = torch.Generator().manual_seed(0)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, generator)
    cond, uncond = encode_prompts(tiny_pipe, ["a red circle"]), encode_prompts(tiny_pipe, [""])
    plain = denoise(TextGuided(tiny_pipe.unet, cond, uncond, 7.5), tiny_pipe.scheduler, latents, 5).latents
    idle = EnergyGuidance(lambda x: x.sum(), lambda z: z, tiny_pipe.scheduler.alphas_cumprod, window=(0, 0))
    assert torch.equal(denoise(TextGuided(tiny_pipe.unet, cond, uncond, 7.5), tiny_pipe.scheduler, latents, 5,
                               energy_guidance=idle).latents, plain)


def test_freedom_runs_and_lowers_the_energy(tiny_pipe, clip):
    mask = np.zeros((32, 32), bool)
    mask[8:24, 16:30] = True
    params = freedom.FreeDoMParams("a red circle", energy="text+mask", reference_text="a blue circle on a white background",
                                   mask=mask, steps=10, rho_scale=1.0)
    result = freedom.run(tiny_pipe, params, clip)
    assert result.guided.shape == result.unguided.shape == (32, 32, 3)
    assert len(result.energy_per_step) == 4 and result.plot is not None
    assert result.final_energy < result.unguided_energy


def test_bad_energy_parameters(tiny_pipe):
    with pytest.raises(ValueError, match="energy must name"):
        freedom.run(tiny_pipe, freedom.FreeDoMParams("a red circle", energy="faces"))
    with pytest.raises(ValueError, match="non-empty mask"):
        freedom.run(tiny_pipe, freedom.FreeDoMParams("a red circle", energy="mask"))


# ---- behaviour on toy-sd ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    return Models("toy-sd", device="cpu").pipeline()


def colour_score(clip, image: np.ndarray, color: str, shape: str, background: str) -> float:
    """toy-clip's probability that the picture shows `color` among the palette's colours (same shape and background)."""
    from core.guidance import clip_image_features, clip_text_features

    model, tokenizer, inputs = clip
    texts = [f"a {c} {shape} on a {background} background" for c in PALETTE]
    with torch.no_grad():
        text = clip_text_features(model, tokenizer, texts)
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
        probs = (100 * clip_image_features(model, inputs, pixels) @ text.T).softmax(-1)[0]
    return float(probs[list(PALETTE).index(color)])


CASES = 6  # drawn per line: prompts over colours × shapes × backgrounds, seeds, target colours, masks


def test_text_energy_moves_the_colour_towards_the_reference_text(toy, clip):
    # at the paper's rho_scale 0.2 the blue score rose in 1 of 5 seeds on toy-sd (one prompt); 1.0 is a stronger step
    rng = np.random.default_rng(3620)
    wins = []
    for prompt in drawn_still_prompts(rng, CASES):
        _, color, shape, _, _, background, _ = prompt.split()
        target = str(rng.choice([c for c in PALETTE if c not in (color, background)]))
        params = freedom.FreeDoMParams(prompt, energy="text", reference_text=prompt.replace(f" {color} ", f" {target} "),
                                       steps=50, seed=int(rng.integers(10**6)), guidance_scale=6.0, rho_scale=1.0)
        result = freedom.run(toy, params, clip)
        guided, unguided = (colour_score(clip, image, target, shape, background) for image in (result.guided, result.unguided))
        wins.append(guided > unguided)
        print(f"FreeDoM text energy, {prompt} → {target}: {unguided:.3f} → {guided:.3f}")
    assert np.mean(wins) >= 0.8, wins


def drawn_mask_cases(seed: int, n: int):
    """(prompt, a 24×24 mask box anywhere inside the picture, seed) drawn over the grammar."""
    rng = np.random.default_rng(seed)
    cases = []
    for prompt in drawn_still_prompts(rng, n):
        mask = np.zeros((64, 64), bool)
        top, left = rng.integers(4, 64 - 24 - 4, size=2)
        mask[top:top + 24, left:left + 24] = True
        cases.append((prompt, mask, int(rng.integers(10**6))))
    return cases


def test_mask_energy_moves_the_object_into_the_mask(toy):
    gains = []
    for prompt, mask, seed in drawn_mask_cases(3621, CASES):
        params = freedom.FreeDoMParams(prompt, energy="mask", mask=mask, steps=50, seed=seed, guidance_scale=6.0)
        result = freedom.run(toy, params)
        guided, unguided = reader.read_single(result.guided), reader.read_single(result.unguided)
        gains.append((0.0 if guided is None else reader.mask_iou(guided.mask, mask))
                     - (0.0 if unguided is None else reader.mask_iou(unguided.mask, mask)))
    print(f"FreeDoM mask energy on drawn cases: IoU gains {np.round(gains, 2).tolist()}")
    assert np.mean(gains) >= 0.3, gains


def test_time_travel_lowers_the_final_energy(toy):
    lower = []
    for prompt, mask, seed in drawn_mask_cases(3622, CASES):
        finals = {travel: freedom.run(toy, freedom.FreeDoMParams(prompt, energy="mask", mask=mask, steps=25, seed=seed,
                                                                 time_travel=travel, guidance_scale=6.0)).final_energy
                  for travel in (1, 3)}
        lower.append(finals[3] < finals[1])
        print(f"FreeDoM time travel, {prompt}: final energy {finals}")
    assert np.mean(lower) >= 0.8, lower


def test_clip_inputs_follow_each_models_own_processor_config(tmp_path):
    """Every CLIP use normalises pixels as the CLIP model's own processor does: toy-clip's 0.5 (what it was
    trained with), the Hub CLIP's OpenAI values, OpenAI's for a model folder without a processor config."""
    import json

    from transformers import CLIPConfig, CLIPModel

    from core.guidance import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    toy, _ = Models("toy-sd", device="cpu").clip("toy-clip")
    assert clip_inputs(toy).mean == (0.5, 0.5, 0.5) and clip_inputs(toy).side == 64
    tiny = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1,
                                   "num_attention_heads": 2},
                      vision_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "image_size": 32, "patch_size": 16}, projection_dim=8)
    own = {"image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6]}
    for name, processor, expected in [("own", own, ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))),
                                      ("none", None, (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))]:
        CLIPModel(tiny).save_pretrained(tmp_path / name)
        if processor:
            (tmp_path / name / "preprocessor_config.json").write_text(json.dumps(processor))
        inputs = clip_inputs(CLIPModel.from_pretrained(tmp_path / name))
        assert ((inputs.mean, inputs.std), inputs.side) == (expected, 32), name
