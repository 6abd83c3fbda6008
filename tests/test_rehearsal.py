"""The GPU stack's fast rehearsal (bench/rehearsal.py at tiny sizes): the app started on the GPU configuration
(SD1.5 from the Hub, Hub CLIP, float16) over an offline fake Hub whose repos have the real ids, file names and
layouts (TencentARC's adapters as pickles only, UniControl's official safetensors, the motion LoRAs' file names),
every endpoint and every option that loads another model called through the API."""
from __future__ import annotations

import json
import subprocess
import sys

from app_calls import CHEAP
from bench.fake_hub import REPOS
from core import config


def test_every_endpoint_runs_on_the_hub_base_model_over_a_fake_offline_hub(tmp_path):
    out = tmp_path / "rehearsal.md"
    done = subprocess.run([sys.executable, "-m", "bench.rehearsal", "--scale", "tiny", "--no-unbudgeted", "--solo", "1",
                           "--hub", str(tmp_path / "hub"), "--out", str(out), "--timeout", "300"],
                          cwd=config.ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = json.loads(out.with_suffix(".json").read_text())
    run = next(iter(written.values()))
    outcomes = run["calls"]
    assert {o["endpoint"] for o in outcomes} == set(CHEAP)  # every endpoint of the app
    loaded = {repo for o in outcomes for repo in o["repos"].split(", ") if repo}
    assert loaded | {config.HUB_BASE_MODEL} == {r.id for r in REPOS}  # every fake repo is loaded by some call
    for o in outcomes:
        assert o["outcome"] == "works", o
    for preset in config.VIDEOCOMPOSER_PRESETS:  # every VideoComposer recipe on the public models
        assert any(o["label"] == f"videocomposer ({preset})" for o in outcomes), preset
    assert "| t2i_adapter (canny + palette + depth) |" in out.read_text()
    # the call that peaked highest, again alone on a fresh server: its own need, which the budget's bound uses
    [alone] = written["alone"]
    assert alone["outcome"] == "works" and alone["label"] == max(outcomes, key=lambda o: o["peak_gib"])["label"]
    assert "The budget's bound: peak over the sequence" in out.read_text()


LOAD = """
import sys
sys.path[:0] = [{root!r}]
from pathlib import Path
from core import config
from core.models import Models, ModelLoadError
config.CONVERTED_WEIGHTS_DIR = Path({converted!r})
models = Models(config.HUB_BASE_MODEL, device="cpu", gpu_configuration=True)
for what in {calls!r}:
    try:
        eval(what)
        print(what, "=> loaded")
    except ModelLoadError as error:
        print(what, "=> refused:", error)
"""


def load_offline(hub, tmp_path, calls: list[str]) -> dict[str, str]:
    import os
    script = LOAD.format(root=str(config.ROOT), converted=str(tmp_path / "converted"), calls=calls)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(line.split(" => ", 1) for line in done.stdout.splitlines() if " => " in line)


def test_pickle_only_and_corrupt_weights_in_the_cache_are_clear_errors(tmp_path):
    """A repo that has only a pickle and is off the allowlist is refused naming the policy (the app's own ControlNet
    as if it shipped only diffusion_pytorch_model.bin); a corrupt cached safetensors file (the motion adapter's, the
    base UNet's) is a clear error; the allowlisted adapters still load."""
    import torch

    from bench.fake_hub import TINY, build, snapshot_folder

    hub = tmp_path / "hub"
    build(hub, TINY, log=lambda message: None)
    controlnet = snapshot_folder(hub, config.T2VZeroDefaults.controlnet_model)
    weights = controlnet / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file
    torch.save(load_file(str(weights)), controlnet / "diffusion_pytorch_model.bin")
    weights.unlink()
    adapter = snapshot_folder(hub, config.HUB_MOTION_ADAPTER) / "diffusion_pytorch_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:1000])  # cut short, as an interrupted download leaves it
    control = f"models.controlnet({config.T2VZeroDefaults.controlnet_model!r})"
    results = load_offline(hub, tmp_path, [control, "models.motion_unet()", "models.t2i_adapters(['canny', 'palette'])"])
    assert results[control].startswith("refused:") and "PICKLE_ALLOWLIST" in results[control], results
    assert results["models.motion_unet()"].startswith("refused: could not load the motion UNet model"), results
    assert "PICKLE_ALLOWLIST" not in results["models.motion_unet()"]  # a broken file is not a policy refusal
    assert results["models.t2i_adapters(['canny', 'palette'])"] == "loaded", results
    unet = snapshot_folder(hub, config.HUB_BASE_MODEL) / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(b"\0" * 64)
    results = load_offline(hub, tmp_path, ["models.pipeline()"])
    assert results["models.pipeline()"].startswith("refused: could not load the base model"), results
