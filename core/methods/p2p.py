"""Prompt-to-Prompt (Hertz et al. 2022, docs/METHODS.md §0): a source prompt and an edited one from the same noise,
the edited prompt's attention maps taken from the source's. The editing itself lives in
core.control.prompt_to_prompt, which null-text inversion's edits share; this is the method's API."""
from __future__ import annotations

from ..control.prompt_to_prompt import (  # noqa: F401
                                        EDIT_MODES,
                                        Controllers,
                                        P2PParams,
                                        P2PResult,
                                        build_controllers,
                                        edit,
                                        heatmap_side,
                                        resolve_mode,
)
