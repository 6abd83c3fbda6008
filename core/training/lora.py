"""LoRA adapters (peft) on a UNet: add one to train, save it in diffusers' LoRA format (what
`core.models.load_lora` and the Hub's motion LoRAs use)."""
from __future__ import annotations

from pathlib import Path

from .. import config
from ..validate import check_finite

# the spatial cross-attention's keys and values (not the motion modules' attention: "attentions."
# names only the UNet's spatial transformer blocks)
CROSS_ATTENTION_KV = r".*attentions\.\d+\.transformer_blocks\.\d+\.attn2\.to_[kv]"
# the motion modules' attention projections (what the Hub's motion LoRAs adapt)
MOTION_ATTENTION = r".*motion_modules\.\d+\.transformer_blocks\.\d+\.attn\d\.(to_q|to_k|to_v|to_out\.0)"


def lora_config(rank: int, targets):
    from peft import LoraConfig
    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets)


def add_lora(unet, adapter_name: str, rank: int, targets) -> list:
    """Add a LoRA adapter and return its (trainable) parameters."""
    unet.add_adapter(lora_config(rank, targets), adapter_name=adapter_name)
    return lora_parameters(unet, adapter_name)


def lora_parameters(unet, adapter_name: str) -> list:
    """One adapter's parameters (added here or loaded with core.models.load_lora)."""
    return [p for n, p in unet.named_parameters() if "lora_" in n and f".{adapter_name}." in n]


def save_lora(unet, adapter_name: str, folder: Path) -> Path:
    """Write one adapter as `config.LORA_FILE` in diffusers' format."""
    from diffusers import AnimateDiffPipeline
    from peft.utils import get_peft_model_state_dict

    weights = check_finite(get_peft_model_state_dict(unet, adapter_name=adapter_name), f"the LoRA {adapter_name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    AnimateDiffPipeline.save_lora_weights(str(folder), unet_lora_layers=weights, safe_serialization=True,
                                          weight_name=config.LORA_FILE)
    return folder / config.LORA_FILE
