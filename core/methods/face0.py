"""Face0 (Valevski et al., 2023): an identity vector written into the last text-token slots.

Crop the face (or, for the toy model, the object), embed it, map the embedding with an MLP into
the text encoder's output space, and overwrite the last `face_tokens` token embeddings of the
prompt (positions 75–77 of SD's 77) with it. Sampling mixes three predictions (paper §3.3):
ε̂ = c·ε(z, d, f) + (1−c)·(a·ε(z, f) + (1−a)·ε(z, d)), d = the description, f = the face, then
classifier-free guidance against the empty prompt. Branches with zero weight are not run, so
c = a = 0 is exactly text-only generation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import config
from ..attention import with_image_prompts
from ..guidance import ClipInputs
from ..identity import IdentityMapper, identity_embedding, insert_identity  # noqa: F401 (part of Face0's API)
from ..ip_adapter import encode_image_prompt
from ..validate import check_prompt, check_range, check_sampling
from ..denoisers import Branches
from ..sampling import decode, denoise, encode_prompts, prepare_latents

D = config.Face0Defaults


# ---- detection and crop --------------------------------------------------------------------

def _face_detector():
    path = Path(cv2.data.haarcascades) / D.face_cascade
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise ValueError(f"OpenCV's face detector {path} is missing (opencv-python-headless 4.x bundles it)")
    return detector


def _square(box, width: int, height: int, margin: float):
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    side = min(side, width, height)
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, side, side


def detect_crop(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], str]:
    """uint8 RGB → (square crop, (x, y, w, h), what was found: "face" | "object" | "whole image").

    OpenCV's bundled frontal-face cascade first; where it finds no face, the largest region that
    differs from the border colour (the toy model's "identity" is its object)."""
    height, width = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    faces = _face_detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(max(24, min(width, height) // 10),) * 2)
    if len(faces):
        box, found = max(faces, key=lambda f: f[2] * f[3]), "face"
        box = _square(box, width, height, D.face_margin)
    else:
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
        distance = np.linalg.norm(image.astype(np.float32) - np.median(border, axis=0), axis=-1)
        mask = (distance > D.object_threshold).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        if count > 1 and stats[1:, cv2.CC_STAT_AREA].max() >= D.min_object_fraction * width * height:
            biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            x, y, w, h = (int(v) for v in stats[biggest, :4])
            box, found = _square((x, y, w, h), width, height, D.object_margin), "object"
        else:
            side = min(width, height)
            box, found = ((width - side) // 2, (height - side) // 2, side, side), "whole image"
    x, y, w, h = box
    return image[y:y + h, x:x + w], (x, y, w, h), found


# ---- identity embedding and token surgery -----------------------------------------------

def three_way_weights(c: float, a: float) -> dict[str, float]:
    """Weights of ε(z,d,f), ε(z,f), ε(z,d) in ε̂ = c·ε_df + (1−c)(a·ε_f + (1−a)·ε_d)."""
    return {"text+face": c, "face": (1 - c) * a, "text": (1 - c) * (1 - a)}


@dataclass
class Face0Params:
    prompt: str = D.prompt
    c: float = D.c
    a: float = D.a
    guidance_scale: float = D.guidance_scale
    steps: int = D.steps
    seed: int = D.seed

    def check(self) -> None:
        check_prompt(self.prompt)
        check_range("c", self.c, 0.0, 1.0), check_range("a", self.a, 0.0, 1.0)
        check_sampling(self.steps, self.guidance_scale, self.seed)


@dataclass
class Face0Result:
    image: np.ndarray
    crop: np.ndarray
    box: tuple[int, int, int, int]
    found: str


@torch.no_grad()
def generate(pipe, mapper: IdentityMapper, clip_model, inputs: ClipInputs, face_image: np.ndarray,
             params: Face0Params, on_step=None) -> Face0Result:
    """Detect, embed, map, write into the prompt's last slots, and sample with three-way guidance."""
    params.check()
    crop, box, found = detect_crop(face_image)
    device = pipe.unet.device
    identity = mapper.to(device)(identity_embedding(clip_model, inputs, [crop]).to(device))
    text, empty = encode_prompts(pipe, [params.prompt]), encode_prompts(pipe, [""])
    contexts = {"text+face": insert_identity(text, identity), "face": insert_identity(empty, identity), "text": text}
    return Face0Result(three_way_sample(pipe, contexts, empty, params, on_step=on_step), crop, box, found)


@torch.no_grad()
def generate_with_image_prompt(pipe, adapter, image_encoder, processor, face_image: np.ndarray, params: Face0Params,
                               on_step=None) -> Face0Result:
    """Face0's three-way guidance with the face entering through IP-Adapter's image cross-attention (a face
    adapter on a public base model) instead of the last text tokens: ε(text, face) = the prompt with the image
    branch, ε(face) = the empty prompt with it, ε(text) = the prompt without it (scale 0)."""
    params.check()
    crop, box, found = detect_crop(face_image)
    face = encode_image_prompt(adapter, image_encoder, processor, crop)
    text, empty = encode_prompts(pipe, [params.prompt]), encode_prompts(pipe, [""])
    image = three_way_sample(pipe, {"text+face": text, "face": empty, "text": text}, empty, params, face, on_step)
    return Face0Result(image, crop, box, found)


SEES_THE_FACE = {"text+face": True, "face": True, "text": False}


def three_way_sample(pipe, contexts: dict[str, torch.Tensor], empty: torch.Tensor, params: Face0Params,
                     image_prompt=None, on_step=None) -> np.ndarray:
    """ε̂ = ε_u + w·(c·ε_df + (1−c)(a·ε_f + (1−a)·ε_d) − ε_u) in one batch, zero-weight branches left out;
    `image_prompt` (core.ip_adapter.ImagePrompt) is seen by the branches with the face, not by ε_u and ε_d."""
    weights = {k: w for k, w in three_way_weights(float(params.c), float(params.a)).items() if w > 0}
    names = list(weights)
    scale = float(params.guidance_scale)

    def combine(predictions: list[torch.Tensor]) -> torch.Tensor:
        uncond, mixed = predictions[0], sum(weights[n] * p for n, p in zip(names, predictions[1:]))
        return uncond + scale * (mixed - uncond)

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    generator = torch.Generator().manual_seed(int(params.seed))
    latents = prepare_latents(pipe, 1, size, size, generator)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    model = Branches(pipe.unet, [empty] + [contexts[n] for n in names], combine)
    prompts = [] if image_prompt is None else \
        [image_prompt.with_branches((False, *(SEES_THE_FACE[n] for n in names)))]
    with with_image_prompts(pipe.unet, prompts):
        result = denoise(model, scheduler, latents, int(params.steps), generator=generator, on_step=on_step)
    return decode(pipe, result.latents)[0]
