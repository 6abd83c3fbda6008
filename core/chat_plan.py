"""Offline "chat" for ChatFace: an instruction in plain words → an edit plan {attribute: strength}.

The paper asks ChatGPT; we parse with rules over a vocabulary of attributes and degree words, so
it runs offline and predictably: "make it blue and a bit bigger" → {"colour": "blue",
"size": "+small"}. Each plan entry also gets a number (the strength the editor uses).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .validate import check_prompt

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = ("white", "black", "gray")
COLOUR_ALIASES = {"grey": "gray", "violet": "purple"}

# degree words → (label, strength); checked longest first
DEGREES = {
    "a tiny bit": ("small", 0.5), "a little bit": ("small", 0.5), "a little": ("small", 0.5), "a bit": ("small", 0.5),
    "slightly": ("small", 0.5), "somewhat": ("small", 0.5), "a touch": ("small", 0.5),
    "much": ("large", 2.0), "a lot": ("large", 2.0), "far": ("large", 2.0), "very": ("large", 2.0),
    "way": ("large", 2.0), "significantly": ("large", 2.0), "considerably": ("large", 2.0),
}
DEFAULT_DEGREE = ("medium", 1.0)
BIGGER = ("bigger", "larger", "enlarge", "grow", "big", "large", "huge", "increase")
SMALLER = ("smaller", "shrink", "tinier", "small", "tiny", "reduce", "decrease")


@dataclass
class EditPlan:
    """attribute → target (colour/shape/background name, or "+small"/"-large"… for size)."""
    targets: dict[str, str] = field(default_factory=dict)
    strengths: dict[str, float] = field(default_factory=dict)  # attribute → how far to move
    unparsed: list[str] = field(default_factory=list)  # clauses that named nothing known

    def as_json(self) -> dict:
        return {"plan": dict(self.targets), "strengths": dict(self.strengths), "not understood": list(self.unparsed)}


def _degree(clause: str) -> tuple[str, float]:
    for words in sorted(DEGREES, key=len, reverse=True):
        if re.search(rf"\b{re.escape(words)}\b", clause):
            return DEGREES[words]
    return DEFAULT_DEGREE


def _words(clause: str) -> list[str]:
    return [COLOUR_ALIASES.get(w, w) for w in re.findall(r"[a-z]+", clause)]


def parse_instruction(text: str) -> EditPlan:
    """Split on "and"/commas/"then", and read each clause's attribute and degree."""
    plan = EditPlan()
    if isinstance(text, str) and not text.strip():
        raise ValueError("instruction is empty: say what to change, e.g. 'make it blue and a bit bigger'")
    text = check_prompt(text, "instruction").lower().strip()
    for clause in re.split(r",|;|\band\b|\bthen\b|\balso\b|\bplus\b", text):
        clause = clause.strip()
        if not clause:
            continue
        words = _words(clause)
        label, strength = _degree(clause)
        found = False
        for index, word in enumerate(words):
            names_background = "background" in words[max(0, index - 2):index + 3]
            if word in BACKGROUNDS and names_background:
                plan.targets["background"], plan.strengths["background"] = word, strength
                found = True
            elif word in COLOURS:
                plan.targets["colour"], plan.strengths["colour"] = word, strength
                found = True
            elif word in SHAPES or (word.endswith("s") and word[:-1] in SHAPES):
                plan.targets["shape"], plan.strengths["shape"] = word.removesuffix("s") if word not in SHAPES else word, strength
                found = True
        if any(w in BIGGER for w in words):
            plan.targets["size"], plan.strengths["size"] = f"+{label}", strength
            found = True
        elif any(w in SMALLER for w in words):
            plan.targets["size"], plan.strengths["size"] = f"-{label}", -strength
            found = True
        if not found:
            plan.unparsed.append(clause)
    if not plan.targets:
        raise ValueError(f"nothing to edit understood in {text!r}: name a colour ({', '.join(COLOURS)}), "
                         f"a shape ({', '.join(SHAPES)}), a background, or bigger/smaller")
    return plan
