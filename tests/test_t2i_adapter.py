"""T2I-Adapter: condition extraction, composition and cond_tau on tiny random components; the
embedded toy-adapters' behaviour read from pixels; /t2i_adapter through gradio_client."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from gradio_client import handle_file

from core import config
from bench.fake_hub import fake_hub_repo
from core.conditions import EXTRACTORS, extract, fill_outline
from core.methods import t2i_adapter as ta
from core.models import Models
from core.shapes import dataset, reader
from core.shapes.metrics import drawn_condition_cases

SQUARE = dataset.Scene((dataset.ShapeObject("blue", "square", 20, 40, 13),), "white")


# ---- condition maps -------------------------------------------------------------------------

def test_every_extractor_keeps_the_size_and_handles_frames():
    image = dataset.render(SQUARE)
    for kind in EXTRACTORS:
        single = extract(kind, image)
        assert single.shape == image.shape and single.dtype == np.uint8, kind
        assert extract(kind, np.stack([image, image])).shape == (2, *image.shape)
    with pytest.raises(ValueError, match="no offline extractor"):
        extract("depth", image)


def test_extractors_carry_what_they_should():
    image = dataset.render(SQUARE)
    truth = dataset.object_mask(SQUARE.objects[0])
    assert reader.mask_iou(fill_outline(extract("canny", image)), truth) >= 0.85  # edges enclose the shape
    assert reader.mask_iou(extract("mask", image)[..., 0] > 127, truth) >= 0.9
    blocks = extract("palette", image)
    assert len(np.unique(blocks.reshape(-1, 3), axis=0)) <= 64  # 8×8 cells
    assert np.abs(blocks[40, 20].astype(int) - dataset.PALETTE["blue"]).max() <= 10  # the square's cell is blue
    assert np.ptp(extract("grayscale", image), axis=-1).max() == 0
    assert extract("blur", image).std() < image.std()
    assert (extract("inpaint", image)[32, 32] == 127).all() and (extract("outpaint", image)[0, 0] == 127).all()


# ---- mechanics on tiny random components -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_adapters(tiny_pipe):
    torch.manual_seed(1)
    first = ta.make_adapter(tuple(tiny_pipe.unet.config.block_out_channels), tiny_pipe.vae_scale_factor).eval()
    second = ta.make_adapter(tuple(tiny_pipe.unet.config.block_out_channels), tiny_pipe.vae_scale_factor, 1).eval()
    for adapter in (first, second):  # random weights large enough to move the result
        for p in adapter.parameters():
            p.data.mul_(3)
    return first, second


def run(pipe, adapters, kinds, weights, cond_tau=1.0, steps=6):
    image = dataset.render(SQUARE)
    params = ta.AdapterParams("a blue square", kinds, weights, cond_tau, True, steps, 5.0, seed=3)
    return ta.generate(pipe, adapters, [image] * len(kinds), params).image.astype(int)


def test_cond_tau_zero_equals_no_adapter(tiny_pipe, tiny_adapters):
    first, _ = tiny_adapters
    none = run(tiny_pipe, [first], ["canny"], [0.0])  # weight 0: no features at all
    assert np.array_equal(run(tiny_pipe, [first], ["canny"], [1.0], cond_tau=0.0), none)
    assert np.abs(run(tiny_pipe, [first], ["canny"], [1.0]) - none).max() > 10  # the adapter does act
    half = run(tiny_pipe, [first], ["canny"], [1.0], cond_tau=0.5)
    assert not np.array_equal(half, none) and not np.array_equal(half, run(tiny_pipe, [first], ["canny"], [1.0]))


def test_active_steps_follow_the_official_rule():
    assert ta.active_steps(50, 1.0) == 50 and ta.active_steps(50, 0.0) == 0
    assert ta.active_steps(50, 0.4) == 50 - int(0.6 * 50)


def test_two_adapters_weighted_one_and_zero_reproduce_each_single(tiny_pipe, tiny_adapters):
    first, second = tiny_adapters
    kinds = ["canny", "palette"]
    assert np.array_equal(run(tiny_pipe, [first, second], kinds, [1.0, 0.0]), run(tiny_pipe, [first], kinds[:1], [1.0]))
    assert np.array_equal(run(tiny_pipe, [first, second], kinds, [0.0, 1.0]), run(tiny_pipe, [second], kinds[1:], [1.0]))


def test_a_one_channel_adapter_takes_a_gray_map_alone_and_combined(tiny_pipe, tiny_adapters):
    """The official canny and sketch adapters take a 1-channel map (their config's in_channels): the map goes
    in gray, alone and beside a 3-channel adapter."""
    torch.manual_seed(2)
    gray = ta.make_adapter(tuple(tiny_pipe.unet.config.block_out_channels), tiny_pipe.vae_scale_factor,
                           in_channels=1).eval()
    for p in gray.parameters():
        p.data.mul_(3)
    none = run(tiny_pipe, [gray], ["canny"], [0.0])
    alone = run(tiny_pipe, [gray], ["canny"], [1.0])
    assert np.abs(alone - none).max() > 10  # it acts
    _, palette = tiny_adapters
    both = run(tiny_pipe, [gray, palette], ["canny", "palette"], [1.0, 0.0])
    assert np.array_equal(both, alone)
    square = dataset.render(SQUARE)
    assert ta.adapter_input(gray, square).shape == (1, 1, *square.shape[:2])


def test_bad_parameters_are_refused():
    for params, message in [(ta.AdapterParams(condition_types=[]), "at least one"),
                            (ta.AdapterParams(weights=[1.0, 1.0]), "weights"),
                            (ta.AdapterParams(cond_tau=1.5), "cond_tau"),
                            (ta.AdapterParams(weights=[-1.0]), "adapter weights must be between")]:
        with pytest.raises(ValueError, match=message):
            params.check()


# ---- behaviour on the embedded toy-adapters --------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    models = Models()
    return models.pipeline(), models


def square_at(cx, cy, radius=12, color="blue"):
    return dataset.Scene((dataset.ShapeObject(color, "square", cx, cy, radius),), "white")


# Measured on the shipped toy-adapters (batch 32, 3,000 steps each, ε-loss weighted by x0 error at high
# noise): the edge adapter gives IoU 0.804, 0.762, 0.871, 0.862 at the four places below (was 0.56,
# 0.52, 0.69, 0.02 with the plain ε-loss after 2,000 steps). The palette adapter moves the colour only
# towards the block's (1 of 4 here: green and blue come out purple, yellow red; 2 of 12 in its card).
WEAK_PALETTE = pytest.mark.xfail(strict=True, reason="the toy palette adapter is weak (see the comment above)")


def drawn_conditions(seed: int, n: int = 6):
    return drawn_condition_cases(np.random.default_rng(seed), n)


def test_edge_adapter_puts_the_shape_where_its_edges_are(toy):
    """The prompt names only a colour; the object's place and shape come from the edge map (drawn objects)."""
    pipe, models = toy
    adapter = models.t2i_adapters(["canny"])
    ious = []
    for picture, color, seed in drawn_conditions(3623):
        edges = extract("canny", picture)
        params = ta.AdapterParams(f"a {color} object on a white background", ["canny"], [1.0], extract=False, seed=seed)
        blob = reader.read_single(ta.generate(pipe, adapter, [edges], params).image)
        ious.append(0.0 if blob is None else reader.mask_iou(blob.mask, fill_outline(edges)))
    print(f"edge adapter on drawn objects: mask IoU with the edges' filled shape {np.round(ious, 3).tolist()}")
    assert np.mean(np.array(ious) >= 0.7) >= 0.8


def test_toy_adapters_two_at_once_match_each_alone_and_cond_tau_zero_is_plain(toy):
    pipe, models = toy
    adapters = models.t2i_adapters(["canny", "palette"])
    image = dataset.render(square_at(24, 24, color="green"))

    def generate(chosen, kinds, weights, cond_tau=1.0):
        params = ta.AdapterParams("a square on a white background", kinds, weights, cond_tau, steps=10, seed=4)
        return ta.generate(pipe, chosen, [image] * len(kinds), params).image

    assert np.array_equal(generate(adapters, ["canny", "palette"], [1.0, 0.0]), generate(adapters[:1], ["canny"], [1.0]))
    assert np.array_equal(generate(adapters, ["canny", "palette"], [0.0, 1.0]),
                          generate(adapters[1:], ["palette"], [1.0]))
    plain = generate(adapters, ["canny", "palette"], [0.0, 0.0])
    assert np.array_equal(generate(adapters, ["canny", "palette"], [1.0, 1.0], cond_tau=0.0), plain)


@WEAK_PALETTE
def test_palette_adapter_gives_the_block_colour(toy):
    pipe, models = toy
    adapter = models.t2i_adapters(["palette"])
    right = []
    for picture, _, seed in drawn_conditions(3624):
        color = reader.read_single(picture).color
        params = ta.AdapterParams("an object on a white background", ["palette"], [1.0], seed=seed)
        blob = reader.read_single(ta.generate(pipe, adapter, [picture], params).image)
        right.append(blob is not None and blob.color == color)
    print(f"palette adapter on drawn objects: the block colour in {sum(right)} of {len(right)}")
    assert np.mean(right) >= 0.75


# ---- endpoint -------------------------------------------------------------------------------

def test_t2i_adapter_endpoint(client):
    square = handle_file(str(config.EXAMPLES_DIR / "blue_square_left_white.png"))
    circle = handle_file(str(config.EXAMPLES_DIR / "yellow_circle_black.png"))
    image, maps = client.predict(conditions=[square, circle], condition_types=["canny", "palette"], weights="1, 0.5",
                                 prompt="an object on a white background", steps=4, api_name="/t2i_adapter")
    assert image and len(maps) == 2
    with pytest.raises(Exception, match="2 condition types but 1 condition images"):
        client.predict(conditions=[square], condition_types=["canny", "palette"], steps=2, api_name="/t2i_adapter")
    with pytest.raises(Exception, match="no offline extractor"):
        client.predict(conditions=[square], condition_types=["depth"], steps=2, api_name="/t2i_adapter")
    with pytest.raises(Exception, match="cond_tau must be a number from 0 to 1; got 2"):  # the slider's range, checked
        client.predict(conditions=[square], condition_types=["canny"], cond_tau=2, steps=2, api_name="/t2i_adapter")
    with pytest.raises(Exception, match="weights must be numbers"):
        client.predict(conditions=[square], condition_types=["canny"], weights="lots", steps=2, api_name="/t2i_adapter")


PICKLED_LOAD = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from core import config
from core.models import Models, ModelLoadError
config.CONVERTED_WEIGHTS_DIR = Path({converted!r})
if {refuse!r}:
    config.PICKLE_ALLOWLIST.clear()
try:
    adapters = Models("toy-sd", device="cpu").t2i_adapters({kinds!r}, base_model=config.HUB_BASE_MODEL)
    print("loaded", [a.config.in_channels for a in adapters])
except ModelLoadError as error:
    print("refused:", error)
"""


def load_offline(tmp_path, kinds, refuse=False) -> str:
    script = PICKLED_LOAD.format(root=str(config.ROOT), tests=str(config.ROOT / "tests"),
                                 converted=str(tmp_path / "converted"), refuse=refuse, kinds=kinds)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_allowlisted_pickle_only_adapters_load_converted_and_others_are_refused(tiny_pipe, tmp_path):
    """TencentARC's SD1.5 adapters ship only diffusion_pytorch_model.bin: laid out so in an offline Hub cache
    (canny and sketch with 1 input channel, as their configs say), the allowlisted ones load through a
    tensors-only read converted once to safetensors, alone and together; off the allowlist they are refused
    with the policy named; a corrupt file is a clear error."""
    channels = {"canny": 1, "sketch": 1, "depth": 3, "palette": 3, "pose": 3}
    for kind, repo_and_folder in config.T2I_ADAPTERS[config.HUB_BASE_MODEL].items():
        folder = tmp_path / "saved" / kind
        ta.make_adapter(tuple(tiny_pipe.unet.config.block_out_channels), tiny_pipe.vae_scale_factor,
                        in_channels=channels[kind]).save_pretrained(folder, safe_serialization=False)
        assert not list(folder.glob("*.safetensors"))
        fake_hub_repo(tmp_path / "hub", repo_and_folder[0], {p.name: p for p in folder.iterdir()})
    assert "refused:" in load_offline(tmp_path, ["canny"], refuse=True)
    assert "PICKLE_ALLOWLIST" in load_offline(tmp_path, ["canny"], refuse=True)
    assert not (tmp_path / "converted").exists()
    assert "loaded [1, 1, 3, 3, 3]" in load_offline(tmp_path, list(channels))
    assert len(list((tmp_path / "converted").rglob("diffusion_pytorch_model.safetensors"))) == len(channels)
    assert "loaded [1, 3]" in load_offline(tmp_path, ["sketch", "pose"])  # converted once: read from there
    broken = next((tmp_path / "hub").glob("models--TencentARC--t2iadapter_depth_sd15v2/snapshots/*"))
    (broken / "diffusion_pytorch_model.bin").write_bytes(b"not a pickle")
    shutil.rmtree(tmp_path / "converted" / "TencentARC--t2iadapter_depth_sd15v2")
    assert "refused: could not read the allowlisted weights" in load_offline(tmp_path, ["depth"])
