"""One set of limits per parameter: every slider and number box of every tab has the range its method's `check()`
enforces. Each endpoint's handler runs on the embedded models with its inputs' starting values up to the first
denoising step (the engine's step signal stops it there), while every `check_range` the method makes is
recorded."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import pytest

import core
from app_calls import CHEAP
from core import calls, validate

# a limit that depends on another parameter's value, which a slider cannot draw
DEPENDENT = {("t2v_zero", "t0"): "t0 < t1", ("imagen_video", "dynamic_threshold"): "0 turns it off, else 0.5–1"}
NEEDS_EARLIER_CALL = {"tune_a_video_generate", "diffusionclip_edit"}  # a tuned model / a trained direction first


class FirstStep(Exception):
    pass


@pytest.fixture(scope="module")
def recorded_limits():
    """{endpoint: ({input: (minimum, maximum)} of its sliders and number boxes, {name: (low, high)} checked)}"""
    import app
    from core.models import Models
    from tabs.common import CheckedNumber, CheckedSlider

    for info in pkgutil.walk_packages(core.__path__, "core."):
        importlib.import_module(info.name)
    original = validate.check_range
    checked: dict = {}

    def recorder(name, value, low, high):
        checked.setdefault(name, (low, high))
        return original(name, value, low, high)

    def first_step():
        raise FirstStep

    patched = [m for m in list(sys.modules.values())
               if getattr(m, "__name__", "").startswith("core") and getattr(m, "check_range", None) is original]
    with pytest.MonkeyPatch.context() as patch:
        for module in patched:
            patch.setattr(module, "check_range", recorder)
        patch.setattr(calls, "step", first_step)
        demo = app.build_demo(Models(), app.folders_from_environment())
        found = {}
        for event in demo.fns.values():
            fn = getattr(event.fn, "__wrapped__", None)
            if not event.api_name or fn is None or event.api_name in NEEDS_EARLIER_CALL:
                continue
            names = list(inspect.signature(fn).parameters)
            inputs = dict(zip(names, event.inputs))
            ranges = {n: (c.minimum, c.maximum) for n, c in inputs.items() if isinstance(c, (CheckedSlider, CheckedNumber))}
            values = {n: c.value for n, c in inputs.items() if not isinstance(c.value, dict)}
            values |= {k: v for k, v in CHEAP.get("/" + event.api_name, {}).items() if k not in ranges}
            checked.clear()
            try:
                result = fn(**{k: v for k, v in values.items() if k in names})
                for _ in result if inspect.isgenerator(result) else ():
                    pass
            except FirstStep:
                pass
            found[event.api_name] = (ranges, dict(checked))
    return found


def test_every_slider_has_its_methods_limits(recorded_limits):
    """And every number is checked by its method: the slider's check is a second one for the page, not the
    only one."""
    assert len(recorded_limits) >= 16
    mismatched, unchecked = [], set()
    for endpoint, (ranges, checked) in recorded_limits.items():
        for name, (low, high) in ranges.items():
            if (endpoint, name) in DEPENDENT:
                continue
            if name not in checked:
                unchecked.add((endpoint, name))
            elif tuple(float(v) for v in checked[name]) != (float(low), float(high)):
                mismatched.append(f"/{endpoint} {name}: slider {low}..{high}, check() {checked[name]}")
    assert not mismatched, mismatched
    assert not unchecked, f"numbers only the slider checks: {sorted(unchecked)}"
