"""Teach the text encoder that each word's token carries that word, and no other token does.

CLIP's text encoder is causal: in "a red circle on a white background" every token after "red"
(the shape, the background words, EOS and the padding) carries "red" too. Big models still read
a colour mostly where its word is; the toy model learnt to read it from the later tokens, so
that Prompt-to-Prompt's word swap changed their values as well (and with them the layout), and
reweighting or replacing the colour word's own attention did little. The procedural grammar
lets us ask for the property directly: swap one content word for another of its kind and every
other position's hidden state should stay the same. Loss = the squared change there, relative
to the states' size.

Isolation leaves a faint trace of the word in the other tokens, and a UNet that learnt to read it
there goes on doing so. So the UNet also trains on counterfactual pairs: the scene with one
attribute changed, captioned by the old caption's states except at the changed word's token.
Only that token says the new colour (shape, background), so the model learns to read a word where
the word is.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..shapes.dataset import BACKGROUNDS, PALETTE, SHAPES, Scene

WORD_KINDS = (tuple(PALETTE), SHAPES, tuple(BACKGROUNDS))


def swap_one_word(caption: str, rng: np.random.Generator) -> tuple[str, int] | None:
    """The caption with one random content word swapped for another of its kind, and that word's
    index among the words; None for a caption without one (the empty caption)."""
    words = caption.split()
    slots = [(i, kind) for i, word in enumerate(words) for kind in WORD_KINDS if word in kind]
    if not slots:
        return None
    index, kind = slots[int(rng.integers(len(slots)))]
    words[index] = str(rng.choice([w for w in kind if w != words[index]]))
    return " ".join(words), index


def swap_scene_word(scene: Scene, rng: np.random.Generator) -> tuple[Scene, int]:
    """The scene with one named attribute changed (an object's colour or shape, or the background),
    and the index of the word that names it in the caption."""
    objects = sorted(scene.objects, key=lambda o: o.cx)  # caption order
    slots = [(k, field) for k in range(len(objects)) for field in ("color", "shape")] + [(None, "background")]
    k, field = slots[int(rng.integers(len(slots)))]
    if k is None:
        changed = Scene(scene.objects, str(rng.choice([b for b in BACKGROUNDS if b != scene.background])))
    else:
        old = getattr(objects[k], field)
        choices = [w for w in (PALETTE if field == "color" else SHAPES) if w != old]
        objects[k] = dataclasses.replace(objects[k], **{field: str(rng.choice(choices))})
        changed = Scene(tuple(objects), scene.background)
    index = next(i for i, (a, b) in enumerate(zip(scene.caption().split(), changed.caption().split())) if a != b)
    return changed, index


def _token_ids(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt").input_ids


def counterfactual_context(text_encoder, tokenizer, captions: list[str], changed_captions: list[str]) -> torch.Tensor:
    """Hidden states of `captions`, except at the tokens where `changed_captions` differ, which take
    the changed caption's states (a caption equal to its changed one is encoded as it is)."""
    ids, changed_ids = _token_ids(tokenizer, captions), _token_ids(tokenizer, changed_captions)
    states, changed_states = text_encoder(torch.cat([ids, changed_ids])).last_hidden_state.chunk(2)
    return torch.where((ids != changed_ids)[..., None], changed_states, states)


def isolation_loss(text_encoder, tokenizer, captions: list[str], rng: np.random.Generator) -> torch.Tensor:
    """Mean over captions of the relative squared change of every hidden state except the swapped
    word's, when one content word is swapped (the grammar's words are one token each)."""
    pairs = [(c, swap_one_word(c, rng)) for c in captions]
    pairs = [(c, swapped) for c, swapped in pairs if swapped is not None]
    if not pairs:
        return torch.zeros(())
    originals, variants = [c for c, _ in pairs], [s for _, (s, _) in pairs]
    ids, variant_ids = _token_ids(tokenizer, originals), _token_ids(tokenizer, variants)
    states = text_encoder(torch.cat([ids, variant_ids])).last_hidden_state
    states, variant_states = states.chunk(2)
    keep = ids == variant_ids  # every position but the swapped word's token
    change = (states - variant_states).pow(2).sum(-1)
    scale = states.detach().pow(2).sum(-1).mean()
    return (change * keep).sum() / (keep.sum() * scale)
