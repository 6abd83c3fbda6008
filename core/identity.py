"""Identity tokens in a text context (Face0, ChatFace): a mapper from an image embedding to text-encoder-space
tokens, the embedding of face (object) crops, and the surgery that writes the tokens into the prompt's last slots."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from . import config
from .guidance import ClipInputs
from .sampling import to_model_pixels
from .validate import check_finite

D = config.Face0Defaults


class IdentityMapper(torch.nn.Module):
    """The paper's 4-layer ReLU MLP: identity vector → `tokens` text-encoder-space embeddings."""

    def __init__(self, in_dim: int, width: int, tokens: int = D.face_tokens, hidden: int = 256):
        super().__init__()
        self.in_dim, self.width, self.tokens, self.hidden = in_dim, width, tokens, hidden
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, tokens * width))
        self.norm = torch.nn.LayerNorm(width)  # the text encoder's outputs are layer-normed too

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(identity).view(-1, self.tokens, self.width))

    def save(self, folder: Path, metadata: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in check_finite(self.state_dict(), "the mapper").items()},
                  str(folder / "mapper.safetensors"))
        settings = {"in_dim": self.in_dim, "width": self.width, "tokens": self.tokens, "hidden": self.hidden}
        (folder / "mapper_config.json").write_text(json.dumps({**settings, **(metadata or {})}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> tuple["IdentityMapper", dict]:
        settings = json.loads((Path(folder) / "mapper_config.json").read_text())
        mapper = cls(settings["in_dim"], settings["width"], settings["tokens"], settings["hidden"])
        mapper.load_state_dict(load_file(str(Path(folder) / "mapper.safetensors")))
        return mapper.eval().requires_grad_(False), settings


def identity_embedding(clip_model, inputs: ClipInputs, crops: list[np.ndarray]) -> torch.Tensor:
    """Unit CLIP image features of the crops (B, projection_dim) — the identity vector."""
    side = inputs.side
    pixels = to_model_pixels(np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in crops]))
    pixels = inputs(pixels.to(clip_model.device))
    features = clip_model.get_image_features(pixel_values=pixels.to(clip_model.dtype)).pooler_output
    return F.normalize(features.float(), dim=-1)


def insert_identity(prompt_embeds: torch.Tensor, identity_tokens: torch.Tensor) -> torch.Tensor:
    """Overwrite the last token slots (SD: 75–77 of 77) with the mapped identity."""
    count = identity_tokens.shape[1]
    identity_tokens = identity_tokens.to(prompt_embeds.dtype).expand(prompt_embeds.shape[0], -1, -1)
    return torch.cat([prompt_embeds[:, :-count], identity_tokens], dim=1)
