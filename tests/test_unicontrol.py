"""UniControl: the model's routing and modulation on tiny random components; toy-unicontrol's three
tasks read from pixels; /unicontrol through gradio_client."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gradio_client import handle_file

from core import config
from core.conditions import fill_outline
from core.methods import unicontrol as uc
from core.models import Models
from core.shapes import dataset, reader
from core.shapes.metrics import drawn_condition_cases
from core.unicontrol import UniControlModel

TASKS = ("control_canny", "control_seg", "control_palette")


def stems_run(model):
    """Which task stems ran (forward hooks: observation only)."""
    ran = []
    for index, stem in enumerate(model.hint_stems):
        stem.register_forward_hook(lambda module, args, output, index=index: ran.append(index))
    return ran


# ---- mechanics on tiny random components -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_control(tiny_pipe):
    torch.manual_seed(0)
    model = UniControlModel.from_unet(tiny_pipe.unet, TASKS, tiny_pipe.text_encoder.config.hidden_size).eval()
    for p in model.parameters():  # zero-convs start at zero: give them weights so the control acts
        if not p.abs().sum():
            p.data.normal_(0, 0.3)
    return model


def tiny_run(pipe, model, task, strength=1.0):
    image = dataset.render(dataset.Scene((dataset.ShapeObject("blue", "square", 20, 40, 13),), "white"))
    params = uc.UniControlParams("a blue square", task, strength, steps=5, guidance_scale=5.0, seed=2)
    return uc.generate(pipe, model, image, params)


def test_encoder_starts_as_the_unets_copy(tiny_pipe, tiny_control):
    fresh = UniControlModel.from_unet(tiny_pipe.unet, TASKS, tiny_pipe.text_encoder.config.hidden_size)
    for name, value in tiny_pipe.unet.down_blocks.state_dict().items():
        assert torch.equal(fresh.down_blocks.state_dict()[name], value)
    assert all(not p.abs().sum() for p in fresh.controlnet_down_blocks.parameters())  # zero-convs


def test_strength_zero_is_plain_generation_and_the_task_routes(tiny_pipe, tiny_control):
    ran = stems_run(tiny_control)
    plain = tiny_run(tiny_pipe, tiny_control, "canny edge to image", strength=0.0).image
    canny = tiny_run(tiny_pipe, tiny_control, "canny edge to image")
    assert set(ran) == {0}
    ran.clear()
    seg = tiny_run(tiny_pipe, tiny_control, "segmentation map to image")
    assert set(ran) == {1}  # only the instruction changed, and another expert ran
    from core.denoisers import TextGuided
    from core.sampling import decode, denoise, encode_prompts, prepare_latents  # plain generation, same loop
    generator = torch.Generator().manual_seed(2)
    latents = prepare_latents(tiny_pipe, 1, 32, 32, generator)
    scheduler = type(tiny_pipe.scheduler).from_config(tiny_pipe.scheduler.config)
    model = TextGuided(tiny_pipe.unet, encode_prompts(tiny_pipe, ["a blue square"]), encode_prompts(tiny_pipe, [""]), 5.0)
    reference = denoise(model, scheduler, latents, 5, generator=generator)
    assert np.abs(decode(tiny_pipe, reference.latents)[0].astype(int) - plain.astype(int)).max() <= 1
    assert np.abs(canny.image.astype(int) - plain.astype(int)).max() > 10
    assert not np.array_equal(canny.image, seg.image)


def test_tasks_resolve_by_instruction_key_or_name():
    assert uc.resolve_task("canny edge to image", TASKS) == "control_canny"
    assert uc.resolve_task("seg", TASKS) == "control_seg"
    assert uc.resolve_task("control_palette", TASKS) == "control_palette"
    with pytest.raises(ValueError, match="unknown UniControl task"):
        uc.resolve_task("depth map to image", TASKS)


def test_instruction_features_first_token_cannot_tell_tasks_apart(tiny_pipe):
    """Why our toy uses the pooled token: a causal text encoder's first state ignores the text."""
    first = [uc.instruction_features(tiny_pipe, text, "first") for text in ("canny edge to image", "image inpainting")]
    pooled = [uc.instruction_features(tiny_pipe, text, "pooled") for text in ("canny edge to image", "image inpainting")]
    assert torch.allclose(first[0], first[1]) and not torch.allclose(pooled[0], pooled[1])


# ---- behaviour on the embedded toy-unicontrol -----------------------------------------------

@pytest.fixture(scope="module")
def toy():
    models = Models()
    return models.pipeline(), models.unicontrol()


# Measured on the shipped toy-unicontrol (3,000 + 1,500 steps, batch 32, 50 min of CPU; ε-loss weighted
# by x0 error at high noise): its card's held-out probe gives mask IoU 0.90 (canny), 0.90 (segmentation)
# and the block colour in 5 of 8. Here: IoU 0.86–0.94 for both shape tasks; colour blocks right for red,
# blue, yellow, not green (→ blue); over the six palette colours 4 of 6 (purple → blue too).


def drawn_conditions(seed: int, n: int = 6):
    return drawn_condition_cases(np.random.default_rng(seed), n)


@pytest.mark.parametrize("task", ["canny edge to image", "segmentation map to image"])
def test_shape_tasks_put_the_shape_where_the_condition_is(toy, task):
    pipe, model = toy
    ious = []
    for picture, color, seed in drawn_conditions(3625):
        out = uc.generate(pipe, model, picture, uc.UniControlParams(f"a {color} object on a white background", task, seed=seed))
        truth = fill_outline(out.condition) if task.startswith("canny") else out.condition[..., 0] > 127
        blob = reader.read_single(out.image)
        ious.append(0.0 if blob is None else reader.mask_iou(blob.mask, truth))
    print(f"UniControl {task} on drawn objects: mask IoU {np.round(ious, 3).tolist()}")
    assert np.mean(np.array(ious) >= 0.7) >= 0.8


@pytest.mark.xfail(strict=True, reason="measured on drawn objects (any shape, place, size): the block colour in 1 of 6 "
                   "(before: 3 of 4 centred circles); the line is 3 of 4")
def test_colour_blocks_give_the_block_colours(toy):
    pipe, model = toy
    right = []
    for picture, _, seed in drawn_conditions(3626):
        color = reader.read_single(picture).color
        out = uc.generate(pipe, model, picture, uc.UniControlParams("an object on a white background",
                                                                    "color blocks to image", seed=seed))
        blob = reader.read_single(out.image)
        right.append(blob is not None and blob.color == color)
    print(f"UniControl colour blocks on drawn objects: the block colour in {sum(right)} of {len(right)}")
    assert np.mean(right) >= 0.75


def test_changing_only_the_instruction_changes_the_routing(toy):
    pipe, model = toy
    ran = stems_run(model)
    image = dataset.render(dataset.Scene((dataset.ShapeObject("red", "square", 30, 30, 14),), "white"))
    results = {}
    for task in ("canny edge to image", "color blocks to image"):
        ran.clear()
        results[task] = uc.generate(pipe, model, image, uc.UniControlParams(task=task, steps=8)).image
        assert set(ran) == {model.task_index(uc.resolve_task(task, TASKS))}
    assert not np.array_equal(*results.values())


# ---- endpoint -------------------------------------------------------------------------------

def test_unicontrol_endpoint(client):
    square = handle_file(str(config.EXAMPLES_DIR / "blue_square_left_white.png"))
    image, condition = client.predict(condition_image=square, task="segmentation map to image", steps=3,
                                      api_name="/unicontrol")
    assert image and condition
    with pytest.raises(Exception, match="unknown UniControl task"):
        client.predict(condition_image=square, task="make it pop", steps=2, api_name="/unicontrol")
