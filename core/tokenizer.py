"""The real CLIP BPE tokenizer built from the files in assets/tokenizer (no Hub access)."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from transformers import CLIPTokenizer

from .config import TOKENIZER_DIR


# A fast tokenizer keeps its padding and truncation settings in its Rust backend and sets them on every call,
# so two threads tokenizing at once can each encode with the other's settings (measured: a P2P word mapper
# built while another call padded its prompts to max_length; the edit came out wrong in 3 of 12 concurrent
# runs). Every use of a tokenizer in the engine holds this lock; tokenizing takes microseconds.
TOKENIZER_LOCK = threading.RLock()


def clip_tokenizer(model_max_length: int, folder: Path = TOKENIZER_DIR) -> CLIPTokenizer:
    """CLIP's 49,408-token BPE tokenizer padded/truncated to `model_max_length` tokens."""
    vocab = json.loads((folder / "vocab.json").read_text())
    lines = (folder / "merges.txt").read_text().split("\n")[1:]  # first line is the version header
    merges = [tuple(line.split()) for line in lines if line]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def check_tokenizer(tokenizer, source: str) -> None:
    """Offline, CLIPTokenizer.from_pretrained(hub_id) can silently give a 2-token tokenizer."""
    if len(tokenizer) <= 2:
        raise ValueError(f"the tokenizer loaded from {source!r} has {len(tokenizer)} tokens: "
                         "its files are missing (offline without a cached copy?)")
