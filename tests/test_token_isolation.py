"""The token-isolation loss that toy-sd's stage 4 trains its text encoder with (core/training/token_isolation.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from core import config
from core.shapes.dataset import BACKGROUNDS, PALETTE, SHAPES, random_scene
from core.tokenizer import clip_tokenizer
from core.training.token_isolation import counterfactual_context, isolation_loss, swap_one_word, swap_scene_word

CAPTIONS = ["a red circle on a white background", "a blue square and a green triangle on a gray background"]


def test_swap_one_word_swaps_one_content_word_for_another_of_its_kind():
    rng = np.random.default_rng(0)
    for caption in CAPTIONS * 20:
        swapped, index = swap_one_word(caption, rng)
        before, after = caption.split(), swapped.split()
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert changed == [index]
        assert any(before[index] in kind and after[index] in kind for kind in (PALETTE, SHAPES, BACKGROUNDS))
    assert swap_one_word("", rng) is None


class TokenwiseEncoder(torch.nn.Module):
    """Each position's state is its own token's embedding: no token sees another."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(49408, 8)

    def forward(self, ids):
        return SimpleNamespace(last_hidden_state=self.embedding(ids))


def test_isolation_loss_is_zero_without_mixing_and_positive_for_a_causal_encoder():
    tokenizer = clip_tokenizer(config.TOY_TOKENIZER_LENGTH)
    torch.manual_seed(0)
    assert isolation_loss(TokenwiseEncoder(), tokenizer, CAPTIONS, np.random.default_rng(1)).item() == 0.0
    causal = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, max_position_embeddings=config.TOY_TOKENIZER_LENGTH))
    loss = isolation_loss(causal, tokenizer, CAPTIONS, np.random.default_rng(1))
    assert loss.item() > 1e-3 and loss.requires_grad
    assert isolation_loss(causal, tokenizer, ["", ""], np.random.default_rng(1)).item() == 0.0


def test_swap_scene_word_changes_one_attribute_and_names_its_word():
    rng = np.random.default_rng(3)
    for _ in range(40):
        scene = random_scene(rng)
        changed, index = swap_scene_word(scene, rng)
        before, after = scene.caption().split(), changed.caption().split()
        assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [index]
        assert [(o.cx, o.cy, o.radius) for o in scene.objects] == [(o.cx, o.cy, o.radius) for o in changed.objects]


def test_counterfactual_context_takes_only_the_changed_words_states():
    tokenizer = clip_tokenizer(config.TOY_TOKENIZER_LENGTH)
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, max_position_embeddings=config.TOY_TOKENIZER_LENGTH))
    old, new = "a red circle on a white background", "a blue circle on a white background"
    with torch.no_grad():
        context = counterfactual_context(encoder, tokenizer, [old, old], [new, old])
        states = encoder(tokenizer([old, new], padding="max_length", return_tensors="pt").input_ids).last_hidden_state
    assert torch.allclose(context[1], states[0], atol=1e-6)  # unchanged caption: as encoded
    assert torch.allclose(context[0, 2], states[1, 2], atol=1e-6)  # "blue": the changed caption's state
    others = [i for i in range(config.TOY_TOKENIZER_LENGTH) if i != 2]
    assert torch.allclose(context[0, others], states[0, others], atol=1e-6)
    assert not torch.allclose(states[0, 3], states[1, 3], atol=1e-4)  # a causal encoder: "circle" differs  # the rest: still the old caption's (it says "red")
