"""Prompt-to-Prompt and null-text editing on the embedded toy-sd (issue 4), measured on images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.methods import null_text, p2p
from core.models import Models
from core.denoisers import TextGuided
from core.sampling import decode, denoise, encode_images, encode_prompts, prepare_latents, square_image
from core.shapes import reader
from core.shapes.dataset import Scene, ShapeObject, render

STEPS, GUIDANCE = 25, 6.0


@pytest.fixture(scope="module")
def pipe():
    return Models("toy-sd", device="cpu").pipeline()


def edit(pipe, source, target, **kwargs):
    kwargs = {"steps": STEPS, "guidance_scale": GUIDANCE, **kwargs}
    return p2p.edit(pipe, p2p.P2PParams(source, target, **kwargs))


# toy-sd's word maps cover their objects (share 0.90 vs 0.31 uniform; core/training/localisation.py), yet about half
# of random colour swaps miss the IoU bar on every toy-sd variant tried (toy-sd card, sessions 13–15):
# - on gray backgrounds the layout can change altogether: the VAE's latents there are not local, and the edit puts
#   the object on the faint second one the source holds (all 7 lost layouts of 24 swaps are on gray);
# - on white and black the object's size drifts (IoU 0.64–0.69 for three of the five swaps below; two stay at 0.84
#   even at cross 1.0 / self 0.9);
# - these weights read an object's colour from the tokens after its word (CLIP's text encoder is causal), so
#   reweighting "red" barely moves redness (weight 0 leaves the circle red). A text encoder without layers put the
#   colour at its word (11 of 17 white/black swaps against 7) but not past the bar.
# Local blend's mask takes in the other object.
# These stay the acceptance targets of issue 4 (strict: a pass flags it).
DRIFT = pytest.mark.xfail(strict=True, reason="toy-sd: the edited object's size drifts after injection (IoU < 0.85)")
UNCONFINED = pytest.mark.xfail(strict=True, reason="toy-sd: edits are not yet confined to the named word's region")


COLOUR_SWAPS = [("red", "blue", "circle", "white", 0),
                pytest.param("green", "yellow", "square", "black", 1, marks=DRIFT),
                pytest.param("blue", "orange", "triangle", "white", 2, marks=DRIFT),
                pytest.param("purple", "green", "circle", "black", 3, marks=DRIFT),
                ("yellow", "red", "square", "white", 4)]


@pytest.mark.parametrize("source_color, target_color, shape, background, seed", COLOUR_SWAPS)
def test_word_swap_changes_colour_and_keeps_the_mask(pipe, source_color, target_color, shape, background, seed):
    result = edit(pipe, f"a {source_color} {shape} on a {background} background",
                  f"a {target_color} {shape} on a {background} background", seed=seed)
    before, after = reader.read_single(result.source_image), reader.read_single(result.edited_image)
    assert before is not None and after is not None
    assert after.color == target_color
    assert reader.mask_iou(before.mask, after.mask) >= 0.85


@torch.no_grad()
def test_without_injection_the_edit_is_a_plain_generation(pipe):
    source, target = "a red circle on a white background", "a blue circle on a white background"
    result = edit(pipe, source, target, cross_replace_steps=0.0, self_replace_steps=0.0, seed=7)
    generator = torch.Generator().manual_seed(7)
    latents = prepare_latents(pipe, 1, 64, 64, generator)
    plain = denoise(TextGuided(pipe.unet, encode_prompts(pipe, [target]), encode_prompts(pipe, [""]), GUIDANCE),
                    pipe.scheduler, latents, STEPS)
    expected = decode(pipe, plain.latents)[0]
    assert np.abs(result.edited_image.astype(int) - expected.astype(int)).max() <= 2


# Shape swaps with FateZero's object-edit schedule (cross 0.8, self 0.8: its jeep → Porsche style configs). Measured
# on these 8 cases (seeds 1–8): at P2P's notebook default (0.8, 0.4) 6 of 8 keep the place within 3 px (the
# green circle moves 3.9 px, the blue square 6.0); at self 0.6 and 0.8 all 8 do, shape and colour right in all.
SHAPE_SWAPS = [("green", "circle", "square", "black", 1), ("red", "square", "circle", "white", 2),
               ("blue", "circle", "triangle", "white", 3), ("yellow", "triangle", "square", "gray", 4),
               ("purple", "square", "triangle", "black", 5), ("orange", "circle", "square", "white", 6),
               ("red", "triangle", "circle", "black", 7), ("blue", "square", "circle", "gray", 8)]


@pytest.mark.parametrize("color, shape, new_shape, background, seed", SHAPE_SWAPS)
def test_shape_swap_keeps_position_and_colour(pipe, color, shape, new_shape, background, seed):
    result = edit(pipe, f"a {color} {shape} on a {background} background", f"a {color} {new_shape} on a {background} background",
                  cross_replace_steps=0.8, self_replace_steps=0.8, seed=seed)
    before, after = reader.read_single(result.source_image), reader.read_single(result.edited_image)
    assert before.shape == shape and after.shape == new_shape
    assert after.color == before.color == color
    assert np.hypot(after.cx - before.cx, after.cy - before.cy) <= 3.0


# Local blend keeps every latent outside its mask, and since the VAE decoder's spread is undone by the overlay
# (core/control/blend.py) the pixels there are the source's. What still fails is the mask. Measured on the cases
# below (6 two-object prompts × seeds 4–9, threshold 0.3): both colours right and the outside kept in 7 of 36 with
# the last step's maps, 15 of 36 with the maps summed over the steps so far (the official's, now ours); 23 of 36 at
# threshold 0.5; 13 of 36 with the other object's word in blend_exclude_words (the official substruct_words): its
# own map misses that object's soft edge, which the blend word's pooled map reaches. toy-sd's word maps put a
# third of their peak on the other object in some scenes (and on a gray background a faint third blob).
LOCAL_BLEND_CASES = [  # (source prompt, colour → new colour, blend word, index of its object left to right)
    ("a red circle and a blue square on a white background", "blue", "yellow", "square", 1),
    ("a green triangle and a red circle on a black background", "red", "blue", "circle", 1),
    ("a yellow square and a purple circle on a gray background", "purple", "orange", "circle", 1),
    ("a blue circle and a green square on a white background", "blue", "red", "circle", 0),
    ("a orange triangle and a blue square on a black background", "blue", "green", "square", 1),
    ("a purple square and a yellow triangle on a white background", "yellow", "red", "triangle", 1)]


def local_blend_keeps_the_rest(pipe, source, color, new_color, word, index, seed) -> bool:
    target = source.replace(color, new_color)
    result = edit(pipe, source, target, blend_words=word, seed=seed)
    objects, edited = reader.read_objects(result.source_image), reader.read_objects(result.edited_image)
    if len(objects) != 2 or [o.color for o in edited] != [w for w in target.split() if w in reader.PALETTE]:
        return False
    # outside the named object (grown by a few pixels for soft edges) nothing may change
    region = np.logical_or(objects[index].mask, edited[index].mask).astype(np.uint8)
    outside = cv2.dilate(region, np.ones((9, 9), np.uint8)) == 0
    change = np.abs(result.edited_image.astype(int) - result.source_image.astype(int)).max(-1)
    return bool(change[outside].mean() < 1.0 and np.percentile(change[outside], 99) <= 6)


@UNCONFINED
def test_local_blend_changes_only_the_named_object(pipe):
    kept = [local_blend_keeps_the_rest(pipe, *case, seed) for case in LOCAL_BLEND_CASES for seed in range(4, 10)]
    assert np.mean(kept) >= 0.8, f"{sum(kept)} of {len(kept)}"


# Measured (session 12): every palette colour on gray, seeds 0–2, weights −2, 0, 1, 3, 5. The object's colour
# was further from its palette colour at weight 5 than at weight 1 in 16 of 18 cases. The colour never came
# monotonically closer (0 of 18): in toy-sd, more attention on the colour word makes the colour worse.
@UNCONFINED
def test_reweight_effect_grows_with_the_weight(pipe):
    prompt = "a red circle on a gray background"
    redness = []
    for value in (-2.0, 0.0, 1.0, 3.0):
        result = edit(pipe, prompt, prompt, edit_mode="reweight", reweight_words="red", reweight_value=value, seed=5)
        image = result.edited_image.astype(float)
        redness.append(float(np.mean(image[..., 0] - (image[..., 1] + image[..., 2]) / 2)))
    assert all(b > a for a, b in zip(redness, redness[1:])), redness


# ---- null-text inversion -----------------------------------------------------------------------

IMAGE = render(Scene((ShapeObject("red", "circle", 30, 34, 16),), "white"))
CAPTION = "a red circle on a white background"


def invert_edit(pipe, inversion, target=CAPTION, **kwargs):
    params = null_text.NullTextParams(p2p.P2PParams(CAPTION, target, steps=STEPS, guidance_scale=7.5, **kwargs),
                                      inversion=inversion)
    return null_text.run(pipe, IMAGE, params)


@torch.no_grad()
def vae_psnr(pipe):
    return null_text.psnr(decode(pipe, encode_images(pipe, IMAGE[None]))[0], IMAGE)


def test_null_text_reconstruction(pipe):
    vae = vae_psnr(pipe)
    nti = invert_edit(pipe, "null-text")
    ddim = invert_edit(pipe, "ddim")
    assert nti.psnr >= vae - 1.5, (nti.psnr, vae)
    assert nti.psnr >= ddim.psnr + 5.0, (nti.psnr, ddim.psnr)


def test_null_text_colour_edit_keeps_the_mask(pipe):
    nti = invert_edit(pipe, "null-text", target="a blue circle on a white background")
    before, after = reader.read_single(IMAGE), reader.read_single(nti.edited)
    assert after.color == "blue"
    assert reader.mask_iou(before.mask, after.mask) >= 0.8


def test_inversion_is_cached(pipe):
    cache = null_text.InversionCache()
    params = null_text.NullTextParams(p2p.P2PParams(CAPTION, "a green circle on a white background", steps=STEPS),
                                      inversion="negative-prompt")
    first = null_text.run(pipe, IMAGE, params, cache, "toy-sd")
    params.edit.target_prompt = "a yellow circle on a white background"
    second = null_text.run(pipe, IMAGE, params, cache, "toy-sd")
    assert not first.cached and second.cached and second.seconds == 0.0
    assert np.array_equal(first.reconstruction, second.reconstruction)


def test_negative_prompt_inversion_is_much_cheaper(pipe):
    """Speed as a count of UNet evaluations (deterministic); seconds are in bench/inversion_speed.py."""
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        counts = {}
        for kind in ("negative-prompt", "null-text"):
            calls.clear()
            params = null_text.NullTextParams(p2p.P2PParams(CAPTION, CAPTION, steps=STEPS), inversion=kind)
            null_text.invert(pipe, square_image(IMAGE, 64), CAPTION, params)
            counts[kind] = len(calls)
    finally:
        handle.remove()
    assert counts["null-text"] >= 5 * counts["negative-prompt"], counts
