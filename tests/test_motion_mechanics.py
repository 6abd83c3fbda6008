"""Motion modules, AnimateDiff and Tune-A-Video mechanics on tiny random components (issue 6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.attention import AttentionController, FrameMode, install
from core.methods import animatediff, tune_a_video
from core.models import load_lora
from core.motion import inflate, new_motion_adapter, temporal_parameters
from core.sampling import encode_prompts
from core.training.lora import MOTION_ATTENTION, add_lora, save_lora

FRAMES = 4


@pytest.fixture(scope="module")
def motion_unet(tiny_pipe):
    torch.manual_seed(0)
    return inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=8))


def video(rng, frames=6, size=32):
    return rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)


def test_zero_initialised_temporal_layers_start_as_the_image_unet(tiny_pipe, motion_unet):
    torch.manual_seed(1)
    latents = torch.randn(1, 4, FRAMES, 16, 16)
    context = encode_prompts(tiny_pipe, ["a red circle"])
    with torch.no_grad():
        video_eps = motion_unet(latents, 10, encoder_hidden_states=context.repeat(FRAMES, 1, 1)).sample
        image_eps = tiny_pipe.unet(latents[0].transpose(0, 1), 10, encoder_hidden_states=context.repeat(FRAMES, 1, 1)).sample
    assert torch.allclose(video_eps[0].transpose(0, 1), image_eps, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_inflate_builds_what_diffusers_from_unet2d_builds(dtype):
    """Our motion UNet is built empty and filled: the same weights, buffers and dtypes as from_unet2d's."""
    from diffusers import UNetMotionModel

    from conftest import make_tiny_pipe
    unet = make_tiny_pipe().unet.to(dtype)
    adapter = new_motion_adapter(unet, max_frames=8)
    torch.manual_seed(0)
    for parameter in adapter.parameters():
        parameter.data.normal_()  # no zero outputs: every motion weight matters
    expected, ours = UNetMotionModel.from_unet2d(unet, adapter).to(dtype).state_dict(), inflate(unet, adapter).state_dict()
    assert set(ours) == set(expected)
    assert all(ours[k].dtype == expected[k].dtype and torch.equal(ours[k], expected[k]) for k in expected)


class Recorder(AttentionController):
    def __init__(self):
        self.layers = set()

    def wants(self, ctx):
        self.layers.add(ctx.layer)
        return False


def test_temporal_layers_skip_frame_modes_and_controllers(tiny_pipe, motion_unet):
    recorder = Recorder()
    latents = torch.randn(1, 4, FRAMES, 16, 16)
    context = encode_prompts(tiny_pipe, ["a red circle"]).repeat(FRAMES, 1, 1)
    state = install(motion_unet)
    with torch.no_grad(), state.use([recorder], frames=FRAMES, frame_mode=FrameMode.SPARSE_CAUSAL):
        out = motion_unet(latents, 10, encoder_hidden_states=context).sample
    assert out.shape == latents.shape
    assert recorder.layers and not any("motion_modules" in layer for layer in recorder.layers)
    assert len(temporal_parameters(motion_unet)) > 0


def test_animatediff_runs_with_a_motion_lora(tiny_pipe, tmp_path):
    """A motion LoRA in diffusers' format (what the Hub's guoyww LoRAs are) loads through the app's
    loader and changes the video in proportion to its scale; scale 0 is no LoRA."""
    torch.manual_seed(2)
    trainer = inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=8))
    for p in temporal_parameters(trainer).values():  # make the temporal layers do something
        torch.nn.init.normal_(p, std=0.05)
    adapter_weights = {n: p.detach().clone() for n, p in temporal_parameters(trainer).items()}
    for p in add_lora(trainer, "pan", 4, MOTION_ATTENTION):
        torch.nn.init.normal_(p, std=0.2)
    save_lora(trainer, "pan", tmp_path / "pan")

    unet = inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=8))
    unet.load_state_dict(adapter_weights, strict=False)
    load_lora(unet, str(tmp_path / "pan"), "pan", local=True)
    params = animatediff.AnimateDiffParams("a red circle", frames=FRAMES, steps=3, guidance_scale=5.0, seed=0)
    without = animatediff.generate(tiny_pipe, unet, params, loras={})
    at_zero = animatediff.generate(tiny_pipe, unet, params, loras={"pan": 0.0})
    with_lora = animatediff.generate(tiny_pipe, unet, params, loras={"pan": 1.0})
    assert with_lora.shape == (FRAMES, 32, 32, 3)
    assert np.array_equal(without, at_zero)
    assert np.abs(with_lora.astype(int) - without).mean() > 1.0


def test_animatediff_rejects_absurd_parameters(tiny_pipe, motion_unet):
    for kwargs in ({"frames": 0}, {"frames": 10_000}, {"steps": -1}, {"guidance_scale": float("nan")},
                   {"motion_lora_scale": 99.0}):
        with pytest.raises(ValueError):
            animatediff.generate(tiny_pipe, motion_unet, animatediff.AnimateDiffParams("a red circle", **kwargs))


def test_tune_a_video_changes_only_the_listed_parameters(tiny_pipe):
    before = {n: p.detach().clone() for n, p in tiny_pipe.unet.state_dict().items()}
    rng = np.random.default_rng(0)
    model = tune_a_video.run_tuning(tiny_pipe, video(rng), tune_a_video.TuneParams("a red circle", steps=3, lr=1e-2,
                                                                                    frames=FRAMES))
    # the base UNet is untouched
    assert all(torch.equal(before[n], p) for n, p in tiny_pipe.unet.state_dict().items())
    # the tuned weights are exactly: spatial to_q (self and cross) and the temporal layers — and they moved
    names = set(model.weights)
    assert names and all(tune_a_video.TRAINABLE.search(n) for n in names)
    assert any(n.endswith("attn1.to_q.weight") for n in names) and any(n.endswith("attn2.to_q.weight") for n in names)
    assert any(".motion_modules." in n for n in names)
    assert not any(".to_k." in n or ".ff." in n for n in names if ".motion_modules." not in n)
    fresh = dict(tune_a_video.tuning_unet(tiny_pipe).named_parameters())
    changed = [n for n, w in model.weights.items() if not torch.equal(w, fresh[n].detach())]
    assert any(".motion_modules." in n for n in changed) and any(".to_q." in n for n in changed)
    tuned = dict(tune_a_video.tuned_unet(tiny_pipe, model).named_parameters())
    frozen = [n for n in tuned if not tune_a_video.TRAINABLE.search(n)]
    assert frozen and all(torch.equal(tuned[n], fresh[n]) for n in frozen)


def test_tune_a_video_library_round_trip_and_generation(tiny_pipe, tmp_path):
    rng = np.random.default_rng(1)
    model = tune_a_video.run_tuning(tiny_pipe, video(rng), tune_a_video.TuneParams("a red circle", steps=2, lr=1e-3,
                                                                                    frames=FRAMES))
    library = tune_a_video.TunedLibrary(tmp_path)
    library.save("red-circle", model)
    assert library.names() == ["red-circle"]
    loaded = library.load("red-circle")
    assert np.array_equal(loaded.source, model.source)
    assert all(torch.equal(loaded.weights[n], w) for n, w in model.weights.items())
    unet = tune_a_video.tuned_unet(tiny_pipe, loaded)
    # the app reuses one inflated UNet across requests: loading overwrites every tunable weight
    other = tune_a_video.tuning_unet(tiny_pipe)
    torch.nn.init.normal_(next(p for n, p in other.named_parameters() if ".motion_modules." in n))
    reused = dict(tune_a_video.tuned_unet(tiny_pipe, loaded, other).named_parameters())
    assert all(torch.equal(p, reused[n]) for n, p in unet.named_parameters())
    for inversion in (True, False):
        out = tune_a_video.generate(tiny_pipe, unet, loaded, tune_a_video.GenerateParams(
            "a blue circle", inversion=inversion, steps=3, guidance_scale=5.0))
        assert out.shape == (FRAMES, 32, 32, 3)
    for bad in ("../escape", "/etc/passwd", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            library.path(bad)
    with pytest.raises(ValueError, match="no tuned model"):
        library.load("missing")


def test_inflation_reads_a_unet_that_carries_another_tabs_lora(tiny_pipe):
    """DiffusionCLIP / ChatFace leave peft wrappers on the shared UNet; the motion UNet is built from
    its base weights all the same."""
    import copy

    from core.training.lora import CROSS_ATTENTION_KV
    unet = copy.deepcopy(tiny_pipe.unet)
    add_lora(unet, "other", 2, CROSS_ATTENTION_KV)
    unet.delete_adapters(["other"])
    motion = inflate(unet, new_motion_adapter(unet, max_frames=8))
    plain = inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=8))
    spatial = {n: p for n, p in plain.state_dict().items() if ".motion_modules." not in n}
    assert all(torch.equal(motion.state_dict()[n], p) for n, p in spatial.items())


OFFLINE_LOAD = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from conftest import make_tiny_pipe
from core.models import Models
from core.motion import inflate, new_motion_adapter
pipe = make_tiny_pipe()
unet = inflate(pipe.unet, new_motion_adapter(pipe.unet, max_frames=8))
print(Models("toy-sd", device="cpu").motion_lora(unet, {repo!r}), sorted(unet.peft_config))
"""


def test_a_motion_lora_loads_from_a_cached_repo_with_the_hub_offline(tiny_pipe, tmp_path):
    """A Hub motion LoRA laid out as the real repo is in a filled cache (its file name, the cache's snapshot
    layout) loads with HF_HUB_OFFLINE=1: the app names the repo's file, which diffusers will not guess offline."""
    import os
    import subprocess
    import sys

    from core import config
    from bench.fake_hub import fake_hub_repo

    repo = "guoyww/animatediff-motion-lora-pan-left"
    trainer = inflate(tiny_pipe.unet, new_motion_adapter(tiny_pipe.unet, max_frames=8))
    add_lora(trainer, "pan", 4, MOTION_ATTENTION)
    written = save_lora(trainer, "pan", tmp_path / "written")
    fake_hub_repo(tmp_path / "hub", repo, {config.HUB_MOTION_LORA_FILES[repo]: written})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    script = OFFLINE_LOAD.format(root=str(config.ROOT), tests=str(config.ROOT / "tests"), repo=repo)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "guoyww_animatediff_motion_lora_pan_left ['guoyww_animatediff_motion_lora_pan_left']" in done.stdout
