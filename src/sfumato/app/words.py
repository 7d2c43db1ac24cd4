"""The page's words: what each choice trades and what each figure means, for artists.

One place, so the menus, the figures' explanations and the heat map tell one visibility story: the
presets bound each pixel's change by a share of the eye's visibility threshold there (the JND model of
:mod:`sfumato.budget`); the heat map draws the change against that same threshold; PSNR counts every
change alike, so it is lower where the change hides in texture and does not by itself say "visible".
The sentences are built from the presets themselves, so they cannot drift from what the engine does.
No jargon in the main view (latents, encoders, tiles, library names): those figures live behind
the page's "details" toggle, where :data:`FIGURE_HELP` explains them.
"""

from __future__ import annotations

from sfumato.budget import INTENSITY

_JND = INTENSITY["jnd"]


def _share(name: str) -> str:
    return f"{_JND[name]['scale']:.0%}"


def _cap(name: str) -> str:
    return f"{round(_JND[name]['eps'] * 255)}"


INTENSITY_HELP = {
    "low": f"Each spot changes by at most {_share('low')} of what the eye can notice there (never more than "
    f"{_cap('low')} of 255 shades): the least change, and the weakest effect.",
    "default": f"Each spot changes by at most {_share('default')} of what the eye can notice there (never "
    f"more than {_cap('default')} of 255 shades): not visible at normal viewing. The change goes into "
    "texture, where the eye misses it, and spares flat colour.",
    "high": f"Up to {_share('high')} of what the eye can notice (at most {_cap('high')} of 255 shades): the "
    "strongest effect; up close on a good screen a faint grain may show in smooth areas.",
}
SPEED_HELP = {
    "fast": "About half the time of default, for a slightly weaker effect.",
    "default": "The balance of time and effect (about 16 s for a 512 px image on a two-core laptop).",
    "thorough": "About four times as long as default, for a somewhat stronger effect at the same visibility.",
}
MODE_HELP = {
    "cloak": "Meant to make a model trained on these images learn a different style (like Glaze). "
    "Each result says how much to expect from it.",
    "shade": "Meant to make photos of one thing teach a model to draw another for its name (like "
    "Nightshade). Each result says how much to expect from it.",
}
FAMILY_HELP = {
    "auto": "All the kinds of image generator sfumato can check for itself (FLUX.2 and Sana), each given "
    "an equal share of the change. Recommended.",
    "flux2": "Only generators of the FLUX.2 family: a little stronger against them, far weaker "
    "against others.",
    "sana": "Only generators of the Sana family: a little stronger against them, far weaker against others.",
    "sd": "Only Stable Diffusion 1.x and 2.x (and models built on them).",
    "sdxl": "Only Stable Diffusion XL (and models built on it).",
    "sd3": "Only Stable Diffusion 3 and 3.5.",
    "flux1": "Only FLUX.1.",
}
AUTO_HELP = "Let sfumato pick a style that looks clearly different from your work (as Glaze does)."
VERDICT_WORDS = {
    "strong": "Strong protection",
    "weak": "Weak protection",
    "none": "No protection",
}
# The details table's explanations, keyed by the figure (the page looks them up by these names).
FIGURE_HELP = {
    "psnr": "How close the protected image is to the original, counting every change alike (higher is "
    "closer). sfumato hides the change in texture, so values from the low 30s up are usual and do not "
    "mean the change shows: the heat map and the share at or above visibility say whether it does.",
    "ssim": "Structural similarity; 1 means identical.",
    "flat": "Mean change (0-255) where colour is flat, where changes show most.",
    "max_change": "The largest change of any pixel (0-255); the intensity caps it.",
    "visible": "Share of pixels whose change reaches the eye's threshold (pale yellow on the heat map). "
    f"The intensity keeps each change below it ({_share('default')} of it at default), so 0 % is expected.",
    "peak": "The largest change against the eye's threshold at that spot (100 % = just visible).",
    "moved": "How far the image moved toward its target as the attacked model's encoder sees it (its "
    "latents). The lab found this does not decide whether a model trained on the image is fooled.",
    "transfer": "The same movement seen by an encoder that was not attacked.",
}
