"""Built-in target styles: deterministic, weight-free re-renderings of a picture.

Each style turns an image into the *same picture* drawn in a clearly different look (pencil sketch,
comic, stained glass, ...).  They serve as the targets that protection pulls an artwork's latents
toward, so they must be deterministic, fast, and work at any size.

Conventions
-----------
* Input: tensor (B, 3, H, W) or (3, H, W), floats in [0, 1] or 8-bit; output has the same shape and
  device, floats in [0, 1] for a float image and 8 bits for an 8-bit one.
* Scale awareness: every length (blur radius, cell size, line width, dot size) is expressed relative
  to the short side of the image, so the look is the same at 256 px and at 2048 px.  ``_unit`` below
  is the short side divided by 512, i.e. "one pixel of a 512 px image".
* Determinism: all randomness comes from ``numpy.random.default_rng(seed)``; no global RNG is used
  and no floating-point reduction depends on the thread count.
* Memory flat in the image size: a style first *prepares* what needs the whole picture (contrast
  percentiles, palettes, broad blurs, glows, cell and dot layouts, all on an analysis copy of at most
  768 px on the short side, or on small grids), then *renders* horizontal bands of about a megapixel,
  each read with a halo of rows as wide as its local filters reach.  A large image thus never exists
  whole as floats: a 10 MP picture needs 2-8 MB more per megapixel than a 2.6 MP one, where it needed
  28-60 rendered whole.  A picture whose short side is at most 768 px renders as it did whole (within
  one 8-bit level).  The band height changes nothing but blurs wider than 8 px, done on a reduced copy
  of each band: more than 2 levels on at most 0.1 % of a 10 MP picture's pixels (woodcut's gouges).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from sfumato.imageio import as_8bit

__all__ = ["STYLE_DESCRIPTIONS", "STYLE_NAMES", "render_style"]

_F32 = np.float32
_CHUNK_PIXELS = 1 << 20  # pixels per row chunk in the chunked loops (bounds temporary memory)
_BAND_PIXELS = 1 << 20  # pixels per rendered band, halo not counted
_ANALYSIS = 768  # short side of the analysis copy that whole-picture decisions are made on


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def _unit(h: int, w: int) -> float:
    """Length of 'one pixel at 512 px': every size parameter is a multiple of this."""
    return min(h, w) / 512.0


def _lum(rgb: np.ndarray) -> np.ndarray:
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(_F32)


def _smoothstep(e0, e1, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (``e1 < e0`` gives a falling step)."""
    d = np.asarray(e1 - e0, dtype=_F32)
    d = np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)
    t = np.clip((x - e0) / d, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(_F32)


def _stretch_range(x: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> tuple[float, float]:
    """The values that a contrast stretch maps to 0 and 1: the given percentiles of a strided sample
    (widened to a unit range around their middle for a nearly flat image)."""
    step = max(1, int(math.sqrt(x.size / 65536)))
    lo, hi = (float(v) for v in np.percentile(x[::step, ::step], [lo_pct, hi_pct]))
    if hi - lo < 0.05:
        mid = 0.5 * (hi + lo)
        lo, hi = mid - 0.5, mid + 0.5
    return lo, hi


def _apply_stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(_F32)


def _stretch(x: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Contrast-stretch so the given percentiles map to 0 and 1 (robust to flat images)."""
    return _apply_stretch(x, *_stretch_range(x, lo_pct, hi_pct))


def _saturate(rgb: np.ndarray, factor: float) -> np.ndarray:
    lum = _lum(rgb)[..., None]
    return np.clip(lum + (rgb - lum) * factor, 0.0, 1.0).astype(_F32)


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of an (H, W) or (H, W, C) float32 array."""
    if x.shape[:2] == (h, w):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    shrink = h < x.shape[0] or w < x.shape[1]
    with torch.no_grad():
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    out = t[0, 0] if x.ndim == 2 else t[0].permute(1, 2, 0)
    return np.ascontiguousarray(out.numpy(), dtype=_F32)


def _source_index(n_in: int, n_out: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling positions of output pixels ``start:stop`` of ``n_out`` in ``n_in`` input
    pixels (half-pixel centres, as ``F.interpolate(align_corners=False)``): lower, upper, weight."""
    pos = np.maximum((np.arange(start, stop, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lower = np.minimum(pos.astype(np.int64), n_in - 1)
    return lower, np.minimum(lower + 1, n_in - 1), (pos - lower).astype(_F32)


def _rows_of_resized(small: np.ndarray, h: int, w: int, top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of ``small`` enlarged bilinearly to (h, w), without enlarging the rest."""
    if small.shape[:2] == (h, w):
        return small[top:bottom]
    y0, y1, ty = _source_index(small.shape[0], h, top, bottom)
    x0, x1, tx = _source_index(small.shape[1], w, 0, w)
    extra = (None,) * (small.ndim - 2)
    ty, tx = ty[(slice(None), None, *extra)], tx[(slice(None), *extra)]
    rows = small[y0] * (1.0 - ty) + small[y1] * ty
    return (rows[:, x0] * (1.0 - tx) + rows[:, x1] * tx).astype(_F32)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the two spatial axes; large radii are done on a reduced copy."""
    if sigma < 0.3:
        return x
    h, w = x.shape[:2]
    factor = int(sigma // 4)
    if factor >= 2 and min(h, w) // factor >= 8:
        hs, ws = max(1, round(h / factor)), max(1, round(w / factor))
        small = _blur(_resize(x, hs, ws), sigma / factor)
        return _resize(small, h, w)
    return ndimage.gaussian_filter(x, sigma, axes=(0, 1), mode="reflect", truncate=3.0).astype(_F32)


def _reach(*chains: float) -> int:
    """Rows of halo a band needs so that chains of blurs (each the sum of its sigmas) see what they would
    see in the whole image: three sigmas (the filters' truncation), and the reduced-copy path's margin."""
    longest = max(chains, default=0.0)
    return 0 if longest <= 0 else math.ceil(3.5 * longest + longest / 2) + 8


def _noise_grid(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """The random grid of a smooth field with features of size ``scale`` pixels (see ``_Band.noise``)."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    return rng.standard_normal((gh, gw)).astype(_F32)


def _value_noise(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1] with features of size ``scale`` pixels, whole."""
    return np.clip(_resize(_noise_grid(h, w, scale, rng), h, w) * 0.7, -1.0, 1.0).astype(_F32)


class _NoiseRows:
    """The rows of ``rng.standard_normal((h, w))``, drawn as bands moving down the picture ask for them
    (a band may re-read the previous band's last rows: its halo), so that every band sees the values the
    whole array would hold without the array ever existing whole."""

    def __init__(self, rng: np.random.Generator, w: int) -> None:
        self.rng, self.w, self.top = rng, w, 0
        self.held = np.empty((0, w), _F32)

    def rows(self, top: int, bottom: int) -> np.ndarray:
        if top < self.top:
            raise ValueError("bands must move down the picture")
        held = self.held[top - self.top :]
        missing = bottom - top - held.shape[0]
        if missing > 0:
            held = np.concatenate([held, self.rng.standard_normal((missing, self.w), dtype=_F32)])
        self.top, self.held = top, held
        return held[: bottom - top]


def _hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value colour for hue in [0, 1)."""
    k = (np.stack([hue, hue + 2.0 / 3.0, hue + 1.0 / 3.0], axis=-1) * 6.0) % 6.0
    return np.clip(np.abs(k - 3.0) - 1.0, 0.0, 1.0).astype(_F32)


def _row_chunks(h: int, w: int, pixels: int = _CHUNK_PIXELS, start: int = 0) -> Iterator[tuple[int, int]]:
    rows = max(1, pixels // max(w, 1))
    for y0 in range(start, h, rows):
        yield y0, min(h, y0 + rows)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12) -> np.ndarray:
    """Plain k-means with k-means++ seeding on a (N, 3) float32 sample; returns (k', 3) centres."""
    n = points.shape[0]
    k = min(k, n)
    centres = [points[rng.integers(n)]]
    d2 = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 1e-12:
            break
        idx = int(np.searchsorted(np.cumsum(d2, dtype=np.float64), rng.random() * total))
        centres.append(points[min(idx, n - 1)])
        d2 = np.minimum(d2, ((points - centres[-1]) ** 2).sum(1))
    c = np.stack(centres).astype(_F32)
    for _ in range(iters):
        labels = _nearest_centre(points, c)
        counts = np.bincount(labels, minlength=len(c)).astype(_F32)
        for ch in range(3):
            sums = np.bincount(labels, weights=points[:, ch], minlength=len(c)).astype(_F32)
            c[:, ch] = np.where(counts > 0, sums / np.maximum(counts, 1), c[:, ch])
    return c


def _nearest_centre(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each row of ``points`` (..., 3); deterministic loop over k."""
    best = np.full(points.shape[:-1], np.inf, _F32)
    labels = np.zeros(points.shape[:-1], np.int32)
    for j, c in enumerate(centres):
        d = (points[..., 0] - c[0]) ** 2 + (points[..., 1] - c[1]) ** 2 + (points[..., 2] - c[2]) ** 2
        closer = d < best
        best = np.where(closer, d, best)
        labels[closer] = j
    return labels


def _quantise(img: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Replace every pixel by its nearest palette colour (row-chunked)."""
    h, w = img.shape[:2]
    out = np.empty_like(img)
    for y0, y1 in _row_chunks(h, w):
        out[y0:y1] = centres[_nearest_centre(img[y0:y1], centres)]
    return out


def _sample_pixels(img: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    flat = img.reshape(-1, 3)
    if flat.shape[0] <= n:
        return flat.copy()
    return flat[np.sort(rng.choice(flat.shape[0], n, replace=False))]


def _dog_lines(lum: np.ndarray, sigma: float, lo: float, hi: float) -> np.ndarray:
    """Soft line map (1 = line) on the dark side of edges: difference of Gaussians, thresholded."""
    g1 = _blur(lum, sigma)
    g2 = _blur(lum, sigma * 1.6)
    return _smoothstep(lo, hi, g2 - g1)


def _analysis_size(h: int, w: int, cap: int) -> tuple[int, int]:
    short = min(h, w)
    if short <= cap:
        return h, w
    f = cap / short
    return max(1, round(h * f)), max(1, round(w * f))


def _line_soft(analysis: np.ndarray, width: float, lo: float, hi: float) -> np.ndarray:
    """Soft outline map (1 = ink) of the analysis copy: a DoG of its stretched luminance; ``width`` is in
    512-px units. ``_Band.lines`` enlarges it and re-thresholds it so lines stay crisp at any size."""
    lum = _stretch(_lum(analysis))
    sigma = max(0.6, width * _unit(*analysis.shape[:2]))
    return _dog_lines(lum, sigma, lo, hi)


# ----------------------------------------------------------------------------------------------
# the picture, read in bands
# ----------------------------------------------------------------------------------------------


class _Source:
    """The picture being rendered, read a band of rows at a time as float32 (rows, W, 3) in [0, 1]."""

    def __init__(self, item: torch.Tensor) -> None:
        self.item = item  # (3, H, W), floats or 8 bits
        self.h, self.w = int(item.shape[1]), int(item.shape[2])
        self._analysis: np.ndarray | None = None

    def read(self, top: int, bottom: int) -> np.ndarray:
        part = self.item[:, top:bottom].cpu().permute(1, 2, 0)
        arr = np.empty((bottom - top, self.w, 3), _F32)
        if part.dtype == torch.uint8:
            np.copyto(arr, part.numpy())
            np.divide(arr, _F32(255), out=arr)
        else:
            np.copyto(arr, part.to(torch.float32).numpy())
        np.nan_to_num(arr, copy=False)
        np.clip(arr, 0.0, 1.0, out=arr)
        return arr

    def analysis(self) -> np.ndarray:
        """The picture at no more than ``_ANALYSIS`` px on its short side (the picture itself if small):
        what whole-picture decisions (contrast, palette, outlines, glows) are made on."""
        if self._analysis is None:
            ha, wa = _analysis_size(self.h, self.w, _ANALYSIS)
            if (ha, wa) == (self.h, self.w):
                self._analysis = self.read(0, self.h)
            else:
                item = self.item.cpu()
                if item.dtype != torch.uint8:
                    item = torch.nan_to_num(item.to(torch.float32)).clamp(0, 1)
                with torch.no_grad():  # 8-bit images are shrunk in 8 bits, without a float copy
                    small = F.interpolate(item[None], size=(ha, wa), mode="bilinear", antialias=True)[0]
                arr = small.permute(1, 2, 0).numpy().astype(_F32)
                self._analysis = arr / _F32(255) if item.dtype == torch.uint8 else np.ascontiguousarray(arr)
        return self._analysis


@dataclass(frozen=True)
class _Band:
    """Rows ``top:bottom`` of an (h, w) picture (the band rendered plus its halo) and their pixels."""

    h: int
    w: int
    top: int
    bottom: int
    img: np.ndarray

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(self.top, self.bottom, dtype=_F32)[:, None], np.arange(self.w, dtype=_F32)[None, :]

    def rows(self, small: np.ndarray) -> np.ndarray:
        """This band's rows of a whole-picture map made smaller (or at full size)."""
        return _rows_of_resized(small, self.h, self.w, self.top, self.bottom)

    def noise(self, grid: np.ndarray) -> np.ndarray:
        """This band's rows of the smooth random field in about [-1, 1] drawn by ``_noise_grid``."""
        return np.clip(self.rows(grid) * 0.7, -1.0, 1.0).astype(_F32)

    def lines(self, soft: np.ndarray) -> np.ndarray:
        """This band's rows of the outline map ``_line_soft`` (re-thresholded when enlarged)."""
        if soft.shape == (self.h, self.w):
            return soft[self.top : self.bottom]
        return _smoothstep(0.3, 0.7, self.rows(soft))


Render = Callable[[_Band], np.ndarray]  # a band -> (3, rows, W) float32 planes
Style = Callable[[_Source, np.random.Generator], tuple[Render, int]]  # -> (render, halo rows)


# ----------------------------------------------------------------------------------------------
# jittered-grid Voronoi (shared by mosaic and pointillism)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seeds:
    """One jittered seed per ``cell`` x ``cell`` grid square (with a padding ring), flattened."""

    cell: float
    gh: int
    gw: int
    y: np.ndarray
    x: np.ndarray


def _voronoi_seeds(h: int, w: int, cell: float, rng: np.random.Generator, jitter: float = 0.85) -> _Seeds:
    gh, gw = math.ceil(h / cell) + 2, math.ceil(w / cell) + 2  # one padding ring
    jy = rng.random((gh, gw), dtype=_F32)
    jx = rng.random((gh, gw), dtype=_F32)
    sy = ((np.arange(gh, dtype=_F32)[:, None] - 1 + 0.5 + jitter * (jy - 0.5)) * cell).astype(_F32)
    sx = ((np.arange(gw, dtype=_F32)[None, :] - 1 + 0.5 + jitter * (jx - 0.5)) * cell).astype(_F32)
    return _Seeds(cell, gh, gw, sy.ravel(), sx.ravel())


def _voronoi_rows(
    seeds: _Seeds, top: int, bottom: int, w: int, edges: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``top:bottom`` of the Voronoi diagram of ``seeds``: (label, dist_to_cell_border or None),
    label indexing the flattened seeds. Only the 3 x 3 neighbouring grid squares are searched,
    exact for all practical purposes at jitter < 1, in row chunks."""
    cell, gh, gw, sy_f, sx_f = seeds.cell, seeds.gh, seeds.gw, seeds.y, seeds.x
    xs = np.arange(w, dtype=_F32) + 0.5
    cx = np.clip((xs // cell).astype(np.int64), 0, gw - 3) + 1
    label = np.empty((bottom - top, w), np.int32)
    border = np.empty((bottom - top, w), _F32) if edges else None
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for y0, y1 in _row_chunks(bottom, w, start=top):
        ys = np.arange(y0, y1, dtype=_F32)[:, None] + 0.5
        cy = np.clip((ys[:, 0] // cell).astype(np.int64), 0, gh - 3) + 1
        best = np.full((y1 - y0, w), np.inf, _F32)
        lab = np.zeros((y1 - y0, w), np.int64)
        cands = []
        for dy, dx in offsets:
            idx = (cy + dy)[:, None] * gw + (cx + dx)[None, :]
            d = (ys - sy_f[idx]) ** 2 + (xs - sx_f[idx]) ** 2
            cands.append((idx, d))
            closer = d < best
            best = np.where(closer, d, best)
            lab = np.where(closer, idx, lab)
        label[y0 - top : y1 - top] = lab
        if border is not None:
            py, px = sy_f[lab], sx_f[lab]
            bd = np.full((y1 - y0, w), np.inf, _F32)
            for idx, d in cands:
                sep = np.sqrt((sy_f[idx] - py) ** 2 + (sx_f[idx] - px) ** 2)
                e = (d - best) / np.maximum(2.0 * sep, 1e-6)
                bd = np.minimum(bd, np.where(sep > 1e-6, e, np.inf))
            border[y0 - top : y1 - top] = bd
    return label, border


# ----------------------------------------------------------------------------------------------
# the styles.  Each prepares from the whole picture (and a numpy Generator) what needs it, and returns
# a function rendering a band of (rows, W, 3) float32 pixels in [0, 1] into (3, rows, W) float32 planes
# (channel-first, so the result becomes a tensor without another copy), with the halo that band needs.
# Compositing is done one colour plane at a time to keep temporaries small.
# ----------------------------------------------------------------------------------------------


def _mix_planes(a, b, t: np.ndarray) -> np.ndarray:
    """(3, H, W) planes of ``a + (b - a) * t`` for colours (3,) or planes (3, H, W) ``a``, ``b``."""
    out = np.empty((3, *t.shape), _F32)
    for c in range(3):
        out[c] = a[c] + (b[c] - a[c]) * t
    return out


def _sketch(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    u = _unit(h, w)
    lo, hi = _stretch_range(_lum(src.analysis()))
    soft, paper, line = max(0.4, 0.6 * u), max(1.0, 4.0 * u), max(0.6, u)
    shade, fine = max(1.0, 3.0 * u), max(0.5, 0.7 * u)
    period = max(3.0, 5.0 * u)
    wobble_grid = _noise_grid(h, w, 40.0 * u + 2.0, rng)
    grain = _NoiseRows(rng, w)  # the last draw from ``rng``: the bands draw it row by row

    def render(band: _Band) -> np.ndarray:
        lum = _blur(_apply_stretch(_lum(band.img), lo, hi), soft)
        # colour dodge of the inverted blur: lum / blur(lum) -> white paper, graphite along edges
        value = np.clip(lum / np.maximum(_blur(lum, paper), 1e-3), 0.0, 1.0) ** 2.5
        # fine outline from a small DoG, for a crisper pencil line
        value *= 1.0 - 0.55 * _dog_lines(lum, line, 0.004, 0.04)
        # shading: diagonal (then cross-) hatching in the darker tones, lines wobble a little
        tone = _blur(lum, shade)
        del lum
        yy, xx = band.coords()
        wobble = band.noise(wobble_grid) * 1.2
        for sign, per, a, b in ((1.0, period, 0.55, 0.2), (-1.0, period * 1.15, 0.3, 0.05)):
            hatch = np.cos((xx + sign * yy) * _F32(2.0 * np.pi / per) + wobble)
            value *= 1.0 - 0.5 * _smoothstep(a, b, tone) * _smoothstep(-0.1, 0.7, hatch)
            del hatch
        del tone, wobble
        value *= 1.0 + 0.035 * _blur(grain.rows(band.top, band.bottom), fine)  # paper grain
        np.clip(value, 0.0, 1.0, out=value)
        return _mix_planes((0.16, 0.16, 0.19), (0.97, 0.955, 0.925), value)

    return render, _reach(soft + paper, soft + 1.6 * line, soft + shade, fine)


def _comic(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    # flat colour regions: median-smooth a reduced copy, pick a small palette by k-means
    analysis = src.analysis()
    ha, wa = _analysis_size(h, w, 384)
    small = _resize(analysis, ha, wa)
    size = max(3, round(5 * _unit(ha, wa)) | 1)
    for _ in range(2):
        small = ndimage.median_filter(small, size=(size, size, 1), mode="reflect")
    small = _saturate(np.clip((small - 0.5) * 1.15 + 0.52, 0.0, 1.0), 1.45)
    palette = _kmeans(_sample_pixels(small, 12000, rng), 7, rng)
    outlines = _line_soft(analysis, 1.6, 0.012, 0.035)
    spacing = max(3.0, 7.0 * _unit(h, w))
    k = _F32(np.pi / spacing / 1.4142)
    ink = (0.05, 0.04, 0.06)

    def render(band: _Band) -> np.ndarray:
        smooth = band.rows(small)
        flat = palette[_nearest_centre(smooth, palette)]
        out = np.ascontiguousarray(flat.transpose(2, 0, 1))
        del flat
        shadow = _smoothstep(0.42, 0.15, _lum(smooth))
        del smooth
        # Ben-Day dots in the shadows
        yy, xx = band.coords()
        dots = np.abs(np.sin((xx + yy) * k) * np.sin((xx - yy) * k))  # 1 at dot centres
        edge = 1.0 - 0.6 * (0.35 + 0.5 * shadow)
        dots = 1.0 - 0.35 * _smoothstep(edge, edge + 0.15, dots) * (shadow > 0.02)
        del edge, shadow
        lines = band.lines(outlines)  # bold outlines
        for c in range(3):
            out[c] *= dots
            out[c] += (ink[c] - out[c]) * lines
        return out

    return render, 0


def _mosaic(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    cell = max(6.0, min(h, w) / 40.0)
    seeds = _voronoi_seeds(h, w, cell, rng)
    # each glass piece takes its cell's mean colour: summed over the picture, a band at a time
    sums = np.zeros((seeds.y.size, 3), np.float64)
    counts = np.zeros(seeds.y.size, np.float64)
    for top, bottom in _row_chunks(h, w, _BAND_PIXELS):
        label = _voronoi_rows(seeds, top, bottom, w, edges=False)[0].ravel()
        img = src.read(top, bottom).reshape(-1, 3)
        counts += np.bincount(label, minlength=counts.size)
        for c in range(3):
            sums[:, c] += np.bincount(label, weights=img[:, c], minlength=counts.size)
    n = int(np.flatnonzero(counts).max()) + 1
    colours = (sums[:n] / np.maximum(counts[:n], 1)[:, None]).astype(_F32)
    colours = _saturate(colours[None], 1.35)[0]
    colours *= (1.0 + 0.12 * (rng.random((n, 1), dtype=_F32) - 0.5)).astype(_F32)
    colours = np.clip(colours, 0.0, 1.0)
    half = max(0.6, 0.06 * cell)
    grout = (0.09, 0.085, 0.08)

    def render(band: _Band) -> np.ndarray:
        label, border = _voronoi_rows(seeds, band.top, band.bottom, w)
        # glass pieces glow a little toward their centres; dark lead lines along the cell borders
        glow = 0.92 + 0.22 * _smoothstep(0.0, 0.45 * cell, border)
        lead = 1.0 - _smoothstep(half - 0.5, half + 0.7, border)
        del border
        out = np.empty((3, *label.shape), _F32)
        for c in range(3):
            plane = np.minimum(colours[:, c][label] * glow, 1.0)
            out[c] = plane + (grout[c] - plane) * lead
        return out

    return render, 0


@dataclass(frozen=True)
class _Dots:
    """One layer of round dots, one per jittered ``cell`` grid square, at random depths."""

    cell: float
    gh: int
    gw: int
    y: np.ndarray
    x: np.ndarray
    radius: np.ndarray
    depth: np.ndarray


def _dot_seeds(h: int, w: int, cell: float, radius: float, rng: np.random.Generator) -> _Dots:
    gh, gw = math.ceil(h / cell) + 2, math.ceil(w / cell) + 2
    sy = ((np.arange(gh, dtype=_F32)[:, None] - 0.5 + rng.random((gh, gw), dtype=_F32)) * cell).ravel()
    sx = ((np.arange(gw, dtype=_F32)[None, :] - 0.5 + rng.random((gh, gw), dtype=_F32)) * cell).ravel()
    rad = radius * (0.75 + 0.45 * rng.random(gh * gw, dtype=_F32))
    depth = rng.random(gh * gw, dtype=_F32)
    return _Dots(cell, gh, gw, sy, sx, rad, depth)


def _dot_rows(dots: _Dots, top: int, bottom: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``top:bottom`` of a dot layer: for each pixel the index of the topmost dot covering it (dots
    have radii in [0.75, 1.2] x the radius and overlap in depth order) and its antialiased coverage."""
    cell, gh, gw = dots.cell, dots.gh, dots.gw
    xs = np.arange(w, dtype=_F32) + 0.5
    cx = np.clip((xs // cell).astype(np.int64), 0, gw - 3) + 1
    label = np.zeros((bottom - top, w), np.int32)
    alpha = np.zeros((bottom - top, w), _F32)
    for y0, y1 in _row_chunks(bottom, w, start=top):
        ys = np.arange(y0, y1, dtype=_F32)[:, None] + 0.5
        cy = np.clip((ys[:, 0] // cell).astype(np.int64), 0, gh - 3) + 1
        top_z = np.full((y1 - y0, w), -1.0, _F32)
        lab = np.zeros((y1 - y0, w), np.int64)
        cov = np.zeros((y1 - y0, w), _F32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                idx = (cy + dy)[:, None] * gw + (cx + dx)[None, :]
                d = np.sqrt((ys - dots.y[idx]) ** 2 + (xs - dots.x[idx]) ** 2)
                a = 1.0 - _smoothstep(-0.6, 0.6, d - dots.radius[idx])
                z = np.where(a > 0.0, dots.depth[idx], -1.0)
                above = z > top_z
                top_z = np.where(above, z, top_z)
                lab = np.where(above, idx, lab)
                # coverage: the top dot's own alpha, topped up by what is under it
                cov = np.where(above, a + (1.0 - a) * cov, np.maximum(cov, a))
        label[y0 - top : y1 - top] = lab
        alpha[y0 - top : y1 - top] = np.clip(cov, 0.0, 1.0)
    return label, alpha


def _pointillism(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    radius = max(1.5, 4.5 * _unit(h, w))
    # dot colours are sampled from a reduced, slightly blurred, saturated copy
    analysis = src.analysis()
    ha, wa = analysis.shape[:2]
    f = ha / h
    colours_from = _saturate(_blur(analysis, 0.35 * radius * f), 1.5)
    # light canvas with a thin, lightened underpainting so gaps between dots are not stark white
    wash = _blur(colours_from, 4.0 * radius * f)
    texture_grid = _noise_grid(h, w, 6.0 * radius, rng)
    canvas = (0.96, 0.94, 0.88)
    layers = []
    for _layer in range(2):
        dots = _dot_seeds(h, w, 2.1 * radius, radius, rng)
        n = dots.y.shape[0]
        iy = np.clip((dots.y * f).astype(np.int64), 0, ha - 1)
        ix = np.clip((dots.x * f).astype(np.int64), 0, wa - 1)
        col = colours_from[iy, ix]
        col = col * (1.0 + 0.16 * rng.standard_normal((n, 3), dtype=_F32))  # hue jitter
        col = col * (1.0 + 0.10 * rng.standard_normal((n, 1), dtype=_F32)) + 0.03  # value jitter
        layers.append((dots, np.clip(col, 0.0, 1.0)))

    def render(band: _Band) -> np.ndarray:
        texture = 1.0 + 0.03 * band.noise(texture_grid)
        under = band.rows(wash)
        out = np.empty((3, band.bottom - band.top, w), _F32)
        for c in range(3):
            out[c] = (canvas[c] + (under[..., c] - canvas[c]) * 0.5) * texture
        del under, texture
        for dots, col in layers:
            label, alpha = _dot_rows(dots, band.top, band.bottom, w)
            for c in range(3):
                out[c] += (col[:, c][label] - out[c]) * alpha
        return out

    return render, 0


def _neon(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    # the tubes, their colours and the blurry glow are all decided on the analysis copy
    small = src.analysis()
    ha, wa = small.shape[:2]
    ua = _unit(ha, wa)
    sm = _blur(small, max(0.7, 1.5 * ua))
    gy = ndimage.sobel(sm, axis=0)
    gx = ndimage.sobel(sm, axis=1)
    mag = np.sqrt((gx * gx + gy * gy).sum(-1))
    mag = mag / max(float(np.percentile(mag[::2, ::2], 97)), 1e-3)
    tubes_small = _smoothstep(0.35, 0.9, mag)
    # colour: the picture's own hue at full saturation, a magenta-to-cyan sweep where it is grey
    chroma_src = _blur(small, max(1.0, 4.0 * ua))
    mx, mn = chroma_src.max(-1, keepdims=True), chroma_src.min(-1, keepdims=True)
    pure = (chroma_src - mn) / np.maximum(mx - mn, 1e-4)
    pure = pure / np.maximum(pure.max(-1, keepdims=True), 1e-4)
    weight = _smoothstep(0.04, 0.2, (mx - mn)[..., 0])[..., None]
    yy = np.linspace(0.0, 1.0, ha, dtype=_F32)[:, None]
    xx = np.linspace(0.0, 1.0, wa, dtype=_F32)[None, :]
    sweep = _hue_to_rgb((0.83 + 0.35 * (0.6 * xx + 0.4 * yy)) % 1.0)
    colour = np.clip(weight * pure + (1.0 - weight) * sweep, 0.0, 1.0)
    core_small = tubes_small[..., None] * colour
    glow = _blur(core_small, max(1.0, 3.0 * ua)) * 1.6 + _blur(core_small, max(2.0, 10.0 * ua)) * 1.4
    glow += 0.05 * _blur(small, max(1.0, 6.0 * ua)) * np.array([0.6, 0.6, 1.0], _F32)  # faint scene

    def render(band: _Band) -> np.ndarray:
        tubes = _smoothstep(0.35, 0.9, band.rows(mag))  # the tubes themselves sharp at full size
        hot = 0.6 * tubes * tubes
        col, light_of = band.rows(colour), band.rows(glow)
        out = np.empty((3, band.bottom - band.top, band.w), _F32)
        for c in range(3):
            light = tubes * col[..., c] * 0.9 + light_of[..., c] + hot * (0.5 + 0.5 * col[..., c])
            out[c] = 1.0 - np.exp(-1.6 * light)
        return out

    return render, 0


def _woodcut(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    u = _unit(h, w)
    analysis = src.analysis()
    ua = _unit(*analysis.shape[:2])
    smooth = max(0.7, 1.5 * u)
    tone_small = _blur(_lum(analysis), max(0.7, 1.5 * ua))
    lo, hi = _stretch_range(tone_small, 2.0, 98.0)
    # carved parallel gouges: a triangle-wave line screen that bends with the broad tonal forms
    broad = _blur(_apply_stretch(tone_small, lo, hi) ** 0.9, max(2.0, 18.0 * ua))
    del tone_small
    period = max(3.0, 8.0 * u)
    bend_grid = _noise_grid(h, w, 90.0 * u + 4.0, rng)
    outlines = _line_soft(analysis, 1.3, 0.012, 0.03)

    def render(band: _Band) -> np.ndarray:
        tone = _apply_stretch(_blur(_lum(band.img), smooth), lo, hi) ** 0.9
        yy, xx = band.coords()
        phase = band.rows(broad) * 2.2 + band.noise(bend_grid) * 0.6
        phase += (0.94 * yy + 0.34 * xx) / _F32(period)
        tri = np.abs((phase % 1.0) - 0.5) * 2.0  # 0 in the middle of a gouge, 1 between gouges
        del phase
        aa = 1.2 / period
        paper = _smoothstep(-aa, aa, tone - 0.15 - 0.7 * tri)
        del tri, tone
        paper *= 1.0 - band.lines(outlines)
        return _mix_planes((0.07, 0.06, 0.06), (0.95, 0.92, 0.84), paper)

    return render, _reach(smooth)


def _pixel(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    block = max(2, round(min(h, w) / 64))
    # block means (the last row/column of blocks may be partial), summed a band of whole blocks at a time
    starts = np.arange(0, w, block)
    sums = np.empty((math.ceil(h / block), starts.size, 3), np.float64)
    for top, bottom in _row_chunks(h, w, max(block * w, _BAND_PIXELS // (block * w) * block * w)):
        img = src.read(top, bottom)
        rows = np.add.reduceat(img, np.arange(0, bottom - top, block), axis=0, dtype=np.float64)
        sums[top // block : math.ceil(bottom / block)] = np.add.reduceat(rows, starts, axis=1)
    ny = np.minimum(block, h - np.arange(0, h, block))[:, None, None]
    nx = np.minimum(block, w - starts)[None, :, None]
    small = (sums / (ny * nx)).astype(_F32)
    small = _saturate(np.clip((small - 0.5) * 1.2 + 0.5, 0.0, 1.0), 1.35)
    palette = _kmeans(_sample_pixels(small, 6000, rng), 12, rng)
    # snap the palette to 4 bits per channel, like an old console
    palette = (np.round(palette * 15.0) / 15.0).astype(_F32)
    small = _quantise(small, palette)
    cols = np.arange(w) // block

    def render(band: _Band) -> np.ndarray:
        rows = np.arange(band.top, band.bottom) // block
        out = np.empty((3, rows.size, w), _F32)
        for c in range(3):
            out[c] = small[..., c][rows][:, cols]
        return out

    return render, 0


def _blueprint(src: _Source, rng: np.random.Generator) -> tuple[Render, int]:
    h, w = src.h, src.w
    u = _unit(h, w)
    analysis = src.analysis()
    lo, hi = _stretch_range(_lum(analysis))
    outlines = _line_soft(analysis, 1.0, 0.008, 0.028)
    shade = max(1.0, 3.0 * u)
    paper_grid = _noise_grid(h, w, 60.0 * u + 3.0, rng)

    def render(band: _Band) -> np.ndarray:
        yy, xx = band.coords()

        def grid(step: float, width: float) -> np.ndarray:
            def ruled(t: np.ndarray) -> np.ndarray:
                off = np.abs(((t + step / 2) % step) - step / 2)
                return 1.0 - _smoothstep(width * 0.5, width * 0.5 + 1.0, off)

            return np.maximum(ruled(yy), ruled(xx))

        # faint drafting grid: minor lines every 16 units, major every 64
        a = 0.12 * grid(max(6.0, 16.0 * u), max(0.5, 0.6 * u))
        a = np.maximum(a, 0.2 * grid(max(24.0, 64.0 * u), max(0.8, 1.2 * u)))
        lines = band.lines(outlines)
        a = np.maximum(a, lines * 0.95)
        a = np.maximum(a, 0.16 * _blur(_apply_stretch(_lum(band.img), lo, hi), shade))
        a += 0.04 * band.noise(paper_grid) * (1.0 - lines)
        del lines
        np.clip(a, 0.0, 1.0, out=a)
        return _mix_planes((0.06, 0.23, 0.50), (0.90, 0.95, 1.00), a)

    return render, _reach(shade)


_STYLES: dict[str, tuple[Style, str]] = {
    "sketch": (_sketch, "Graphite pencil drawing on off-white paper, with hatching in the shadows."),
    "comic": (_comic, "Comic-book art: flat posterised colours, halftone dots and bold black outlines."),
    "mosaic": (_mosaic, "Stained glass: irregular cells of flat saturated colour set in dark lead lines."),
    "pointillism": (_pointillism, "Pointillist painting: dabs of vivid colour dotted on a light canvas."),
    "neon": (_neon, "Neon sign: the picture's contours as glowing coloured tubes on black."),
    "woodcut": (_woodcut, "Woodcut print: black ink with carved parallel gouges and bold outlines."),
    "pixel": (_pixel, "Pixel art: blocky low-resolution pixels in a small, punchy colour palette."),
    "blueprint": (_blueprint, "Blueprint: white technical line drawing on a gridded Prussian-blue sheet."),
}

STYLE_NAMES: tuple[str, ...] = tuple(_STYLES)
STYLE_DESCRIPTIONS: dict[str, str] = {name: desc for name, (_, desc) in _STYLES.items()}


def _render_into(style: Style, item: torch.Tensor, seed: int, out: torch.Tensor) -> None:
    """Render one (3, H, W) picture into ``out`` (float32 or uint8), a band at a time."""
    src = _Source(item)
    render, halo = style(src, np.random.default_rng(seed))
    for y0, y1 in _row_chunks(src.h, src.w, _BAND_PIXELS):
        top, bottom = max(0, y0 - halo), min(src.h, y1 + halo)
        planes = render(_Band(src.h, src.w, top, bottom, src.read(top, bottom)))[:, y0 - top : y1 - top]
        band = torch.from_numpy(np.clip(planes, 0.0, 1.0, out=planes))
        out[:, y0:y1] = as_8bit(band, in_place=True) if out.dtype == torch.uint8 else band


def render_style(name: str, image: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Render ``image`` (B, 3, H, W) or (3, H, W) in the built-in style ``name``.

    A float image in [0, 1] gives floats in [0, 1] (float32 unless the image is another float type); an
    8-bit image gives 8 bits, the floats rounded as an image file would hold them, and is read a band at a
    time, so neither it nor the result ever exists whole as floats. Same shape and device as ``image``.
    The result is a deterministic function of (name, image, seed); each image of a batch uses the same
    seed.
    """
    if name not in _STYLES:
        raise ValueError(f"unknown style {name!r}; valid styles: {', '.join(STYLE_NAMES)}")
    if not isinstance(image, torch.Tensor):
        raise TypeError("image must be a torch.Tensor")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W) or (3, H, W); got {tuple(image.shape)}")
    style = _STYLES[name][0]
    batch = image.detach().unsqueeze(0) if image.ndim == 3 else image.detach()
    eight_bit = image.dtype == torch.uint8
    out = torch.empty(batch.shape, dtype=torch.uint8 if eight_bit else torch.float32)
    for item, into in zip(batch, out, strict=True):
        _render_into(style, item, seed, into)
    if not eight_bit:
        out = out.to(image.dtype)
    out = out.to(image.device)
    return out[0] if image.ndim == 3 else out
