"""Temporal layers for an image UNet: AnimateDiff's motion modules, shared by AnimateDiff (a motion
adapter trained once), Tune-A-Video (temporal attention tuned on one video) and the later video tabs.

A `MotionAdapter` holds temporal transformers (spatial positions folded into the batch, attention
over frames, sinusoidal frame positions) sized to one UNet's blocks; `UNetMotionModel.from_unet2d`
inserts them after every resnet/attention pair of a copy of the image UNet. The copy's spatial
layers get the engine's attention processor, so frame modes (Tune-A-Video's sparse-causal
attention) and controllers work on them as on the image UNet; the temporal layers always take
the fused kernel (core.attention skips them).

Latents are (B, C, F, h, w); inside the UNet frames are folded into the batch as b·F + f, the
layout core.attention's frame modes assume.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from .attention import install


def new_motion_adapter(unet: UNet2DConditionModel, heads: int = 8, max_frames: int = 32,
                       norm_groups: int | None = None) -> MotionAdapter:
    """A motion adapter sized to `unet`, its outputs zero-initialised (AnimateDiff and Tune-A-Video
    both start from identity: the inflated UNet first computes exactly what the image UNet does)."""
    channels = tuple(unet.config.block_out_channels)
    layers = unet.config.layers_per_block
    groups = norm_groups or min(32, unet.config.norm_num_groups)
    heads = min(heads, min(channels) // 4)  # keep ≥ 4 dims per head on small UNets
    adapter = MotionAdapter(block_out_channels=channels, motion_layers_per_block=layers,
                            motion_num_attention_heads=heads, motion_norm_num_groups=groups,
                            motion_max_seq_length=max_frames, use_motion_mid_block=True)
    zero_init_outputs(adapter)
    return adapter.to(unet.dtype)  # initialised in float32 (its frame positions too), kept in the UNet's dtype


@torch.no_grad()
def zero_init_outputs(module: torch.nn.Module) -> None:
    """Zero every temporal transformer's output projection (the residual branch starts at zero)."""
    for name, child in module.named_modules():
        if name.endswith("proj_out") and isinstance(child, torch.nn.Linear):
            child.weight.zero_()
            if child.bias is not None:
                child.bias.zero_()


def inflate(unet: UNet2DConditionModel, adapter: MotionAdapter | None) -> UNetMotionModel:
    """A UNetMotionModel with `unet`'s spatial weights and `adapter`'s temporal ones, on `unet`'s
    device and dtype, with the engine's attention processor installed."""
    plain = without_adapters(unet)
    if adapter is None or adapter.config.get("conv_in_channels"):  # fresh motion modules, or PIA's own conv_in
        motion = UNetMotionModel.from_unet2d(plain, adapter)
    else:
        check_compatible(unet, adapter)
        # built empty (meta, a thread's own mode) in the UNet's dtype and filled from `unet` and `adapter`, whose
        # weights are together exactly the motion UNet's (strict): what from_unet2d computes, without first
        # initialising a float32 motion UNet at random (5 GiB more and most of the time at SD1.5's size)
        with torch.device("meta"):
            motion = UNetMotionModel.from_unet2d(plain, adapter, load_weights=False)
        motion = motion.to(dtype=unet.dtype).to_empty(device=unet.device)
        motion.load_state_dict(plain.state_dict() | adapter.state_dict(), strict=True)
    motion = motion.to(unet.device, unet.dtype).eval()
    install(motion)
    allow_bypass(motion)
    return motion


def without_adapters(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """`unet` itself, or — when peft has wrapped its layers (another tab's LoRA on the shared UNet) —
    a plain copy with the base weights, which is what from_unet2d can read."""
    state = unet.state_dict()
    if not any(".base_layer." in key or "lora_" in key for key in state):
        return unet
    plain = UNet2DConditionModel.from_config(unet.config)
    plain.load_state_dict({k.replace(".base_layer.", "."): v for k, v in state.items() if "lora_" not in k})
    return plain.to(unet.device, unet.dtype)


def check_compatible(unet: UNet2DConditionModel, adapter: MotionAdapter) -> None:
    """A clear error when a motion adapter was trained for another UNet layout."""
    unet_channels = tuple(unet.config.block_out_channels)
    adapter_channels = tuple(adapter.config.block_out_channels)
    if unet_channels != adapter_channels[:len(unet_channels)] or len(unet_channels) != len(adapter_channels):
        raise ValueError(f"this motion adapter was made for UNet channels {adapter_channels}, the base model has "
                         f"{unet_channels}: choose an adapter trained for this base model")


def temporal_parameters(motion_unet: UNetMotionModel) -> dict[str, torch.nn.Parameter]:
    """The motion modules' parameters, by name."""
    return {name: p for name, p in motion_unet.named_parameters() if ".motion_modules." in name}


def use_loras(motion_unet, weights: dict[str, float]) -> None:
    """Activate exactly the loaded LoRA adapters named in `weights` (name → scale), the rest off."""
    loaded = getattr(motion_unet, "peft_config", None) or {}
    active = {name: scale for name, scale in weights.items() if name in loaded and scale != 0}
    if not loaded:
        return
    if active:
        motion_unet.enable_lora()
        motion_unet.set_adapters(list(active), list(active.values()))
    else:
        motion_unet.disable_lora()


# Bypassing the motion modules: each temporal transformer is residual (hidden states + its branch), so passing its
# input through gives the image model the motion UNet was inflated from, frame by frame (Gen-1's frame-wise
# prediction on the same UNet, not a second one). A forward hook, installed once and reading the running call's
# flag, keeps the modules and their weights' names as they are; the dropped branch is still computed.
_bypassed: contextvars.ContextVar[bool] = contextvars.ContextVar("studio_motion_bypassed", default=False)


@contextlib.contextmanager
def motion_bypassed():
    """Within this block (this thread's call only), every motion module of a UNet `allow_bypass` prepared returns
    its input."""
    token = _bypassed.set(True)
    try:
        yield
    finally:
        _bypassed.reset(token)


def _pass_input_when_bypassed(module, inputs, output):
    return inputs[0] if _bypassed.get() else output


def allow_bypass(motion_unet) -> None:
    """Let `motion_bypassed` reach `motion_unet`'s temporal transformers (once per model)."""
    for module in motion_unet.modules():
        if isinstance(module, AnimateDiffTransformer3D) and not getattr(module, "_studio_bypass", False):
            module.register_forward_hook(_pass_input_when_bypassed)
            module._studio_bypass = True
