"""Every default and limit of the app in one place."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
MODELS_DIR = ASSETS / "models"
EXAMPLES_DIR = ASSETS / "examples"
TOKENIZER_DIR = ASSETS / "tokenizer"

# ---- models -------------------------------------------------------------------------------
HUB_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # default on a CUDA GPU
EMBEDDED_BASE_MODEL = "toy-sd"  # default on a CPU / offline
EMBEDDED_CLIP_MODEL = "toy-clip"
HUB_CLIP_MODEL = "openai/clip-vit-base-patch16"
# Names that resolve to folders under assets/models/ (the same from_pretrained code path as the Hub).
EMBEDDED_SHIFTDDPM_MODEL = "toy-shiftddpm"
# a ShiftDDPM is trained for one shift variant; the embedded model of each (missing → a clear error)
SHIFTDDPM_VARIANT_MODELS = {"prior_shift": "toy-shiftddpm", "quadratic_shift": "toy-shiftddpm-quadratic",
                            "data_normalization": "toy-shiftddpm-datanorm"}
EMBEDDED_MODELS = ("toy-sd", "toy-clip", "toy-shiftddpm", "toy-face0", "toy-chatface", "toy-adapters",
                   "toy-unicontrol", "toy-motion", "toy-videocomposer")
ENABLE_ATTENTION_SLICING = False  # diffusers' slicing; our processor already avoids big maps
ENABLE_VAE_SLICING = True  # decode video frames one at a time on GPU
ENABLE_CPU_OFFLOAD = False  # accelerate's model offload for small GPUs
# companion models (ControlNets, adapters, CLIP, motion UNets …) kept beside the base pipeline, by the bytes of
# their weights: beyond this the least recently used are evicted (the base pipeline always stays). SD1.5's
# fp16 UNet alone is 1.7 GB; 6 GiB holds a motion UNet, a ControlNet, CLIP and a few adapters on a 24 GB GPU.
COMPANION_CACHE_BYTES = 6 * 2**30

# ---- the embedded models' training (scripts/train_toy_*.py) --------------------------------
TOY_IMAGE_SIZE = 64
TOY_TOKENIZER_LENGTH = 24  # our grammar's captions are ≤ 20 tokens; 77 would cost 1.6× per step


# ---- sampling -----------------------------------------------------------------------------
DEFAULT_STEPS = 50


@dataclass(frozen=True)
class ZeroGPUDefaults:
    """How long a call asks a ZeroGPU Space's GPU for (spaces.GPU's `duration`), from the call's own arguments.
    No GPU has reached this project, so the unit is a stated conservative estimate, not a measurement: SD1.5 at
    512² in float16 runs about 10 guided steps a second on an A10G-class card (published figures), 0.1 s each; we
    grant twice that per UNet evaluation of one picture or frame, guidance's batch of two included."""
    unit_step_s: float = 0.2  # one guided UNet step of one 512² picture (or one frame)
    train_factor: float = 3.0  # a training step (forward, backward, optimiser) ≈ three evaluations
    overhead_s: float = 15.0  # weights to the GPU worker, encoders, the VAE, writing results
    margin: float = 1.25  # asked for above the estimate
    ceiling_s: int = 300  # the longest call ZeroGPU accepts in practice (more is refused as an illegal duration)
DEFAULT_GUIDANCE = 7.5
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1

# ---- attention ----------------------------------------------------------------------------
# FateZero keeps self-attention maps only up to this many queries (32×32): bigger ones are what makes
# the official FateZero code run out of memory
MAX_SELF_ATTENTION_QUERIES = 32 * 32

# P2P replaces self-attention only in layers with at most this many queries: 16×16, the official stable
# notebook's (its replace_self_attention); 32×32 layers keep their own
P2P_MAX_SELF_REPLACE_QUERIES = 16 * 16

# P2P heatmaps and local blend read cross-attention at this side (16×16 on SD1.5 at 512 px)
P2P_MAP_SIDE = 16

# ---- inputs -------------------------------------------------------------------------------
MAX_PROMPT_CHARS = 1000
MAX_IMAGE_PIXELS = 4096 * 4096  # uploads larger than this are refused before decoding
MAX_IMAGE_SIDE = 4096
MAX_VIDEO_FRAMES = 600
MAX_VIDEO_SECONDS = 60
MAX_UPLOAD_BYTES = 200 * 1024 * 1024

# ---- outputs ------------------------------------------------------------------------------
# Result files are written to a staging folder and copied into Gradio's cache within the same request;
# staged files older than this are deleted (checked at most every OUTPUT_PRUNE_INTERVAL_S)
OUTPUT_STAGING_MAX_AGE_S = 3600
OUTPUT_PRUNE_INTERVAL_S = 60


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False  # public link through Gradio's tunnel: opt-in
    auth: tuple[str, str] | None = None  # (user, password) protecting the page and API
    queue_size: int = 16  # requests waiting beyond this are refused
    model: str | None = None  # None: Hub SD1.5 on CUDA, the embedded toy-sd otherwise
    folders: Folders | None = None  # None: Folders()'s defaults
    workers: int = 0  # engine workers on Ray Serve (serving.py); 0: the engine runs in the app's process
    ray_address: str | None = None  # join this Ray cluster instead of starting a local one


@dataclass
class SamplerDefaults:
    """/sampler (docs/METHODS.md §5)."""
    prompt: str = "a red circle on a white background"
    scheduler: str = "DDIM"
    eta: float = 0.0
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    snapshots: int = 8
    max_snapshots: int = 25


@dataclass
class P2PDefaults:
    """/p2p (docs/METHODS.md §0); the official notebook's values."""
    source_prompt: str = "a red circle on a white background"
    target_prompt: str = "a blue circle on a white background"
    edit_mode: str = "auto"
    cross_replace_steps: float = 0.8
    self_replace_steps: float = 0.4
    blend_words: str = ""
    blend_threshold: float = 0.3
    blend_start: float = 0.2  # null-text notebook's start_blend: early maps are still noise
    blend_exclude_words: str = ""  # the official LocalBlend's substruct_words: regions that must stay
    # an optional image prompt through IP-Adapter (Ye et al. 2023): 0.5, the IP-Adapter authors' weight for
    # an image prompt beside a text prompt
    image_prompt_scale: float = 0.5
    max_image_prompt_scale: float = 1.5
    reweight_words: str = ""
    reweight_value: float = 2.0
    reweight_range: tuple[float, float] = (-10.0, 20.0)  # the slider's and check()'s
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0


@dataclass
class NullTextDefaults:
    """/null_text (docs/METHODS.md §13)."""
    inversion: str = "null-text"  # "null-text" | "negative-prompt" | "ddim"
    num_inner_steps: int = 10
    early_stop_epsilon: float = 1e-5
    max_inner_steps: int = 50
    learning_rate: float = 1e-2  # Adam, decayed as lr·(1 − i/100) over steps i
    cache_size: int = 8  # inversions kept in memory (image, prompt, model, steps)
    max_side: int = 1024  # uploads are resized to the model's resolution; refuse absurd ones earlier


@dataclass
class T2VZeroDefaults:
    """/t2v_zero (docs/METHODS.md §15); the official code's values."""
    prompt: str = "a red circle on a white background"
    frames: int = 8
    max_frames: int = 24
    motion_x: float = 12.0  # pixels per frame of a 512-px frame
    motion_y: float = 12.0
    max_motion: float = 64.0
    t0: int = 44  # DDIM step indices counted from the end of a 50-step schedule (timesteps 881 and 941 of 1000);
    t1: int = 47  # other step counts take the same fraction (core.methods.t2v_zero.motion_steps)
    schedule_steps: int = 50
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 4
    image_guidance_scale: float = 1.0  # Video Instruct-Pix2Pix (official demo default)
    noise: str = "per-frame"  # re-noising of the moved frames: "per-frame" (official) or "warped" (one ε, moved)
    controlnet_scale: float = 1.0
    canny_low: int = 100  # official Canny thresholds
    canny_high: int = 200
    controlnet_model: str = "lllyasviel/sd-controlnet-canny"
    pix2pix_model: str = "timbrooks/instruct-pix2pix"


@dataclass
class FateZeroDefaults:
    """/fatezero (docs/METHODS.md §11); the official configs' values."""
    source_prompt: str = "a red circle moving right on a white background"
    target_prompt: str = "a blue circle moving right on a white background"
    cross_replace_steps: float = 0.8
    self_replace_steps: float = 0.8
    blend_words: str = ""
    blend_threshold: float = 0.3
    amplify_words: str = ""
    amplify_value: float = 10.0
    max_amplify: float = 50.0
    image_prompt_scale: float = 0.5  # an image prompt's weight (IP-Adapter, SD1.5) in the edit, when one is given
    max_image_prompt_scale: float = 1.5
    frames: int = 8
    max_frames: int = 24
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8
    # the unconditional branch's prompt: "empty" (the official code's) or "source" (negative-prompt inversion:
    # guidance then cancels when target == source, so the DDIM inversion is undone; measured on toy-sd:
    # reconstruction 28.7 dB vs 7.1 dB with "empty" at guidance 6; toy-sd's studio.json recommends it)
    unconditional: str = "empty"
    # where the source's attention maps come from while editing: recomputed by a source branch at each step's
    # inverted latent (one latent per step kept: 26 MB at 8 frames × 50 steps on SD1.5 at 512²), or stored while
    # inverting (the official approach: 69 GiB there, even as fp16 maps of ≤ 32×32-query layers); the same video
    attention_maps: str = "recompute"
    attention_maps_choices: tuple = ("recompute", "store")


@dataclass
class FreeDoMDefaults:
    """/freedom (docs/METHODS.md §6); FreeDoM's SD-style code: DDIM 100, guided 30–70, travel r=3 on 40–70."""
    prompt: str = "a red circle on a white background"
    energy: str = "text"
    reference_text: str = "a blue circle on a white background"
    rho_scale: float = 0.2
    max_rho_scale: float = 5.0
    guidance_start: float = 0.3
    guidance_end: float = 0.7
    time_travel: int = 3
    max_time_travel: int = 10
    travel_start: float = 0.4
    travel_end: float = 0.7
    steps: int = 100
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0


@dataclass
class ShiftDDPMDefaults:
    """/shiftddpm (docs/METHODS.md §2); T = 1000 linear β as the official configs. Their default variant is
    the quadratic shift; on our CPU budget (3,500 steps) a quadratic toy model did not learn class
    control (10% right vs 5.6% chance), so the embedded model is a prior-shift one."""
    class_name: str = "red circle"
    variant: str = "prior_shift"
    sampler: str = "DDIM"
    steps: int = 50
    seed: int = 0
    n: int = 8
    max_n: int = 32
    max_steps: int = 1000  # the training schedule's length: full ancestral DDPM
    interpolate_to: str = ""  # a second class: E is mixed (1−mix)·E(a) + mix·E(b)
    mix: float = 0.5
    snapshots: int = 8


@dataclass
class Face0Defaults:
    """/face0 (docs/METHODS.md §1); the paper: c = 1 (photoreal), w = 7.5, 3 identity tokens."""
    prompt: str = "an object on a white background"
    c: float = 1.0  # weight of ε(z, d, f); 1 − c goes to the face-only / text-only mix
    a: float = 0.5  # within that mix, the face-only share
    guidance_scale: float = DEFAULT_GUIDANCE
    steps: int = DEFAULT_STEPS
    seed: int = 0
    face_tokens: int = 3  # SD: positions 75–77 of 77
    face_cascade: str = "haarcascade_frontalface_default.xml"  # bundled with opencv-python-headless 4.x
    face_margin: float = 0.25  # around a detected face, per side
    object_margin: float = 0.15
    object_threshold: float = 60.0  # RGB distance from the border colour that counts as object
    min_object_fraction: float = 0.004


# Face0 mappers per base model (embedded); others are trained with scripts/train_face0_mapper.py
FACE0_MAPPERS = {"toy-sd": "toy-face0"}


@dataclass
class DiffusionCLIPDefaults:
    """/diffusionclip_train and /diffusionclip_edit (docs/METHODS.md §3); official: t0 400, 40 inversion
    steps, 6 generation steps with gradients, λ_clip 3, 40 test steps; the README example's λ_L1 = 1."""
    source_text: str = "a red circle"
    target_text: str = "a blue circle"
    t0: int = 400
    inversion_steps: int = 40
    train_steps: int = 6
    edit_steps: int = 40
    iterations: int = 30
    lr: float = 2e-3  # a LoRA's rate; the paper's 2e-6…8e-6 is for tuning the whole UNet
    lambda_clip: float = 3.0
    lambda_l1: float = 1.0
    lambda_id: float = 0.0
    lora_rank: int = 4
    n_train_img: int = 8  # toy model: procedural images of the source text when none is uploaded
    max_train_steps: int = 20
    max_iterations: int = 500
    max_direction_weight: float = 3.0
    min_lr: float = 1e-7
    max_lr: float = 1e-1
    max_lambda: float = 100.0  # each loss weight (λ_clip, λ_L1, λ_id) is in [0, max_lambda]
    # the text direction is averaged over these (the official code: ImageNet prompt templates);
    # the toy grammar's backgrounds make the toy CLIP's captions whole sentences
    templates: tuple[str, ...] = ("{}", "a photo of {}", "{} on a white background", "{} on a black background",
                                  "{} on a gray background")


DIRECTIONS_DIR = ROOT / "runs" / "directions"  # the direction library (app.py: STUDIO_DIRECTIONS overrides)


@dataclass
class ChatFaceDefaults:
    """/chatface (docs/METHODS.md §4); diffae-style semantic code, SMS-like z_t schedule."""
    instruction: str = "make it blue and a bit bigger"
    strength_scale: float = 1.0
    max_strength_scale: float = 3.0
    steps: int = 50
    nu: float = 0.5  # z_t goes from z_edit at T to (1 − ν)·Δz past z at the end
    z_dim: int = 64
    z_tokens: int = 4  # decoder context slots the semantic code fills
    size_pixels_per_unit: float = 6.0  # "medium" bigger = +6 px radius; "a bit" = +3 px
    # mappers (trained per attribute in z space with CLIP's directional loss; the path on public weights)
    train_instruction: str = "make it blue"
    source_text: str = "a photo"
    target_text: str = "a blue photo"
    iterations: int = 40
    max_iterations: int = 500
    train_steps: int = 4  # DDIM steps decoded with gradients per iteration
    max_train_steps: int = 20
    lr: float = 1e-3
    min_lr: float = 1e-6
    max_lr: float = 1e-1
    lambda_clip: float = 1.0
    lambda_l2: float = 0.5  # ‖Δz‖²/‖z‖²: how far from the image's code a mapper may go
    max_lambda: float = 100.0
    mapper_hidden: int = 512
    ip_adapter_scale: float = 1.0  # public weights: the decoder reads z through IP-Adapter at this scale


EMBEDDED_CHATFACE_MODEL = "toy-chatface"


@dataclass(frozen=True)
class ConditionDefaults:
    """Offline condition extraction (core/conditions.py)."""
    canny_low: int = 100
    canny_high: int = 200
    palette_blocks: int = 8  # colour cells per side: SD's 512 px / 64 (the colour adapter's factor) = 8
    mask_threshold: float = 60.0  # RGB distance from the border colour that counts as foreground
    hole_fraction: float = 0.5  # inpainting: side of the centred hole
    outpaint_keep: float = 0.5  # outpainting: side of the kept centre
    blur_sigma: float = 3.0
    pseudo_depth_sigma: float = 1.0  # blur of the offline depth stand-in (px)


@dataclass
class VideoComposerDefaults:
    """/videocomposer (docs/METHODS.md §8). The official model makes 16 frames; toy-videocomposer learnt 8 (toy-sd's
    studio.json starts the tab there)."""
    prompt: str = "a blue square on a white background"
    conditions: tuple[str, ...] = ("motion",)
    frames: int = 16
    max_frames: int = 32
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8
    motion_scale: float = 4.0  # motion vectors (px / frame) are divided by this before the encoder
    mask_hole: float = 0.5  # video inpainting: side of the centred hole, a fraction of the frame
    feature_channels: int = 4  # extra UNet input channels the summed features take (= the latent's: training regresses it)
    image_prompt_scale: float = 0.5  # SD1.5: the style image's IP-Adapter scale (IP-Adapter's usual value for style)
    control_scale: float = 1.0  # SD1.5: each ControlNet / SparseCtrl model's conditioning scale (diffusers' default)


# The task recipes of the VideoComposer paper: preset → the conditions it uses (style image optional)
VIDEOCOMPOSER_PRESETS = {
    "image + text + motion": ("single_image", "motion"),
    "motion transfer": ("motion",),
    "sketch animation (single sketch + motion)": ("single_sketch", "motion"),
    "single sketch": ("single_sketch",),
    "depth to video (+ style image)": ("depth",),
    "sketch sequence to video": ("sketch",),
    "video inpainting (mask)": ("mask",),
    "video inpainting (mask + depth)": ("mask", "depth"),
}
EMBEDDED_VIDEOCOMPOSER = "toy-videocomposer"
# VideoComposer weights per base model (our re-implementation: the official ones are a non-commercial pickle)
VIDEOCOMPOSER_MODELS = {EMBEDDED_BASE_MODEL: EMBEDDED_VIDEOCOMPOSER}
VIDEOCOMPOSER_STYLE_ENCODER = EMBEDDED_CLIP_MODEL  # the CLIP image tower its style token was trained on
# The depth each VideoComposer model's depth encoder learnt from: a transformers depth model id; absent =
# the offline stand-in (conditions.pseudo_depth), which is what the embedded model was trained on
VIDEOCOMPOSER_DEPTH_MODELS: dict[str, str] = {}
# On SD1.5, public models stand in for VideoComposer's condition encoders (and Gen-1's depth structure): a ControlNet
# v1.1 per frame for depth, sketch and mask sequences (their fp16 safetensors), SparseCtrl on frame 0 for a single
# image or sketch, motion modules from AnimateDiff, the style / content image through IP-Adapter
VIDEO_CONTROLNETS = {HUB_BASE_MODEL: {"depth": "lllyasviel/control_v11f1p_sd15_depth",
                                      "sketch": "lllyasviel/control_v11p_sd15_scribble",
                                      "mask": "lllyasviel/control_v11p_sd15_inpaint"}}
VIDEO_SPARSE_CONTROLNETS = {HUB_BASE_MODEL: {"single_image": "guoyww/animatediff-sparsectrl-rgb",
                                             "single_sketch": "guoyww/animatediff-sparsectrl-scribble"}}
CONTROLNET_VARIANTS = {name: "fp16" for name in VIDEO_CONTROLNETS[HUB_BASE_MODEL].values()}  # only fp16 safetensors


@dataclass
class Gen1Defaults:
    """/gen1 (docs/METHODS.md §12): structure = depth sequence (coarsened `structure_level` times), content =
    text or an image; `temporal_guidance` between the video and the frame-wise prediction."""
    prompt: str = "a blue circle on a white background"
    structure_level: int = 0
    max_structure_level: int = 5
    temporal_guidance: float = 1.0
    max_temporal_guidance: float = 5.0
    frames: int = 8
    max_frames: int = 32
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8


# Condition kinds that need a model (GPU, network) rather than OpenCV: transformers pipeline ids
CONDITION_MODELS = {"depth": "depth-anything/Depth-Anything-V2-Small-hf"}  # safetensors, apache-2.0


@dataclass
class T2IAdapterDefaults:
    """/t2i_adapter (docs/METHODS.md §9); official demo: 50 steps, guidance 7.5, cond_tau 1.0, weight 1."""
    prompt: str = "a red object on a white background"
    condition_types: tuple[str, ...] = ("canny",)
    weight: float = 1.0
    max_weight: float = 5.0  # CoAdapter's slider range
    cond_tau: float = 1.0  # adapters act for the first cond_tau fraction of the steps
    extract: bool = True  # run the extractor on the uploads; False: the uploads are condition maps
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    max_adapters: int = 4


# Adapters per base model and condition kind: (model name, subfolder or None). Hub ids on a GPU.
# Hub repos that ship only pickled weights and are loaded all the same: the named file is read with
# torch.load(weights_only=True) (tensors only; no code runs), checked finite and converted once to safetensors
# under CONVERTED_WEIGHTS_DIR, which is what loads. Every other repo loads only from safetensors.
PICKLE_ALLOWLIST = {repo: "diffusion_pytorch_model.bin" for repo in (
    "TencentARC/t2iadapter_canny_sd15v2", "TencentARC/t2iadapter_sketch_sd15v2", "TencentARC/t2iadapter_depth_sd15v2",
    "TencentARC/t2iadapter_color_sd14v1", "TencentARC/t2iadapter_openpose_sd14v1")}
CONVERTED_WEIGHTS_DIR = ROOT / "runs" / "converted"

T2I_ADAPTERS = {
    EMBEDDED_BASE_MODEL: {"canny": ("toy-adapters", "canny"), "palette": ("toy-adapters", "palette")},
    HUB_BASE_MODEL: {"canny": ("TencentARC/t2iadapter_canny_sd15v2", None),
                     "sketch": ("TencentARC/t2iadapter_sketch_sd15v2", None),
                     "depth": ("TencentARC/t2iadapter_depth_sd15v2", None),
                     "palette": ("TencentARC/t2iadapter_color_sd14v1", None),
                     "pose": ("TencentARC/t2iadapter_openpose_sd14v1", None)},
}


@dataclass
class UniControlDefaults:
    """/unicontrol (docs/METHODS.md §7); official demo: strength 1.0, 30 steps (toy: 25), guidance 9.0."""
    prompt: str = "a red object on a white background"
    task: str = "canny edge to image"
    strength: float = 1.0
    max_strength: float = 2.0
    extract: bool = True
    steps: int = 25
    guidance_scale: float = 9.0
    seed: int = 0


# What each UniControl task is conditioned on: an offline extractor (core/conditions.py) or a model
UNICONTROL_TASK_CONDITIONS = {
    "control_canny": "canny", "control_hed": "sketch", "control_hedsketch": "sketch", "control_seg": "mask",
    "control_palette": "palette", "control_outpainting": "outpaint", "control_inpainting": "inpaint",
    "control_blur": "blur", "control_grayscale": "grayscale", "control_depth": "depth", "control_normal": "normal",
    "control_openpose": "pose", "control_bbox": "bbox", "control_img": "image",
}
# IP-Adapter image prompts per base model: kind → (repo, file); the image encoder in its repo's folder. SD1.5's are
# h94/IP-Adapter's safetensors (apache-2.0); the embedded model has none
HUB_IP_ADAPTER_REPO = "h94/IP-Adapter"
IP_ADAPTERS = {HUB_BASE_MODEL: {"image": (HUB_IP_ADAPTER_REPO, "models/ip-adapter_sd15.safetensors"),
                                "plus-face": (HUB_IP_ADAPTER_REPO, "models/ip-adapter-plus-face_sd15.safetensors")}}
IP_ADAPTER_IMAGE_ENCODER = "models/image_encoder"  # a CLIPVisionModelWithProjection in the adapter's repo

# the control model per base: embedded folder, or the official Hub repo converted on load
UNICONTROL_MODELS = {EMBEDDED_BASE_MODEL: "toy-unicontrol", HUB_BASE_MODEL: "Robert001/UniControl-Model"}
UNICONTROL_OFFICIAL_FILE = "unicontrol_v1.1.st"  # the repo's safetensors checkpoint (the .ckpt is a pickle)


@dataclass
class AnimateDiffDefaults:
    """/animatediff (docs/METHODS.md §14); the official inference configs: 16 frames, 25 steps, guidance 7.5."""
    prompt: str = "a red circle moving right on a white background"
    base_model: str = ""  # "" = the app's base model; else any SD1.5 fine-tune (Hub id)
    motion_lora: str = ""  # "" = none; a motion LoRA's Hub id or embedded name
    motion_lora_scale: float = 1.0
    max_motion_lora_scale: float = 2.0
    image_prompt_scale: float = 0.5  # an image prompt's weight (IP-Adapter, SD1.5), when one is given
    max_image_prompt_scale: float = 1.5
    frames: int = 16  # toy-motion learnt 8-frame clips: toy-sd's studio.json starts the tab there
    max_frames: int = 32  # the motion modules' sinusoidal positions (motion_max_seq_length)
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8


# The motion adapter per base model: toy-sd's own, the official v1-5-2 for every SD1.5 (fine-tune).
EMBEDDED_MOTION_ADAPTER = "toy-motion"
HUB_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
MOTION_ADAPTERS = {EMBEDDED_BASE_MODEL: EMBEDDED_MOTION_ADAPTER}
# a motion adapter folder may carry a LoRA of the spatial layers trained with it (AnimateDiff v3's
# "domain adapter"), always applied with it at scale 1
MOTION_DOMAIN_LORA_DIR = "domain_lora"
# the embedded motion adapter's own camera LoRAs (scripts/train_toy_motion_lora.py), in the Hub ones' format
EMBEDDED_MOTION_LORAS = ("toy-motion-lora-pan-left", "toy-motion-lora-pan-right", "toy-motion-lora-zoom-in")
HUB_MOTION_LORAS = ("guoyww/animatediff-motion-lora-zoom-in", "guoyww/animatediff-motion-lora-zoom-out",
                    "guoyww/animatediff-motion-lora-pan-left", "guoyww/animatediff-motion-lora-pan-right",
                    "guoyww/animatediff-motion-lora-tilt-up", "guoyww/animatediff-motion-lora-tilt-down",
                    "guoyww/animatediff-motion-lora-rolling-clockwise",
                    "guoyww/animatediff-motion-lora-rolling-anticlockwise")
# each motion LoRA repo's weights file, named so it loads from a filled cache with the Hub offline (diffusers
# will not guess a file name offline); a folder this app wrote (core.training.lora.save_lora) has LORA_FILE
HUB_MOTION_LORA_FILES = {repo: "diffusion_pytorch_model.safetensors" for repo in HUB_MOTION_LORAS}
LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class TuneAVideoDefaults:
    """/tune_a_video_train, /tune_a_video_generate (docs/METHODS.md §10); official: lr 3e-5, 500 steps, 24
    frames, DDIM 50 with inversion, guidance 12.5. METHODS asks 300 steps and 8 frames for the app."""
    prompt: str = "a red circle moving right on a white background"
    target_prompt: str = "a blue circle moving right on a white background"
    train_steps: int = 300
    max_train_steps: int = 2000
    lr: float = 3e-5  # measured on toy-sd: barely moves a from-scratch toy model in minutes (its studio.json: 1e-3)
    frames: int = 8
    max_frames: int = 32
    steps: int = 50
    guidance_scale: float = 12.5  # measured on toy-sd: mixes green into blue edits (its studio.json: 7.5)
    seed: int = 0
    fps: int = 8
    loss_plot_every: int = 10  # training updates the loss plot every this many steps


TUNED_VIDEO_DIR = ROOT / "runs" / "tune_a_video"  # the tuned-model library (app.py: STUDIO_TUNED_VIDEO overrides)


@dataclass(frozen=True)
class Folders:
    """Where the app writes. app.py fills it from the environment (GRADIO_TEMP_DIR, STUDIO_DIRECTIONS,
    STUDIO_TUNED_VIDEO) and hands it to the tabs, so nothing else reads the environment."""
    outputs: Path = Path(tempfile.gettempdir()) / "studio-outputs"  # result files staged for Gradio's cache
    directions: Path = DIRECTIONS_DIR  # DiffusionCLIP's direction library
    tuned_video: Path = TUNED_VIDEO_DIR  # Tune-A-Video's tuned-model library


@dataclass
class DreamixDefaults:
    """/dreamix (docs/METHODS.md §17). No official code or weights; the paper's recipe on the app's motion model."""
    prompt: str = "a blue circle moving right on a white background"
    downsample: int = 4
    max_downsample: int = 32
    strength: float = 0.8
    finetune_steps: int = 50
    max_finetune_steps: int = 1000
    frame_loss_weight: float = 1.0
    lr: float = 1e-3  # toy scale; the paper tunes a large model at a small rate
    camera_amount: float = 0.3  # pan: a third of the side over the clip; zoom: +30% / −15%
    frames: int = 8
    max_frames: int = 32
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8
    max_subject_images: int = 8


@dataclass
class CascadeDefaults:
    """/imagen_video (docs/METHODS.md §16): an open cascade after Imagen Video (no public weights)."""
    prompt: str = "a red circle moving right on a white background"
    base_frames: int = 4
    tsr_factor: int = 2
    ssr_factor: int = 2
    max_factor: int = 4
    max_frames: int = 32  # the motion model's frame positions
    noise_aug: float = 0.1  # Imagen Video trains with augmentation and samples the conditioning at a small level
    dynamic_threshold: float = 0.995  # Imagen's percentile
    # x̂0 bound for latent-space stages (Imagen's is 1 for pixels): scaled SD/toy latents have std ≈ 1
    latent_bound: float = 3.0
    oscillating_share: float = 0.4  # oscillating guidance over this first share of the steps
    tsr_strength: float = 0.8  # "repeat" insertion: inserted frames start from their neighbours at this noise
    ssr_strength: float = 0.5
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int = 0
    fps: int = 8
