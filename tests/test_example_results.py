"""The results the page shows before any run (assets/examples/results, scripts/render_examples.py) are what each
tab's first example makes now: made from the current first example, on the current embedded weights, and — for
one tab, re-rendered here — the same picture."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from core import config

spec = importlib.util.spec_from_file_location("render_examples", config.ROOT / "scripts" / "render_examples.py")
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    import app
    from core.models import Models
    from tabs import common

    scratch = tmp_path_factory.mktemp("page")
    app.build_demo(Models(), config.Folders(outputs=scratch / "outputs", directions=scratch / "directions",
                                            tuned_video=scratch / "tuned"))
    return common


def test_every_tab_has_the_result_of_its_current_first_example(page):
    import tabs

    manifest = json.loads(page.EXAMPLE_MANIFEST.read_text())
    assert set(manifest) == set(map(tabs.key, tabs.ALL))
    digest = render.models_digest()
    for key, entry in manifest.items():
        example = page.FIRST_EXAMPLES[key]
        current = json.loads(json.dumps(dict(zip(example.names, map(render.portable, example.values)))))
        assert entry["example"] == current, f"{key}'s first example changed: python scripts/render_examples.py {key}"
        assert entry["models_sha256"] == digest, "the embedded weights changed: python scripts/render_examples.py"
        assert entry["base_model"] == config.EMBEDDED_BASE_MODEL
        path = page.EXAMPLE_RESULTS / entry["file"]
        assert path.is_file() and path.stat().st_size < 2 * 2**20


def test_a_result_is_what_its_example_makes(page):
    """The sampler tab's example run again: the same picture as the stored one (within 2 grey levels)."""
    entry = json.loads(page.EXAMPLE_MANIFEST.read_text())["sampler"]
    stored = np.asarray(Image.open(page.EXAMPLE_RESULTS / entry["file"]).convert("RGB")).astype(int)
    made = render.result_picture(render.run_first_example(page.FIRST_EXAMPLES["sampler"])).astype(int)
    assert made.shape == stored.shape and np.abs(made - stored).max() <= 2
