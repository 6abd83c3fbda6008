"""ChatFace: the offline chat parser, the z-space edit on toy-chatface, /chatface through gradio_client."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gradio_client import handle_file

from core import config
from core.chat_plan import parse_instruction
from core.methods import chatface
from core.models import ModelLoadError, Models
from core.shapes import dataset, reader


@pytest.mark.parametrize("text, plan", [
    ("make it blue and a bit bigger", {"colour": "blue", "size": "+small"}),
    ("Make the background black, and turn it into a square", {"background": "black", "shape": "square"}),
    ("much smaller please", {"size": "-large"}),
    ("turn it purple then make it way larger", {"colour": "purple", "size": "+large"}),
])
def test_instruction_parses_to_a_plan(text, plan):
    assert parse_instruction(text).targets == plan


def test_unknown_instruction_is_a_clear_error():
    with pytest.raises(ValueError, match="nothing to edit understood"):
        parse_instruction("sing me a song")
    with pytest.raises(ValueError, match="empty"):
        parse_instruction("  ")


def test_edit_weights_schedule():
    weights = chatface.edit_weights(5, 0.5)
    assert weights[0] == 1.0 and weights[-1] == pytest.approx(0.5) and np.all(np.diff(weights) < 0)


def test_fit_directions_recovers_a_planted_size_axis():
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.normal(size=(400, 8)), dtype=torch.float32)
    radius = 3.0 * z[:, 2] + 10
    labels = {"colour": ["red" if v > 0 else "blue" for v in z[:, 0].tolist()]}
    directions = chatface.fit_directions(z, labels, radius)
    assert torch.allclose(directions.size_direction, torch.tensor([0, 0, 1 / 3.0, 0, 0, 0, 0, 0]), atol=1e-3)
    assert directions.current("colour", torch.tensor([[2.0] + [0.0] * 7])) == "red"


UNTRAINED = pytest.mark.xfail(not (config.MODELS_DIR / config.EMBEDDED_CHATFACE_MODEL).is_dir(), strict=True,
                              reason="toy-chatface is not trained yet")


def test_a_controller_sees_every_step_of_the_edit(step_log):
    """ChatFace samples with the one loop: the call's attention controllers see the inversion's steps, then the
    reconstruction's and the edit's."""
    from core.attention import install
    models = Models()
    pipe, model = models.pipeline(), chatface.load_model(models)
    image = dataset.render(dataset.random_scene(np.random.default_rng(0), two_object_prob=0.0, color="red"))
    with install(pipe.unet).use([step_log]):
        result = chatface.edit(chatface.DiffaeCodec(pipe, model), image, "make it blue", steps=4)
    assert step_log.steps == [(i, 4) for i in range(4)] * 3
    assert result.edited.shape == image.shape


# Measured on the shipped toy-chatface (800 steps, 469 s): its card's 12 held-out red objects give
# blue 0.25, bigger 0.50, position kept 0.75. Moving z along the class-mean directions also moves
# and reshapes the object (the DAE's z is entangled; the decoder is toy-sd + a LoRA reading 4 z
# tokens). ε-space guidance on Δz (ε(z) + 3·(ε(z+Δz) − ε(z))) reached blue 5/6 but kept the position
# in 2/6 only. Session 16 (card): z also fed to the UNet's time features kept the position in 4/4 and grew
# 3/4 of these objects, but left the colour purple (blue 1/4). Strict: a pass flags that the gap closed.
@pytest.mark.xfail(strict=True, reason="toy-chatface's z edits are entangled: colour and position drift")
def test_make_it_blue_and_a_bit_bigger():
    models = Models()
    pipe, model = models.pipeline(), chatface.load_model(models)
    rng = np.random.default_rng(11)
    recoloured = bigger = kept = 0
    cases = 6  # drawn red objects (shape, place, size) and target colours
    for _ in range(cases):
        image = dataset.render(dataset.random_scene(rng, two_object_prob=0.0, color="red", background="white"))
        color = str(rng.choice(["blue", "green", "yellow", "purple"]))
        result = chatface.edit(chatface.DiffaeCodec(pipe, model), image, f"make it {color} and a bit bigger", steps=25)
        assert result.plan.targets == {"colour": color, "size": "+small"}
        before, after = reader.read_single(image), reader.read_single(result.edited)
        recoloured += after is not None and after.color == color
        bigger += after is not None and after.area > before.area * 1.1
        kept += after is not None and np.hypot(after.cx - before.cx, after.cy - before.cy) <= 3.0
    print(f"chatface: recoloured {recoloured}/{cases}, bigger {bigger}/{cases}, position kept {kept}/{cases}")
    assert min(recoloured, bigger, kept) >= 0.8 * cases
    assert not getattr(pipe.unet, "peft_config", None)  # the DAE's LoRA is off the shared UNet again


@UNTRAINED
def test_chatface_endpoint(client):
    edited, reconstruction, plan, schedule = client.predict(
        image=handle_file(str(config.EXAMPLES_DIR / "red_circle_white.png")), instruction="make it green",
        steps=10, api_name="/chatface")
    assert plan["plan"] == {"colour": "green"}
    with pytest.raises(Exception, match="nothing to edit"):
        client.predict(image=handle_file(str(config.EXAMPLES_DIR / "red_circle_white.png")),
                       instruction="hello", steps=2, api_name="/chatface")


def test_missing_chatface_model_is_a_clear_error(tmp_path, monkeypatch):
    """A checkout without the trained folder gets a message that says how to make it."""
    monkeypatch.setattr(config, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelLoadError, match="not trained yet"):
        chatface.load_model(Models(device="cpu"))
