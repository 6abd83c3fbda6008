"""An offline Hugging Face cache holding every Hub repo the app can load on the GPU configuration, each under its
real id with the real repo's file names and folder layout, its architecture at the real size (`REAL`) or shrunk
(`TINY`, for the suite), and random weights. Point HF_HUB_CACHE at it with HF_HUB_OFFLINE=1.

How close each repo is to the real one is said in `REPOS` (exact: the config the real repo ships, as diffusers'
and transformers' defaults for these classes reproduce it; approximate: what differs, and why).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core import config

COMMIT = "1" * 40


@dataclass(frozen=True)
class Scale:
    """The shapes every fake repo is built at: one base UNet shape that companions must match."""
    name: str
    unet: dict
    vae: dict
    text: dict  # CLIPTextConfig of SD's text encoder
    clip_text: dict  # the CLIP model's towers
    clip_vision: dict
    clip_projection: int
    adapter_res_blocks: int
    light_adapter_res_blocks: int
    motion_heads: int
    motion_groups: int
    ip_image_encoder: dict  # CLIPVisionConfig of h94/IP-Adapter's image encoder (ViT-H/14)
    depth_model: dict  # Depth-Anything V2 Small: its backbone (Dinov2Config), head sizes and the processor's side
    dtype: torch.dtype = torch.float16  # of the written tensors (the real repos' main files are float32: half the disk)
    lora_rank: int = 4


REAL = Scale(
    "real",
    unet=dict(sample_size=64, cross_attention_dim=768),  # with UNet2DConditionModel's defaults: SD1.5's unet/config.json
    vae=dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
             up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512),
    text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=2,
              pad_token_id=1),
    clip_text=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
    clip_vision=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                     image_size=224, patch_size=16),
    clip_projection=512, adapter_res_blocks=2, light_adapter_res_blocks=4, motion_heads=8, motion_groups=32,
    ip_image_encoder=dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
                          image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu"),
    depth_model=dict(backbone=dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14,
                                   image_size=518, out_indices=[3, 6, 9, 12]),
                     neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
                     reassemble_hidden_size=384, side=518))

# SD1.5's shape in small: three levels whose last repeats the width (as SD's 1280, 1280), so the light colour
# adapter fits as it does on SD; the VAE halves twice (64 px images on 16×16 latents)
TINY = Scale(
    "tiny",
    unet=dict(sample_size=16, block_out_channels=(32, 64, 64), layers_per_block=1, cross_attention_dim=32,
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=4,
              norm_num_groups=16),
    vae=dict(block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
             up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, latent_channels=4, norm_num_groups=16,
             sample_size=64),
    text=dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, bos_token_id=0, eos_token_id=2,
              pad_token_id=1),
    clip_text=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2),
    clip_vision=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3,  # FreeDoM's style: block 3
                     image_size=224, patch_size=16),
    clip_projection=16, adapter_res_blocks=1, light_adapter_res_blocks=1, motion_heads=2, motion_groups=16,
    ip_image_encoder=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                          image_size=224, patch_size=16, projection_dim=24, hidden_act="gelu"),
    depth_model=dict(backbone=dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, patch_size=14,
                                   image_size=56, out_indices=[1, 2, 3, 4]),
                     neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
                     reassemble_hidden_size=32, side=56),
    dtype=torch.float32)


@dataclass(frozen=True)
class Repo:
    id: str
    files: str  # the weights and configs as the real repo names them
    fidelity: str  # "exact" or "approximate: why"
    loaded_by: tuple[str, ...] = field(default=())  # the endpoints whose calls load it


SD = config.HUB_BASE_MODEL
T2V = config.T2VZeroDefaults
REPOS = [
    Repo(SD, "model_index.json; unet/, vae/ (diffusion_pytorch_model.safetensors), text_encoder/ (model.safetensors), "
             "tokenizer/ (vocab.json, merges.txt), scheduler/, feature_extractor/",
         "approximate: configs exact; safety_checker/ is left out (the app passes safety_checker=None); the tokenizer "
         "is CLIP's real 49,408-token BPE; no .fp16 variant files", ("every tab on the SD1.5 base",)),
    Repo(config.HUB_CLIP_MODEL, "config.json, model.safetensors, preprocessor_config.json, tokenizer files", "exact",
         ("/freedom", "/diffusionclip_train", "/diffusionclip_edit")),
    Repo(T2V.controlnet_model, "config.json, diffusion_pytorch_model.safetensors", "exact", ("/t2v_zero controlnet",)),
    Repo(T2V.pix2pix_model, "a whole pipeline as the SD1.5 repo, unet in_channels 8, EulerAncestral scheduler",
         "approximate as the SD1.5 repo", ("/t2v_zero pix2pix",)),
    *[Repo(repo, "config.json, diffusion_pytorch_model.bin (a pickle only, as the real repo)",
           "approximate: the colour adapter's light_adapter config is as diffusers' conversion script writes it"
           if "color" in repo else "exact", ("/t2i_adapter",)) for repo in config.PICKLE_ALLOWLIST],
    Repo(config.UNICONTROL_MODELS[SD], f"{config.UNICONTROL_OFFICIAL_FILE} (ControlLDM keys, control_model.*)",
         "approximate: only the control model's keys; the real file also carries the frozen SD weights, which the "
         "converter drops", ("/unicontrol",)),
    Repo(config.HUB_MOTION_ADAPTER, "config.json, diffusion_pytorch_model.safetensors", "exact",
         ("/animatediff", "/dreamix", "/imagen_video")),
    Repo(config.HUB_IP_ADAPTER_REPO, f"{config.IP_ADAPTERS[SD]['image'][1]}, {config.IP_ADAPTERS[SD]['plus-face'][1]} (image_proj.*, "
         f"ip_adapter.N.to_k_ip/to_v_ip), {config.IP_ADAPTER_IMAGE_ENCODER}/ (config.json, model.safetensors)",
         "approximate: the base and plus-face adapters and the image encoder of the repo's files",
         ("/p2p image_prompt", "/face0", "/chatface", "/videocomposer style_image", "/gen1 content_image")),
    *[Repo(repo, "config.json, diffusion_pytorch_model.fp16.safetensors (the app loads this variant)",
           "approximate: ControlNetModel.from_unet of the SD1.5 UNet; the real repos also hold .bin files",
           (f"/videocomposer {kind}",) + (("/gen1",) if kind == "depth" else ()))
      for kind, repo in config.VIDEO_CONTROLNETS[SD].items()],
    *[Repo(repo, "config.json, diffusion_pytorch_model.safetensors",
           "approximate: the config diffusers' SparseCtrl conversion writes (RGB: latent condition, 4 channels; "
           "scribble: pixels, 3)", (f"/videocomposer {kind}",))
      for kind, repo in config.VIDEO_SPARSE_CONTROLNETS[SD].items()],
    Repo(config.CONDITION_MODELS["depth"], "config.json, model.safetensors, preprocessor_config.json",
         "approximate: Depth-Anything V2 Small's architecture and processor", ("/videocomposer depth", "/gen1")),
    *[Repo(repo, config.HUB_MOTION_LORA_FILES[repo],
           "approximate: keys in diffusers' peft LoRA format (the real files are diffusers' older LoRA format, which "
           "the same loader converts)", ("/animatediff motion_lora",)) for repo in config.HUB_MOTION_LORAS],
]


def snapshot_folder(hub: Path, repo: str) -> Path:
    """Where the Hub client keeps `repo`'s main in the cache `hub` (its ref written)."""
    snapshot = Path(hub) / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    return snapshot


def lay_out(hub: Path, repo: str, folder: Path) -> Path:
    """Move `folder`'s tree into `hub` as the cached snapshot of `repo`."""
    snapshot = snapshot_folder(hub, repo)
    shutil.move(str(folder), snapshot)
    return snapshot


def fake_hub_repo(hub: Path, repo: str, files: dict[str, Path]) -> Path:
    """Copy `files` (name in the repo → file here) into `hub` as the cached snapshot of `repo`."""
    snapshot = snapshot_folder(hub, repo)
    snapshot.mkdir()
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    return snapshot


def _save(model, folder: Path, scale: Scale, safe: bool = True) -> None:
    model.to(scale.dtype).save_pretrained(folder, safe_serialization=safe)


def _tokenizer(folder: Path) -> None:
    from core.tokenizer import clip_tokenizer
    clip_tokenizer(77).save_pretrained(folder)


def _unet(scale: Scale, in_channels: int = 4):
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(in_channels=in_channels, **scale.unet)


def _pipeline(folder: Path, scale: Scale, in_channels: int, scheduler_class: str) -> None:
    """An SD1.5-layout pipeline repo (model_index.json and one folder per component)."""
    import diffusers
    from diffusers import AutoencoderKL
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    _save(_unet(scale, in_channels), folder / "unet", scale)
    _save(AutoencoderKL(in_channels=3, out_channels=3, **scale.vae), folder / "vae", scale)
    _save(CLIPTextModel(CLIPTextConfig(**scale.text)), folder / "text_encoder", scale)
    _tokenizer(folder / "tokenizer")
    schedule = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1)
    if scheduler_class == "PNDMScheduler":  # SD1.5's scheduler_config.json
        schedule.update(skip_prk_steps=True, set_alpha_to_one=False)
    getattr(diffusers, scheduler_class)(**schedule).save_pretrained(folder / "scheduler")
    CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}).save_pretrained(folder / "feature_extractor")
    pipeline = "StableDiffusionInstructPix2PixPipeline" if in_channels == 8 else "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": pipeline, "_diffusers_version": "0.6.0", "requires_safety_checker": True,
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "scheduler": ["diffusers", scheduler_class], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))


def _clip(folder: Path, scale: Scale) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    model = CLIPModel(CLIPConfig(text_config=scale.clip_text, vision_config=scale.clip_vision,
                                 projection_dim=scale.clip_projection))
    _save(model, folder, scale)
    CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}).save_pretrained(folder)  # CLIP's mean and std
    _tokenizer(folder)


def _adapter(folder: Path, scale: Scale, in_channels: int, light: bool) -> None:
    from diffusers import T2IAdapter

    channels = list(scale.unet.get("block_out_channels", (320, 640, 1280, 1280)))
    factor = 2 ** (len(scale.vae["block_out_channels"]) - 1)
    adapter = T2IAdapter(in_channels=in_channels, channels=channels[:-1] if light else channels,
                         num_res_blocks=scale.light_adapter_res_blocks if light else scale.adapter_res_blocks,
                         downscale_factor=factor, adapter_type="light_adapter" if light else "full_adapter")
    _save(adapter, folder, scale, safe=False)


def _ip_adapter(folder: Path, scale: Scale, unet) -> None:
    """h94/IP-Adapter's base and plus-face SD1.5 adapters (the original code's key names) and its image encoder."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from core.ip_adapter import cross_attention_layers

    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**scale.ip_image_encoder))
    _save(encoder, folder / config.IP_ADAPTER_IMAGE_ENCODER, scale)
    dim, embeds = unet.config.cross_attention_dim, scale.ip_image_encoder["projection_dim"]
    state = {"image_proj.proj.weight": torch.randn(4 * dim, embeds) * embeds ** -0.5,
             "image_proj.proj.bias": torch.zeros(4 * dim),
             "image_proj.norm.weight": torch.ones(dim), "image_proj.norm.bias": torch.zeros(dim)}
    modules = dict(unet.named_modules())
    for index, layer in enumerate(cross_attention_layers(unet)):
        for name in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * index + 1}.{name}.weight"] = torch.randn(modules[layer].to_k.out_features,
                                                                             dim) * dim ** -0.5
    layers = {k: v for k, v in state.items() if k.startswith("ip_adapter.")}
    files = {"image": state, "plus-face": {**plus_projection(scale, dim), **layers}}
    for kind, weights in files.items():
        path = folder / config.IP_ADAPTERS[SD][kind][1]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(scale.dtype).contiguous() for k, v in weights.items()}, str(path))


def plus_projection(scale: Scale, dim: int) -> dict[str, torch.Tensor]:
    """The plus adapters' Resampler (16 queries over the image encoder's hidden states) in the original code's key
    names, which diffusers' loader converts: diffusers' module with its names mapped back."""
    import re

    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    hidden = scale.ip_image_encoder["hidden_size"]
    width = 768 if scale is REAL else 64  # the Resampler's width; its heads are 64 wide
    resampler = IPAdapterPlusImageProjection(embed_dims=hidden, output_dims=dim, hidden_dims=width, heads=width // 64,
                                             num_queries=16)
    original = {}
    for name, value in resampler.state_dict().items():
        if ".attn.to_k." in name or ".attn.to_v." in name:
            continue
        name = re.sub(r"layers\.(\d+)\.ln0\.", r"layers.\1.0.norm1.", name)
        name = re.sub(r"layers\.(\d+)\.ln1\.", r"layers.\1.0.norm2.", name)
        name = re.sub(r"layers\.(\d+)\.attn\.to_q\.", r"layers.\1.0.to_q.", name)
        name = re.sub(r"layers\.(\d+)\.attn\.to_out\.0\.", r"layers.\1.0.to_out.", name)
        name = re.sub(r"layers\.(\d+)\.ff\.0\.", r"layers.\1.1.0.", name)
        name = re.sub(r"layers\.(\d+)\.ff\.1\.net\.0\.proj\.", r"layers.\1.1.1.", name)
        name = re.sub(r"layers\.(\d+)\.ff\.1\.net\.2\.", r"layers.\1.1.3.", name)
        original[f"image_proj.{name}"] = value
    state = resampler.state_dict()
    for index in range(len(resampler.layers)):
        original[f"image_proj.layers.{index}.0.to_kv.weight"] = torch.cat(
            [state[f"layers.{index}.attn.to_k.weight"], state[f"layers.{index}.attn.to_v.weight"]])
    return original


def _video_controlnet(folder: Path, scale: Scale, unet, hint) -> None:
    from diffusers import ControlNetModel
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint).to(torch.float16).save_pretrained(
        folder, variant="fp16")


def _sparse_controlnet(folder: Path, scale: Scale, latent_condition: bool, hint) -> None:
    from diffusers import SparseControlNetModel
    unet = scale.unet
    model = SparseControlNetModel(
        conditioning_channels=4 if latent_condition else 3, use_simplified_condition_embedding=latent_condition,
        down_block_types=tuple(t.replace("2D", "Motion") for t in unet.get("down_block_types", (
            "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"))),
        block_out_channels=unet.get("block_out_channels", (320, 640, 1280, 1280)),
        layers_per_block=unet.get("layers_per_block", 2), norm_num_groups=unet.get("norm_num_groups", 32),
        cross_attention_dim=unet["cross_attention_dim"], attention_head_dim=unet.get("attention_head_dim", 8),
        conditioning_embedding_out_channels=hint, motion_max_seq_length=32, motion_num_attention_heads=scale.motion_heads)
    _save(model, folder, scale)


def _depth_anything(folder: Path, scale: Scale) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    settings = dict(scale.depth_model)
    backbone, side = settings.pop("backbone"), settings.pop("side")
    backbone = Dinov2Config(**backbone, out_features=[f"stage{i}" for i in backbone["out_indices"]],
                            reshape_hidden_states=False)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig(backbone_config=backbone, **settings))
    model.to(scale.dtype).save_pretrained(folder, safe_serialization=True)
    DPTImageProcessor(size={"height": side, "width": side}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False, resample=3, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)


def _motion(scale: Scale):
    from diffusers import MotionAdapter

    unet = _unet(scale)
    return unet, MotionAdapter(block_out_channels=tuple(unet.config.block_out_channels),
                               motion_layers_per_block=unet.config.layers_per_block,
                               motion_num_attention_heads=scale.motion_heads, motion_norm_num_groups=scale.motion_groups,
                               motion_max_seq_length=32, use_motion_mid_block=True)


def _motion_lora(folder: Path, scale: Scale, unet, adapter) -> None:
    from diffusers import UNetMotionModel

    from core.training.lora import MOTION_ATTENTION, add_lora, save_lora

    motion = UNetMotionModel.from_unet2d(unet, adapter).to(scale.dtype)
    add_lora(motion, "motion", scale.lora_rank, MOTION_ATTENTION)
    written = save_lora(motion, "motion", folder)
    del motion
    if written.name != config.HUB_MOTION_LORA_FILES[config.HUB_MOTION_LORAS[0]]:
        written.rename(folder / config.HUB_MOTION_LORA_FILES[config.HUB_MOTION_LORAS[0]])


def unicontrol_layout(unet_config, instruction_dim: int, tasks: int) -> dict[str, tuple]:
    """Key → shape of the official UniControl control model (cldm_unicontrol's ControlNet with its task MoE hint
    stems and task-conditioned zero convs) for a base UNet of `unet_config`: LDM's layout of input blocks (conv,
    then per level ResBlocks with a SpatialTransformer where the level has cross-attention, a Downsample between
    levels), a middle block, a zero conv and a task layer after every input block."""
    channels, layers = list(unet_config.block_out_channels), unet_config.layers_per_block
    attention = ["CrossAttn" in kind for kind in unet_config.down_block_types]
    time_dim, context = channels[0] * 4, unet_config.cross_attention_dim

    def conv(prefix, cout, cin, k):
        return {f"{prefix}.weight": (cout, cin, k, k), f"{prefix}.bias": (cout,)}

    def linear(prefix, cout, cin):
        return {f"{prefix}.weight": (cout, cin), f"{prefix}.bias": (cout,)}

    def norm(prefix, ch):
        return {f"{prefix}.weight": (ch,), f"{prefix}.bias": (ch,)}

    def res_block(prefix, cin, cout):
        keys = norm(f"{prefix}.in_layers.0", cin) | conv(f"{prefix}.in_layers.2", cout, cin, 3)
        keys |= linear(f"{prefix}.emb_layers.1", cout, time_dim) | norm(f"{prefix}.out_layers.0", cout)
        keys |= conv(f"{prefix}.out_layers.3", cout, cout, 3)
        return keys | (conv(f"{prefix}.skip_connection", cout, cin, 1) if cin != cout else {})

    def transformer(prefix, ch):
        block = f"{prefix}.transformer_blocks.0"
        keys = norm(f"{prefix}.norm", ch) | conv(f"{prefix}.proj_in", ch, ch, 1) | conv(f"{prefix}.proj_out", ch, ch, 1)
        keys |= linear(f"{block}.ff.net.0.proj", 8 * ch, ch) | linear(f"{block}.ff.net.2", ch, 4 * ch)
        for attn, kv in (("attn1", ch), ("attn2", context)):
            keys |= {f"{block}.{attn}.to_q.weight": (ch, ch), f"{block}.{attn}.to_k.weight": (ch, kv),
                     f"{block}.{attn}.to_v.weight": (ch, kv)} | linear(f"{block}.{attn}.to_out.0", ch, ch)
        return keys | norm(f"{block}.norm1", ch) | norm(f"{block}.norm2", ch) | norm(f"{block}.norm3", ch)

    keys = linear("time_embed.0", time_dim, channels[0]) | linear("time_embed.2", time_dim, time_dim)
    keys |= conv("input_blocks.0.0", channels[0], 4, 3)
    outputs, block, ch = [channels[0]], 0, channels[0]
    for level, width in enumerate(channels):
        for _ in range(layers):
            block += 1
            keys |= res_block(f"input_blocks.{block}.0", ch, width)
            ch = width
            if attention[level]:
                keys |= transformer(f"input_blocks.{block}.1", ch)
            outputs.append(ch)
        if level < len(channels) - 1:
            block += 1
            keys |= conv(f"input_blocks.{block}.0.op", ch, ch, 3)
            outputs.append(ch)
    keys |= res_block("middle_block.0", ch, ch) | transformer("middle_block.1", ch) | res_block("middle_block.2", ch, ch)
    keys |= conv("middle_block_out.0", ch, ch, 1)
    for index, width in enumerate(outputs):
        keys |= conv(f"zero_convs.{index}.0", width, width, 1) | linear(f"task_id_layernet.{index}", width, time_dim)
    for task in range(tasks):
        keys |= (conv(f"input_hint_block_list_moe.{task}.0", 16, 3, 3) | conv(f"input_hint_block_list_moe.{task}.2", 16, 16, 3)
                 | conv(f"input_hint_block_list_moe.{task}.4", 32, 16, 3))
    keys |= conv("input_hint_block_zeroconv_0.0", 32, 32, 3) | conv("input_hint_block_zeroconv_0.1", 32, 32, 3)
    keys |= (conv("input_hint_block_share.0", 32, 32, 3) | conv("input_hint_block_share.2", 96, 32, 3)
             | conv("input_hint_block_share.4", 96, 96, 3) | conv("input_hint_block_share.6", 256, 96, 3))
    keys |= conv("input_hint_block_zeroconv_1.0", channels[0], 256, 3) | conv("input_hint_block_zeroconv_1.1", channels[0], 256, 3)
    keys |= linear("task_id_layernet_zeroconv_0", 32, time_dim) | linear("task_id_layernet_zeroconv_1", 256, time_dim)
    keys |= linear("task_id_hypernet.0", time_dim, instruction_dim) | linear("task_id_hypernet.2", time_dim, time_dim)
    return keys


def _unicontrol(folder: Path, scale: Scale, unet) -> None:
    from safetensors.torch import save_file

    from core.unicontrol import OFFICIAL_TASKS

    generator = torch.Generator().manual_seed(0)
    layout = unicontrol_layout(unet.config, unet.config.cross_attention_dim, len(OFFICIAL_TASKS))
    weights = {f"control_model.{key}": (torch.randn(shape, generator=generator) * 0.02).to(scale.dtype)
               for key, shape in layout.items()}
    folder.mkdir(parents=True)
    save_file(weights, str(folder / config.UNICONTROL_OFFICIAL_FILE))


def set_side(hub: Path, side: int) -> None:
    """Make the pipelines' UNets draw at `side` pixels (their config's sample_size: the weights do not depend on it)."""
    for repo in (SD, T2V.pix2pix_model):
        unet_config = snapshot_folder(hub, repo) / "unet" / "config.json"
        settings = json.loads(unet_config.read_text())
        settings["sample_size"] = side // 8 if settings["block_out_channels"][0] == 320 else side // 4
        unet_config.write_text(json.dumps(settings, indent=2))


def build(hub: Path, scale: Scale = TINY, log=print) -> list[Repo]:
    """Write every repo of `REPOS` into the cache folder `hub` (made if missing); returns REPOS."""
    from diffusers.utils import logging as diffusers_logging
    from transformers import set_seed

    diffusers_logging.set_verbosity_error()  # casting warnings for every saved model
    hub = Path(hub)
    hub.mkdir(parents=True, exist_ok=True)
    set_seed(0)
    with tempfile.TemporaryDirectory(dir=hub) as work:
        work = Path(work)

        def repo(name: str, make) -> None:
            folder = work / name.replace("/", "--")
            make(folder)
            lay_out(hub, name, folder)
            log(f"  {name}")

        repo(SD, lambda f: _pipeline(f, scale, 4, "PNDMScheduler"))
        repo(T2V.pix2pix_model, lambda f: _pipeline(f, scale, 8, "EulerAncestralDiscreteScheduler"))
        repo(config.HUB_CLIP_MODEL, lambda f: _clip(f, scale))

        from diffusers import ControlNetModel
        unet = _unet(scale)
        # its hint encoder halves the image as often as the VAE does (SD: 3 times)
        hint = (16, 32, 96, 256)[:len(scale.vae["block_out_channels"])] if scale is TINY else (16, 32, 96, 256)
        repo(T2V.controlnet_model, lambda f: _save(ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint),
                                                   f, scale))
        repo(config.UNICONTROL_MODELS[SD], lambda f: _unicontrol(f, scale, unet))
        repo(config.HUB_IP_ADAPTER_REPO, lambda f: _ip_adapter(f, scale, unet))
        for kind, name in config.VIDEO_CONTROLNETS[SD].items():
            repo(name, lambda f: _video_controlnet(f, scale, unet, hint))
        for kind, name in config.VIDEO_SPARSE_CONTROLNETS[SD].items():
            repo(name, lambda f, kind=kind: _sparse_controlnet(f, scale, kind == "single_image", hint))
        repo(config.CONDITION_MODELS["depth"], lambda f: _depth_anything(f, scale))
        single_channel = ("canny", "sketch")  # their configs: in_channels 1
        for kind, (name, _) in config.T2I_ADAPTERS[SD].items():
            repo(name, lambda f, kind=kind, name=name: _adapter(f, scale, 1 if kind in single_channel else 3,
                                                                 light="color" in name))
        unet, adapter = _motion(scale)
        repo(config.HUB_MOTION_ADAPTER, lambda f: _save(adapter, f, scale))
        lora = work / "lora"
        _motion_lora(lora, scale, unet, adapter)
        for name in config.HUB_MOTION_LORAS:
            repo(name, lambda f: shutil.copytree(lora, f))
    return REPOS


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hub", type=Path)
    parser.add_argument("--scale", choices=("real", "tiny"), default="tiny")
    args = parser.parse_args()
    build(args.hub, REAL if args.scale == "real" else TINY)
