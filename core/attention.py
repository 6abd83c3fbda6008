"""The one attention processor of the app, the controller protocol, and the kernel choice.

Every `Attention` module of a UNet gets a `StudioAttnProcessor` (installed with
`unet.set_attn_processor`). For each call it asks the active controllers whether they need the
attention probabilities of this layer. Nobody does → a fused kernel (xformers on CUDA when a
probe call works, else PyTorch SDPA) and no map is ever materialised. Somebody does → explicit
softmax(QKᵀ·scale), each controller reads or edits the map in turn, then ·V. An edit that only
gives some rows other rows' whole maps (Prompt-to-Prompt's self-attention injection) says so
(`substitutes`) and keeps the fused kernel: those rows get the other rows' queries and keys.

Frame modes change which keys/values a self-attention sees when video frames are folded into
the batch (batch index = video·frames + frame): first frame (Text2Video-Zero), first+previous
(Tune-A-Video's sparse-causal), current+middle (FateZero). They work with both kernels.

The processors hold no state of a call: each call makes its own `AttentionState` and `use()`
makes it the active one for the thread (a context variable), so two calls on one cached UNet at
the same time never see each other's controllers, steps or frame modes.
"""
from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F


class FrameMode(str, enum.Enum):
    NONE = "none"  # frames attend to themselves only (plain image attention)
    FIRST = "first"  # keys/values from the first frame
    SPARSE_CAUSAL = "sparse_causal"  # keys/values from the first and the previous frame
    MIDDLE = "middle"  # keys/values from the current and the middle frame


@dataclass(frozen=True)
class AttentionContext:
    """What a controller knows about one attention call."""
    layer: str  # module path, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
    is_cross: bool
    num_queries: int  # spatial positions of the layer (h·w)
    step: int  # index of the denoising step in progress (0-based), -1 outside a loop
    num_steps: int
    batch: int  # rows of the batch, classifier-free-guidance halves and frames included
    frames: int  # video frames folded into the batch (1 for images)
    guided: bool  # True when the batch is [unconditional, conditional] halves
    source_rows: int = 0  # leading rows that recompute a source branch (FateZero), before the halves


class AttentionController:
    """Base class: override `wants` and one of the hooks. Controllers compose in a list."""

    def wants(self, ctx: AttentionContext) -> bool:
        """Does this controller need the probabilities of this call?"""
        return False

    def attention(self, probs: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        """probs: (batch, heads, queries, keys). Return them, edited or not."""
        return probs

    def substitutes(self, ctx: AttentionContext) -> bool:
        """Is this call's edit only "these rows take those rows' whole maps"? Then the processor asks `substitute`
        instead of `attention` and keeps the fused kernel: softmax(Q_s·K_sᵀ)·V_t needs no map."""
        return False

    def substitute(self, query: torch.Tensor, key: torch.Tensor, ctx: AttentionContext):
        """query (batch, heads, queries, d), key (batch, heads, keys, d) → the same with the edited rows' taken
        from the rows whose maps they adopt."""
        return query, key

    def step_begin(self, step: int, num_steps: int) -> None:
        """The loop is about to run step `step`."""

    def step_end(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        """The loop finished step `step`; may return changed latents (local blend)."""
        return latents


class AttentionState:
    """One call's attention: the active controllers, the step, the frame mode. Every processor (of the
    UNet and of its companion models) reads the state that `use` made active in the running thread."""

    def __init__(self):
        self.controllers: list[AttentionController] = []
        self.step, self.num_steps = -1, 0
        self.frames = 1
        self.frame_mode = FrameMode.NONE
        self.guided = False
        self.source_rows = 0  # set by a source branch's UNet wrapper (core.control.fusion.SourceBranch) per call
        self.image_prompts: list = []  # core.ip_adapter.ImagePrompt: image branches of the cross-attention
        self.explicit_calls = 0  # counters: how many calls took each path (tests, benchmarks)
        self.fused_calls = 0

    @contextlib.contextmanager
    def use(self, controllers=(), frames: int = 1, frame_mode: FrameMode = FrameMode.NONE, image_prompts=()):
        """Activate controllers / frame attention / image prompts for the duration of a `with` block."""
        saved = (self.controllers, self.frames, self.frame_mode, self.image_prompts)
        self.controllers = [c for c in controllers if c is not None]
        self.frames, self.frame_mode = frames, FrameMode(frame_mode)
        self.image_prompts = [p for p in image_prompts if p is not None and p.scale != 0]
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)
            self.controllers, self.frames, self.frame_mode, self.image_prompts = saved
            self.step, self.num_steps = -1, 0

    @contextlib.contextmanager
    def frame_by_frame(self):
        """Within the active `use`: treat every batch row as its own one-frame clip (no frame
        attention), keeping controllers and the step (a frame-wise prediction beside the video one)."""
        saved = (self.frames, self.frame_mode)
        self.frames, self.frame_mode = 1, FrameMode.NONE
        try:
            yield self
        finally:
            self.frames, self.frame_mode = saved

    @contextlib.contextmanager
    def text_only(self):
        """Within the active `use`: no image prompts (a control model beside the UNet — a ControlNet — reads the
        text alone, as diffusers' pipelines give it; its layers are named like the UNet's)."""
        saved = self.image_prompts
        self.image_prompts = []
        try:
            yield self
        finally:
            self.image_prompts = saved

    def step_begin(self, step: int, num_steps: int) -> None:
        self.step, self.num_steps = step, num_steps
        for controller in self.controllers:
            controller.step_begin(step, num_steps)

    def step_end(self, latents: torch.Tensor, step: int) -> torch.Tensor:
        for controller in self.controllers:
            latents = controller.step_end(latents, step)
        return latents


_active: contextvars.ContextVar[AttentionState | None] = contextvars.ContextVar("studio_attention", default=None)


def active_state() -> AttentionState | None:
    """The state a `use` block made active in this thread, or None outside any."""
    return _active.get()


@contextlib.contextmanager
def with_image_prompts(unet, image_prompts):
    """The running call's attention state — a fresh one outside any `use` — with `image_prompts` added for this
    block (scale 0: left out), so a caller's controllers keep seeing every step; `unet` gets the processor."""
    install(unet)
    with ensure_active() as state:
        saved = state.image_prompts
        state.image_prompts = saved + [p for p in image_prompts if p is not None and p.scale != 0]
        try:
            yield state
        finally:
            state.image_prompts = saved


@contextlib.contextmanager
def ensure_active():
    """The active state, or a fresh one active for this block (a loop run outside any `use`)."""
    state = _active.get()
    if state is not None:
        yield state
    else:
        with AttentionState().use() as state:
            yield state


# ---- kernels --------------------------------------------------------------------------------

@functools.cache
def xformers_works(device_type: str) -> bool:
    """xformers only on CUDA, and only if a small probe call succeeds (its wheels break easily)."""
    if device_type != "cuda":
        return False
    try:
        import xformers.ops
        q = torch.randn(1, 8, 1, 8, device="cuda", dtype=torch.float16)
        xformers.ops.memory_efficient_attention(q, q, q)
        return True
    except Exception:
        return False


def fused_attention(query, key, value, mask, scale: float) -> torch.Tensor:
    """(B, heads, N, d) → (B, heads, N, d) without materialising the N×M map."""
    if mask is None and xformers_works(query.device.type):
        import xformers.ops
        out = xformers.ops.memory_efficient_attention(
            query.transpose(1, 2).contiguous(), key.transpose(1, 2).contiguous(), value.transpose(1, 2).contiguous(),
            scale=scale)
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)


def attention_probs(query, key, mask, scale: float) -> torch.Tensor:
    """softmax(QKᵀ·scale) in fp32 for stable maps, returned in the query's dtype."""
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask.float()
    return scores.softmax(dim=-1).to(query.dtype)


def frame_keys(tensor: torch.Tensor, frames: int, mode: FrameMode) -> torch.Tensor:
    """(B·F, N, C) keys or values → the keys/values each frame attends to under `mode`."""
    if mode == FrameMode.NONE or frames <= 1:
        return tensor
    videos = tensor.shape[0] // frames
    x = tensor.view(videos, frames, *tensor.shape[1:])
    index = torch.arange(frames, device=tensor.device)
    if mode == FrameMode.FIRST:
        out = x[:, torch.zeros_like(index)]
    elif mode == FrameMode.SPARSE_CAUSAL:
        out = torch.cat([x[:, torch.zeros_like(index)], x[:, (index - 1).clamp(min=0)]], dim=2)
    elif mode == FrameMode.MIDDLE:
        out = torch.cat([x, x[:, torch.full_like(index, frames // 2)]], dim=2)
    else:
        raise ValueError(f"unknown frame mode {mode}")
    return out.reshape(videos * frames, *out.shape[2:])


# ---- the processor --------------------------------------------------------------------------

class StudioAttnProcessor:
    """Drop-in for diffusers' AttnProcessor2_0 that lets controllers see chosen maps."""

    def __init__(self, layer: str):
        self.layer = layer
        # a motion module's attention over frames (core.motion): its batch is spatial positions and
        # its sequence is frames, so frame modes and controllers (which read image maps) skip it
        self.temporal = ".motion_modules." in f".{layer}."

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs) -> torch.Tensor:
        state = _active.get() or _IDLE
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        batch, sequence_length, _ = hidden_states.shape if not is_cross else encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if not is_cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        if not is_cross and state.frame_mode != FrameMode.NONE and not self.temporal:
            key = frame_keys(key, state.frames, state.frame_mode)
            value = frame_keys(value, state.frames, state.frame_mode)
            if attention_mask is not None:
                raise ValueError("frame attention does not take an attention mask")

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        ctx = AttentionContext(self.layer, is_cross, query.shape[2], state.step, state.num_steps, batch,
                               state.frames, state.guided, state.source_rows)
        listeners = [] if self.temporal else [c for c in state.controllers if c.wants(ctx)]
        if listeners and all(c.substitutes(ctx) for c in listeners):  # no map is read: fused on other rows' Q, K
            for controller in listeners:
                query, key = controller.substitute(query, key, ctx)
            listeners = []
        if listeners:
            state.explicit_calls += 1
            probs = attention_probs(query, key, attention_mask, attn.scale)
            for controller in listeners:
                probs = controller.attention(probs, ctx)
            hidden_states = torch.matmul(probs.to(value.dtype), value)
        else:
            state.fused_calls += 1
            hidden_states = fused_attention(query, key, value, attention_mask, attn.scale)

        if is_cross and state.image_prompts and not self.temporal:
            hidden_states = hidden_states + self.image_branches(state, ctx, query, attn.scale)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def image_branches(self, state: AttentionState, ctx: AttentionContext, query: torch.Tensor,
                       scale: float) -> torch.Tensor:
        """Σ scale · attention of the queries over each image prompt's tokens (IP-Adapter), on the fused kernel."""
        heads, head_dim = query.shape[1], query.shape[-1]
        total = 0
        for prompt in state.image_prompts:
            branch = prompt.adapter.branch(self.layer)
            if branch is None:
                continue
            tokens, weights = prompt.rows(ctx.batch, ctx.guided, ctx.source_rows, ctx.step)
            tokens = tokens.to(query.device, query.dtype)
            key, value = (layer(tokens).view(ctx.batch, -1, heads, head_dim).transpose(1, 2) for layer in branch)
            out = fused_attention(query, key, value, None, scale)
            if weights is not None:
                out = out * weights.to(out)[:, None, None, None]
            total = total + prompt.scale * out
        return total


class InnerUNet:
    """For a UNet wrapper (a source branch, a composed UNet): the engine's processors live on the inner `unet`."""

    @property
    def attn_processors(self):
        return self.unet.attn_processors

    def set_attn_processor(self, processors):
        self.unet.set_attn_processor(processors)


# what processors read outside any `use` (a plain forward call): no controllers, no frame mode. Only its
# counters change, and nothing reads them.
_IDLE = AttentionState()
_installing = threading.Lock()


def install(unet) -> AttentionState:
    """Give every attention layer of `unet` (a UNet or a companion model such as a ControlNet) our
    processor, again if a pipeline replaced it; returns a new state for the caller's call to `use`."""
    with _installing:
        processors = getattr(unet, "attn_processors", None)
        if processors is None:  # a model without diffusers' processor interface (UNet2DModel): nothing to install
            return AttentionState()
        if not all(isinstance(p, StudioAttnProcessor) for p in processors.values()):
            unet.set_attn_processor({name: StudioAttnProcessor(name.removesuffix(".processor")) for name in processors})
    return AttentionState()
