"""One training step of a Face0 identity mapper over a frozen text-to-image pipeline.

The paper fine-tunes the UNet with the mapper; on a CPU we train the mapper alone (the UNet,
text encoder, VAE and embedder stay frozen): the ε-loss's gradient reaches the mapper through
the cross-attention keys and values of the identity slots.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..guidance import ClipInputs
from ..methods.face0 import IdentityMapper, identity_embedding, insert_identity
from ..sampling import encode_prompts, to_model_pixels


def mapper_loss(pipe, mapper: IdentityMapper, clip_model, inputs: ClipInputs, images: np.ndarray,
                captions: list[str], crops: list[np.ndarray], generator: torch.Generator) -> torch.Tensor:
    """ε-prediction loss of the frozen UNet conditioned on caption + mapped identity of each crop."""
    device = pipe.unet.device
    with torch.no_grad():
        x0 = pipe.vae.encode(to_model_pixels(images).to(device, pipe.vae.dtype)).latent_dist.mean
        x0 = x0 * pipe.vae.config.scaling_factor
        identity = identity_embedding(clip_model, inputs, crops).to(device)
        text = encode_prompts(pipe, captions)
    noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator).to(device)
    noisy = pipe.scheduler.add_noise(x0, noise, t)
    context = insert_identity(text, mapper(identity))
    pred = pipe.unet(noisy, t, encoder_hidden_states=context).sample
    return F.mse_loss(pred.float(), noise.float())
