"""The GPU stack's fast rehearsal (bench/rehearsal.py at tiny sizes): the app started on the GPU configuration
(SD1.5 from the Hub, Hub CLIP, float16) over an offline fake Hub whose repos have the real ids, file names and
layouts (TencentARC's adapters as pickles only, UniControl's official safetensors, the motion LoRAs' file names),
every endpoint and every option that loads another model called through the API."""
from __future__ import annotations

import json
import subprocess
import sys

from app_calls import CHEAP
from bench import rehearsal
from bench.fake_hub import REPOS
from core import config


def test_every_endpoint_runs_on_the_hub_base_model_over_a_fake_offline_hub(tmp_path):
    out = tmp_path / "rehearsal.md"
    done = subprocess.run([sys.executable, "-m", "bench.rehearsal", "--scale", "tiny", "--no-unbudgeted",
                           "--hub", str(tmp_path / "hub"), "--out", str(out), "--timeout", "300"],
                          cwd=config.ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = next(iter(json.loads(out.with_suffix(".json").read_text()).values()))
    outcomes = run["calls"]
    assert {o["endpoint"] for o in outcomes} == set(CHEAP)  # every endpoint of the app
    loaded = {repo for o in outcomes for repo in o["repos"].split(", ") if repo}
    assert loaded | {config.HUB_BASE_MODEL} == {r.id for r in REPOS}  # every fake repo is loaded by some call
    for o in outcomes:
        expected = "clear error" if o["endpoint"] in rehearsal.PUBLIC_WEIGHTS_TABS else "works"
        assert o["outcome"] == expected, o
    for o in outcomes:
        if o["endpoint"] in rehearsal.PUBLIC_WEIGHTS_TABS:
            assert config.HUB_BASE_MODEL in o["detail"] and ("train" in o["detail"] or "weights" in o["detail"]), o
    assert "| t2i_adapter (canny + palette + depth) |" in out.read_text()
