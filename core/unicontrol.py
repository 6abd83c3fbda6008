"""UniControl's control model (Qin et al., 2023) as a diffusers-style model class.

A ControlNet (a trainable copy of the UNet's encoder whose zero-convolutions feed residuals into
the frozen UNet) with the paper's two additions:
- a mixture-of-experts input: one small convolutional stem per task turns the condition image into
  features, hard-routed by the task (as the official code: no learned gate), followed by a stem
  shared by all tasks;
- a task-aware HyperNet: the task instruction ("canny edge to image", …), encoded by the text
  encoder, goes through an MLP; per-layer linear maps of its output modulate the zero-convolutions
  (and the two convolutions around the shared stem) StyleGAN-style, weight × per-input-channel scale.
  Scaling a convolution's weights per input channel equals scaling its input channels, so the
  modulation here is `conv(x · s)`: one ordinary convolution, any batch size.

Parameter names follow diffusers' ControlNetModel where the parts are the same (time_embedding,
conv_in, down_blocks, mid_block, controlnet_down_blocks, controlnet_mid_block), so a converted
official checkpoint (core/unicontrol_convert.py) and a toy model trained here load alike.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn, get_down_block
from torch import nn

# The official task ids (their stem index) and instructions; "control_palette" is ours (toy-only).
OFFICIAL_TASKS = {
    "control_hed": "hed edge to image", "control_canny": "canny edge to image",
    "control_seg": "segmentation map to image", "control_depth": "depth map to image",
    "control_normal": "normal surface map to image", "control_openpose": "human pose skeleton to image",
    "control_img": "image editing", "control_hedsketch": "sketch to image",
    "control_bbox": "bounding box to image", "control_outpainting": "image outpainting",
    "control_grayscale": "gray image to color image", "control_blur": "deblur image to clean image",
    "control_inpainting": "image inpainting",
}
INSTRUCTIONS = OFFICIAL_TASKS | {"control_palette": "color blocks to image"}


def modulated_conv(x: torch.Tensor, conv: nn.Conv2d, scale: torch.Tensor) -> torch.Tensor:
    """conv with its weight scaled per input channel by `scale` (B or 1, in_channels), plus its bias."""
    return F.conv2d(x * scale[:, :, None, None].to(x.dtype), conv.weight, conv.bias, conv.stride, conv.padding)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class UniControlModel(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, tasks: tuple[str, ...] = tuple(OFFICIAL_TASKS), instruction_dim: int = 768,
                 task_token: str = "first", in_channels: int = 4, hint_channels: int = 3, hint_downscale: int = 8,
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
                 down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 layers_per_block: int = 2, cross_attention_dim: int = 768,
                 attention_head_dim: int | tuple[int, ...] = 8, norm_num_groups: int = 32,
                 flip_sin_to_cos: bool = True, freq_shift: int = 0):
        super().__init__()
        if task_token not in ("first", "pooled"):
            raise ValueError("task_token is 'first' (the official checkpoint's) or 'pooled'")
        unknown = [t for t in tasks if t not in INSTRUCTIONS]
        if unknown:
            raise ValueError(f"unknown UniControl tasks {unknown}; known: {', '.join(INSTRUCTIONS)}")
        steps = int(math.log2(hint_downscale))
        if 2 ** steps != hint_downscale or steps < 1:
            raise ValueError("hint_downscale must be a power of two ≥ 2 (the VAE's factor)")
        time_dim = block_out_channels[0] * 4
        heads = attention_head_dim if isinstance(attention_head_dim, (list, tuple)) else (attention_head_dim,) * len(
            block_out_channels)

        # -- the ControlNet encoder (a copy of the UNet's)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_dim)
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.controlnet_down_blocks = nn.ModuleList([_zero(nn.Conv2d(block_out_channels[0], block_out_channels[0], 1))])
        out_channels = block_out_channels[0]
        for index, block_type in enumerate(down_block_types):
            in_ch, out_channels = out_channels, block_out_channels[index]
            last = index == len(block_out_channels) - 1
            self.down_blocks.append(get_down_block(
                block_type, num_layers=layers_per_block, in_channels=in_ch, out_channels=out_channels,
                temb_channels=time_dim, add_downsample=not last, resnet_eps=1e-5, resnet_act_fn="silu",
                resnet_groups=norm_num_groups, cross_attention_dim=cross_attention_dim,
                num_attention_heads=heads[index], attention_head_dim=out_channels // heads[index],
                downsample_padding=1))
            for _ in range(layers_per_block + (0 if last else 1)):
                self.controlnet_down_blocks.append(_zero(nn.Conv2d(out_channels, out_channels, 1)))
        mid = block_out_channels[-1]
        self.mid_block = UNetMidBlock2DCrossAttn(in_channels=mid, temb_channels=time_dim, resnet_eps=1e-5,
                                                 resnet_act_fn="silu", resnet_groups=norm_num_groups,
                                                 cross_attention_dim=cross_attention_dim,
                                                 num_attention_heads=heads[-1])
        self.controlnet_mid_block = _zero(nn.Conv2d(mid, mid, 1))

        # -- the task HyperNet: instruction features → one modulation per zero-convolution
        self.task_hypernet = nn.Sequential(nn.Linear(instruction_dim, time_dim), nn.SiLU(),
                                           nn.Linear(time_dim, time_dim), nn.SiLU())
        self.task_layers = nn.ModuleList([nn.Linear(time_dim, conv.in_channels) for conv in self.controlnet_down_blocks])

        # -- the mixture-of-experts input: a stem per task (÷2), the shared stem (÷ the rest)
        self.hint_stems = nn.ModuleList([nn.Sequential(
            nn.Conv2d(hint_channels, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 16, 3, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.SiLU()) for _ in tasks])
        self.hint_gate_in = nn.ModuleList([_zero(nn.Conv2d(32, 32, 3, padding=1)) for _ in range(2)])
        self.task_gate_in = nn.Linear(time_dim, 32)
        shared_strides = [2 if i < steps - 1 else 1 for i in range(2)]  # SD (÷8): 2, 2; toy-sd (÷4): 2, 1
        self.hint_shared = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.SiLU(), nn.Conv2d(32, 96, 3, padding=1, stride=shared_strides[0]),
            nn.SiLU(), nn.Conv2d(96, 96, 3, padding=1), nn.SiLU(),
            nn.Conv2d(96, 256, 3, padding=1, stride=shared_strides[1]), nn.SiLU())
        self.hint_gate_out = nn.ModuleList([_zero(nn.Conv2d(256, block_out_channels[0], 3, padding=1))
                                            for _ in range(2)])
        self.task_gate_out = nn.Linear(time_dim, 256)

    @classmethod
    def from_unet(cls, unet, tasks: tuple[str, ...], instruction_dim: int, task_token: str = "pooled"):
        """A new control model whose encoder starts as a copy of `unet`'s (the ControlNet recipe)."""
        c = unet.config
        model = cls(tasks=tuple(tasks), instruction_dim=instruction_dim, task_token=task_token,
                    in_channels=c.in_channels, hint_downscale=2 ** (len(c.block_out_channels) - 1),
                    block_out_channels=tuple(c.block_out_channels), down_block_types=tuple(c.down_block_types),
                    layers_per_block=c.layers_per_block, cross_attention_dim=c.cross_attention_dim,
                    attention_head_dim=c.attention_head_dim, norm_num_groups=c.norm_num_groups,
                    flip_sin_to_cos=c.flip_sin_to_cos, freq_shift=c.freq_shift)
        for name in ("conv_in", "time_proj", "time_embedding", "down_blocks", "mid_block"):
            getattr(model, name).load_state_dict(getattr(unet, name).state_dict())
        for layer in [*model.task_layers, model.task_gate_in, model.task_gate_out]:
            nn.init.ones_(layer.bias)  # modulation starts near 1: plain zero-convs until the task is learnt
        return model

    def task_index(self, task: str) -> int:
        if task not in self.config.tasks:
            raise ValueError(f"this UniControl model knows the tasks {', '.join(self.config.tasks)}, not {task!r}")
        return list(self.config.tasks).index(task)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, hint: torch.Tensor,
                task: str, instruction_features: torch.Tensor, conditioning_scale: float = 1.0):
        """→ (down residuals, mid residual) for the UNet's `down_block_additional_residuals` and
        `mid_block_additional_residual`. hint: (B, 3, H, W) in [0, 1]; instruction_features: (1 or B, dim)."""
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        emb = self.time_embedding(self.time_proj(timesteps).to(sample.dtype))
        task_code = self.task_hypernet(instruction_features.to(sample.dtype))

        guided = self.hint_stems[self.task_index(task)](hint.to(sample.dtype))
        guided = modulated_conv(guided, self.hint_gate_in[0], self.task_gate_in(task_code)) + self.hint_gate_in[1](guided)
        guided = self.hint_shared(guided)
        guided = modulated_conv(guided, self.hint_gate_out[0], self.task_gate_out(task_code)) + self.hint_gate_out[1](guided)

        h = self.conv_in(sample) + guided
        residuals = [h]
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, outputs = block(hidden_states=h, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                h, outputs = block(hidden_states=h, temb=emb)
            residuals.extend(outputs)
        h = self.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
        down = [modulated_conv(r, conv, layer(task_code)) * conditioning_scale
                for r, conv, layer in zip(residuals, self.controlnet_down_blocks, self.task_layers)]
        return down, self.controlnet_mid_block(h) * conditioning_scale
