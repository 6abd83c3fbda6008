"""/sampler through gradio_client against the app launched in-process (embedded model)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.models import Models
from core.shapes import reader


def test_sampler_endpoint_returns_image_and_snapshots(client):
    image, trajectory, plot = client.predict(prompt="a red circle on a white background", steps=25,
                                             guidance_scale=6.0, snapshots=4, api_name="/sampler")
    final = np.asarray(Image.open(image).convert("RGB"))
    assert final.shape == (64, 64, 3)
    assert len(trajectory) >= 4  # x_t and x̂0 for each of 4 snapshots
    assert all(Image.open(item["image"]).size == (64, 64) for item in trajectory)
    assert np.asarray(Image.open(plot)).shape[0] > 100
    blob = reader.read_single(final)
    assert blob is not None and blob.color == "red"


def test_sampler_endpoint_defaults_and_other_schedulers(client):
    image, trajectory, _ = client.predict(prompt="a blue square on a black background", scheduler="Euler a",
                                          steps=10, snapshots=3, api_name="/sampler")
    assert len(trajectory) == 6
    assert Image.open(image).size == (64, 64)


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "   "}, "prompt is empty"),
    # out-of-range widget values are refused by the widget's check (tabs.common.check_number), naming the range
    ({"prompt": "a red circle", "steps": 100000}, "steps must be a whole number from 1 to 200; got 100000"),
    ({"prompt": "a red circle", "scheduler": "nonsense"}, "not in the list of choices"),
    ({"prompt": "a red circle", "guidance_scale": -3}, "guidance_scale must be a number from 0 to 30; got -3"),
])
def test_sampler_bad_input_is_a_clear_error(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(api_name="/sampler", **kwargs)
    # the server is still fine afterwards
    image, _, _ = client.predict(prompt="a green circle on a gray background", steps=2, snapshots=1, api_name="/sampler")
    assert Image.open(image).size == (64, 64)


@pytest.mark.parametrize("example", Models("toy-sd", device="cpu").recommended("sampler").examples)
def test_sampler_examples_draw_what_they_say(client, example):
    """The embedded model's own examples (its studio.json), through the endpoint."""
    image, _, _ = client.predict(**example, api_name="/sampler")
    blob = reader.read_single(np.asarray(Image.open(image).convert("RGB")))
    words = example["prompt"].split()
    assert blob is not None and (blob.color, blob.shape) == (words[1], words[2])
