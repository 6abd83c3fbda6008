"""The app's tabs, in page order. Each module exposes TITLE and build(models)."""
from . import (animatediff, chatface, diffusionclip, dreamix, face0, fatezero, freedom, gen1, imagen_video, null_text,
               p2p, sampler, shiftddpm, t2i_adapter, t2v_zero, tune_a_video, unicontrol, videocomposer)

ALL = [p2p, null_text, t2v_zero, fatezero, tune_a_video, animatediff, imagen_video, dreamix, videocomposer, gen1,
       t2i_adapter, unicontrol, freedom, diffusionclip, chatface, face0, shiftddpm, sampler]
