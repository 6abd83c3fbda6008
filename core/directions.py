"""A library of trained edits on disk — DiffusionCLIP's LoRA directions, ChatFace's code mappers: each is
<folder>/<name>.safetensors (its weights) + <name>.json (how it was made)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .validate import check_finite


class DirectionLibrary:
    """Saved directions: <folder>/<name>.safetensors (weights) + <name>.json (how it was made)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def save(self, name: str, weights: dict[str, torch.Tensor], metadata: dict) -> None:
        from safetensors.torch import save_file
        check_finite(weights, f"the direction {name!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().float().contiguous() for k, v in weights.items()},
                  str(self.folder / f"{name}.safetensors"))
        (self.folder / f"{name}.json").write_text(json.dumps(metadata, indent=2))

    def load(self, name: str) -> tuple[dict[str, torch.Tensor], dict]:
        from safetensors.torch import load_file
        if name not in self.names():
            known = ", ".join(self.names()) or "none yet: train one"
            raise ValueError(f"unknown direction {name!r}; saved directions: {known}")
        return load_file(str(self.folder / f"{name}.safetensors")), json.loads((self.folder / f"{name}.json").read_text())
