"""The official UniControl checkpoint converter, on a synthetic state dict written in the official
(ControlLDM / LDM) key layout from that layout's own conventions, for a tiny configuration."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.fake_hub import unicontrol_layout
from core.unicontrol import UniControlModel
from core.unicontrol_convert import convert

C0, C1, T, CTX, INSTRUCTION = 32, 64, 128, 32, 48
TASKS = ("control_hed", "control_canny", "control_seg")
TINY = dict(tasks=TASKS, instruction_dim=INSTRUCTION, task_token="first", hint_downscale=2,
            block_out_channels=(C0, C1), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            layers_per_block=1, cross_attention_dim=CTX, attention_head_dim=2, norm_num_groups=16)


def official_layout() -> dict[str, tuple]:
    """Key → shape of the official ControlNet (cldm_unicontrol) for TINY: two levels, one ResBlock each,
    attention at level 0, a Downsample between, a middle block; zero convs after each input block."""
    unet = SimpleNamespace(block_out_channels=(C0, C1), layers_per_block=1, cross_attention_dim=CTX,
                           down_block_types=TINY["down_block_types"])
    return unicontrol_layout(unet, INSTRUCTION, len(TASKS))


def synthetic_checkpoint():
    generator = torch.Generator().manual_seed(0)
    control = {f"control_model.{k}": torch.randn(shape, generator=generator) for k, shape in official_layout().items()}
    frozen_sd = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(3), "cond_stage_model.x": torch.zeros(1)}
    return control | frozen_sd


def test_every_official_key_is_converted_and_loads_strictly():
    checkpoint = synthetic_checkpoint()
    converted = convert(checkpoint, layers_per_block=1)
    model = UniControlModel(**TINY)
    model.load_state_dict(converted, strict=True)  # every parameter present, every shape right, nothing extra
    assert len(converted) == len(model.state_dict())
    assert len(converted) == sum(k.startswith("control_model.") for k in checkpoint)  # one to one
    pairs = {"time_embed.0.weight": "time_embedding.linear_1.weight", "zero_convs.3.0.weight": "controlnet_down_blocks.3.weight",
             "middle_block_out.0.bias": "controlnet_mid_block.bias", "input_hint_block_list_moe.2.4.weight": "hint_stems.2.4.weight",
             "input_hint_block_zeroconv_1.0.weight": "hint_gate_out.0.weight", "task_id_layernet.2.bias": "task_layers.2.bias",
             "task_id_hypernet.2.weight": "task_hypernet.2.weight", "input_hint_block_share.6.weight": "hint_shared.6.weight",
             "task_id_layernet_zeroconv_0.weight": "task_gate_in.weight",
             "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
             "input_blocks.2.0.op.weight": "down_blocks.0.downsamplers.0.conv.weight",
             "input_blocks.3.0.skip_connection.weight": "down_blocks.1.resnets.0.conv_shortcut.weight"}
    state = model.state_dict()
    for official, ours in pairs.items():
        assert torch.equal(state[ours], checkpoint[f"control_model.{official}"]), official


def test_converted_model_runs_and_routes_by_task():
    model = UniControlModel(**TINY)
    model.load_state_dict(convert(synthetic_checkpoint(), 1))
    x, context, hint = torch.randn(1, 4, 8, 8), torch.randn(1, 6, CTX), torch.rand(1, 3, 16, 16)
    instruction = torch.randn(1, INSTRUCTION)
    down, mid = model(x, 10, context, hint, "control_canny", instruction)
    other, _ = model(x, 10, context, hint, "control_seg", instruction)
    assert len(down) == 4 and mid.shape == (1, C1, 4, 4)
    assert not torch.allclose(down[0], other[0])  # another task: another stem


def test_unknown_keys_are_an_error_not_a_skip():
    checkpoint = synthetic_checkpoint() | {"control_model.mystery_block.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match="not converted"):
        convert(checkpoint, 1)


def test_pickles_are_refused(tmp_path):
    from core.unicontrol_convert import load_official
    with pytest.raises(ValueError, match="safetensors"):
        load_official(str(tmp_path / "unicontrol_v1.1.ckpt"))
