"""ChatFace (Yue et al., 2023): edit the semantic code of a diffusion autoencoder from a chat.

A diffusion autoencoder (diffae) encodes an image x0 into a semantic code z and a stochastic code
x_T (DDIM inversion conditioned on z); decoding (z, x_T) gives x0 back. An edit moves z to
z_edit = z + Δz, and sampling uses z_t, a linear interpolation from z_edit (at T) towards
z (at 0, by `nu`), which keeps the identity while the edit steers coarse structure. The plan Δz
comes from an instruction (core.chat_plan) and attribute directions in z space.

Our diffusion autoencoder reuses the base text-to-image model as its decoder: the semantic
encoder's code becomes a few token embeddings written into the empty prompt's last slots, and a
LoRA of the UNet learns to read them (trained by scripts/train_toy_chatface.py). Attribute
directions are diffae's linear-probe kind, fitted on labelled images: class means for colour,
shape and background, a least-squares direction for size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import config
from ..chat_plan import EditPlan, parse_instruction
from ..denoisers import TextGuided
from ..identity import insert_identity
from ..inversion import DDIMSchedule, ddim_invert
from ..sampling import decode, denoise, encode_images, encode_prompts, to_model_pixels
from ..training.lora import lora_config
from ..validate import check_finite, check_range

D = config.ChatFaceDefaults
ADAPTER = "chatface-dae"


class SemanticEncoder(torch.nn.Module):
    """x0 (B, 3, H, W) in [-1, 1] → z (B, dim): a small CNN with global pooling (no position)."""

    def __init__(self, dim: int = D.z_dim, width: int = 128, tokens: int = D.z_tokens):
        super().__init__()
        self.dim, self.width, self.tokens = dim, width, tokens
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(64, 128, 3, stride=2, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.SiLU())
        self.to_z = torch.nn.Linear(128 * 2, dim)
        self.to_tokens = torch.nn.Linear(dim, tokens * width)
        self.norm = torch.nn.LayerNorm(width)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.net(pixels)
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return self.to_z(pooled)

    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """z → (B, tokens, width) embeddings for the decoder's context."""
        return self.norm(self.to_tokens(z).view(-1, self.tokens, self.width))


@dataclass
class AttributeDirections:
    """Where attributes live in z: class means (colour, shape, background), a size direction."""
    means: dict[str, dict[str, torch.Tensor]]  # attribute → value → mean z
    size_direction: torch.Tensor  # z-step that grows the radius by one pixel (least squares)

    def current(self, attribute: str, z: torch.Tensor) -> str:
        values = self.means[attribute]
        names = list(values)
        distances = torch.stack([(z - values[n]).norm(dim=-1) for n in names], dim=-1)
        return names[int(distances.argmin(dim=-1)[0])]

    def delta(self, plan: EditPlan, z: torch.Tensor, strength_scale: float = 1.0) -> torch.Tensor:
        """Δz for the plan: towards the target class mean; along the size direction."""
        delta = torch.zeros_like(z)
        for attribute, target in plan.targets.items():
            strength = plan.strengths[attribute] * strength_scale
            if attribute == "size":
                delta = delta + strength * D.size_pixels_per_unit * self.size_direction.to(z)
            else:
                values = self.means[attribute]
                if target not in values:
                    raise ValueError(f"{attribute} {target!r} is not one this model knows: {', '.join(values)}")
                delta = delta + strength * (values[target] - values[self.current(attribute, z)]).to(z)
        return delta

    def save(self, folder: Path) -> None:
        tensors = {f"{a}.{v}": m.contiguous() for a, vs in self.means.items() for v, m in vs.items()}
        tensors["size_direction"] = self.size_direction.contiguous()
        save_file(check_finite(tensors, "the attribute directions"), str(Path(folder) / "directions.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> "AttributeDirections":
        tensors = load_file(str(Path(folder) / "directions.safetensors"))
        means: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key != "size_direction":
                attribute, name = key.split(".", 1)
                means.setdefault(attribute, {})[name] = value.float()
        return cls(means, tensors["size_direction"].float())


def fit_directions(z: torch.Tensor, labels: dict[str, list[str]], radius: torch.Tensor) -> AttributeDirections:
    """Class means per attribute, and the least-squares radius direction w/‖w‖² (one pixel)."""
    means = {}
    for attribute, values in labels.items():
        means[attribute] = {v: z[[i for i, x in enumerate(values) if x == v]].mean(dim=0)
                            for v in sorted(set(values))}
    centred = z - z.mean(dim=0)
    weights = torch.linalg.lstsq(centred, (radius - radius.mean())[:, None]).solution[:, 0]
    return AttributeDirections(means, weights / weights.pow(2).sum())


# ---- the diffusion autoencoder: LoRA decoder + encoder, saved together ----------------------

@dataclass
class ChatFaceModel:
    encoder: SemanticEncoder
    lora: dict[str, torch.Tensor]
    lora_rank: int
    directions: AttributeDirections | None = None

    def save(self, folder: Path, metadata: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        check_finite(self.encoder.state_dict(), "the semantic encoder"), check_finite(self.lora, "the decoder LoRA")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()},
                  str(folder / "encoder.safetensors"))
        save_file({k: v.detach().cpu().float().contiguous() for k, v in self.lora.items()},
                  str(folder / "decoder_lora.safetensors"))
        settings = {"z_dim": self.encoder.dim, "width": self.encoder.width, "tokens": self.encoder.tokens,
                    "lora_rank": self.lora_rank}
        (folder / "chatface_config.json").write_text(json.dumps({**settings, **(metadata or {})}, indent=2))
        if self.directions is not None:
            self.directions.save(folder)

    @classmethod
    def load(cls, folder: Path) -> "ChatFaceModel":
        folder = Path(folder)
        settings = json.loads((folder / "chatface_config.json").read_text())
        encoder = SemanticEncoder(settings["z_dim"], settings["width"], settings["tokens"])
        encoder.load_state_dict(load_file(str(folder / "encoder.safetensors")))
        directions = AttributeDirections.load(folder) if (folder / "directions.safetensors").exists() else None
        return cls(encoder.eval().requires_grad_(False), load_file(str(folder / "decoder_lora.safetensors")),
                   settings["lora_rank"], directions)


DECODER_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # every attention projection of the UNet


class decoder_adapter:
    """`with decoder_adapter(unet, model):` the UNet decodes z (the DAE's LoRA on), then clean again."""

    def __init__(self, unet, model: ChatFaceModel | None, rank: int | None = None):
        self.unet, self.model, self.rank = unet, model, rank

    def __enter__(self):
        from peft.utils import set_peft_model_state_dict
        if getattr(self.unet, "peft_config", None):
            self.unet.delete_adapters(list(self.unet.peft_config))
        self.unet.add_adapter(lora_config(self.rank or self.model.lora_rank, DECODER_LORA_TARGETS), adapter_name=ADAPTER)
        if self.model is not None:
            set_peft_model_state_dict(self.unet, self.model.lora, adapter_name=ADAPTER)
        self.unet.set_adapters([ADAPTER])
        return self.unet

    def __exit__(self, *exc):
        self.unet.delete_adapters([ADAPTER])
        return False


def context(pipe, encoder: SemanticEncoder, z: torch.Tensor) -> torch.Tensor:
    empty = encode_prompts(pipe, [""]).expand(z.shape[0], -1, -1)
    return insert_identity(empty, encoder.condition(z).to(empty.dtype))


def ddim_schedule(pipe, steps: int) -> DDIMSchedule:
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    return DDIMSchedule.from_scheduler(scheduler, int(steps))


def edit_weights(num_steps: int, nu: float) -> np.ndarray:
    """Share of Δz used at each sampling step: 1 at T, falling linearly to 1 − ν at the end."""
    return 1.0 - nu * np.linspace(0.0, 1.0, num_steps)


@dataclass
class ChatFaceResult:
    edited: np.ndarray
    reconstruction: np.ndarray
    plan: EditPlan
    schedule: np.ndarray  # Δz share per step


@torch.no_grad()
def edit(pipe, model: ChatFaceModel, image: np.ndarray, instruction: str, strength_scale: float = D.strength_scale,
         steps: int = D.steps, nu: float = D.nu, on_step=None) -> ChatFaceResult:
    """Parse, encode (z, x_T), move z, and decode with the z_t schedule; also the plain reconstruction."""
    if model.directions is None:
        raise ValueError("this ChatFace model has no attribute directions")
    check_range("strength_scale", strength_scale, 0.0, D.max_strength_scale)
    check_range("steps", steps, 2, config.MAX_STEPS)
    plan = parse_instruction(instruction)
    device = pipe.unet.device
    encoder = model.encoder.to(device)
    pixels = to_model_pixels(image[None]).to(device)
    z = encoder.encode(pixels.to(next(encoder.parameters()).dtype))
    delta = model.directions.delta(plan, z.float().cpu(), float(strength_scale)).to(z)
    plan_schedule = ddim_schedule(pipe, steps)
    weights = edit_weights(len(plan_schedule.timesteps), float(nu))
    with decoder_adapter(pipe.unet, model):
        latents = encode_images(pipe, image[None])
        x_T = ddim_invert(pipe.unet, latents, context(pipe, encoder, z), plan_schedule)[-1]
        outputs = []
        for shares in (np.zeros_like(weights), weights):  # the reconstruction, then the edit
            codes = [context(pipe, encoder, z + float(share) * delta) for share in shares]  # z_t: one per step
            done = len(outputs) * len(weights)
            progress = None if on_step is None else (lambda d, n, done=done: on_step(done + d, 2 * n))
            x = denoise(TextGuided(pipe.unet, codes), plan_schedule, x_T, on_step=progress).latents
            outputs.append(decode(pipe, x)[0])
    return ChatFaceResult(outputs[1], outputs[0], plan, weights)


def dae_loss(pipe, encoder: SemanticEncoder, images: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """ε-loss of the LoRA'd UNet conditioned only on the encoder's code of the same images."""
    from ..training.epsilon import epsilon_loss, image_latents
    pixels = to_model_pixels(images).to(pipe.unet.device)
    return epsilon_loss(pipe, image_latents(pipe, pixels), context(pipe, encoder, encoder.encode(pixels)), generator)


def load_model(models, name: str | None = None) -> ChatFaceModel:
    """The semantic encoder + decoder LoRA + attribute directions through the app's model cache (`models`):
    toy-chatface offline, which decodes through toy-sd only."""
    from ..models import ModelLoadError, resolve

    name = name or config.EMBEDDED_CHATFACE_MODEL
    if name == config.EMBEDDED_CHATFACE_MODEL and not (config.MODELS_DIR / name).is_dir():
        raise ModelLoadError(f"the embedded ChatFace model {name!r} is not trained yet: run "
                             "scripts/train_toy_chatface.py (about 15 min on 2 CPU cores)")
    if models.base_model != config.EMBEDDED_BASE_MODEL and name == config.EMBEDDED_CHATFACE_MODEL:
        raise ModelLoadError(f"toy-chatface decodes through toy-sd; the base model is {models.base_model!r}. "
                             "Train a ChatFace model for it with scripts/train_toy_chatface.py")

    def load():
        model = ChatFaceModel.load(Path(resolve(name, models.allow_local).location))
        model.encoder.to(models.device, models.dtype)
        return model

    return models.cached(("ChatFace", name), load)
