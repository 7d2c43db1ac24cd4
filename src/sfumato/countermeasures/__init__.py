"""Countermeasures: what a scraper can do to an image before training on it.

Published work broke every existing protection with cheap transformations (JPEG, resizing, noise,
blur) or with purification through the generator's own autoencoder (IMPRESS), so sfumato measures
its protections against the same set. Every countermeasure is a plain function on float images
``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1] that returns the same shape, quantised to 8 bits as a
stored file would be; the random ones take a ``seed`` and are deterministic given it. JPEG and WebP
are the real codecs (Pillow), not approximations: the differentiable stand-ins the optimiser uses in
robust mode live in :mod:`sfumato.countermeasures.differentiable`.

``COUNTERMEASURES`` maps a name (``jpeg75``, ``resize0.5``, ``impress``, ...) to a
:class:`Countermeasure`, so an experiment can iterate over all of them::

    for name, cm in COUNTERMEASURES.items():
        y = cm(x, seed=0)
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image

from sfumato.countermeasures.differentiable import (
    ROBUST_RECIPE,
    RobustTransform,
    diff_jpeg,
    jpeg_tables,
)

__all__ = [
    "COUNTERMEASURES",
    "Countermeasure",
    "ROBUST_RECIPE",
    "RobustTransform",
    "ae_roundtrip",
    "apply",
    "diff_jpeg",
    "gaussian_blur",
    "gaussian_noise",
    "high_frequency_energy",
    "impress",
    "jpeg",
    "jpeg_tables",
    "random_crop",
    "reconstruction_error",
    "resize",
    "webp",
]

WeightsDir = str | Path | None
# Images larger than this are run through the autoencoder in overlapping tiles (bounded memory).
AE_DIRECT_PIXELS = 1 << 20
AE_TILE, AE_HALO = 512, 32


# ------------------------------------------------------------------------------------------ helpers


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(3, H, W) or (B, 3, H, W) -> (B, 3, H, W) float, and whether to drop the batch axis again."""
    if x.dim() == 3:
        x = x[None]
        single = True
    elif x.dim() == 4:
        single = False
    else:
        raise ValueError(f"images must be (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"images must have 3 channels, got {tuple(x.shape)}")
    return x.detach().float(), single


def _stored(y: torch.Tensor, single: bool) -> torch.Tensor:
    """Quantise to 8 bits (what a scraper keeps on disk) and restore the caller's shape."""
    y = (y.clamp(0, 1) * 255).round() / 255
    return y[0] if single else y


def _to_pil(img: torch.Tensor) -> Image.Image:
    arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


def _from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def _codec(x: torch.Tensor, fmt: str, **options: Any) -> torch.Tensor:
    """Encode each image with Pillow's real codec and decode it again."""
    xb, single = _as_batch(x)
    out = []
    for img in xb:
        buf = io.BytesIO()
        _to_pil(img).save(buf, format=fmt, **options)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out.append(_from_pil(decoded))
    return _stored(torch.stack(out).to(xb.device), single)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# ------------------------------------------------------------------------------------ countermeasures


def jpeg(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """A real JPEG round trip through Pillow (libjpeg) at ``quality``, with its default 4:2:0 chroma
    subsampling: exactly what ``img.save(f, "JPEG", quality=q)`` in a scraper's pipeline does."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be from 1 to 100, not {quality}")
    return _codec(x, "JPEG", quality=int(quality))


def webp(x: torch.Tensor, quality: int = 80) -> torch.Tensor:
    """A real lossy WebP round trip through Pillow (libwebp) at ``quality`` (80 is Pillow's default)."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"WebP quality must be from 1 to 100, not {quality}")
    return _codec(x, "WEBP", quality=int(quality))


def resize(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Down-and-up resizing: antialiased downscale by ``scale`` (what training at a lower resolution
    does), then bicubic back to the original size so the result lines up with the input."""
    if not 0 < scale <= 1:
        raise ValueError(f"resize scale must be in (0, 1], not {scale}")
    xb, single = _as_batch(x)
    h, w = xb.shape[-2:]
    small = (max(1, round(h * scale)), max(1, round(w * scale)))
    down = kornia.geometry.transform.resize(xb, small, interpolation="bilinear", antialias=True)
    up = kornia.geometry.transform.resize(down.clamp(0, 1), (h, w), interpolation="bicubic")
    return _stored(up, single)


def gaussian_noise(x: torch.Tensor, sigma: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``sigma`` (on [0, 1]); the robust-mimicry
    attack (ICLR 2025) used 0.05 before its upscaler."""
    xb, single = _as_batch(x)
    noise = torch.randn(xb.shape, generator=_generator(seed)).to(xb.device)
    return _stored(xb + sigma * noise, single)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` px (kernel 2*ceil(3 sigma)+1, reflected edges)."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, not {sigma}")
    xb, single = _as_batch(x)
    k = 2 * math.ceil(3 * sigma) + 1
    return _stored(kornia.filters.gaussian_blur2d(xb, (k, k), (sigma, sigma), border_type="reflect"), single)


def crop_box(height: int, width: int, fraction: float, seed: int) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of the seeded random crop keeping ``fraction`` of each side."""
    gen = _generator(seed)
    ch, cw = max(1, round(height * fraction)), max(1, round(width * fraction))
    top = int(torch.randint(0, height - ch + 1, (1,), generator=gen))
    left = int(torch.randint(0, width - cw + 1, (1,), generator=gen))
    return top, left, ch, cw


def random_crop(x: torch.Tensor, fraction: float = 0.9, seed: int = 0) -> torch.Tensor:
    """A random crop keeping ``fraction`` of each side, resized back to the original size (a training
    pipeline's random-resized-crop). The box depends only on the seed and the image size, so the same
    seed crops a same-sized target image identically (benchmarks compare aligned latents)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"crop fraction must be in (0, 1], not {fraction}")
    xb, single = _as_batch(x)
    h, w = xb.shape[-2:]
    top, left, ch, cw = crop_box(h, w, fraction, seed)
    crop = xb[..., top : top + ch, left : left + cw]
    return _stored(kornia.geometry.transform.resize(crop, (h, w), interpolation="bicubic"), single)


def _autoencoder(weights_dir: WeightsDir) -> tuple[torch.nn.Module, torch.nn.Module]:
    from sfumato.encoders import load_decoder, load_encoder

    return load_encoder("flux2", weights_dir), load_decoder("flux2", weights_dir)


def _tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply an image-to-image function whole, or in overlapping tiles (keeping each tile's core) for
    images over ``AE_DIRECT_PIXELS``: the autoencoder's activations at 4096 px would not fit in memory."""
    h, w = x.shape[-2:]
    if h * w <= AE_DIRECT_PIXELS:
        return fn(x)
    out = torch.empty_like(x)
    core = AE_TILE - 2 * AE_HALO
    for top in range(0, h, core):
        for left in range(0, w, core):
            bottom, right = min(top + core, h), min(left + core, w)
            t0, l0 = max(0, top - AE_HALO), max(0, left - AE_HALO)
            t1, l1 = min(h, bottom + AE_HALO), min(w, right + AE_HALO)
            y = fn(x[..., t0:t1, l0:l1])
            out[..., top:bottom, left:right] = y[..., top - t0 : bottom - t0, left - l0 : right - l0]
    return out


def _roundtrip(encoder: torch.nn.Module, decoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """decode(encode(x)) at x's size: reflect-padded to the encoder's multiple, cropped back."""
    from sfumato.encoders.ensemble import pad_to_multiple

    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, getattr(encoder, "multiple", 8))
    return decoder(encoder(xp))[..., :h, :w]


def ae_roundtrip(x: torch.Tensor, weights_dir: WeightsDir = None) -> torch.Tensor:
    """Encode with the tiny FLUX.2 encoder and decode with its decoder: a perturbation the decoder
    cannot reproduce is lost. The price is the autoencoder's own reconstruction error."""
    xb, single = _as_batch(x)
    enc, dec = _autoencoder(weights_dir)
    with torch.no_grad():
        y = _tiled(lambda t: _roundtrip(enc, dec, t), xb)
    return _stored(y, single)


IMPRESS_STEPS = 20
IMPRESS_LR = 0.004
IMPRESS_LAMBDA = 1.0


def impress(
    x: torch.Tensor,
    steps: int = IMPRESS_STEPS,
    lam: float = IMPRESS_LAMBDA,
    lr: float = IMPRESS_LR,
    weights_dir: WeightsDir = None,
) -> torch.Tensor:
    """IMPRESS-style consistency purification (Cao et al. 2023) with a plain squared-error fidelity
    term: find x' minimising ``mean((x' - x)^2) + lam * mean((D(E(x')) - x')^2)`` with ``steps``
    Adam steps of ``lr`` from x' = x, through the tiny FLUX.2 autoencoder. A protective perturbation
    makes the image inconsistent with the autoencoder (it changes the latent but the decoder does
    not draw it back), so pulling the image toward a fixed point of D(E(.)) strips it, at a small
    cost in fidelity. Deterministic (no random start)."""
    xb, single = _as_batch(x)
    enc, dec = _autoencoder(weights_dir)

    def purify_tile(target: torch.Tensor) -> torch.Tensor:
        xp = target.clone().requires_grad_(True)
        opt = torch.optim.Adam([xp], lr=lr)
        for _ in range(steps):
            fidelity = (xp - target).square().mean(dim=(1, 2, 3))
            consistency = (_roundtrip(enc, dec, xp) - xp).square().mean(dim=(1, 2, 3))
            loss = (fidelity + lam * consistency).sum()  # a sum: each image's optimisation is its own
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                xp.clamp_(0, 1)
        return xp.detach()

    with torch.enable_grad():
        y = _tiled(purify_tile, xb)
    return _stored(y, single)


# ------------------------------------------------------------------------------------ detection


def reconstruction_error(x: torch.Tensor, weights_dir: WeightsDir = None) -> torch.Tensor:
    """Per image, the RMS of ``D(E(x)) - x`` through the tiny FLUX.2 autoencoder (0..1 units): a
    statistic a scraper could filter on, since a protective perturbation is, by design, something
    the autoencoder's latent reads but its decoder does not reproduce. Returns shape (B,)."""
    xb, _ = _as_batch(x)
    enc, dec = _autoencoder(weights_dir)
    with torch.no_grad():
        rt = _tiled(lambda t: _roundtrip(enc, dec, t), xb)
    return (rt - xb).square().mean(dim=(1, 2, 3)).sqrt()


def high_frequency_energy(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Per image, the RMS of ``x - blur(x)`` (0..1 units): perturbations add fine-grained energy that
    a simple filter could flag. Returns shape (B,)."""
    xb, _ = _as_batch(x)
    k = 2 * math.ceil(3 * sigma) + 1
    residual = xb - kornia.filters.gaussian_blur2d(xb, (k, k), (sigma, sigma), border_type="reflect")
    return residual.square().mean(dim=(1, 2, 3)).sqrt()


# -------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Countermeasure:
    """A named countermeasure with its settings bound: call it as ``cm(x, seed=0)``.

    ``random``: the result depends on ``seed``. ``geometric``: it moves content (a crop), so latents
    must be compared with the target put through the same countermeasure (same seed) to stay aligned.
    ``autoencoder``: it needs the tiny FLUX.2 weights (``weights_dir``, else the usual lookup).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    random: bool = False
    geometric: bool = False
    autoencoder: bool = False

    def __call__(self, x: torch.Tensor, *, seed: int = 0, weights_dir: WeightsDir = None) -> torch.Tensor:
        kwargs = dict(self.params)
        if self.random:
            kwargs["seed"] = seed
        if self.autoencoder:
            kwargs["weights_dir"] = weights_dir
        return self.fn(x, **kwargs)


def _registry() -> dict[str, Countermeasure]:
    cms = [
        Countermeasure(f"jpeg{q}", jpeg, f"JPEG quality {q} (Pillow)", {"quality": q})
        for q in (95, 85, 75, 50)
    ]
    cms += [
        Countermeasure("webp80", webp, "lossy WebP quality 80 (Pillow)", {"quality": 80}),
        Countermeasure("resize0.5", resize, "downscale to 0.5x, bicubic back up", {"scale": 0.5}),
        Countermeasure("resize0.75", resize, "downscale to 0.75x, bicubic back up", {"scale": 0.75}),
        Countermeasure(
            "noise0.02", gaussian_noise, "Gaussian noise sigma 0.02", {"sigma": 0.02}, random=True
        ),
        Countermeasure(
            "noise0.05", gaussian_noise, "Gaussian noise sigma 0.05", {"sigma": 0.05}, random=True
        ),
        Countermeasure("blur1", gaussian_blur, "Gaussian blur sigma 1 px", {"sigma": 1.0}),
        Countermeasure(
            "crop0.9",
            random_crop,
            "random crop of 0.9 of each side, resized back",
            {"fraction": 0.9},
            random=True,
            geometric=True,
        ),
        Countermeasure("ae_roundtrip", ae_roundtrip, "tiny FLUX.2 encode + decode", autoencoder=True),
        Countermeasure(
            "impress",
            impress,
            f"IMPRESS-style purification, {IMPRESS_STEPS} Adam steps, lambda {IMPRESS_LAMBDA:g}",
            autoencoder=True,
        ),
    ]
    return {cm.name: cm for cm in cms}


COUNTERMEASURES: dict[str, Countermeasure] = _registry()


def check_name(name: str) -> str:
    """``name`` if it is a registered countermeasure, else a ValueError listing the known ones."""
    if name not in COUNTERMEASURES:
        raise ValueError(f"unknown countermeasure {name!r}; choose one of {', '.join(COUNTERMEASURES)}")
    return name


def apply(name: str, x: torch.Tensor, *, seed: int = 0, weights_dir: WeightsDir = None) -> torch.Tensor:
    """Apply the registered countermeasure ``name`` (see ``COUNTERMEASURES``)."""
    return COUNTERMEASURES[check_name(name)](x, seed=seed, weights_dir=weights_dir)
