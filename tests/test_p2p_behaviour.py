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
from core.shapes.dataset import PALETTE, SHAPES, Scene, ShapeObject, random_scene, render
from core.shapes.metrics import drawn_still_prompts, two_object_cases, two_object_prompt

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
# These stay the acceptance targets of issue 4, measured on drawn cases (strict: a pass flags it).


def drawn_swaps(seed: int, n: int, swap: str) -> list[tuple[str, str, str, int]]:
    """n (source prompt, target prompt, the new word, seed) drawn over the grammar: the colour (never the
    background's) or the shape swapped for another."""
    rng = np.random.default_rng(seed)
    cases = []
    for prompt in drawn_still_prompts(rng, n):
        _, color, shape, _, _, background, _ = prompt.split()
        if swap == "colour":
            old, new = color, str(rng.choice([c for c in PALETTE if c not in (color, background)]))
        else:
            old, new = shape, str(rng.choice([s for s in SHAPES if s != shape]))
        cases.append((prompt, prompt.replace(f" {old} ", f" {new} ", 1), new, int(rng.integers(10**6))))
    return cases


# The tab's own kind of example, kept as smoke tests: two swaps that hold.
@pytest.mark.parametrize("source_color, target_color, shape, background, seed", [("red", "blue", "circle", "white", 0),
                                                                                ("yellow", "red", "square", "white", 4)])
def test_word_swap_changes_colour_and_keeps_the_mask(pipe, source_color, target_color, shape, background, seed):
    result = edit(pipe, f"a {source_color} {shape} on a {background} background",
                  f"a {target_color} {shape} on a {background} background", seed=seed)
    before, after = reader.read_single(result.source_image), reader.read_single(result.edited_image)
    assert before is not None and after is not None
    assert after.color == target_color
    assert reader.mask_iou(before.mask, after.mask) >= 0.85


def colour_swap_held(pipe, source, target, new_color, seed) -> bool:
    result = edit(pipe, source, target, seed=seed)
    before, after = reader.read_single(result.source_image), reader.read_single(result.edited_image)
    return bool(before is not None and after is not None and after.color == new_color
                and reader.mask_iou(before.mask, after.mask) >= 0.85)


@pytest.mark.xfail(strict=True, reason="measured on drawn cases (draw 3601): 5 of 10 colour swaps recolour and keep "
                   "the mask (toy-sd's drift and lost layouts, above); the line is 8")
def test_word_swap_changes_colour_and_keeps_the_mask_on_drawn_cases(pipe):
    held = [colour_swap_held(pipe, *case) for case in drawn_swaps(3601, 10, "colour")]
    print(f"P2P colour swaps on drawn cases: {sum(held)} of {len(held)} recoloured with the mask kept (IoU ≥ 0.85)")
    assert np.mean(held) >= 0.8, f"{sum(held)} of {len(held)}"


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
# on 8 fixed cases (seeds 1–8): at P2P's notebook default (0.8, 0.4) 6 of 8 keep the place within 3 px; at self
# 0.6 and 0.8 all 8 did, shape and colour right in all. On 10 drawn cases (draw 3602, every background, any seed)
# 6 of 10 hold: the drift and lost layouts of the colour swaps above (gray backgrounds, small objects) reach shapes too.
def shape_swap_held(pipe, source, target, new_shape, seed) -> bool:
    result = edit(pipe, source, target, cross_replace_steps=0.8, self_replace_steps=0.8, seed=seed)
    before, after = reader.read_single(result.source_image), reader.read_single(result.edited_image)
    color, shape = source.split()[1:3]
    return bool(before is not None and after is not None and before.shape == shape and after.shape == new_shape
                and after.color == before.color == color and np.hypot(after.cx - before.cx, after.cy - before.cy) <= 3.0)


@pytest.mark.xfail(strict=True, reason="measured on drawn cases: 6 of 10 shape swaps keep place and colour (toy-sd's "
                   "layout drift, as for colour swaps); the line is 8")
def test_shape_swap_keeps_position_and_colour(pipe):
    held = [shape_swap_held(pipe, *case) for case in drawn_swaps(3602, 10, "shape")]
    print(f"P2P shape swaps on drawn cases: {sum(held)} of {len(held)} reshaped in place, colour kept")
    assert np.mean(held) >= 0.8, f"{sum(held)} of {len(held)}"


# Local blend keeps every latent outside its mask, and since the VAE decoder's spread is undone by the overlay
# (core/control/blend.py) the pixels there are the source's. What still fails is the mask. Measured before on 6
# fixed two-object prompts × seeds 4–9 (threshold 0.3): both colours right and the outside kept in 7 of 36 with
# the last step's maps, 15 of 36 with the maps summed over the steps so far (the official's, now ours); 23 of 36 at
# threshold 0.5; 13 of 36 with the other object's word in blend_exclude_words (the official substruct_words): its
# own map misses that object's soft edge, which the blend word's pooled map reaches. toy-sd's word maps put a
# third of their peak on the other object in some scenes (and on a gray background a faint third blob). On 12 drawn
# cases (white and black backgrounds): 4 of 12.
def drawn_local_blend_cases(seed: int, n: int) -> list[tuple]:
    """n (two-object prompt, colour → new colour, blend word, index of its object left to right, seed), drawn over
    the grammar's two-object prompts (two different shapes, so that the blend word names one object)."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < n:
        case = two_object_cases(rng, 1)[0]
        left, left_shape, right, right_shape, _ = case
        if left_shape == right_shape:
            continue
        index = int(rng.integers(2))
        color, word = (left, left_shape) if index == 0 else (right, right_shape)
        new_color = str(rng.choice([c for c in PALETTE if c not in (left, right)]))
        cases.append((two_object_prompt(case), color, new_color, word, index, int(rng.integers(10**6))))
    return cases


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


@pytest.mark.xfail(strict=True, reason="measured on drawn cases (draw 3603): 4 of 12 recolour the named object only "
                   "(local blend's mask takes in the other object); the line is 80%")
def test_local_blend_changes_only_the_named_object(pipe):
    kept = [local_blend_keeps_the_rest(pipe, *case) for case in drawn_local_blend_cases(3603, 12)]
    print(f"P2P local blend on drawn cases: {sum(kept)} of {len(kept)} recoloured the named object only")
    assert np.mean(kept) >= 0.8, f"{sum(kept)} of {len(kept)}"


# Measured (session 12): every palette colour on gray, seeds 0–2, weights −2, 0, 1, 3, 5. The object's colour
# was further from its palette colour at weight 5 than at weight 1 in 16 of 18 cases. The colour never came
# monotonically closer (0 of 18): in toy-sd, more attention on the colour word makes the colour worse.
@pytest.mark.xfail(strict=True, reason="measured on drawn cases (draw 3604): the colour grows with its word's weight in "
                   "3 of 6 (toy-sd reads a colour from the tokens after its word); the line is 80%")
def test_reweight_effect_grows_with_the_weight(pipe):
    rng = np.random.default_rng(3604)
    grows = []
    for prompt in drawn_still_prompts(rng, 6):
        color, seed = prompt.split()[1], int(rng.integers(10**6))
        closeness = []  # how near the object's pixels come to the colour word's palette colour, per weight
        for value in (-2.0, 0.0, 1.0, 3.0):
            result = edit(pipe, prompt, prompt, edit_mode="reweight", reweight_words=color, reweight_value=value, seed=seed)
            blob = reader.read_single(result.source_image)
            pixels = result.edited_image[blob.mask > 0] if blob is not None else result.edited_image.reshape(-1, 3)
            closeness.append(-float(np.linalg.norm(pixels.astype(float) - PALETTE[color], axis=-1).mean()))
        grows.append(all(b > a for a, b in zip(closeness, closeness[1:])))
    print(f"P2P reweighting the colour word on drawn cases: the colour grows with the weight in {sum(grows)} of {len(grows)}")
    assert np.mean(grows) >= 0.8, grows


# ---- null-text inversion -----------------------------------------------------------------------

IMAGE = render(Scene((ShapeObject("red", "circle", 30, 34, 16),), "white"))
CAPTION = "a red circle on a white background"
NULL_TEXT_CASES = 6


def invert_edit(pipe, inversion, target=CAPTION, image=IMAGE, caption=CAPTION, cache=None, **kwargs):
    params = null_text.NullTextParams(p2p.P2PParams(caption, target, steps=STEPS, guidance_scale=7.5, **kwargs),
                                      inversion=inversion)
    return null_text.run(pipe, image, params, cache, "toy-sd")


@torch.no_grad()
def vae_psnr(pipe, image):
    return null_text.psnr(decode(pipe, encode_images(pipe, image[None]))[0], image)


@pytest.fixture(scope="module")
def drawn_pictures():
    """(picture, its caption, a new colour for it) drawn over the grammar: one object anywhere, any size."""
    rng = np.random.default_rng(3607)
    cases = []
    for prompt in drawn_still_prompts(rng, NULL_TEXT_CASES):
        _, color, shape, _, _, background, _ = prompt.split()
        scene = random_scene(rng, 64, two_object_prob=0.0, color=color, shape=shape, background=background)
        new_color = str(rng.choice([c for c in PALETTE if c not in (color, background)]))
        cases.append((render(scene), scene.caption(), new_color))
    return cases


@pytest.fixture(scope="module")
def inversions():
    """Null-text inversions of the drawn pictures, made once: the colour edits reuse them (the tab's cache)."""
    return null_text.InversionCache()


@pytest.fixture(scope="module")
def reconstructions(pipe, drawn_pictures, inversions):
    """(VAE-only, null-text, DDIM-inversion) PSNR in dB for each drawn picture."""
    figures = []
    for image, caption, _ in drawn_pictures:
        vae = vae_psnr(pipe, image)
        nti = invert_edit(pipe, "null-text", target=caption, image=image, caption=caption, cache=inversions)
        ddim = invert_edit(pipe, "ddim", target=caption, image=image, caption=caption)
        figures.append((vae, nti.psnr, ddim.psnr))
        print(f"null-text {caption}: {nti.psnr:.1f} dB (VAE {vae:.1f}, DDIM inversion {ddim.psnr:.1f})")
    return figures


def test_null_text_reconstruction_reaches_the_vae_bound(reconstructions):
    """Measured on the 6 drawn pictures: within 0.1 dB of the VAE's own round trip in every one."""
    assert np.mean([nti >= vae - 1.5 for vae, nti, _ in reconstructions]) >= 0.8


# On the example picture (a red circle on white) null-text beat plain DDIM inversion by more than 5 dB; on the drawn
# pictures DDIM inversion is already 24.7–28.2 dB on gray and black backgrounds (14.3 and 18.0 on white), so the
# margin holds in 2 of 6 (null-text 24.1–30.6 dB, at the VAE bound in every one).
@pytest.mark.xfail(strict=True, reason="measured on drawn pictures: null-text beats DDIM inversion by ≥ 5 dB in 2 of 6 "
                   "(DDIM inversion is already near the VAE bound on gray and black backgrounds); the line is 80%")
def test_null_text_reconstruction_beats_ddim_inversion(reconstructions):
    assert np.mean([nti >= ddim + 5.0 for _, nti, ddim in reconstructions]) >= 0.8


@pytest.mark.xfail(strict=True, reason="measured on drawn pictures (draw 3607): 1 of 6 null-text colour edits recolour and "
                   "keep the mask (toy-sd's word swaps drift, above); the line is 80%")
def test_null_text_colour_edit_keeps_the_mask(pipe, drawn_pictures, inversions):
    held = []
    for image, caption, new_color in drawn_pictures:
        old_color = caption.split()[1]
        nti = invert_edit(pipe, "null-text", target=caption.replace(f" {old_color} ", f" {new_color} ", 1), image=image,
                          caption=caption, cache=inversions)
        before, after = reader.read_single(image), reader.read_single(nti.edited)
        held.append(bool(after is not None and after.color == new_color and reader.mask_iou(before.mask, after.mask) >= 0.8))
    print(f"null-text colour edits on drawn pictures: {sum(held)} of {len(held)} recoloured, mask kept (IoU ≥ 0.8)")
    assert np.mean(held) >= 0.8, held


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
