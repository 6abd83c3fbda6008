"""Model names → loaded diffusers / transformers objects, cached.

A name is an embedded model (a folder under assets/models/, e.g. "toy-sd"), a Hub id
("owner/name"), or — only when the operator passes it on the command line — a local folder.
Everything loads through `from_pretrained`, safetensors only, never remote code. One base
pipeline stays resident; loading another evicts it. A model that fails to load raises
`ModelLoadError` saying why: there is no silent fallback.
"""
from __future__ import annotations

import dataclasses
import gc
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from . import config
from .tokenizer import check_tokenizer

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


class ModelLoadError(ValueError):
    """A model name that cannot be resolved or loaded; the message says why."""


@dataclass(frozen=True)
class ModelSource:
    name: str
    location: str  # folder path or Hub id handed to from_pretrained
    kind: str  # "embedded" | "local" | "hub"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(name: str, allow_local: bool = False) -> ModelSource:
    """Where `name` lives. Local folders only when the operator allowed them (never from a request)."""
    name = (name or "").strip()
    if not name:
        raise ModelLoadError("no model name given")
    embedded = config.MODELS_DIR / name
    if re.fullmatch(r"[\w.-]+", name) and embedded.is_dir():
        return ModelSource(name, str(embedded), "embedded")
    if allow_local and Path(name).expanduser().is_dir():
        return ModelSource(name, str(Path(name).expanduser().resolve()), "local")
    if HUB_ID.fullmatch(name) and ".." not in name:
        return ModelSource(name, name, "hub")
    if name in config.EMBEDDED_MODELS:
        raise ModelLoadError(f"the embedded model {name!r} is missing from {config.MODELS_DIR}: "
                             f"train it with the script in scripts/")
    raise ModelLoadError(f"{name!r} is neither an embedded model ({', '.join(config.EMBEDDED_MODELS)}) nor a Hub id "
                         "like 'owner/model'")


class Models:
    """The app's model cache. Thread-safe; one base pipeline resident at a time.

    `gpu_configuration` is every choice the app makes for a CUDA device (float16, SD1.5 and Hub CLIP by default,
    VAE slicing); None: on a CUDA device. True on a CPU is the rehearsal of the GPU stack (bench/rehearsal.py)."""

    def __init__(self, base_model: str | None = None, device: torch.device | str | None = None,
                 allow_local: bool = False, gpu_configuration: bool | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self.gpu_configuration = self.device.type == "cuda" if gpu_configuration is None else gpu_configuration
        self.dtype = torch.float16 if self.gpu_configuration else torch.float32
        self.base_model = base_model or (config.HUB_BASE_MODEL if self.gpu_configuration else config.EMBEDDED_BASE_MODEL)
        self.allow_local = allow_local
        self.device_count = 1  # engine requests that may run at once: one per device this cache serves
        self._pipes: dict[str, object] = {}
        self._aux: OrderedDict[tuple, object] = OrderedDict()  # least recently used first
        self._aux_bytes: dict[tuple, int] = {}  # weight bytes of each, measured once when loaded
        self.companion_budget = config.COMPANION_CACHE_BYTES
        self._lock = threading.RLock()

    # -- base text-to-image pipelines ---------------------------------------------------------
    def pipeline(self, name: str | None = None, pipeline_class=None):
        """A StableDiffusionPipeline (or `pipeline_class`, e.g. Instruct-Pix2Pix) for `name`
        (default: the app's base model)."""
        from diffusers import StableDiffusionPipeline

        name = name or self.base_model
        pipeline_class = pipeline_class or StableDiffusionPipeline
        key = f"{pipeline_class.__name__}:{name}"
        with self._lock:
            if key in self._pipes:
                return self._pipes[key]
            source = resolve(name, self.allow_local or name == self.base_model)
            self._evict_pipelines()
            try:
                pipe = pipeline_class.from_pretrained(
                    source.location, torch_dtype=self.dtype, use_safetensors=True, safety_checker=None,
                    requires_safety_checker=False, local_files_only=source.kind != "hub")
            except Exception as error:  # diffusers raises OSError, ValueError, EnvironmentError …
                raise ModelLoadError(load_failure("base", f"{name} ({source.kind})", error)) from error
            check_tokenizer(pipe.tokenizer, source.location)
            # the cached weights are never trained in place (methods train adapters or copies): without this every
            # backward through the UNet or VAE (FreeDoM's energy, DiffusionCLIP's loss) also made weight gradients,
            # memory for a second UNet, and on a CPU in float16 a 100× slower convolution backward
            for module in pipe.components.values():
                if isinstance(module, torch.nn.Module):
                    module.requires_grad_(False)
            pipe = pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
            if self.gpu_configuration and config.ENABLE_VAE_SLICING:
                pipe.vae.enable_slicing()
            if self.device.type == "cuda":
                if config.ENABLE_CPU_OFFLOAD:
                    pipe.enable_model_cpu_offload()
            self._pipes[key] = pipe
            return pipe

    def _evict_pipelines(self) -> None:
        self._pipes.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _evict_motion_unets(self) -> None:
        """One inflated UNet at a time (motion_unet, fresh_motion_unet): each is a second copy of the base UNet."""
        for key in [k for k in self._aux if k[0] == "motion UNet"]:
            del self._aux[key], self._aux_bytes[key]

    # -- companion models (ControlNets, adapters) ------------------------------------------------
    def _cached(self, key: tuple, load):
        """One companion model per key, loaded once under the lock; failures become ModelLoadError. The
        cache keeps the most recently used companions within `companion_budget` bytes of weights (the one
        just asked for always stays; a call still using an evicted one keeps it until it ends)."""
        with self._lock:
            if key not in self._aux:
                try:
                    self._aux[key] = load()
                    self._aux_bytes[key] = weight_bytes(self._aux[key])
                except ModelLoadError:
                    raise
                except Exception as error:
                    raise ModelLoadError(load_failure(key[0], key[1], error)) from error
            self._aux.move_to_end(key)
            self._evict_companions(keep=key)
            return self._aux[key]

    def cached(self, key: tuple, load):
        """A method's own model in the cache (its loader `load` runs once; key[0] names the kind, key[1] the model),
        under the same budget and errors as the cache's own loaders."""
        return self._cached(key, load)

    def companion_bytes(self) -> int:
        """Bytes of weights the cached companions hold."""
        return sum(self._aux_bytes[key] for key in self._aux)

    def _evict_companions(self, keep: tuple) -> None:
        evicted = False
        while len(self._aux) > 1 and self.companion_bytes() > self.companion_budget:
            oldest = next(iter(self._aux))
            if oldest == keep:
                break
            del self._aux[oldest], self._aux_bytes[oldest]
            evicted = True
        if evicted:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def controlnet(self, name: str):
        from diffusers import ControlNetModel

        def load():
            source = resolve(name, self.allow_local)
            try:
                model = ControlNetModel.from_pretrained(source.location, torch_dtype=self.dtype, use_safetensors=True,
                                                        variant=config.CONTROLNET_VARIANTS.get(name),
                                                        local_files_only=source.kind != "hub")
            except Exception as error:
                raise ModelLoadError(load_failure("ControlNet", name, error)) from error
            return model.to(self.device).eval().requires_grad_(False)

        return self._cached(("ControlNet", name), load)

    def sparse_controlnet(self, name: str):
        """A SparseCtrl model (AnimateDiff's sparse ControlNet, safetensors), cached."""
        from diffusers import SparseControlNetModel

        def load():
            source = resolve(name, self.allow_local)
            try:
                model = SparseControlNetModel.from_pretrained(source.location, torch_dtype=self.dtype,
                                                              use_safetensors=True, local_files_only=source.kind != "hub")
            except Exception as error:
                raise ModelLoadError(load_failure("SparseCtrl", name, error)) from error
            return model.to(self.device).eval().requires_grad_(False)

        return self._cached(("SparseCtrl", name), load)

    def video_controls(self, conditions, base_model: str | None = None) -> dict:
        """condition kind → the public model that reads it on `base_model` (config.VIDEO_CONTROLNETS,
        VIDEO_SPARSE_CONTROLNETS); motion needs none."""
        base_model = base_model or self.base_model
        frame, key = config.VIDEO_CONTROLNETS.get(base_model), config.VIDEO_SPARSE_CONTROLNETS.get(base_model, {})
        if frame is None:
            raise ModelLoadError(f"no public control models are listed for base model {base_model!r} "
                                 f"(config.VIDEO_CONTROLNETS: {', '.join(config.VIDEO_CONTROLNETS)})")
        models = {}
        for kind in conditions:
            if kind in frame:
                models[kind] = self.controlnet(frame[kind])
            elif kind in key:
                models[kind] = self.sparse_controlnet(key[kind])
        return models

    def uses_public_video_controls(self, base_model: str | None = None) -> bool:
        """VideoComposer and Gen-1 on public models (AnimateDiff + ControlNets) rather than our trained weights."""
        base_model = base_model or self.base_model
        return base_model not in config.VIDEOCOMPOSER_MODELS and base_model in config.VIDEO_CONTROLNETS

    def t2i_adapters(self, kinds: list[str], base_model: str | None = None) -> list:
        """The T2I-Adapters of `kinds` for `base_model` (config.T2I_ADAPTERS), in that order."""
        from diffusers import T2IAdapter

        base_model = base_model or self.base_model
        available = config.T2I_ADAPTERS.get(base_model)
        if available is None:
            raise ModelLoadError(f"no T2I-Adapters are listed for base model {base_model!r} (config.T2I_ADAPTERS); "
                                 f"listed bases: {', '.join(config.T2I_ADAPTERS)}")
        adapters = []
        for kind in kinds:
            if kind not in available:
                raise ModelLoadError(f"no {kind!r} adapter for {base_model!r}; available: {', '.join(available)}")
            name, subfolder = available[kind]

            def load(name=name, subfolder=subfolder):
                source = resolve(name, self.allow_local)
                location, local = source.location, source.kind != "hub"
                if source.kind == "hub" and name in config.PICKLE_ALLOWLIST:
                    location, local = converted_pickle(name, config.PICKLE_ALLOWLIST[name], subfolder), True
                    subfolder = None
                try:
                    model = T2IAdapter.from_pretrained(location, subfolder=subfolder, torch_dtype=self.dtype,
                                                       use_safetensors=True, local_files_only=local)
                except Exception as error:
                    raise ModelLoadError(load_failure("T2I-Adapter", name, error)) from error
                return model.to(self.device).eval().requires_grad_(False)

            adapters.append(self._cached(("T2I-Adapter", name, subfolder), load))
        return adapters

    def unicontrol(self, base_model: str | None = None):
        """The UniControl model for `base_model` (config.UNICONTROL_MODELS): a folder of this app's
        format (toy-unicontrol), or the official Hub repo's safetensors checkpoint converted on load."""
        from .unicontrol import UniControlModel

        base_model = base_model or self.base_model
        name = config.UNICONTROL_MODELS.get(base_model)
        if name is None:
            raise ModelLoadError(f"no UniControl model is listed for base model {base_model!r} "
                                 f"(config.UNICONTROL_MODELS: {', '.join(config.UNICONTROL_MODELS)})")

        def load():
            source = resolve(name, self.allow_local)
            if source.kind != "hub":
                model = UniControlModel.from_pretrained(source.location, torch_dtype=self.dtype, use_safetensors=True)
            else:
                from huggingface_hub import hf_hub_download

                from .unicontrol_convert import load_official
                pipe = self.pipeline(base_model)
                try:
                    path = hf_hub_download(name, config.UNICONTROL_OFFICIAL_FILE)
                    model = load_official(path, dtype=self.dtype, unet_config=pipe.unet.config,
                                          hint_downscale=pipe.vae_scale_factor)
                except Exception as error:
                    raise ModelLoadError(load_failure("UniControl", name, error)) from error
            return model.to(self.device).eval().requires_grad_(False)

        return self._cached(("UniControl", name), load)

    # -- motion models (AnimateDiff, and the video tabs built on it) ----------------------------
    def motion_adapter_name(self, base_model: str | None = None) -> str:
        """toy-motion for toy-sd; the official SD1.5 adapter for every other base."""
        return config.MOTION_ADAPTERS.get(base_model or self.base_model, config.HUB_MOTION_ADAPTER)

    def motion_unet(self, base_model: str | None = None, adapter: str | None = None):
        """`base_model`'s UNet inflated with a motion adapter (core.motion), cached per pair, with the
        adapter's domain LoRA (if its folder has one) loaded as the adapter "domain"."""
        from diffusers import MotionAdapter

        from .motion import inflate

        base_model = base_model or self.base_model
        adapter = adapter or self.motion_adapter_name(base_model)
        pipe = self.pipeline(base_model)

        def load():
            self._evict_motion_unets()
            source = resolve(adapter, self.allow_local)
            model = MotionAdapter.from_pretrained(source.location, torch_dtype=self.dtype, use_safetensors=True,
                                                  local_files_only=source.kind != "hub")
            unet = inflate(pipe.unet, model)
            unet.requires_grad_(False)
            domain = Path(source.location) / config.MOTION_DOMAIN_LORA_DIR
            if source.kind != "hub" and domain.is_dir():
                load_lora(unet, str(domain), "domain", local=True, weight_name=config.LORA_FILE)
            return unet

        return self._cached(("motion UNet", base_model, adapter), load)

    def fresh_motion_unet(self, base_model: str | None = None):
        """`base_model`'s UNet inflated with new, zero-initialised temporal layers (what Tune-A-Video
        tunes and loads tuned weights into), cached like `motion_unet` (one inflated UNet at a time)."""
        from .motion import inflate, new_motion_adapter

        base_model = base_model or self.base_model
        pipe = self.pipeline(base_model)

        def load():
            self._evict_motion_unets()
            unet = inflate(pipe.unet, new_motion_adapter(pipe.unet, max_frames=config.TuneAVideoDefaults.max_frames))
            return unet.requires_grad_(False)

        return self._cached(("motion UNet", base_model, "fresh temporal layers"), load)

    def motion_lora(self, unet, name: str) -> str:
        """Load the motion LoRA `name` (Hub id or embedded folder, safetensors) into `unet` once;
        returns its adapter name."""
        adapter_name = re.sub(r"\W", "_", name)
        with self._lock:
            if adapter_name not in (getattr(unet, "peft_config", None) or {}):
                source = resolve(name, self.allow_local)
                hub = source.kind == "hub"
                weight_name = config.HUB_MOTION_LORA_FILES.get(name) if hub else config.LORA_FILE
                try:
                    load_lora(unet, source.location, adapter_name, local=not hub, weight_name=weight_name)
                except Exception as error:
                    raise ModelLoadError(f"could not load the motion LoRA {name!r}: {error}") from error
        return adapter_name

    # -- VideoComposer / Gen-1 (conditioned motion UNet + STC-encoders) ---------------------------
    def videocomposer(self, base_model: str | None = None, weights: str | None = None):
        """(widened motion UNet, VideoComposer encoders) for `base_model` — our re-implementation's
        weights (config.VIDEOCOMPOSER_MODELS, or the folder / Hub id `weights`); a clear error for a base
        model none was trained for."""
        from diffusers import UNetMotionModel

        from .attention import install
        from .videocomposer import VideoComposer

        base_model = base_model or self.base_model
        name = weights or config.VIDEOCOMPOSER_MODELS.get(base_model)
        if name is None:
            raise ModelLoadError(
                f"no VideoComposer weights for {base_model!r}: the official ones are a non-commercial pickle this app "
                f"does not load, and ours were trained for {', '.join(config.VIDEOCOMPOSER_MODELS)} "
                f"(scripts/train_toy_videocomposer.py); start the app with --model {config.EMBEDDED_BASE_MODEL}")

        def load():
            source = resolve(name, self.allow_local)
            local = source.kind != "hub"
            try:
                unet = UNetMotionModel.from_pretrained(source.location, subfolder="unet", torch_dtype=self.dtype,
                                                       use_safetensors=True, local_files_only=local)
                composer = VideoComposer.from_pretrained(source.location, subfolder="composer", torch_dtype=self.dtype,
                                                         use_safetensors=True, local_files_only=local)
            except Exception as error:
                raise ModelLoadError(f"could not load the VideoComposer model {name!r}: {error}") from error
            unet = unet.to(self.device).eval().requires_grad_(False)
            install(unet)
            return unet, composer.to(self.device).eval().requires_grad_(False)

        return self._cached(("VideoComposer", base_model, name), load)

    def depth_estimator(self, name: str | None = None):
        """(image processor, model) of a transformers depth model (safetensors only), cached."""
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        name = name or config.CONDITION_MODELS["depth"]

        def load():
            source = resolve(name, self.allow_local)
            local = source.kind != "hub"
            try:
                processor = AutoImageProcessor.from_pretrained(source.location, local_files_only=local)
                model = AutoModelForDepthEstimation.from_pretrained(source.location, use_safetensors=True,
                                                                    local_files_only=local)
            except Exception as error:
                raise ModelLoadError(f"could not load the depth model {name!r}: {error}") from error
            return processor, model.to(self.device, self.dtype).eval().requires_grad_(False)

        return self._cached(("depth", name), load)

    # -- IP-Adapter (image prompts) --------------------------------------------------------------
    def ip_adapter(self, kind: str = "image", base_model: str | None = None):
        """(IPAdapter, image encoder, image processor) for `base_model` (config.IP_ADAPTERS), cached; nothing is
        installed on the UNet (core.ip_adapter)."""
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        from .ip_adapter import IPAdapter

        base_model = base_model or self.base_model
        entry = config.IP_ADAPTERS.get(base_model, {}).get(kind)
        if entry is None:
            raise ModelLoadError(f"no IP-Adapter ({kind}) is listed for base model {base_model!r}: image prompts need "
                                 f"a base model of config.IP_ADAPTERS ({', '.join(config.IP_ADAPTERS)})")
        repo, filename = entry
        unet = self.pipeline(base_model).unet

        def load_adapter():
            from huggingface_hub import hf_hub_download
            try:
                return IPAdapter.load(unet, hf_hub_download(repo, filename))
            except Exception as error:
                raise ModelLoadError(load_failure("IP-Adapter", f"{repo}/{filename}", error)) from error

        def load_encoder():
            try:
                encoder = CLIPVisionModelWithProjection.from_pretrained(
                    repo, subfolder=config.IP_ADAPTER_IMAGE_ENCODER, dtype=self.dtype, use_safetensors=True)
            except Exception as error:
                raise ModelLoadError(load_failure("IP-Adapter image encoder", repo, error)) from error
            return encoder.to(self.device).eval().requires_grad_(False)

        adapter = self._cached(("IP-Adapter", base_model, repo, filename), load_adapter)
        encoder = self._cached(("IP-Adapter image encoder", repo), load_encoder)
        return adapter, encoder, CLIPImageProcessor()  # SD1.5's feature extractor: OpenAI's 224-px preprocessing

    def image_prompt(self, image, scale: float = 1.0, kind: str = "image"):
        """uint8 `image` (H, W, 3) as an image prompt (core.ip_adapter.ImagePrompt) through the base model's
        IP-Adapter `kind`."""
        from .ip_adapter import encode_image_prompt
        return encode_image_prompt(*self.ip_adapter(kind), image, scale)

    # -- CLIP (losses, energies) ---------------------------------------------------------------
    def clip(self, name: str | None = None):
        """(CLIPModel, tokenizer) — toy-clip offline, CLIP ViT-B/16 on a GPU."""
        from transformers import CLIPModel, CLIPTokenizer

        name = name or (config.HUB_CLIP_MODEL if self.gpu_configuration else config.EMBEDDED_CLIP_MODEL)

        def load():
            source = resolve(name, self.allow_local)
            model = CLIPModel.from_pretrained(source.location, dtype=self.dtype, use_safetensors=True,
                                              local_files_only=source.kind != "hub")
            tokenizer = CLIPTokenizer.from_pretrained(source.location, local_files_only=source.kind != "hub")
            check_tokenizer(tokenizer, source.location)
            return model.to(self.device).eval().requires_grad_(False), tokenizer

        return self._cached(("CLIP", name), load)

    # -- Face0 identity mappers (one per base model) -------------------------------------------
    def face0_mapper(self, base_model: str | None = None):
        """The Face0 mapper trained for `base_model` (config.FACE0_MAPPERS), with its settings."""
        from .identity import IdentityMapper

        base_model = base_model or self.base_model
        name = config.FACE0_MAPPERS.get(base_model)
        if name is None:
            raise ModelLoadError(f"no Face0 mapper is trained for base model {base_model!r}: train one with "
                                 "scripts/train_face0_mapper.py --base ... --data FACES/ and list it in "
                                 "config.FACE0_MAPPERS")

        def load():
            mapper, settings = IdentityMapper.load(Path(resolve(name, self.allow_local).location))
            return mapper.to(self.device, self.dtype), settings

        return self._cached(("Face0 mapper", name), load)

    def recommended(self, tab: str):
        """What the base model recommends for `tab` (core.recommended): its folder's studio.json, if any."""
        from .recommended import Recommendation, read

        source = resolve(self.base_model, True)
        found = Recommendation() if source.kind == "hub" else read(Path(source.location), self.base_model, tab)
        return dataclasses.replace(found, base_model=self.base_model)

    def describe(self) -> str:
        """One line for the page header."""
        source = resolve(self.base_model, True)
        label = "embedded toy model" if source.kind == "embedded" else source.kind
        return f"model **{self.base_model}** ({label}) on **{self.device.type.upper()}** ({str(self.dtype).removeprefix('torch.')})"

    def clear(self) -> None:
        with self._lock:
            self._evict_pipelines()
            self._aux.clear(), self._aux_bytes.clear()


def load_failure(kind: str, name: str, error: Exception) -> str:
    """Why `name` did not load, naming the weights policy when the repo has no safetensors."""
    message = str(error).lower()
    missing = any(words in message for words in ("no file named", "does not appear to have", "could not find"))
    if missing and ("safetensors" in message or ".bin" in message):
        return (f"could not load the {kind} model {name!r}: it ships no safetensors weights, and this app loads "
                f"pickled weights only from the allowlist in core/config.py (PICKLE_ALLOWLIST: read as tensors "
                f"only, converted to safetensors once)")
    return f"could not load the {kind} model {name!r}: {error}"


def converted_pickle(repo: str, filename: str, subfolder: str | None = None) -> Path:
    """An allowlisted pickle-only Hub repo as a local safetensors folder (config.CONVERTED_WEIGHTS_DIR),
    converted on first use: torch.load(weights_only=True) reads tensors and runs no code; a file that is not
    a flat dict of finite tensors is refused."""
    from huggingface_hub import hf_hub_download
    from safetensors.torch import save_file

    from .validate import check_finite

    target = config.CONVERTED_WEIGHTS_DIR / repo.replace("/", "--") / (subfolder or "")
    weights = target / "diffusion_pytorch_model.safetensors"
    if weights.is_file():
        return target
    try:
        config_file = hf_hub_download(repo, "config.json", subfolder=subfolder)
        state = torch.load(hf_hub_download(repo, filename, subfolder=subfolder), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelLoadError(f"could not read the allowlisted weights of {repo!r} ({filename}): {error}") from error
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ModelLoadError(f"{repo!r}: {filename} is not a plain dict of tensors; refused")
    check_finite(state, f"the weights of {repo!r}")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_file, target / "config.json")
    partial = weights.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in state.items()}, str(partial))
    partial.replace(weights)  # whole or not at all: a later start never finds half a file
    return target


def weight_bytes(value, seen: set | None = None) -> int:
    """Bytes of the parameters and buffers in a cached value: a module, a tuple of them, or an object
    holding modules in its attributes (ChatFace's and ShiftDDPM's bundles); shared tensors counted once."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.nn.Module):
        total = 0
        for tensor in [*value.parameters(), *value.buffers()]:
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
        return total
    if isinstance(value, (tuple, list)):
        return sum(weight_bytes(item, seen) for item in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return sum(weight_bytes(item, seen) for item in vars(value).values()
                   if isinstance(item, (torch.nn.Module, tuple, list)))
    return 0


def load_lora(unet, location: str, adapter_name: str, local: bool, weight_name: str | None = None) -> None:
    """A LoRA in diffusers' format (what `save_lora_weights` writes, the Hub's motion LoRAs) into a
    UNet as a named peft adapter; safetensors only. `weight_name`: the file (None: diffusers guesses, which
    it does only online)."""
    from diffusers import AnimateDiffPipeline

    state_dict = AnimateDiffPipeline.lora_state_dict(location, use_safetensors=True, local_files_only=local,
                                                     weight_name=weight_name)
    state_dict = state_dict[0] if isinstance(state_dict, tuple) else state_dict
    unet.load_lora_adapter(state_dict, prefix="unet", adapter_name=adapter_name)
    for name, parameter in unet.named_parameters():  # loaded to run, not to train (peft makes them trainable)
        if f".{adapter_name}." in name:
            parameter.requires_grad_(False)
