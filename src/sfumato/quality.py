"""What a person may notice: image-quality figures for a protected image against its original."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import kornia
import torch
import torch.nn.functional as F

from sfumato.imageio import as_unit

FLAT_STD = 3.0 / 255  # local luminance spread below which a region reads as flat colour or a smooth gradient
FLAT_WINDOW = 9
_BAND = 1 << 18  # pixels per band of rows, so SSIM and flatness stay in bounded memory at any size


def band_rows(width: int, pixels: int) -> int:
    """Rows per band so that a band holds about ``pixels`` pixels whatever the width (at least 16)."""
    return max(16, pixels // max(1, width))


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of (B, 3, H, W) RGB, as (B, 1, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def local_std(y: torch.Tensor, window: int) -> torch.Tensor:
    """Standard deviation of ``y`` (B, 1, H, W) over a square window, same size as ``y``."""
    pad = window // 2
    yp = F.pad(y, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(yp, window, stride=1)
    mean_sq = F.avg_pool2d(yp * yp, window, stride=1)
    return (mean_sq - mean * mean).clamp_min(0).sqrt()


def flat_mask(rgb: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, H, W): pixels in flat or smoothly graded regions, where changes show most."""
    return local_std(luminance(rgb), FLAT_WINDOW) < FLAT_STD


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> float:
    """Mean SSIM over valid windows, computed in row bands so a 4096 px image fits in memory."""
    h = a.shape[-2]
    halo = window // 2
    total, count = 0.0, 0
    rows = band_rows(a.shape[-1], _BAND)
    for top in range(halo, h - halo, rows):
        bottom = min(top + rows, h - halo)  # centre rows [top, bottom) of this band
        m = kornia.metrics.ssim(
            as_unit(a[..., top - halo : bottom + halo, :]),
            as_unit(b[..., top - halo : bottom + halo, :]),
            window,
            padding="valid",
        )
        total += float(m.sum())
        count += m.numel()
    return total / max(count, 1)


@dataclass
class Quality:
    """Per-image visibility figures (changes in 0..255 units)."""

    psnr_db: float
    ssim: float
    max_change: float
    mean_change: float
    flat_fraction: float
    flat_mean_change: float
    textured_mean_change: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def measure_quality(original: torch.Tensor, protected: torch.Tensor) -> Quality:
    """Compare two (3, H, W) or (1, 3, H, W) images in [0, 1] (or 8-bit: see :func:`as_unit`).

    Computed in row bands (with the flatness window's halo), so the memory it needs does not grow with
    the image: a 12 MP image once took 0.8 GB here in whole-image temporaries.
    """
    a = original.reshape(1, *original.shape[-3:])
    b = protected.reshape(1, *protected.shape[-3:])
    h, w = a.shape[-2:]
    halo = FLAT_WINDOW // 2
    squared, max_change, total = 0.0, 0.0, 0.0
    n_flat, flat_total = 0, 0.0
    rows = band_rows(w, _BAND)
    for top in range(0, h, rows):
        bottom = min(top + rows, h)
        t0, t1 = max(0, top - halo), min(h, bottom + halo)
        diff = (as_unit(b[..., top:bottom, :]) - as_unit(a[..., top:bottom, :])).abs()
        squared += float(diff.double().square().sum())
        max_change = max(max_change, float(diff.max()))
        per_pixel = diff.mean(1, keepdim=True) * 255
        total += float(per_pixel.double().sum())
        flat = flat_mask(as_unit(a[..., t0:t1, :]))[..., top - t0 : top - t0 + (bottom - top), :]
        n_flat += int(flat.sum())
        flat_total += float(per_pixel[flat].double().sum())
    n = h * w
    mse = squared / (3 * n)
    psnr = 10 * math.log10(1 / mse) if mse > 0 else float("inf")
    n_tex = n - n_flat
    return Quality(
        psnr_db=psnr,
        ssim=ssim(a, b),
        max_change=max_change * 255,
        mean_change=total / n,
        flat_fraction=n_flat / n,
        flat_mean_change=flat_total / n_flat if n_flat else 0.0,
        textured_mean_change=(total - flat_total) / n_tex if n_tex else 0.0,
    )
