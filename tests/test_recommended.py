"""Per-model recommended settings and examples (core/recommended.py): the embedded model's studio.json feeds the
tabs' starting values and examples; a Hub model gets the papers' defaults and examples."""
from __future__ import annotations

import json

import gradio as gr
import pytest

from core import config
from core.models import Models
from core.recommended import Recommendation, read
from tabs.common import examples


def test_toy_sd_recommends_its_measured_settings_and_the_hub_model_nothing():
    toy = Models("toy-sd", device="cpu")
    assert toy.recommended("t2v_zero").values == {"noise": "warped", "t0": 25, "t1": 28}
    assert toy.recommended("fatezero").defaults(config.FateZeroDefaults).unconditional == "source"
    assert config.FateZeroDefaults().unconditional == "empty"  # the official default stays the default
    assert toy.recommended("p2p").examples and toy.recommended("no such tab") == Recommendation(base_model="toy-sd")
    hub = Models(config.HUB_BASE_MODEL, device="cpu")
    assert hub.recommended("t2v_zero") == Recommendation(base_model=config.HUB_BASE_MODEL)
    assert hub.recommended("t2v_zero").defaults(config.T2VZeroDefaults) == config.T2VZeroDefaults()


def test_every_recommendation_of_toy_sd_names_real_settings():
    studio = json.loads((config.MODELS_DIR / "toy-sd" / "studio.json").read_text())
    defaults = {"t2v_zero": config.T2VZeroDefaults, "fatezero": config.FateZeroDefaults,
                "animatediff": config.AnimateDiffDefaults, "videocomposer": config.VideoComposerDefaults,
                "tune_a_video_train": config.TuneAVideoDefaults, "tune_a_video_generate": config.TuneAVideoDefaults}
    for tab, entry in studio.items():
        if isinstance(entry, dict) and "values" in entry:
            read(config.MODELS_DIR / "toy-sd", "toy-sd", tab).defaults(defaults[tab])  # raises on an unknown name


def test_a_bad_recommendation_is_a_clear_error(tmp_path):
    (tmp_path / "studio.json").write_text(json.dumps({"t2v_zero": {"values": {"noize": "warped"}}}))
    with pytest.raises(ValueError, match="noize"):
        read(tmp_path, "mine", "t2v_zero").defaults(config.T2VZeroDefaults)
    (tmp_path / "studio.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read(tmp_path, "mine", "t2v_zero")


def test_examples_are_the_models_own_or_the_papers_and_name_real_parameters():
    def endpoint(prompt: str, steps: int = 5):
        return prompt

    with gr.Blocks():
        prompt, steps = gr.Textbox("x"), gr.Number(7)
        papers = examples(Recommendation(), [{"prompt": "a cat riding a bicycle"}], endpoint, [prompt, steps], prompt)
        own = examples(Recommendation(examples=[{"prompt": "a red circle", "steps": 3}], model="toy-sd"),
                       [{"prompt": "a cat riding a bicycle"}], endpoint, [prompt, steps], prompt)
        with pytest.raises(ValueError, match="stepz"):
            examples(Recommendation(), [{"stepz": 3}], endpoint, [prompt, steps], prompt)
    assert papers.examples == [["a cat riding a bicycle", 7]]  # a missing parameter takes the widget's value
    assert own.examples == [["a red circle", 3]] and "toy-sd" in own.dataset.label
