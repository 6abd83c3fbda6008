"""What a model recommends for each tab: an embedded (or local) model may keep, beside its weights, a
`studio.json` of per-tab starting values and examples:

    {"t2v_zero": {"values": {"noise": "warped"}, "examples": [{"prompt": "a red circle …", "t0": 25}]}}

Values are parameter names of the tab's endpoint (the fields of its config defaults); examples name files
under assets/examples by their file name. A model without the file (SD1.5 from the Hub) recommends nothing:
the tabs start from the papers' defaults and show the papers' examples.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import config

STUDIO_FILE = "studio.json"


@dataclass(frozen=True)
class Recommendation:
    values: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)
    model: str | None = None  # the model that recommends them; None: nothing recommended
    base_model: str = ""  # the app's base model, recommending or not

    def defaults(self, defaults):
        """The tab's config defaults (a dataclass instance or class) with this model's values over them."""
        base = defaults() if isinstance(defaults, type) else defaults
        unknown = set(self.values) - {f.name for f in dataclasses.fields(base)}
        if unknown:
            raise ValueError(f"{self.model}'s {STUDIO_FILE} recommends unknown settings: {', '.join(sorted(unknown))}")
        return dataclasses.replace(base, **self.values)


def read(folder: Path, model: str, tab: str) -> Recommendation:
    """The recommendation of the model in `folder` for `tab` (nothing when it has no studio.json)."""
    path = Path(folder) / STUDIO_FILE
    if not path.is_file():
        return Recommendation()
    try:
        entry = json.loads(path.read_text()).get(tab) or {}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not entry:
        return Recommendation()
    return Recommendation(dict(entry.get("values", {})), list(entry.get("examples", [])), model)


def example_file(value):
    """A file name of assets/examples → its path; anything else as it is (lists element by element)."""
    if isinstance(value, list):
        return [example_file(item) for item in value]
    if isinstance(value, str) and "/" not in value and (config.EXAMPLES_DIR / value).is_file():
        return str(config.EXAMPLES_DIR / value)
    return value
