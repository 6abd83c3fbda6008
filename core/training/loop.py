"""Small pieces every trainer here shares: resumable checkpoints, the learning-rate schedule, EMA."""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine down to `floor`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a module's weights (sampled from after training)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # short memory early on
        for ema_p, p in zip(self.shadow.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)


class Checkpoint:
    """One file per stage, rewritten every `every` steps, so a killed run resumes where it was."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), every
        self.started = time.time()
        self.elapsed_before = 0.0

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        self.elapsed_before = state.get("elapsed", 0.0)
        return state

    def resume(self, optimizer: torch.optim.Optimizer, modules: dict[str, torch.nn.Module], strict: bool = True) -> int:
        """Load the saved modules (by their keys in the state) and optimizer if a checkpoint exists; the step to go on
        from (0 for a fresh run). `strict=False` where only the trained parameters were saved."""
        if (state := self.load()) is None:
            return 0
        for key, module in modules.items():
            module.load_state_dict(state[key], strict=strict)
        optimizer.load_state_dict(state["optimizer"])
        print(f"resumed at step {state['step']}", flush=True)
        return state["step"]

    def elapsed(self) -> float:
        """CPU wall time of this stage over all its sittings."""
        return self.elapsed_before + time.time() - self.started

    def maybe_save(self, step: int, state: dict, force: bool = False) -> None:
        if force or (step + 1) % self.every == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            torch.save({**state, "step": step + 1, "elapsed": self.elapsed()}, tmp)
            tmp.replace(self.path)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, step: int, total: int, base_lr: float,
                   warmup: int, clip: float | None = 1.0) -> None:
    """Set this step's learning rate (warm-up, cosine; times a group's "lr_scale"), back-propagate, clip, step."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group.get("lr_scale", 1.0) * warmup_cosine(step, total, warmup=warmup)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
    optimizer.step()


CONTINUED_FROM = "continued_from"  # a trainer's record of the saved run it went on from (--init-from), nested


def steps_trained(record: dict) -> int:
    """Steps of a saved model's run plus those of every run it went on from (nested under CONTINUED_FROM):
    where a continuation's fresh batches start, so that it does not replay old ones."""
    earlier = record.get(CONTINUED_FROM)
    return record["steps"] + (steps_trained(earlier) if earlier else 0)
