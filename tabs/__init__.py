"""The app's tabs, grouped by what people want to do, in page order. Each module exposes TITLE and build(models);
its key (`key(tab)`, the module's name, which is also its endpoint's) opens it from a link: `?tab=p2p`."""
from . import (animatediff, chatface, diffusionclip, dreamix, face0, fatezero, freedom, gen1, imagen_video, null_text,
               p2p, sampler, shiftddpm, t2i_adapter, t2v_zero, tune_a_video, unicontrol, videocomposer)

# group → (what it does, in a line; its tabs)
GROUPS = {
    "Image editing": ("edit a generated or uploaded picture by changing its prompt", [p2p, null_text]),
    "Guided generation": ("steer sampling with an energy, a direction, a chat, a face or a class; inspect samplers",
                          [freedom, diffusionclip, chatface, face0, shiftddpm, sampler]),
    "Control": ("generate from condition maps: edges, sketches, depth, colour, pose", [t2i_adapter, unicontrol]),
    "Video generation": ("make a video from text, conditions or a cascade",
                         [t2v_zero, animatediff, videocomposer, imagen_video]),
    "Video editing": ("change a video, or animate images, keeping what should stay", [fatezero, tune_a_video, gen1,
                                                                                      dreamix]),
}
ALL = [tab for _, members in GROUPS.values() for tab in members]


def key(tab) -> str:
    return tab.__name__.rsplit(".", 1)[-1]


def group_of(name: str) -> str | None:
    """The group holding the tab whose key is `name`."""
    return next((group for group, (_, members) in GROUPS.items() if name in map(key, members)), None)
