"""What the latents are pulled toward: anchors for ``shade``, restyled renderings for ``cloak``."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from sfumato.encoders import ImageEncoder
from sfumato.encoders.ensemble import pad_to_multiple
from sfumato.encoders.tiny import TinyDecoder
from sfumato.imageio import as_8bit
from sfumato.optimise import latent_distance
from sfumato.styles import STYLE_NAMES, render_style

AUTO_QUANTILE = 2 / 3  # Glaze picks a target style at a middling-to-far feature distance
WORKING_SIDE = 512  # long side at which style choice and latent style transfer are computed


def _cover(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``image`` resized to cover ``height`` x ``width``, centre-cropped (a view of the resized copy)."""
    h, w = image.shape[-2:]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    resized = F.interpolate(image, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return resized[..., top : top + height, left : left + width]


def fit_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize (1, 3, h, w) to cover ``height`` x ``width`` and centre-crop: no distortion, no bars."""
    return _cover(image, height, width).clamp(0, 1)


def fit_to_8bit(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`fit_to` rounded to 8 bits (uint8), as an anchor is kept for a large image: the resized
    floats are clamped and rounded where they lie, so one float copy exists, not three."""
    return as_8bit(_cover(image, height, width), in_place=True)


def choose_anchor(
    size: tuple[int, int], candidates: Sequence[tuple[Path, tuple[int, int]]], key: str
) -> Path:
    """Pick the target image for a source of ``size`` (w, h): the closest aspect ratios first
    (least cropping), then a stable hash of ``key`` so different sources spread over the anchors."""
    if not candidates:
        raise ValueError("no target images to choose an anchor from")
    aspect = size[0] / size[1]

    def mismatch(c: tuple[Path, tuple[int, int]]) -> float:
        w, h = c[1]
        return abs(torch.log(torch.tensor(aspect * h / w)).item())

    best = min(mismatch(c) for c in candidates)
    close = sorted([c for c in candidates if mismatch(c) <= best + 0.1], key=lambda c: str(c[0]))
    digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
    return close[digest % len(close)][0]


def _working_copy(x: torch.Tensor, side: int = WORKING_SIDE) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return x
    size = (max(32, round(h * scale)), max(32, round(w * scale)))
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


@torch.no_grad()
def style_distances(x: torch.Tensor, encoder: ImageEncoder, seed: int = 0) -> dict[str, float]:
    """Latent distance from the artwork to each built-in style's rendering of it."""
    small = _working_copy(x)
    z = encoder(pad_to_multiple(small, encoder.multiple))
    return {
        name: latent_distance(encoder(pad_to_multiple(render_style(name, small, seed), encoder.multiple)), z)
        for name in STYLE_NAMES
    }


def auto_style(x: torch.Tensor, encoder: ImageEncoder, seed: int = 0) -> tuple[str, dict[str, float]]:
    """The built-in style at a middling-to-far latent distance from the artwork (as Glaze chooses):
    far enough that mimicry learns a clearly wrong look, not so far that the target is unreachable."""
    distances = style_distances(x, encoder, seed)
    ranked = sorted(distances, key=distances.__getitem__)
    return ranked[round(AUTO_QUANTILE * (len(ranked) - 1))], distances


def set_style(per_work: Sequence[dict[str, float]]) -> tuple[str, dict[str, float]]:
    """One built-in style for a whole set of works (as Glaze keeps one target per artist): the style
    whose median rank over the works lies closest to :data:`AUTO_QUANTILE` of the way from nearest to
    farthest, i.e. the one at a middling-to-far distance for most works. Ties go to the style that
    more works would have chosen alone, then to the name. Returns the style and each style's median rank.

    A mimic trained on the set then sees one wrong target, not a different one per work. With one work
    this is that work's own :func:`auto_style` choice.
    """
    if not per_work:
        raise ValueError("no works to choose a style for")
    names = list(per_work[0])
    ranks: dict[str, list[float]] = {name: [] for name in names}
    votes = dict.fromkeys(names, 0)
    for distances in per_work:
        ordered = sorted(distances, key=distances.__getitem__)
        for position, name in enumerate(ordered):
            ranks[name].append(position / max(1, len(ordered) - 1))
        votes[ordered[round(AUTO_QUANTILE * (len(ordered) - 1))]] += 1
    medians = {name: round(statistics.median(r), 4) for name, r in ranks.items()}
    chosen = min(names, key=lambda n: (round(abs(medians[n] - AUTO_QUANTILE), 6), -votes[n], n))
    return chosen, medians


@torch.no_grad()
def latent_style_transfer(
    x: torch.Tensor, reference: torch.Tensor, encoder: ImageEncoder, decoder: TinyDecoder
) -> torch.Tensor:
    """Re-render ``x`` in the look of ``reference``: match per-channel latent mean and spread (AdaIN
    in the autoencoder's latent space), then decode. Computed at ``WORKING_SIDE`` and upscaled."""
    small = _working_copy(x)
    z = encoder(pad_to_multiple(small, encoder.multiple))
    zr = encoder(pad_to_multiple(_working_copy(reference), encoder.multiple))
    mu, sd = z.mean((2, 3), keepdim=True), z.std((2, 3), keepdim=True).clamp_min(1e-5)
    mu_r, sd_r = zr.mean((2, 3), keepdim=True), zr.std((2, 3), keepdim=True)
    styled = decoder((z - mu) / sd * sd_r + mu_r)[..., : small.shape[-2], : small.shape[-1]]
    return F.interpolate(styled, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


def style_target(x: torch.Tensor, style: str, seed: int = 0) -> torch.Tensor:
    """A built-in style rendering of ``x`` at full size."""
    if style not in STYLE_NAMES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLE_NAMES)}, or 'auto'")
    return render_style(style, x, seed)
