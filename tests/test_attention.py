"""The one attention processor: same numbers as diffusers' default, controllers see what they ask for."""
from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from core.attention import AttentionController, FrameMode, frame_keys, install
from core.control.edit import AttentionReplace


class ExplicitEverywhere(AttentionController):
    def wants(self, ctx):
        return True


class CrossRecorder(AttentionController):
    """Asks only for cross-attention at the largest resolution, records shapes and layers."""

    def __init__(self, num_queries):
        self.num_queries, self.seen = num_queries, {}

    def wants(self, ctx):
        return ctx.is_cross and ctx.num_queries == self.num_queries

    def attention(self, probs, ctx):
        self.seen.setdefault(ctx.layer, []).append(tuple(probs.shape))
        return probs


class ZeroToken(AttentionController):
    """Edits maps: removes all attention to one token (renormalising the rest)."""

    def __init__(self, token):
        self.token = token

    def wants(self, ctx):
        return ctx.is_cross

    def attention(self, probs, ctx):
        probs = probs.clone()
        probs[..., self.token] = 0
        return probs / probs.sum(-1, keepdim=True)


def _inputs(pipe, batch=2):
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, 16, 16, generator=generator)
    context = torch.randn(batch, pipe.tokenizer.model_max_length, 32, generator=generator)
    return sample, torch.tensor(500), context


@pytest.fixture()
def unets(fresh_tiny_unet):
    reference = copy.deepcopy(fresh_tiny_unet)
    reference.set_attn_processor(AttnProcessor2_0())
    ours = fresh_tiny_unet
    state = install(ours)
    return reference, ours, state


@torch.no_grad()
def test_fused_path_matches_diffusers(unets, tiny_pipe):
    reference, ours, state = unets
    sample, t, context = _inputs(tiny_pipe)
    expected = reference(sample, t, encoder_hidden_states=context).sample
    with state.use():
        got = ours(sample, t, encoder_hidden_states=context).sample
    assert state.fused_calls > 0 and state.explicit_calls == 0
    assert (got - expected).abs().max().item() < 1e-5


@torch.no_grad()
def test_explicit_path_matches_diffusers(unets, tiny_pipe):
    reference, ours, state = unets
    sample, t, context = _inputs(tiny_pipe)
    expected = reference(sample, t, encoder_hidden_states=context).sample
    with state.use([ExplicitEverywhere()]):
        got = ours(sample, t, encoder_hidden_states=context).sample
    assert state.explicit_calls > 0 and state.fused_calls == 0
    assert (got - expected).abs().max().item() < 1e-5


@torch.no_grad()
def test_controller_gets_exactly_the_layers_it_asked_for(unets, tiny_pipe):
    _, ours, state = unets
    sample, t, context = _inputs(tiny_pipe)
    recorder = CrossRecorder(num_queries=16 * 16)
    with state.use([recorder]):
        ours(sample, t, encoder_hidden_states=context)
    cross_16 = sorted(name.removesuffix(".processor") for name in ours.attn_processors
                      if name.endswith("attn2.processor") and (name.startswith("down_blocks.0") or name.startswith("up_blocks.1")))
    assert sorted(recorder.seen) == cross_16
    modules = dict(ours.named_modules())
    for layer, shapes in recorder.seen.items():
        assert shapes == [(2, modules[layer].heads, 256, tiny_pipe.tokenizer.model_max_length)]
    # only those layers took the explicit path
    assert state.explicit_calls == len(cross_16)


@torch.no_grad()
def test_controller_edits_change_the_output(unets, tiny_pipe):
    _, ours, state = unets
    sample, t, context = _inputs(tiny_pipe)
    plain = ours(sample, t, encoder_hidden_states=context).sample
    with state.use([ZeroToken(1)]):
        edited = ours(sample, t, encoder_hidden_states=context).sample
    assert (edited - plain).abs().max().item() > 1e-4
    # leaving the `with` block restores plain attention
    again = ours(sample, t, encoder_hidden_states=context).sample
    assert torch.equal(again, plain)


def test_frame_keys_modes():
    frames = 4
    keys = torch.arange(2 * frames, dtype=torch.float32).view(2 * frames, 1, 1)  # value = video·F + frame
    first = frame_keys(keys, frames, FrameMode.FIRST).view(2, frames)
    assert first.tolist() == [[0] * 4, [4] * 4]
    causal = frame_keys(keys, frames, FrameMode.SPARSE_CAUSAL).view(2, frames, 2)
    assert causal[0].tolist() == [[0, 0], [0, 0], [0, 1], [0, 2]]
    middle = frame_keys(keys, frames, FrameMode.MIDDLE).view(2, frames, 2)
    assert middle[1].tolist() == [[4, 6], [5, 6], [6, 6], [7, 6]]


@torch.no_grad()
def test_frame_attention_runs_on_both_kernels(unets, tiny_pipe):
    _, ours, state = unets
    sample, t, context = _inputs(tiny_pipe, batch=4)
    with state.use([], frames=4, frame_mode=FrameMode.FIRST):
        fused = ours(sample, t, encoder_hidden_states=context).sample
    with state.use([ExplicitEverywhere()], frames=4, frame_mode=FrameMode.FIRST):
        explicit = ours(sample, t, encoder_hidden_states=context).sample
    assert (fused - explicit).abs().max().item() < 1e-5
    plain = ours(sample, t, encoder_hidden_states=context).sample
    assert (fused - plain).abs().max().item() > 1e-5  # frames other than the first did change
    assert torch.allclose(fused[0], plain[0], atol=1e-5)  # the first frame attends to itself either way


class ExplicitReplace(AttentionReplace):
    """The same edit through the maps: the explicit path's copy of the source's self-attention probabilities."""

    def substitutes(self, ctx):
        return False


@pytest.mark.parametrize("frames, frame_mode", [(1, FrameMode.NONE), (2, FrameMode.MIDDLE)])
@torch.no_grad()
def test_self_attention_injection_on_the_fused_kernel_equals_copying_the_maps(unets, tiny_pipe, frames, frame_mode):
    """Prompt-to-Prompt's self-attention injection gives the target rows the source rows' queries and keys on the
    fused kernel: the same output as copying the source's explicit maps, and no self-attention map is made."""
    _, ours, state = unets
    prompts, rows = 2, 2 * 2 * frames  # [uncond, cond] × prompts × frames
    sample, t, context = _inputs(tiny_pipe, batch=rows)
    edit = dict(mapper=torch.eye(context.shape[1]), cross_alpha=torch.zeros(1, context.shape[1]), self_window=(0, 1),
                max_self_queries=16 * 16, prompts=prompts)
    outputs, explicit = [], []
    for controller in (AttentionReplace(**edit), ExplicitReplace(**edit)):
        with state.use([controller], frames=frames, frame_mode=frame_mode):
            state.guided = True
            state.step_begin(0, 1)
            state.explicit_calls = 0
            outputs.append(ours(sample, t, encoder_hidden_states=context).sample)
            explicit.append(state.explicit_calls)
    plain = ours(sample, t, encoder_hidden_states=context).sample
    assert explicit[0] == 0 and explicit[1] > 0
    assert (outputs[0] - outputs[1]).abs().max().item() < 1e-5
    assert (outputs[0] - plain).abs().max().item() > 1e-3  # the injection is an edit
