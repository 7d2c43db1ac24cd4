"""The mimicry experiment's "artists": Van Gogh's paintings, four house styles rendered on photos, photos.

A style-mimicry test needs artists whose style a judge can recognise and a generator can learn, with
enough works to split into a judge's share and a mimic's share. The lab has twenty Van Gogh paintings
(``<shared>/data/vangogh``) and 900 ImageNet photos (``<shared>/data/imagenet-samples``). So besides Van
Gogh, each further artist is a deterministic re-rendering (numpy/scipy, no weights) applied to its own
disjoint set of photos, and plain photographs are a style of their own (what an unlearned style looks
like: the base generator draws photos).

The renderings are chosen to be far from the cloak's built-in target styles (:mod:`sfumato.styles`:
sketch, comic, mosaic, pointillism, neon, woodcut, pixel, blueprint), so that "the generator drew the
cloak's target style" can never be confused with "it drew the artist" (the test is not rigged). Each
:class:`Artist` records its look and why it differs.

Works and splits (all deterministic):

- Van Gogh: the paintings in name order; :data:`VANGOGH_JUDGE` (8, every theme represented: olive groves,
  orchards, sunflowers) are the judge's, the other 12 the mimic's.
- Photo-based artists: the 900 photos in name order, shuffled once with seed 0 and cut into blocks of
  :data:`BLOCK` photos; an artist owns the block numbered in its :class:`Artist` entry. The first
  :data:`MIMICRY_WORKS` photos of a block are the mimic's works, the rest the judge's. The built-in
  target styles (judge classes too) share one more block, :data:`STYLE_BLOCK`.

Every work is brought to a working size (short side ``work_size``, default 128: about twice the 64 px
the generator trains at, as a real artist's 1-2k px uploads are about twice a real model's training
size) and rendered there; the cloak protects the work at that size, and training views are cut from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from scipy import ndimage

from sfumato.styles import (
    STYLE_NAMES,
    _blur,
    _lum,
    _resize,
    _smoothstep,
    _stretch,
    _value_noise,
    render_style,
)

_F32 = np.float32
BLOCK = 100  # photos per photo-based artist (and for the built-in styles' judge class)
MIMICRY_WORKS = 20  # the first photos of a block: the mimic's works; the rest: the judge's
STYLE_BLOCK = 8  # block of photos the built-in target styles are rendered on (judge classes)
VANGOGH_JUDGE = (1, 3, 6, 8, 11, 13, 16, 18)  # painting indices (name order) kept for the judge
WORK_SIZE = 128
VIEW_SIZE = 64
PHOTO = "photo"
VANGOGH = "van-gogh"

Renderer = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# -- the renderings ----------------------------------------------------------------------------------
# Each takes an (H, W, 3) float32 image in [0, 1] and a seeded numpy Generator and returns (H, W, 3).
# Lengths are in units of "one pixel of a 128 px image" (``u``), so a work looks the same at any size.


def _u(img: np.ndarray) -> float:
    return min(img.shape[:2]) / 128.0


def _warp(img: np.ndarray, amount: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Displace pixels along a smooth random field (``amount`` px, features of ``scale`` px)."""
    h, w = img.shape[:2]
    dy = _value_noise(h, w, scale, rng) * amount
    dx = _value_noise(h, w, scale, rng) * amount
    yy, xx = np.meshgrid(np.arange(h, dtype=_F32), np.arange(w, dtype=_F32), indexing="ij")
    coords = [yy + dy, xx + dx]
    return np.stack(
        [ndimage.map_coordinates(img[..., c], coords, order=1, mode="reflect") for c in range(3)], -1
    ).astype(_F32)


def _watercolour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft, pale, bleeding washes on white rag paper: no lines at all, pigment pooling at the edges
    of each wash, granulation, and the paper showing through the lightest areas."""
    u = _u(img)
    h, w = img.shape[:2]
    colour = _blur(img, 1.6 * u)
    colour = _warp(colour, 2.5 * u, 10 * u, rng)  # wet-in-wet bleeding
    lum = _lum(colour)
    mean = lum[..., None]
    colour = np.clip(mean + (colour - mean) * 1.35, 0, 1)  # transparent pigments stay saturated
    density = 1.0 - colour  # pigment density per channel, thinned: washes are pale
    density *= 0.5
    # edge darkening: pigment pools where the wash's density changes
    g = _blur(_lum(density), 1.2 * u)
    edge = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)).astype(_F32)
    edge = _smoothstep(0.02, 0.18, edge)[..., None]
    density = density * (1.0 + 0.9 * edge)
    # granulation and paper texture
    grain = _blur(rng.standard_normal((h, w)).astype(_F32), 0.7 * u)
    blotch = _value_noise(h, w, 6 * u, rng)
    density = density * (1.0 + 0.25 * grain[..., None] + 0.2 * blotch[..., None])
    paper = _smoothstep(0.12, 0.02, _lum(density))[..., None]  # light areas: bare paper
    density = density * (1.0 - paper)
    paper_colour = np.array([0.985, 0.975, 0.955], _F32)
    return np.clip(paper_colour * (1.0 - density), 0, 1).astype(_F32)


_RISO_PAPER = np.array([0.96, 0.93, 0.86], _F32)
_RISO_PINK = np.array([1.0, 0.28, 0.53], _F32)  # fluorescent pink
_RISO_TEAL = np.array([0.0, 0.47, 0.60], _F32)  # teal


def _riso(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A two-ink risograph print: fluorescent pink and teal on cream, a coarse random grain instead of
    continuous tone, the two drums slightly out of register. No black ink, no outlines."""
    u = _u(img)
    h, w = img.shape[:2]
    x = _stretch(_lum(img))
    warm = img[..., 0] - img[..., 2]
    dark = 1.0 - x
    pink = np.clip(dark * (0.55 + 1.4 * warm) + 0.08, 0, 1)
    teal = np.clip(dark * (0.75 - 1.2 * warm), 0, 1)

    def screen(density: np.ndarray) -> np.ndarray:
        noise = _blur(rng.random((h, w)).astype(_F32), 0.55 * u)
        noise = (noise - noise.min()) / max(1e-6, float(noise.max() - noise.min()))
        return _smoothstep(-0.06, 0.06, density - noise)

    shift = max(1, round(1.5 * u))
    pink_ink = np.roll(screen(pink), (shift, -shift), axis=(0, 1))[..., None]
    teal_ink = screen(teal)[..., None]
    out = _RISO_PAPER * (1 - pink_ink * (1 - _RISO_PINK)) * (1 - teal_ink * (1 - _RISO_TEAL))
    return np.clip(out, 0, 1).astype(_F32)


_TENEBRIST_RAMP = np.array(
    [[0.03, 0.02, 0.015], [0.20, 0.10, 0.05], [0.55, 0.33, 0.14], [0.86, 0.68, 0.40], [1.0, 0.93, 0.74]],
    _F32,
)


def _tenebrist(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chiaroscuro oil painting: most of the picture sunk in warm brown darkness, one spot-lit area in
    ochre and cream, a heavy vignette and a yellowed varnish, on a faint canvas weave."""
    u = _u(img)
    h, w = img.shape[:2]
    x = _stretch(_lum(_blur(img, 0.8 * u)))
    x = np.clip(x + 0.8 * (x - _blur(x, 8 * u)), 0, 1)  # local contrast: modelled forms
    yy, xx = np.meshgrid(np.linspace(-1, 1, h, dtype=_F32), np.linspace(-1, 1, w, dtype=_F32), indexing="ij")
    cy, cx = rng.uniform(-0.25, 0.1), rng.uniform(-0.25, 0.25)  # where the light falls
    light = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.55).astype(_F32)
    x = np.clip(x**1.7 * (0.25 + 0.95 * light), 0, 1)
    pos = x * (len(_TENEBRIST_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_TENEBRIST_RAMP) - 2)
    t = (pos - lo)[..., None]
    out = _TENEBRIST_RAMP[lo] * (1 - t) + _TENEBRIST_RAMP[lo + 1] * t
    hue = img - _lum(img)[..., None]  # a trace of the subject's own colour in the lights
    out = out + 0.25 * hue * x[..., None]
    weave = (
        np.sin(np.arange(w, dtype=_F32) * (2 * np.pi / max(2.0, 2.5 * u)))[None, :]
        * np.sin(np.arange(h, dtype=_F32) * (2 * np.pi / max(2.0, 2.5 * u)))[:, None]
    )
    out = out * (1.0 + 0.05 * weave[..., None])
    return np.clip(out, 0, 1).astype(_F32)


_UKIYOE_PALETTE = np.array(
    [
        [0.93, 0.88, 0.76],  # unprinted paper
        [0.83, 0.70, 0.45],  # ochre
        [0.80, 0.33, 0.22],  # vermilion
        [0.52, 0.60, 0.43],  # sage green
        [0.44, 0.58, 0.68],  # pale Prussian blue
        [0.16, 0.26, 0.42],  # indigo
        [0.17, 0.15, 0.14],  # sumi ink
    ],
    _F32,
)


def _ukiyoe(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Japanese woodblock print: flat areas in a fixed palette of muted traditional pigments on
    beige paper, thin indigo key-block lines, an indigo gradient (bokashi) along the top edge, and the
    wood grain showing faintly in the flat areas."""
    u = _u(img)
    h, w = img.shape[:2]
    smooth = ndimage.median_filter(img, size=(max(3, round(3 * u) | 1),) * 2 + (1,))
    smooth = _blur(smooth, 0.8 * u)
    lum = _stretch(_lum(smooth))
    chroma = smooth - _lum(smooth)[..., None]
    probe = np.clip(lum[..., None] + 1.6 * chroma, 0, 1)  # match on boosted colour, stretched light
    pal = _UKIYOE_PALETTE
    d = ((probe[..., None, :] - pal) ** 2).sum(-1)
    out = pal[d.argmin(-1)]
    # bokashi: the sky fades to indigo toward the top edge
    ramp = _smoothstep(0.3, 0.0, np.linspace(0, 1, h, dtype=_F32))[:, None, None] * 0.75
    out = out * (1 - ramp) + pal[5] * ramp
    # wood grain in the flat areas
    grain = _value_noise(h, w, 1.5 * u, rng)
    stretched = _resize(_value_noise(h, max(2, w // 8), 1.2 * u, rng), h, w)
    out = out * (1.0 + 0.035 * grain[..., None] + 0.04 * stretched[..., None])
    # key-block lines: thin, indigo-black, on the dark side of edges
    g1, g2 = _blur(lum, 0.7 * u), _blur(lum, 1.3 * u)
    line = _smoothstep(0.015, 0.06, g2 - g1)[..., None]
    ink = np.array([0.12, 0.14, 0.22], _F32)
    out = out * (1 - line) + ink * line
    return np.clip(out, 0, 1).astype(_F32)


@dataclass(frozen=True)
class Artist:
    """One artist: where its works come from, what its style looks like, why it is not a cloak style."""

    key: str  # folder and class name
    name: str  # as captioned: "a painting by <name>"
    block: int | None  # its photo block (None: Van Gogh's paintings)
    look: str
    why_distinct: str
    render: Renderer | None = None  # None: the works are used as they are


ARTISTS: dict[str, Artist] = {
    a.key: a
    for a in (
        Artist(
            VANGOGH,
            "van gogh",
            None,
            "Van Gogh's orchards, olive groves and sunflowers (1888-89): thick directional strokes, "
            "saturated yellows, greens and blues.",
            "Real paintings, not a rendering.",
        ),
        Artist(
            "watercolour",
            "lise morel",
            1,
            "Pale, soft watercolour washes bleeding into each other on white paper; darker pigment "
            "pooled at the edges of each wash, granulation, no lines.",
            "Every built-in style is hard-edged (lines, cells, dots, blocks); this one has no edge, no "
            "line and no dot, and is paler than all of them.",
            _watercolour,
        ),
        Artist(
            "riso",
            "kit varga",
            2,
            "Two-ink risograph: fluorescent pink and teal grain on cream paper, slightly out of register.",
            "Only two fixed inks and no black: comic keeps the photo's colours with black outlines and a "
            "regular halftone; pointillism dabs many colours; blueprint is one blue with white lines.",
            _riso,
        ),
        Artist(
            "tenebrist",
            "tomas reyna",
            3,
            "Chiaroscuro oil: warm brown darkness, one spot-lit area in ochre and cream, vignette, "
            "yellowed varnish, canvas weave.",
            "Continuous tone in a dark warm ramp: the built-in styles are light (sketch, pointillism, "
            "comic, mosaic, pixel), cool (blueprint) or lines on black (neon, woodcut).",
            _tenebrist,
        ),
        Artist(
            "ukiyo-e",
            "hana aoki",
            4,
            "Woodblock print: flat areas in seven muted traditional pigments on beige paper, thin indigo "
            "key lines, an indigo gradient along the top, faint wood grain.",
            "A fixed muted palette with thin indigo lines: comic posterises the photo's own bright "
            "colours with bold black lines and halftone dots; woodcut is black and white; mosaic has "
            "cells in dark leading.",
            _ukiyoe,
        ),
        Artist(
            PHOTO,
            "a photographer",
            0,
            "Plain photographs: what the base generator draws, and what an unlearned style looks like.",
            "Not a rendering.",
        ),
    )
}

#: The artists the mimicry experiment fine-tunes on by default (photos are a judge class only).
MIMICRY_ARTISTS: tuple[str, ...] = tuple(k for k in ARTISTS if k != PHOTO)
#: The style judge's classes: every artist, photos, and every built-in target style of the cloak.
JUDGE_CLASSES: tuple[str, ...] = (*ARTISTS, *STYLE_NAMES)


def render_artist(key: str, image: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``image`` (3, H, W) float in [0, 1] in the style of artist ``key`` (deterministic in ``seed``)."""
    artist = ARTISTS[key]
    if artist.render is None:
        return image
    arr = np.ascontiguousarray(image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy())
    out = artist.render(arr, np.random.default_rng(seed))
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).clamp(0, 1)


# -- works -------------------------------------------------------------------------------------------


def _folder(shared: str | Path | None, name: str) -> Path:
    import os

    root = Path(shared or os.environ.get("SFUMATO_SHARED", "../shared"))
    path = root / "data" / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} not found; pass --shared DIR (the folder holding data/{name}) or set SFUMATO_SHARED"
        )
    return path


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def photo_files(shared: str | Path | None = None) -> list[Path]:
    """The ImageNet photos in the fixed shuffled order whose blocks the artists own."""
    files = _files(_folder(shared, "imagenet-samples"), (".jpg", ".jpeg", ".png"))
    order = np.random.default_rng(0).permutation(len(files))
    return [files[i] for i in order]


def painting_files(shared: str | Path | None = None) -> list[Path]:
    return _files(_folder(shared, "vangogh"), (".png", ".jpg", ".jpeg"))


def to_work_size(image: Image.Image, work_size: int) -> torch.Tensor:
    """A PIL image -> uint8 (3, H, W) with short side ``work_size`` (bicubic, antialiased)."""
    rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[-2:]
    scale = work_size / min(h, w)
    size = (max(work_size, round(h * scale)), max(work_size, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return (x[0] * 255).round().to(torch.uint8)


def stable_seed(*parts: object) -> int:
    """A seed from names (not Python's salted ``hash``): the same on every machine and run."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


@dataclass
class Works:
    """One class's works at working size: uint8 (3, H, W) each (sizes differ), with source names."""

    key: str
    images: list[torch.Tensor]
    names: list[str]


def work_files(key: str, part: str, shared: str | Path | None = None, limit: int | None = None) -> list[Path]:
    """The files of the ``part`` ("judge" or "mimicry") works of an artist or built-in style ``key``.

    Built-in styles (judge classes only) share :data:`STYLE_BLOCK`. ``limit`` takes the first only.
    """
    if part not in ("judge", "mimicry"):
        raise ValueError(f"part must be 'judge' or 'mimicry', not {part!r}")
    if key in STYLE_NAMES:
        if part != "judge":
            raise ValueError(f"{key!r} is a cloak target style, a judge class only")
        return photo_files(shared)[STYLE_BLOCK * BLOCK : (STYLE_BLOCK + 1) * BLOCK][:limit]
    if key == VANGOGH:
        paintings = painting_files(shared)
        picked = [i for i in range(len(paintings)) if (i in VANGOGH_JUDGE) == (part == "judge")]
        return [paintings[i] for i in picked][:limit]
    if key in ARTISTS:
        b = ARTISTS[key].block
        assert b is not None
        block = photo_files(shared)[b * BLOCK : (b + 1) * BLOCK]
        return (block[:MIMICRY_WORKS] if part == "mimicry" else block[MIMICRY_WORKS:])[:limit]
    raise ValueError(f"unknown artist or style {key!r}; known: {', '.join(JUDGE_CLASSES)}")


def works(
    key: str,
    part: str,
    shared: str | Path | None = None,
    *,
    work_size: int = WORK_SIZE,
    limit: int | None = None,
) -> Works:
    """The ``part`` works of ``key`` (:func:`work_files`) at the working size, rendered in its style.

    Built-in styles are rendered with seed 0, as the cloak renders its targets; each artist's work
    with a seed of its own (from the artist and the file name).
    """
    files = work_files(key, part, shared, limit)
    images = []
    for path in files:
        with Image.open(path) as img:
            x = to_work_size(img, work_size)
        if key in STYLE_NAMES:
            x = (render_style(key, x.float() / 255, seed=0) * 255).round().to(torch.uint8)
        elif ARTISTS[key].render is not None:
            y = render_artist(key, x.float() / 255, seed=stable_seed(key, path.name))
            x = (y * 255).round().to(torch.uint8)
        images.append(x)
    return Works(key, images, [p.name for p in files])


def cut_views(
    work: torch.Tensor,
    n: int,
    seed: int,
    *,
    size: int = VIEW_SIZE,
    scale: tuple[float, float] = (0.5, 1.0),
) -> torch.Tensor:
    """``n`` square training views (uint8 (n, 3, size, size)) of a work: random crops whose side is a
    random ``scale`` of its short side, at random positions, half of them mirrored, resized to ``size``.

    The crops depend only on ``seed``, ``n`` and the work's shape, never on its pixels, so a work and
    its cloaked copy give the same views (conditions differ by the cloak alone).
    """
    _, h, w = work.shape
    rng = np.random.default_rng(seed)
    x = work.float()[None] / 255
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    for k in range(n):
        side = max(8, round(rng.uniform(*scale) * min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = x[..., top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crop = F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out[k] = (crop[0].clamp(0, 1) * 255).round().to(torch.uint8)
    return out


def spread(total: int, n: int) -> list[int]:
    """``total`` split over ``n`` works as evenly as possible (the first works take the remainder)."""
    return [total // n + (1 if k < total % n else 0) for k in range(n)] if n else []


def views_of(
    key: str,
    images: Sequence[torch.Tensor],
    total: int,
    *,
    size: int = VIEW_SIZE,
    scale: tuple[float, float] = (0.5, 1.0),
    salt: str = "",
) -> torch.Tensor:
    """``total`` views spread evenly over ``images`` (work ``k`` seeded by (key, salt, k))."""
    if not images:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8)
    per = spread(total, len(images))
    parts = [
        cut_views(img, m, stable_seed(key, salt, k), size=size, scale=scale)
        for k, (img, m) in enumerate(zip(images, per, strict=True))
        if m
    ]
    return torch.cat(parts)
