"""The app's tabs, in page order. Each module exposes TITLE and build(models)."""
from . import sampler

ALL = [sampler]
