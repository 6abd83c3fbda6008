"""The official UniControl checkpoint (ControlLDM, `Robert001/UniControl-Model`'s
`unicontrol_v1.1.st` safetensors) → core.unicontrol.UniControlModel weights.

The ControlNet part of the official layout (time_embed, input_blocks, middle_block, zero_convs,
middle_block_out) is the original ControlNet's, which diffusers converts
(`convert_controlnet_checkpoint`); the UniControl parts are renamed here one to one. Every key
must be used: an unmapped or missing key is an error, not a silent skip.
"""
from __future__ import annotations

import re

import torch

PREFIX = "control_model."
# official name → ours, for the UniControl-only parts (the rest of each key is kept)
RENAMES = [
    (r"^input_hint_block_list_moe\.(\d+)\.(\d+)\.", r"hint_stems.\1.\2."),
    (r"^input_hint_block_zeroconv_0\.(\d+)\.", r"hint_gate_in.\1."),
    (r"^input_hint_block_share\.(\d+)\.", r"hint_shared.\1."),
    (r"^input_hint_block_zeroconv_1\.(\d+)\.", r"hint_gate_out.\1."),
    (r"^task_id_hypernet\.(\d+)\.", r"task_hypernet.\1."),
    (r"^task_id_layernet\.(\d+)\.", r"task_layers.\1."),
    (r"^task_id_layernet_zeroconv_0\.", "task_gate_in."),
    (r"^task_id_layernet_zeroconv_1\.", "task_gate_out."),
]


def official_config(tasks: tuple[str, ...] | None = None, unet_config=None, hint_downscale: int = 8) -> dict:
    """UniControlModel settings of the released SD1.5 model (cldm_v15_unicontrol.yaml); with `unet_config`, the
    base UNet's own shape (the control model is a copy of its encoder, as ControlNetModel.from_unet makes one)."""
    from .unicontrol import OFFICIAL_TASKS
    settings = dict(tasks=tuple(tasks or OFFICIAL_TASKS), instruction_dim=768, task_token="first",
                    hint_downscale=hint_downscale, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    if unet_config is not None:
        settings.update(block_out_channels=tuple(unet_config.block_out_channels),
                        down_block_types=tuple(unet_config.down_block_types),
                        layers_per_block=unet_config.layers_per_block,
                        cross_attention_dim=unet_config.cross_attention_dim,
                        instruction_dim=unet_config.cross_attention_dim,  # the instruction goes through the same text encoder
                        attention_head_dim=unet_config.attention_head_dim, norm_num_groups=unet_config.norm_num_groups)
    return settings


def convert(state_dict: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """Official keys (with or without the `control_model.` prefix; other prefixes are the frozen
    SD and are dropped) → UniControlModel keys. Raises on any official control key left unused."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    has_prefix = any(k.startswith(PREFIX) for k in state_dict)
    control = {k.removeprefix(PREFIX): v for k, v in state_dict.items() if k.startswith(PREFIX) or not has_prefix}
    ours, shared, used = {}, {}, set()
    for key, value in control.items():
        for pattern, replacement in RENAMES:
            if re.match(pattern, key):
                ours[re.sub(pattern, replacement, key)] = value
                used.add(key)
                break
        else:
            shared[key] = value
    converted = convert_controlnet_checkpoint(shared, {"layers_per_block": layers_per_block})
    for key, value in converted.items():
        if value is None or key.startswith("controlnet_cond_embedding."):
            continue  # diffusers' ControlNet has a single hint stem; ours are above
        ours[key] = value
    consumed = {id(v) for v in ours.values()}
    unused = sorted(k for k, v in shared.items() if id(v) not in consumed)
    if unused:
        raise ValueError(f"{len(unused)} official UniControl keys were not converted, e.g. {unused[:5]}")
    return ours


def load_official(path: str, tasks: tuple[str, ...] | None = None, dtype=torch.float32, unet_config=None,
                  hint_downscale: int = 8):
    """A UniControlModel with the weights of an official safetensors checkpoint (never a pickle), shaped like the
    base UNet (`unet_config`; None: SD1.5)."""
    from safetensors.torch import load_file

    from .unicontrol import UniControlModel
    if not str(path).endswith((".st", ".safetensors")):
        raise ValueError("UniControl checkpoints load only from safetensors (unicontrol_v1.1.st), never pickles")
    settings = official_config(tasks, unet_config, hint_downscale)
    model = UniControlModel(**settings)
    weights = convert(load_file(str(path)), settings["layers_per_block"])
    model.load_state_dict(weights, strict=True)
    return model.to(dtype).eval()
