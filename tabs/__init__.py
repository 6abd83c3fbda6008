"""The app's tabs, in page order. Each module exposes TITLE and build(models)."""
from . import null_text, p2p, sampler

ALL = [p2p, null_text, sampler]
