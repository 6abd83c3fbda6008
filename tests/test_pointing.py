"""What the point-and-click widgets hand the engine, without a browser: painted regions, drawn motion, clicked
words, "use as input"; and the new plain endpoint parameters they fill, through gradio_client."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image

from app_calls import call, clear_error
from core.control.alignment import word_alignment
from core.methods import p2p
from core.tokenizer import clip_tokenizer
from core.video import path_motion
from core.video_composition import parse_motion_path
from tabs import pointing


# ---- the engine side

@torch.no_grad()
def test_a_painted_region_alone_confines_the_edit(tiny_pipe):
    base = dict(source_prompt="a red circle on a white background", target_prompt="a blue square on a black background",
                steps=5, seed=1)
    side = tiny_pipe.unet.config.sample_size * tiny_pipe.vae_scale_factor
    region = np.zeros((2 * side, 3 * side), bool)  # painted over a wider picture: cropped to its centre square
    region[:, side:2 * side][side // 2:side, :side // 2] = True  # the crop's top-right quarter … of its lower half
    free = p2p.edit(tiny_pipe, p2p.P2PParams(**base))
    confined = p2p.edit(tiny_pipe, p2p.P2PParams(**base, blend_region=region))
    inside = np.zeros((side, side), bool)
    inside[side // 4:side // 2, :side // 2] = True  # the region after the centre crop and resize
    changed = np.abs(confined.edited_image.astype(int) - confined.source_image.astype(int)).max(-1)
    assert changed[~inside].max() == 0 and changed[inside].max() > 0
    assert np.array_equal(confined.source_image, free.source_image)
    assert confined.blend_mask is not None and 0 < confined.blend_mask.mean() < 1


@torch.no_grad()
def test_a_painted_region_confines_blend_words_and_an_empty_one_is_refused(tiny_pipe):
    params = p2p.P2PParams("a red circle on a white background", "a blue circle on a white background",
                           blend_words="circle", blend_threshold=0.0, blend_start=0.0, steps=4,
                           blend_region=np.eye(8, dtype=bool))
    controllers = p2p.build_controllers(tiny_pipe.tokenizer, params, 4, 16)
    assert controllers.blend.positions is not None and controllers.blend.region is not None
    result = p2p.edit(tiny_pipe, params)
    # threshold 0: the words' region is everything; the painted diagonal confines it
    assert result.blend_mask.mean() < 0.5
    with pytest.raises(ValueError, match="blend_region is empty"):
        p2p.P2PParams("a red circle", "a blue circle", blend_region=np.zeros((8, 8), bool)).check()


def test_attention_shares_sum_to_one_per_prompt(tiny_pipe):
    result = p2p.edit(tiny_pipe, p2p.P2PParams("a red circle", "a red circle", edit_mode="reweight",
                                               reweight_words="circle", reweight_value=3.0, steps=3))
    source, edited = result.attention_shares["source"], result.attention_shares["edited"]
    assert [w for w, _ in source] == ["a", "red", "circle"] and [w for w, _ in edited] == ["a", "red", "circle"]
    assert sum(s for _, s in source) == pytest.approx(1.0) and sum(s for _, s in edited) == pytest.approx(1.0)
    ratios = [e / s for (_, s), (_, e) in zip(source, edited)]
    assert ratios[2] == max(ratios) and ratios[2] > 1


def test_word_alignment_follows_the_edit():
    tokenizer = clip_tokenizer(77)
    assert word_alignment(tokenizer, "a red circle", "a blue circle") == [("a", "kept"), ("blue", "swap ← red"),
                                                                       ("circle", "kept")]
    assert word_alignment(tokenizer, "a circle", "a big circle", "auto") == [("a", "kept"), ("big", "added"),
                                                                             ("circle", "kept")]
    # refine chosen for prompts of equal length: alignment by tokens, so a swapped word shows as added
    assert word_alignment(tokenizer, "a red circle", "a blue circle", "refine")[1] == ("blue", "added")
    assert word_alignment(tokenizer, "a circle", "a big circle", "replace")[0][1].startswith("words differ")


def test_a_drawn_path_is_motion_vectors_along_it():
    flow = path_motion([(0.25, 0.5), (0.75, 0.5)], frames=5, side=64)
    assert flow.shape == (5, 64, 64, 2) and not flow[0].any()
    step = 0.5 * 63 / 4  # half the frame over 4 moves
    for k in range(1, 5):
        moving = np.abs(flow[k]).sum(-1) > 0
        ys, xs = np.nonzero(moving)
        assert abs(xs.mean() - (0.25 * 63 + k * step)) < 1 and abs(ys.mean() - 0.5 * 63) < 1
        assert flow[k][moving][:, 0] == pytest.approx(step) and not flow[k][moving][:, 1].any()
    assert parse_motion_path("0.1, 0.2; 0.3,0.4") == [(0.1, 0.2), (0.3, 0.4)]
    assert parse_motion_path("  ") is None
    for bad in ("0.1, 0.2", "0.1; 0.2", "nan, 0.5; 0.2, 0.2", "1.5, 0; 0, 0", "inf, 0; 0, 0"):
        with pytest.raises(ValueError, match="motion_path"):
            parse_motion_path(bad)


# ---- the page side, as functions

def test_canvas_values_become_maps_and_masks():
    layer = np.zeros((6, 8, 4), np.uint8)
    layer[2:4, 1:3] = (255, 0, 255, 128)
    value = {"background": np.zeros((6, 8, 3), np.uint8), "layers": [layer], "composite": layer}
    assert np.array_equal(pointing.painted(value), layer[..., 3] > 0)
    assert pointing.painted({"background": None, "layers": [np.zeros((6, 8, 4), np.uint8)], "composite": None}) is None
    drawn = pointing.drawing(value)  # a transparent composite is drawn over black
    assert drawn.shape == (6, 8, 3) and drawn[2, 1, 0] == 128 and drawn[0, 0].max() == 0
    assert pointing.drawing(None) is None
    mask = pointing.read_mask(np.asarray(Image.open(pointing.mask_file(pointing.painted(value)))))
    assert np.array_equal(mask, layer[..., 3] > 0)


def test_clicked_words_and_arrows():
    assert pointing.word_chips("a red circle", {"reweight_words": "circle", "blend_words": "red circle"}) == [
        ("a", None), (" ", None), ("red", "blend_words"), (" ", None), ("circle", "reweight_words + blend_words")]
    assert pointing.toggle_word("red circle", "Circle,") == "red"
    assert pointing.toggle_word("red", "circle") == "red circle"
    assert pointing.toggle_word("", "red") == "red"
    # a quarter of the frame to the right over 8 frames, in px of a 512-px frame per frame
    assert pointing.arrow_motion([(0.25, 0.5), (0.5, 0.5)], 8, 512) == pytest.approx((0.25 * 512 / 7, 0.0))
    directions = pointing.camera_directions(["guoyww/animatediff-motion-lora-pan-left", "x/y-tilt-up", "zoom in",
                                             "zoom out", "none"])
    assert directions == {"guoyww/animatediff-motion-lora-pan-left": (-1.0, 0.0), "x/y-tilt-up": (0.0, -1.0),
                          "zoom in": (0.0, 0.0)}
    assert pointing.nearest_direction((0.1, 0.55), directions) == "guoyww/animatediff-motion-lora-pan-left"
    assert pointing.nearest_direction((0.5, 0.1), directions) == "x/y-tilt-up"
    assert pointing.nearest_direction((0.52, 0.5), directions) == "zoom in"
    pad = pointing.MotionPad(None, None, None, None, trajectory=False)
    background = pointing.blank_picture(pointing.PAD_SIDE)
    points = []
    for x in (10, 200, 50):  # a third click starts a new arrow on a pad that takes one
        _, points = pad.click(background, points, SimpleNamespace(index=[x, 128]))
    assert points == [pytest.approx((50 / 255, 128 / 255))]


def test_every_result_can_be_sent_to_each_tab_of_its_kind():
    import app
    from core.models import Models

    app.build_demo(Models(), app.folders_from_environment())
    import tabs
    keys = {tabs.key(tab) for tab in tabs.ALL}
    from tabs import common

    assert {t.key for t in common.TARGETS["image"]} == {"null_text", "t2i_adapter", "unicontrol", "face0", "chatface",
                                                           "dreamix"}
    assert {t.key for t in common.TARGETS["video"]} == {"fatezero", "tune_a_video", "gen1", "dreamix", "videocomposer"}
    assert all(t.key in keys for kind in common.TARGETS.values() for t in kind)
    assert len([s for s in common.SOURCES if s.kind == "video"]) >= 8 and len(common.SOURCES) >= 25
    for source in common.SOURCES:
        assert [value for _, value in source.choice.choices] == [t.key for t in common.TARGETS[source.kind]]


# ---- the new plain parameters through the API

def test_api_blend_region_and_drawn_videocomposer_conditions(client, tmp_path):
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "right.png")
    source, edited, _ = call(client, "/p2p", blend_region=handle_file(str(tmp_path / "right.png")), steps=4,
                             source_prompt="a red circle on a white background",
                             target_prompt="a blue circle on a white background")
    source, edited = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (source, edited))
    assert np.array_equal(source[:, :32], edited[:, :32]) and not np.array_equal(source, edited)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "empty.png")
    assert "blend_region is empty" in clear_error(client, "/p2p", blend_region=handle_file(str(tmp_path / "empty.png")))
    hole = call(client, "/videocomposer", conditions=["mask"], mask_image=handle_file(str(tmp_path / "right.png")))
    assert hole[1]
    assert "motion_path" in clear_error(client, "/videocomposer", conditions=["motion"], motion_path="0.2, nan; 0.5, 0.5")
    assert "not among the conditions" in clear_error(client, "/videocomposer", conditions=["motion"],
                                                     mask_image=handle_file(str(tmp_path / "right.png")))
