"""Mixed precision for what the app trains or optimises while its models run in float16 (a GPU).

Adam steps float16 values badly: its ε (1e-8) rounds to 0 and the update divides by zero, so after
one step every trained value is NaN. diffusers' training scripts keep trainable values in float32;
here each float16 value gets a float32 master copy that the optimiser steps, and the float16 value
is refreshed from it after every step. The loss is scaled so that float16 gradients do not underflow;
a step whose gradients overflowed is skipped and the scale halved. For float32 values this is a
no-op (the masters are the values themselves, the scale is 1), so CPU runs compute what they did.
"""
from __future__ import annotations

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


class MixedPrecision:
    """Build the optimiser over `masters`; back-propagate `scaled(loss)`; call `step(optimizer)`."""

    def __init__(self, values, init_scale: float = 2.0 ** 14, growth_interval: int = 1000):
        self.values = list(values)
        self.low = [v.dtype in LOW_PRECISION for v in self.values]
        self.masters = [v.detach().float().clone().requires_grad_(True) if low else v
                        for v, low in zip(self.values, self.low)]
        self.scale = init_scale if any(self.low) else 1.0
        self.growth_interval, self.good_steps, self.skipped = growth_interval, 0, 0

    def minimise(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
        """One optimiser step on `loss` (gradients cleared, scaled, unscaled onto the masters); returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        self.scaled(loss).backward()
        self.step(optimizer)
        return loss.item()

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss.float() * self.scale if self.scale != 1.0 else loss

    def step(self, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None) -> bool:
        """Unscale the gradients onto the masters and step them; False (nothing changed) on overflow."""
        finite = True
        for value, master, low in zip(self.values, self.masters, self.low):
            if value.grad is None:
                continue
            if low:
                master.grad = value.grad.float() / self.scale
                value.grad = None
            elif self.scale != 1.0:
                value.grad.div_(self.scale)
            finite = finite and bool(torch.isfinite(master.grad).all())
        if not finite:  # skipped: a float16 overflow (retried at half the scale), or a diverged float32 run
            optimizer.zero_grad(set_to_none=True)
            self.good_steps, self.skipped = 0, self.skipped + 1
            if any(self.low):
                self.scale /= 2
            return False
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.masters, max_grad_norm)
        optimizer.step()
        with torch.no_grad():
            for value, master, low in zip(self.values, self.masters, self.low):
                if low:
                    value.copy_(master)
        self.good_steps += 1
        if any(self.low) and self.good_steps % self.growth_interval == 0:
            self.scale *= 2
        return True
