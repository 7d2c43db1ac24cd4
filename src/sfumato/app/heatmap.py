"""The visibility heat map: where an image was changed, measured against what the eye can see there.

Each pixel's change (largest over the colour channels, 0..255 units) is divided by the eye's
visibility threshold at that pixel (the just-noticeable-difference model of :mod:`sfumato.budget`),
so 1 means "at the threshold of visibility" whatever the intensity preset or budget was. The ratio is
drawn with a perceptually ordered colour map over a dimmed grey copy of the image, so the artist sees
both where the change went and whether any of it reaches the visible range.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sfumato.budget import jnd_map
from sfumato.quality import luminance

# An inferno-like ramp: black (no change) through purple and orange to pale yellow (at the threshold).
_RAMP = (
    np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float32)
    / 255
)
UNDERLAY = 0.3  # brightness of the grey copy of the image under the colours


def visibility_ratio(original: torch.Tensor, protected: torch.Tensor) -> torch.Tensor:
    """(H, W): each pixel's change over its visibility threshold, for (3, H, W) images in [0, 1]."""
    a = original.reshape(1, 3, *original.shape[-2:]).float()
    b = protected.reshape(1, 3, *protected.shape[-2:]).float()
    change = (b - a).abs().amax(1)[0] * 255
    return change / jnd_map(a)[0, 0].clamp_min(1e-3)


def colourise(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (H, W) to RGB (H, W, 3) in [0, 1] along the ramp."""
    x = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(x).astype(np.int64).clip(0, len(_RAMP) - 2)
    t = (x - lo)[..., None]
    return _RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t


def heat_map(original: torch.Tensor, protected: torch.Tensor) -> tuple[Image.Image, dict[str, float]]:
    """The heat map as an RGB image the size of the original, and its figures.

    Figures: ``mean_ratio`` (average change over threshold), ``peak_ratio`` (the largest) and
    ``visible_fraction`` (share of pixels whose change reaches the threshold). The presets bound each
    change by a share of this same threshold, so at ``default`` the peak is near that share and the
    visible fraction 0: the heat map, the presets and the page's words tell one story.
    """
    ratio = visibility_ratio(original, protected)
    grey = luminance(original.reshape(1, 3, *original.shape[-2:]).float())[0, 0].numpy()
    r = ratio.numpy()
    rgb = UNDERLAY * grey[..., None] + (1 - UNDERLAY) * colourise(r)
    pixels = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    figures = {
        "mean_ratio": round(float(r.mean()), 4),
        "peak_ratio": round(float(r.max()), 4),
        "visible_fraction": round(float((r >= 1).mean()), 4),
    }
    return Image.fromarray(pixels, "RGB"), figures
