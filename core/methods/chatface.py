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

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import config
from ..attention import with_image_prompts
from ..chat_plan import EditPlan, parse_instruction
from ..denoisers import TextGuided
from ..directions import DirectionLibrary
from ..guidance import directional_loss
from ..identity import insert_identity
from ..inversion import DDIMSchedule, ddim_invert
from ..ip_adapter import ImagePrompt, image_pixels
from ..sampling import decode, decode_pixels, denoise, encode_images, encode_prompts, pixels_to_uint8, to_model_pixels
from ..training.lora import lora_config
from ..training.precision import MixedPrecision
from ..validate import check_finite, check_prompt, check_range

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
        if self.model is not None:  # decoding with the trained DAE: its LoRA stays fixed
            set_peft_model_state_dict(self.unet, self.model.lora, adapter_name=ADAPTER)
            for name, parameter in self.unet.named_parameters():
                if "lora_" in name:
                    parameter.requires_grad_(False)
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


# ---- the two autoencoders: z (semantic code), x_T (stochastic code), the decoder reading z_t ---------

class DiffaeCodec:
    """Our trained diffusion autoencoder (toy-chatface): the semantic encoder's code written into the empty
    prompt's last slots, decoded by the base UNet with the DAE's LoRA on; linear-probe attribute directions."""

    def __init__(self, pipe, model: ChatFaceModel):
        self.pipe, self.model = pipe, model
        self.directions = model.directions

    def encode(self, image: np.ndarray) -> torch.Tensor:
        encoder = self.model.encoder.to(self.pipe.unet.device)
        return encoder.encode(to_model_pixels(image[None]).to(self.pipe.unet.device, next(encoder.parameters()).dtype))

    def decoder(self):
        return decoder_adapter(self.pipe.unet, self.model)

    def invert(self, image: np.ndarray, z: torch.Tensor, schedule: DDIMSchedule) -> torch.Tensor:
        return ddim_invert(self.pipe.unet, encode_images(self.pipe, image[None]), context(self.pipe, self.model.encoder, z),
                           schedule)[-1]

    def decode(self, x_T: torch.Tensor, codes, schedule: DDIMSchedule, on_step=None) -> torch.Tensor:
        contexts = [context(self.pipe, self.model.encoder, code) for code in codes]  # z_t: one per step
        return denoise(TextGuided(self.pipe.unet, contexts), schedule, x_T, on_step=on_step).latents


class ImageEmbeddingCodec:
    """On public weights: a CLIP-embedding autoencoder through IP-Adapter, standing in for diffae (whose weights
    exist only as pickles). z is the CLIP image embedding the base IP-Adapter reads; the decoder is the base model
    with IP-Adapter conditioned on z (empty prompt, no guidance, as diffae decodes); x_T is DDIM inversion under z.
    It has no linear-probe directions: edits use trained mappers (`train_mapper`)."""
    directions = None

    def __init__(self, pipe, adapter, image_encoder, processor, scale: float = 1.0):
        self.pipe, self.adapter, self.image_encoder, self.processor = pipe, adapter, image_encoder, processor
        self.scale = float(scale)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        parameter = next(self.image_encoder.parameters())
        pixels = image_pixels(image, self.processor).to(parameter.device, parameter.dtype)
        return self.image_encoder(pixels).image_embeds.to(self.pipe.unet.dtype)

    def decoder(self):
        return contextlib.nullcontext()

    def prompt(self, codes) -> ImagePrompt:
        project = self.adapter.image_projection
        tokens = [project(code.to(self.pipe.unet.dtype)) for code in codes]
        return ImagePrompt(self.adapter, tokens, project(torch.zeros_like(codes[0])), self.scale)

    def _empty(self, batch: int) -> torch.Tensor:
        return encode_prompts(self.pipe, [""]).expand(batch, -1, -1)

    def invert(self, image: np.ndarray, z: torch.Tensor, schedule: DDIMSchedule) -> torch.Tensor:
        with with_image_prompts(self.pipe.unet, [self.prompt([z])]):
            return ddim_invert(self.pipe.unet, encode_images(self.pipe, image[None]), self._empty(1), schedule)[-1]

    def decode(self, x_T: torch.Tensor, codes, schedule: DDIMSchedule, on_step=None) -> torch.Tensor:
        with with_image_prompts(self.pipe.unet, [self.prompt(list(codes))]):
            return denoise(TextGuided(self.pipe.unet, self._empty(x_T.shape[0])), schedule, x_T, on_step=on_step).latents


# ---- mappers: Δz per attribute, trained with CLIP's directional loss -----------------------------

def mapper_name(attribute: str, target: str) -> str:
    """The library name of the mapper for one plan entry: colour-blue, shape-square, background-black, size-bigger."""
    if attribute == "size":
        return "size-" + ("bigger" if target.startswith("+") else "smaller")
    return f"{attribute}-{target}"


class CodeMapper(torch.nn.Module):
    """Δz = M(z) for one attribute (ChatFace's mapping networks, trained in z space): an MLP over the code, its
    output layer started small so that training begins near the unedited image."""

    def __init__(self, dim: int, hidden: int = D.mapper_hidden):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def load_mapper(library: DirectionLibrary, name: str, like: torch.Tensor) -> CodeMapper:
    weights, metadata = library.load(name)
    mapper = CodeMapper(int(metadata["dim"]), int(metadata["hidden"]))
    mapper.load_state_dict(weights)
    return mapper.to(like.device, like.dtype).eval().requires_grad_(False)


def plan_delta(codec, plan: EditPlan, z: torch.Tensor, strength_scale: float,
               mappers: DirectionLibrary | None) -> torch.Tensor:
    """Δz for the plan: each entry's trained mapper where the library has one, else the codec's linear-probe
    direction; a clear error when neither exists."""
    delta = torch.zeros_like(z)
    probes = EditPlan()
    for attribute, target in plan.targets.items():
        name = mapper_name(attribute, target)
        strength = abs(plan.strengths[attribute]) * strength_scale
        if mappers is not None and name in mappers.names():
            delta = delta + strength * load_mapper(mappers, name, z)(z)
        elif codec.directions is not None:
            probes.targets[attribute], probes.strengths[attribute] = target, plan.strengths[attribute]
        else:
            raise ValueError(f"no mapper {name!r} is trained for this base model yet: train it first (the tab's "
                             f"'train a mapper', or /chatface_train with an instruction that asks for it)")
    if probes.targets:
        delta = delta + codec.directions.delta(probes, z.float().cpu(), float(strength_scale)).to(z)
    return delta


@dataclass
class MapperParams:
    instruction: str = D.train_instruction  # names the one attribute the mapper learns (the chat parser's plan)
    source_text: str = D.source_text
    target_text: str = D.target_text
    iterations: int = D.iterations
    train_steps: int = D.train_steps
    lr: float = D.lr
    lambda_clip: float = D.lambda_clip
    lambda_l2: float = D.lambda_l2

    def check(self) -> tuple[str, str]:
        """The (attribute, target) the instruction names; a clear error unless it names exactly one."""
        check_prompt(self.source_text, "source_text"), check_prompt(self.target_text, "target_text")
        check_range("iterations", self.iterations, 1, D.max_iterations)
        check_range("train_steps", self.train_steps, 2, D.max_train_steps)
        check_range("lr", self.lr, D.min_lr, D.max_lr)
        check_range("lambda_clip", self.lambda_clip, 0.0, D.max_lambda)
        check_range("lambda_l2", self.lambda_l2, 0.0, D.max_lambda)
        plan = parse_instruction(self.instruction)
        if len(plan.targets) != 1:
            raise ValueError(f"a mapper learns one attribute; {self.instruction!r} asks for "
                             f"{', '.join(plan.targets)}: train them one at a time")
        return next(iter(plan.targets.items()))


@dataclass
class MapperResult:
    name: str
    reconstruction: np.ndarray
    edited: np.ndarray
    losses: list[float]
    seconds: float


def train_mapper(codec, clip, image: np.ndarray, params: MapperParams, library: DirectionLibrary | None = None,
                 on_step=None) -> MapperResult:
    """Train Δz = M(z) for the attribute `params.instruction` names: decode x_T (DDIM-inverted, `train_steps`)
    with z_t moving from z + Δz towards z (the edit's schedule), through the decoder with gradients, and minimise
    λ_clip·L_dir(edited, reconstruction; source_text → target_text) + λ_l2·‖Δz‖²/‖z‖² (keeps the code near the
    image's). Saved to `library` under the plan entry's name (`mapper_name`), where edits find it."""
    attribute, target = params.check()
    clip_model, tokenizer, inputs = clip
    started = time.time()
    name = mapper_name(attribute, target)
    plan_schedule = ddim_schedule(codec.pipe, params.train_steps)
    shares = edit_weights(len(plan_schedule.timesteps), D.nu)
    pipe = codec.pipe
    with codec.decoder():
        with torch.no_grad():
            z = codec.encode(image)
            x_T = codec.invert(image, z, plan_schedule)
            reconstruction = decode_pixels(pipe, codec.decode(x_T, [z] * len(shares), plan_schedule)).float()
        with torch.random.fork_rng(devices=[]):  # the same request trains the same mapper whatever ran before
            torch.manual_seed(0)
            mapper = CodeMapper(z.shape[-1]).to(z.device, z.dtype)
        precision = MixedPrecision(list(mapper.parameters()))  # float32 masters of a float16 mapper
        optimizer = torch.optim.Adam(precision.masters, lr=float(params.lr))
        losses = []
        for iteration in range(int(params.iterations)):
            delta = mapper(z)
            latents = codec.decode(x_T, [z + float(share) * delta for share in shares], plan_schedule)
            edited = decode_pixels(pipe, latents).float()
            loss = params.lambda_clip * directional_loss(clip_model, inputs, tokenizer, edited, reconstruction,
                                                         params.source_text, params.target_text)
            loss = loss + params.lambda_l2 * delta.float().pow(2).sum() / z.float().pow(2).sum()
            losses.append(precision.minimise(optimizer, loss))
            if on_step is not None:
                on_step(iteration + 1, int(params.iterations))
        mapper.eval().requires_grad_(False)
        with torch.no_grad():
            delta = mapper(z)
            edited = decode_pixels(pipe, codec.decode(x_T, [z + float(s) * delta for s in shares], plan_schedule))
    if library is not None:
        library.save(name, mapper.state_dict(), {
            "dim": mapper.dim, "hidden": mapper.hidden, "attribute": attribute, "target": target,
            "instruction": params.instruction, "source_text": params.source_text, "target_text": params.target_text,
            "iterations": params.iterations, "train_steps": params.train_steps, "lr": params.lr,
            "lambda_clip": params.lambda_clip, "lambda_l2": params.lambda_l2, "seconds": round(time.time() - started, 1)})
    return MapperResult(name, pixels_to_uint8(reconstruction)[0], pixels_to_uint8(edited)[0], losses,
                        time.time() - started)


@torch.no_grad()
def edit(codec, image: np.ndarray, instruction: str, strength_scale: float = D.strength_scale, steps: int = D.steps,
         nu: float = D.nu, mappers: DirectionLibrary | None = None, on_step=None) -> ChatFaceResult:
    """Parse, encode (z, x_T), move z by the plan (trained mappers, else the codec's directions), and decode with
    the z_t schedule; also the plain reconstruction."""
    check_range("strength_scale", strength_scale, 0.0, D.max_strength_scale)
    check_range("steps", steps, 2, config.MAX_STEPS)
    plan = parse_instruction(instruction)
    z = codec.encode(image)
    delta = plan_delta(codec, plan, z, float(strength_scale), mappers)
    plan_schedule = ddim_schedule(codec.pipe, steps)
    weights = edit_weights(len(plan_schedule.timesteps), float(nu))
    with codec.decoder():
        x_T = codec.invert(image, z, plan_schedule)
        outputs = []
        for shares in (np.zeros_like(weights), weights):  # the reconstruction, then the edit
            done = len(outputs) * len(weights)
            progress = None if on_step is None else (lambda d, n, done=done: on_step(done + d, 2 * n))
            x = codec.decode(x_T, [z + float(share) * delta for share in shares], plan_schedule, progress)
            outputs.append(decode(codec.pipe, x)[0])
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


def uses_image_embedding(base_model: str) -> bool:
    """Does ChatFace run as the CLIP-embedding autoencoder (through the base model's IP-Adapter) on this base, rather
    than toy-chatface's DAE (the embedded model, or a base with no IP-Adapter: a clear error there)?"""
    return base_model != config.EMBEDDED_BASE_MODEL and "image" in config.IP_ADAPTERS.get(base_model, {})


def codec_for(models):
    """The autoencoder on the app's base model (`uses_image_embedding`)."""
    if not uses_image_embedding(models.base_model):
        return DiffaeCodec(models.pipeline(), load_model(models))
    return ImageEmbeddingCodec(models.pipeline(), *models.ip_adapter("image"), scale=D.ip_adapter_scale)
