"""Prompt-to-Prompt mechanics on tiny random components: alignment, schedules, controllers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.attention import AttentionContext
from core.control.alignment import refinement_alignment, replacement_mapper, token_positions
from core.control.blend import LocalBlend, overlay_source
from core.control.schedule import cross_replace_alpha, parse_steps, step_window
from core.control.store import AttentionStore
from core.methods import p2p
from core.denoisers import TextGuided
from core.sampling import decode, denoise, encode_prompts, prepare_latents
from core.tokenizer import clip_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer(24)


def test_replacement_mapper_same_length_words_is_identity(tokenizer):
    mapper = replacement_mapper(tokenizer, "a red circle on a white background", "a blue circle on a white background")
    assert torch.equal(mapper, torch.eye(24))


def test_replacement_mapper_spreads_multi_token_words(tokenizer):
    source, target = "a red circle", "a xylophonist circle"
    n_target = len(tokenizer.encode("xylophonist", add_special_tokens=False))
    assert n_target > 1
    mapper = replacement_mapper(tokenizer, source, target)
    # "red" (position 2) spreads evenly over the target word's tokens, 1/len(target tokens) each as the official
    # (a source token's attention mass is conserved); "circle" moves along (the official would map position j to j)
    assert mapper[2, 2:2 + n_target].tolist() == pytest.approx([1.0 / n_target] * n_target)
    assert float(mapper[2].sum()) == pytest.approx(1.0)
    assert mapper[3, 2 + n_target] == 1.0


def test_replacement_needs_equal_word_counts(tokenizer):
    with pytest.raises(ValueError, match="same number of words"):
        replacement_mapper(tokenizer, "a red circle", "a big red circle")


def test_refinement_alignment(tokenizer):
    index, aligned = refinement_alignment(tokenizer, "a red circle on a white background",
                                          "a big red circle on a white background")
    # "big" (position 2) is new; "red" moved from 2 to 3; the tail follows
    assert aligned[2] == 0 and aligned[3] == 1 and index[3] == 2 and index[4] == 3
    assert aligned[1] == 1 and index[1] == 1
    # EOS takes the source's EOS; the padding after it keeps its own position (the official get_refinement_mapper)
    index, aligned = refinement_alignment(tokenizer, "a circle", "a big red circle")
    assert index[5] == 3 and aligned[5] == 1  # target EOS (BOS + 4 tokens) ← source EOS (BOS + 2 tokens)
    assert index[6:].tolist() == list(range(6, 24)) and aligned[6:].tolist() == [1.0] * 18


def test_token_positions(tokenizer):
    assert token_positions(tokenizer, "a red circle and a blue square", "blue, square") == [6, 7]
    assert token_positions(tokenizer, "a red circle", "green") == []


def test_schedules(tokenizer):
    assert step_window(0.8, 50) == (0, 40)
    assert step_window((0.2, 0.6), 10) == (2, 6)
    with pytest.raises(ValueError):
        step_window((0.8, 0.2), 10)
    alpha = cross_replace_alpha(tokenizer, "a blue circle on a white background", {"default_": 0.8, "blue": 0.2}, 10)
    assert alpha[:, 1].tolist() == [1] * 8 + [0] * 2
    assert alpha[:, 2].tolist() == [1] * 2 + [0] * 8
    # the official windows: cross-replace int(f·(N + 1)) (its alpha has N + 1 rows), self-replace int(f·N);
    # rounding f·N differs at these step counts
    assert cross_replace_alpha(tokenizer, "a blue circle", 0.8, 9)[:, 1].tolist() == [1] * 8 + [0]
    assert step_window(0.4, 7) == (0, 2)
    assert p2p.build_controllers(tokenizer, p2p.P2PParams("a red circle", "a blue circle", self_replace_steps=0.4, steps=7),
                                 7, 16).edit.self_window == (0, 2)
    assert parse_steps("0.8") == 0.8
    assert parse_steps("0.2, 0.6") == (0.2, 0.6)
    assert parse_steps("0.8; blue: 0.2") == {"default_": 0.8, "blue": 0.2}


@torch.no_grad()
def test_no_injection_equals_plain_target_generation(tiny_pipe):
    params = p2p.P2PParams("a red circle on a white background", "a blue circle on a white background",
                           cross_replace_steps=0.0, self_replace_steps=0.0, steps=6, guidance_scale=7.5, seed=4)
    result = p2p.edit(tiny_pipe, params)
    generator = torch.Generator().manual_seed(4)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, generator)
    model = TextGuided(tiny_pipe.unet, encode_prompts(tiny_pipe, [params.target_prompt]), encode_prompts(tiny_pipe, [""]),
                       7.5)
    plain = denoise(model, tiny_pipe.scheduler, latents, 6)
    expected = decode(tiny_pipe, plain.latents)[0]
    assert np.abs(result.edited_image.astype(int) - expected.astype(int)).max() <= 2


@torch.no_grad()
def test_full_injection_of_identical_prompts_copies_the_source(tiny_pipe):
    # same prompt, all maps injected: the target must reproduce the source
    prompt = "a red circle on a white background"
    params = p2p.P2PParams(prompt, prompt, edit_mode="replace", cross_replace_steps=1.0, self_replace_steps=1.0, steps=5)
    result = p2p.edit(tiny_pipe, params)
    assert np.abs(result.edited_image.astype(int) - result.source_image.astype(int)).max() <= 1
    assert len(result.heatmaps) == len(tiny_pipe.tokenizer.tokenize(prompt))
    assert result.heatmaps[0][1].shape[0] >= 256


@torch.no_grad()
def test_injection_changes_the_edit(tiny_pipe):
    base = dict(source_prompt="a red circle on a white background", target_prompt="a blue square on a black background",
                steps=5, seed=1)
    free = p2p.edit(tiny_pipe, p2p.P2PParams(**base, cross_replace_steps=0.0, self_replace_steps=0.0))
    injected = p2p.edit(tiny_pipe, p2p.P2PParams(**base, cross_replace_steps=1.0, self_replace_steps=1.0))
    assert np.abs(free.edited_image.astype(int) - injected.edited_image.astype(int)).max() > 2
    # the source is never touched: equal up to rounding, since with injection its attention takes the
    # explicit path and without it the fused kernel (one thread: 2 pixels one level apart, measured)
    assert np.abs(free.source_image.astype(int) - injected.source_image.astype(int)).max() <= 2


@torch.no_grad()
def test_local_blend_keeps_outside_of_mask(tiny_pipe):
    params = p2p.P2PParams("a red circle on a white background", "a blue circle on a white background",
                           blend_words="circle", blend_threshold=0.5, blend_start=0.0, steps=5)
    controllers = p2p.build_controllers(tiny_pipe.tokenizer, params, 5, 16)
    order = controllers.as_list()
    assert controllers.blend is not None and order.index(controllers.edit) < order.index(controllers.store) < order.index(controllers.blend)
    result = p2p.edit(tiny_pipe, params)
    assert result.blend_mask is not None and result.blend_mask.shape == (16, 16)
    mask = result.blend_mask > 0.5
    assert 0 < mask.mean() < 1
    # beyond the overlay's seam (2·feather px past the mask) the edited picture is the source's, pixel for pixel:
    # the latents there are the source's, and the overlay undoes the VAE decoder's spread
    scale = result.source_image.shape[0] // mask.shape[0]
    seam = 2 * (tiny_pipe.vae_scale_factor // 2)
    grown = cv2.dilate(np.kron(mask, np.ones((scale, scale))).astype(np.uint8), np.ones((2 * seam + 1,) * 2, np.uint8))
    outside = grown == 0
    assert outside.any() and np.array_equal(result.edited_image[outside], result.source_image[outside])
    assert not np.array_equal(result.edited_image, result.source_image)


def test_local_blend_mask_reads_the_summed_maps_and_takes_out_excluded_words():
    maps = torch.zeros(2, 6, 6, 3)  # (prompts, side, side, tokens): token 1 the blend word, token 2 excluded
    maps[..., :2, 1], maps[..., 2, 1] = 1.0, 0.5  # blend word: columns 0–1, weaker on column 2
    maps[..., 2:, 2] = 1.0  # excluded word: columns 2–5
    store = AttentionStore(side=6)
    ctx = AttentionContext("attn2", is_cross=True, num_queries=36, step=0, num_steps=2, batch=2, frames=1, guided=False)
    for step_maps in (maps, 0.2 * maps.flip(2)):  # a weaker last step that disagrees: the official sums the steps
        store.step_begin(0, 2)
        store.attention(step_maps.reshape(2, 1, 36, 3), ctx)  # one head
        store.step_end(torch.zeros(2, 4, 6, 6), 0)
    columns = lambda mask: mask[1, 0, 0].any(0).tolist()
    plain = LocalBlend(store, [[1], [1]], threshold=0.3)
    assert columns(plain.mask((6, 6))) == [True] * 4 + [False] * 2  # 3×3 max-pool grows it by a column
    excluding = LocalBlend(store, [[1], [1]], threshold=0.3, exclude_positions=[[2], [2]])
    assert columns(excluding.mask((6, 6))) == [True] * 2 + [False] * 4


def test_overlay_source_keeps_the_source_outside_the_mask():
    source, edited = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)
    mask = np.zeros((4, 4), np.float32)
    mask[1, 1] = 1  # pixels 4–7 of a 16-px image
    out = overlay_source(source, edited, mask, feather=1)
    assert (out[4:8, 4:8] == 200).all()  # the mask itself: the edit
    assert (out[:2] == 0).all() and (out[10:] == 0).all() and (out[:, 10:] == 0).all()  # past the seam: the source
    assert 0 < out[4, 3, 0] < 200 and 0 < out[8, 5, 0] < 200  # the seam blends
    assert np.array_equal(overlay_source(source, edited, mask, feather=0)[3:9, 3:9, 0] > 0,
                          np.pad(np.ones((4, 4), bool), 1))


def test_bad_parameters_are_clear(tiny_pipe):
    with pytest.raises(ValueError, match="edit_mode"):
        p2p.edit(tiny_pipe, p2p.P2PParams("a b", "a c", edit_mode="swap"))
    with pytest.raises(ValueError, match="reweight_words"):
        p2p.edit(tiny_pipe, p2p.P2PParams("a red circle", "a red circle", reweight_words="green"))
    with pytest.raises(ValueError, match="blend_exclude_words"):
        p2p.edit(tiny_pipe, p2p.P2PParams("a red circle", "a blue circle", blend_words="circle", blend_exclude_words="dog"))
    with pytest.raises(ValueError, match="needs blend_words"):
        p2p.edit(tiny_pipe, p2p.P2PParams("a red circle", "a blue circle", blend_exclude_words="red"))
    with pytest.raises(ValueError, match="same number of words"):
        p2p.edit(tiny_pipe, p2p.P2PParams("a red circle", "a very red circle", edit_mode="replace"))


@torch.no_grad()
def test_the_store_records_the_edited_maps(tiny_pipe):
    """The official's store holds the tensor the edit then changes in place, so local blend reads the target's maps
    after the edit: with a word swap of equal token counts injected at every step, the stored target maps are the
    source's."""
    params = p2p.P2PParams("a red circle on a white background", "a blue circle on a white background",
                           blend_words="circle", cross_replace_steps=1.0, self_replace_steps=0.0, steps=3)
    controllers = p2p.build_controllers(tiny_pipe.tokenizer, params, 3, 16)
    from core.attention import install
    latents = prepare_latents(tiny_pipe, 1, 32, 32, torch.Generator().manual_seed(0))
    with install(tiny_pipe.unet).use(controllers.as_list()):
        model = TextGuided(tiny_pipe.unet, encode_prompts(tiny_pipe, [params.source_prompt, params.target_prompt]),
                           encode_prompts(tiny_pipe, [""]), 7.5)
        denoise(model, tiny_pipe.scheduler, latents.expand(2, -1, -1, -1).clone(), 3)
    total = controllers.store.total
    torch.testing.assert_close(total[1], total[0])


def test_local_blend_upsamples_the_mask_nearest():
    """The official upsamples the word maps with nearest (bilinear rounds a cell's corner off at this threshold)."""
    store = AttentionStore(side=2)
    store.total = torch.zeros(2, 4, 3)
    store.total[:, 0, 1] = 1.0  # word token 1 attends to the top-left cell only
    blend = LocalBlend(store, [[1], [1]], threshold=0.7)
    mask = blend.word_mask([[1], [1]], (4, 4), pool=False)[0, 0, 0]
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(mask, expected)
