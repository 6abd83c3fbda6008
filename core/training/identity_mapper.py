"""One training step of a Face0 identity mapper over a frozen text-to-image pipeline.

The paper fine-tunes the UNet with the mapper; on a CPU we train the mapper alone (the UNet,
text encoder, VAE and embedder stay frozen): the ε-loss's gradient reaches the mapper through
the cross-attention keys and values of the identity slots.
"""
from __future__ import annotations

import numpy as np
import torch

from ..guidance import ClipInputs
from ..identity import IdentityMapper, identity_embedding, insert_identity
from ..sampling import encode_prompts
from .epsilon import epsilon_loss, image_latents


def mapper_loss(pipe, mapper: IdentityMapper, clip_model, inputs: ClipInputs, images: np.ndarray,
                captions: list[str], crops: list[np.ndarray], generator: torch.Generator) -> torch.Tensor:
    """ε-prediction loss of the frozen UNet conditioned on caption + mapped identity of each crop."""
    device = pipe.unet.device
    with torch.no_grad():
        identity = identity_embedding(clip_model, inputs, crops).to(device)
        text = encode_prompts(pipe, captions)
    return epsilon_loss(pipe, image_latents(pipe, images), insert_identity(text, mapper(identity)), generator)
