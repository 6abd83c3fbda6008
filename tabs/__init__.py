"""The app's tabs, in page order. Each module exposes TITLE and build(models)."""
from . import chatface, diffusionclip, face0, fatezero, freedom, null_text, p2p, sampler, shiftddpm, t2v_zero

ALL = [p2p, null_text, t2v_zero, fatezero, freedom, diffusionclip, chatface, face0, shiftddpm, sampler]
