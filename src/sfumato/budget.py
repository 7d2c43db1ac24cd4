"""The budget: how much each pixel may change before a person notices.

Two kinds. ``linf`` is the plain bound every published tool uses: each pixel may move by at most
``eps``. ``jnd`` gives each pixel its own allowance from a just-noticeable-difference model of the
eye, the classic luminance-adaptation plus texture-masking model (Chou and Li 1995, combined as in
Yang et al. 2005): busy texture hides changes, flat colour and smooth gradients do not, so the
perturbation goes where it cannot be seen instead of where it shows (the top complaint about Glaze
and Nightshade). The allowance is then capped by ``eps`` so the two kinds stay comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sfumato.imageio import as_unit
from sfumato.quality import band_rows, luminance

KINDS = ("jnd", "linf")

# Intensity presets. linf: the L-inf bound on [0, 1] images. jnd: a multiple of the eye's
# visibility threshold per pixel, capped at an L-inf bound.
INTENSITY: dict[str, dict[str, dict[str, float]]] = {
    "linf": {
        "low": {"eps": 3 / 255},
        "default": {"eps": 5 / 255},
        "high": {"eps": 8 / 255},
    },
    "jnd": {
        "low": {"scale": 0.35, "eps": 4 / 255},
        "default": {"scale": 0.5, "eps": 6 / 255},
        "high": {"scale": 0.8, "eps": 10 / 255},
    },
}
LUMINANCE_CAP = 5.0  # 0..255 units: Chou-Li allows up to 20 in black areas, which shows on good screens
# Chou-Li's texture-masking slope times 2.5: busy texture hides more than their still-image model
# assumed for single-pixel errors, and it steers the change off flat areas (benchmarks/visibility.py).
TEXTURE_GAIN = 2.5
MIN_ALLOWANCE = 0.5 / 255  # even the flattest pixel may move by rounding noise
_BAND = 1 << 18  # pixels per band of rows of the threshold map
_HALO = 8  # rows each band borrows from its neighbours: the 5 px boxes and the gradient reach 5


@dataclass(frozen=True)
class Budget:
    """What the optimiser may change: ``allowance(x)`` is the per-pixel L-inf bound."""

    kind: str = "jnd"
    eps: float = 6 / 255
    scale: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"budget kind must be one of {KINDS}, not {self.kind!r}")
        if not 0 < self.eps <= 0.25:
            raise ValueError(f"eps must be in (0, 0.25] on [0, 1] images, not {self.eps}")

    def allowance(self, rgb: torch.Tensor) -> torch.Tensor:
        """Per-pixel bound (B, 1, H, W) for images (B, 3, H, W) in [0, 1] (or 8-bit)."""
        return self.allowance_rows(rgb, 0, rgb.shape[-2])

    def allowance_rows(self, rgb: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        """Rows ``top:bottom`` of :meth:`allowance` (B, 1, bottom - top, W), bit for bit, without the rest.

        The tiled optimiser asks for one row of tiles at a time, so a large image never holds its whole
        allowance. In row bands with a halo: the threshold map needs a dozen whole-image temporaries
        (0.5 GB at 12 MP), the allowance only itself. Every filter reaches at most _HALO rows, so bands
        are exact; the bands are always cut at the same rows (multiples of ``band_rows``), whatever rows
        are asked for, so every caller gets the same figures.
        """
        shape = (rgb.shape[0], 1, bottom - top, rgb.shape[-1])
        if self.kind == "linf":
            return torch.full(shape, self.eps, device=rgb.device)
        h = rgb.shape[-2]
        out = torch.empty(shape, device=rgb.device)
        rows = band_rows(rgb.shape[-1], _BAND)
        for start in range(top - top % rows, bottom, rows):
            end = min(start + rows, h)
            t0, t1 = max(0, start - _HALO), min(h, end + _HALO)
            jnd = jnd_map(as_unit(rgb[..., t0:t1, :]))[..., start - t0 : start - t0 + (end - start), :] / 255
            band = (self.scale * jnd).clamp(MIN_ALLOWANCE, self.eps)
            lo, hi = max(start, top), min(end, bottom)
            out[..., lo - top : hi - top, :] = band[..., lo - start : hi - start, :]
        return out

    def describe(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {
            "kind": self.kind,
            "eps": round(self.eps, 6),
            "eps_255": round(self.eps * 255, 3),
        }
        if self.kind == "jnd":
            out["jnd_scale"] = self.scale
        return out


def make_budget(
    intensity: str = "default", kind: str = "jnd", eps: float | None = None, scale: float | None = None
) -> Budget:
    """A preset, with optional explicit overrides of its bound and (jnd) threshold multiple."""
    if kind not in INTENSITY:
        raise ValueError(f"budget kind must be one of {KINDS}, not {kind!r}")
    if intensity not in INTENSITY[kind]:
        raise ValueError(f"intensity must be one of {sorted(INTENSITY[kind])}, not {intensity!r}")
    preset = dict(INTENSITY[kind][intensity])
    if eps is not None:
        preset["eps"] = eps
    if scale is not None:
        preset["scale"] = scale
    return Budget(kind=kind, eps=preset["eps"], scale=preset.get("scale", 1.0))


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    pad = size // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), size, stride=1)


def jnd_map(rgb: torch.Tensor) -> torch.Tensor:
    """Visibility threshold (B, 1, H, W) in 0..255 units.

    Luminance adaptation: changes hide in dark areas (Weber's law towards bright ones).
    Texture masking: proportional to the local gradient activity around the pixel.
    """
    y = luminance(rgb) * 255
    bg = _box(y, 5)
    dark = 17 * (1 - torch.sqrt(bg.clamp_min(0) / 127)) + 3
    bright = 3 / 128 * (bg - 127) + 3
    t_lum = torch.where(bg <= 127, dark, bright).clamp(max=LUMINANCE_CAP)
    gx = y[..., :, 1:] - y[..., :, :-1]
    gy = y[..., 1:, :] - y[..., :-1, :]
    grad = F.pad(gx.abs(), (0, 1, 0, 0)) + F.pad(gy.abs(), (0, 0, 0, 1))
    activity = _box(grad, 5)
    alpha = 0.0001 * bg + 0.115  # Chou-Li's masking slope grows with background luminance
    t_tex = TEXTURE_GAIN * alpha * activity
    return t_lum + t_tex - 0.3 * torch.minimum(t_lum, t_tex)
