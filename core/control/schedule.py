"""When an injection is on: `cross_replace_steps` / `self_replace_steps` as the official P2P
code accepts them — a fraction f (steps [0, f)), a (start, end) range, or per word a dict
{"default_": f, "word": g} — turned into per-step, per-token weights."""
from __future__ import annotations

import torch

from ..validate import check_range
from .alignment import token_positions


def step_window(bounds, num_steps: int) -> tuple[int, int]:
    """A fraction or (start, end) fractions → [first step, end step) indices, truncated as the official code
    does: int(f·N) (its self-replace window; the cross-replace window counts N + 1 steps, `cross_replace_alpha`)."""
    start, end = (0.0, float(bounds)) if isinstance(bounds, (int, float)) else (float(bounds[0]), float(bounds[1]))
    if not (0.0 <= start <= end <= 1.0):
        raise ValueError(f"replace steps must be fractions 0 ≤ start ≤ end ≤ 1, got {bounds!r}")
    return int(start * num_steps), int(end * num_steps)


def cross_replace_alpha(tokenizer, target: str, cross_replace_steps, num_steps: int) -> torch.Tensor:
    """(num_steps, L) weights: 1 where the target's cross-attention takes the source's, in the steps
    [int(f₀·(N + 1)), int(f₁·(N + 1))) as the official get_time_words_attention_alpha."""
    if not isinstance(cross_replace_steps, dict):
        cross_replace_steps = {"default_": cross_replace_steps}
    length = tokenizer.model_max_length
    # the official alpha has N + 1 rows, so its windows are int(f·(N + 1)): step N (never run) gets a row
    alpha = torch.zeros(num_steps + 1, length)
    start, end = step_window(cross_replace_steps.get("default_", 1.0), num_steps + 1)
    alpha[start:end] = 1.0
    for word, bounds in cross_replace_steps.items():
        if word == "default_":
            continue
        positions = token_positions(tokenizer, target, [word])
        if not positions:
            raise ValueError(f"'{word}' (in cross_replace_steps) is not a word of the target prompt")
        start, end = step_window(bounds, num_steps + 1)
        alpha[:, positions] = 0.0
        alpha[start:end, positions] = 1.0
    return alpha[:num_steps]


def check_steps(name: str, steps) -> None:
    """Every fraction of a parsed schedule (a fraction, a (start, end) pair or per-word values) in [0, 1]."""
    values = steps.values() if isinstance(steps, dict) else [steps]
    for value in values:
        for fraction in (value if isinstance(value, tuple) else (value,)):
            check_range(name, fraction, 0.0, 1.0)


def parse_steps(value):
    """Widget / API text → a fraction, a (start, end) pair or a per-word dict.

    Accepts 0.8, "0.8", "0.2,0.8", "0.8; circle: 0.3; red: 0.1,0.5"."""
    if isinstance(value, (int, float, tuple, list, dict)):
        return tuple(value) if isinstance(value, list) else value
    text = str(value).strip()
    if not text:
        raise ValueError("replace steps are empty")
    parsed: dict = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        word, sep, rest = part.rpartition(":")
        try:
            numbers = [float(x) for x in (rest if sep else part).split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"replace steps {part!r}: expected a fraction like 0.8 or a range like 0.2, 0.8") from None
        if not numbers:
            raise ValueError(f"replace steps {part!r}: no fraction given")
        bounds = numbers[0] if len(numbers) == 1 else tuple(numbers[:2])
        parsed[word.strip() if sep else "default_"] = bounds
    if list(parsed) == ["default_"]:
        return parsed["default_"]
    return parsed
