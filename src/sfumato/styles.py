"""Built-in target styles: deterministic, weight-free re-renderings of a picture.

Each style turns an image into the *same picture* drawn in a clearly different look (pencil sketch,
comic, stained glass, ...).  They serve as the targets that protection pulls an artwork's latents
toward, so they must be deterministic, fast, and work at any size.

Conventions
-----------
* Input: float tensor (B, 3, H, W) or (3, H, W) with values in [0, 1]; output has the same shape,
  dtype and device, values in [0, 1].
* Scale awareness: every length (blur radius, cell size, line width, dot size) is expressed relative
  to the short side of the image, so the look is the same at 256 px and at 2048 px.  ``_unit`` below
  is the short side divided by 512, i.e. "one pixel of a 512 px image".
* Determinism: all randomness comes from ``numpy.random.default_rng(seed)``; no global RNG is used
  and no floating-point reduction depends on the thread count.
* Work is done in numpy/scipy on float32 (H, W, C) arrays, one image of the batch at a time, with
  row-chunked loops where a per-pixel intermediate would otherwise be large.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["STYLE_DESCRIPTIONS", "STYLE_NAMES", "render_style"]

_F32 = np.float32
_CHUNK_PIXELS = 1 << 20  # pixels per row chunk in the chunked loops (bounds temporary memory)


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


def _stretch(x: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Contrast-stretch so the given percentiles map to 0 and 1 (robust to flat images)."""
    step = max(1, int(math.sqrt(x.size / 65536)))
    sample = x[::step, ::step]
    lo, hi = np.percentile(sample, [lo_pct, hi_pct])
    if hi - lo < 0.05:  # nearly flat image: keep it roughly as is
        mid = 0.5 * (hi + lo)
        lo, hi = mid - 0.5, mid + 0.5
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(_F32)


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


def _value_noise(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1] with features of size ``scale`` pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.standard_normal((gh, gw)).astype(_F32)
    return np.clip(_resize(grid, h, w) * 0.7, -1.0, 1.0).astype(_F32)


def _hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value colour for hue in [0, 1)."""
    k = (np.stack([hue, hue + 2.0 / 3.0, hue + 1.0 / 3.0], axis=-1) * 6.0) % 6.0
    return np.clip(np.abs(k - 3.0) - 1.0, 0.0, 1.0).astype(_F32)


def _row_chunks(h: int, w: int):
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    for y0 in range(0, h, rows):
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


def _line_map(rgb: np.ndarray, width: float, lo: float, hi: float, cap: int = 768) -> np.ndarray:
    """Bold outline map (1 = ink) computed on a reduced copy and sharpened back at full size.

    ``width`` is in 512-px units.  The DoG response is computed at no more than ``cap`` px on the
    short side, upsampled bilinearly, and re-thresholded so lines stay crisp at any resolution.
    """
    h, w = rgb.shape[:2]
    ha, wa = _analysis_size(h, w, cap)
    small = _resize(rgb, ha, wa)
    lum = _stretch(_lum(small))
    sigma = max(0.6, width * _unit(ha, wa))
    soft = _dog_lines(lum, sigma, lo, hi)
    if (ha, wa) == (h, w):
        return soft
    return _smoothstep(0.3, 0.7, _resize(soft, h, w))


# ----------------------------------------------------------------------------------------------
# jittered-grid Voronoi (shared by mosaic and pointillism)
# ----------------------------------------------------------------------------------------------


def _jittered_voronoi(
    h: int, w: int, cell: float, rng: np.random.Generator, jitter: float = 0.85, edges: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Voronoi diagram of one jittered seed per ``cell`` x ``cell`` grid square.

    Returns (label, dist_to_seed, dist_to_cell_border or None, seed_y, seed_x) where label indexes
    the flattened seed arrays.  Only the 3 x 3 neighbouring grid squares are searched, which is exact
    for all practical purposes at jitter < 1, and everything runs in row chunks.
    """
    gh, gw = math.ceil(h / cell) + 2, math.ceil(w / cell) + 2  # one padding ring
    jy = rng.random((gh, gw), dtype=_F32)
    jx = rng.random((gh, gw), dtype=_F32)
    sy = ((np.arange(gh, dtype=_F32)[:, None] - 1 + 0.5 + jitter * (jy - 0.5)) * cell).astype(_F32)
    sx = ((np.arange(gw, dtype=_F32)[None, :] - 1 + 0.5 + jitter * (jx - 0.5)) * cell).astype(_F32)
    sy_f, sx_f = sy.ravel(), sx.ravel()

    xs = np.arange(w, dtype=_F32) + 0.5
    cx = np.clip((xs // cell).astype(np.int64), 0, gw - 3) + 1
    label = np.empty((h, w), np.int32)
    dist = np.empty((h, w), _F32)
    border = np.empty((h, w), _F32) if edges else None
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for y0, y1 in _row_chunks(h, w):
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
        label[y0:y1] = lab
        dist[y0:y1] = np.sqrt(best)
        if edges:
            py, px = sy_f[lab], sx_f[lab]
            bd = np.full((y1 - y0, w), np.inf, _F32)
            for idx, d in cands:
                sep = np.sqrt((sy_f[idx] - py) ** 2 + (sx_f[idx] - px) ** 2)
                e = (d - best) / np.maximum(2.0 * sep, 1e-6)
                bd = np.minimum(bd, np.where(sep > 1e-6, e, np.inf))
            border[y0:y1] = bd
    return label, dist, border, sy_f, sx_f


# ----------------------------------------------------------------------------------------------
# the styles.  Each takes an (H, W, 3) float32 image in [0, 1] and a numpy Generator and returns
# (3, H, W) float32 planes (channel-first, so the result becomes a tensor without another copy).
# Compositing is done one colour plane at a time to keep full-size temporaries small.
# ----------------------------------------------------------------------------------------------


def _mix_planes(a, b, t: np.ndarray) -> np.ndarray:
    """(3, H, W) planes of ``a + (b - a) * t`` for colours (3,) or planes (3, H, W) ``a``, ``b``."""
    out = np.empty((3, *t.shape), _F32)
    for c in range(3):
        out[c] = a[c] + (b[c] - a[c]) * t
    return out


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(h, dtype=_F32)[:, None], np.arange(w, dtype=_F32)[None, :]


def _sketch(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    u = _unit(h, w)
    lum = _blur(_stretch(_lum(img)), max(0.4, 0.6 * u))
    # colour dodge of the inverted blur: lum / blur(lum) -> white paper, graphite along edges
    value = np.clip(lum / np.maximum(_blur(lum, max(1.0, 4.0 * u)), 1e-3), 0.0, 1.0) ** 2.5
    # fine outline from a small DoG, for a crisper pencil line
    value *= 1.0 - 0.55 * _dog_lines(lum, max(0.6, 1.0 * u), 0.004, 0.04)
    # shading: diagonal (then cross-) hatching in the darker tones, lines wobble a little
    tone = _blur(lum, max(1.0, 3.0 * u))
    del lum
    period = max(3.0, 5.0 * u)
    yy, xx = _coords(h, w)
    wobble = _value_noise(h, w, 40.0 * u + 2.0, rng) * 1.2
    for sign, per, lo, hi in ((1.0, period, 0.55, 0.2), (-1.0, period * 1.15, 0.3, 0.05)):
        hatch = np.cos((xx + sign * yy) * _F32(2.0 * np.pi / per) + wobble)
        value *= 1.0 - 0.5 * _smoothstep(lo, hi, tone) * _smoothstep(-0.1, 0.7, hatch)
        del hatch
    del tone, wobble
    # paper grain
    grain = _blur(rng.standard_normal((h, w), dtype=_F32), max(0.5, 0.7 * u))
    value *= 1.0 + 0.035 * grain
    del grain
    np.clip(value, 0.0, 1.0, out=value)
    return _mix_planes((0.16, 0.16, 0.19), (0.97, 0.955, 0.925), value)


def _comic(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    # flat colour regions: median-smooth a reduced copy, pick a small palette by k-means
    ha, wa = _analysis_size(h, w, 384)
    small = _resize(img, ha, wa)
    size = max(3, round(5 * _unit(ha, wa)) | 1)
    for _ in range(2):
        small = ndimage.median_filter(small, size=(size, size, 1), mode="reflect")
    small = _saturate(np.clip((small - 0.5) * 1.15 + 0.52, 0.0, 1.0), 1.45)
    palette = _kmeans(_sample_pixels(small, 12000, rng), 7, rng)
    smooth = _resize(small, h, w)
    out = np.empty((3, h, w), _F32)
    shadow = np.empty((h, w), _F32)
    for y0, y1 in _row_chunks(h, w):
        flat = palette[_nearest_centre(smooth[y0:y1], palette)]
        for c in range(3):
            out[c, y0:y1] = flat[..., c]
        shadow[y0:y1] = _smoothstep(0.42, 0.15, _lum(smooth[y0:y1]))
    del smooth
    # Ben-Day dots in the shadows
    u = _unit(h, w)
    spacing = max(3.0, 7.0 * u)
    yy, xx = _coords(h, w)
    k = _F32(np.pi / spacing / 1.4142)
    dots = np.abs(np.sin((xx + yy) * k) * np.sin((xx - yy) * k))  # 1 at dot centres
    edge = 1.0 - 0.6 * (0.35 + 0.5 * shadow)
    dots = 1.0 - 0.35 * _smoothstep(edge, edge + 0.15, dots) * (shadow > 0.02)
    del edge, shadow
    # bold outlines
    lines = _line_map(img, 1.6, 0.012, 0.035)
    ink = (0.05, 0.04, 0.06)
    for c in range(3):
        out[c] *= dots
        out[c] += (ink[c] - out[c]) * lines
    return out


def _mosaic(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    cell = max(6.0, min(h, w) / 40.0)
    label, dist, border, _, _ = _jittered_voronoi(h, w, cell, rng)
    del dist
    n = int(label.max()) + 1
    flat_lab = label.ravel()
    counts = np.maximum(np.bincount(flat_lab, minlength=n), 1).astype(np.float64)
    colours = np.stack(
        [np.bincount(flat_lab, weights=img[..., c].ravel(), minlength=n) / counts for c in range(3)], 1
    ).astype(_F32)
    colours = _saturate(colours[None], 1.35)[0]
    colours *= (1.0 + 0.12 * (rng.random((n, 1), dtype=_F32) - 0.5)).astype(_F32)
    colours = np.clip(colours, 0.0, 1.0)
    # glass pieces glow a little toward their centres; dark lead lines along the cell borders
    glow = 0.92 + 0.22 * _smoothstep(0.0, 0.45 * cell, border)
    half = max(0.6, 0.06 * cell)
    lead = 1.0 - _smoothstep(half - 0.5, half + 0.7, border)
    del border
    grout = (0.09, 0.085, 0.08)
    out = np.empty((3, h, w), _F32)
    for c in range(3):
        plane = np.minimum(colours[:, c][label] * glow, 1.0)
        out[c] = plane + (grout[c] - plane) * lead
    return out


def _dot_layer(
    h: int, w: int, cell: float, radius: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One layer of round dots, one per jittered ``cell`` grid square, overlapping in random order.

    Returns (label, alpha, seed_y, seed_x): for each pixel the index of the topmost dot covering it
    (dots have radii in [0.75, 1.2] x ``radius`` and a random depth) and its antialiased coverage.
    """
    gh, gw = math.ceil(h / cell) + 2, math.ceil(w / cell) + 2
    sy = ((np.arange(gh, dtype=_F32)[:, None] - 0.5 + rng.random((gh, gw), dtype=_F32)) * cell).ravel()
    sx = ((np.arange(gw, dtype=_F32)[None, :] - 0.5 + rng.random((gh, gw), dtype=_F32)) * cell).ravel()
    rad = radius * (0.75 + 0.45 * rng.random(gh * gw, dtype=_F32))
    depth = rng.random(gh * gw, dtype=_F32)
    xs = np.arange(w, dtype=_F32) + 0.5
    cx = np.clip((xs // cell).astype(np.int64), 0, gw - 3) + 1
    label = np.zeros((h, w), np.int32)
    alpha = np.zeros((h, w), _F32)
    for y0, y1 in _row_chunks(h, w):
        ys = np.arange(y0, y1, dtype=_F32)[:, None] + 0.5
        cy = np.clip((ys[:, 0] // cell).astype(np.int64), 0, gh - 3) + 1
        top = np.full((y1 - y0, w), -1.0, _F32)
        lab = np.zeros((y1 - y0, w), np.int64)
        cov = np.zeros((y1 - y0, w), _F32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                idx = (cy + dy)[:, None] * gw + (cx + dx)[None, :]
                d = np.sqrt((ys - sy[idx]) ** 2 + (xs - sx[idx]) ** 2)
                a = 1.0 - _smoothstep(-0.6, 0.6, d - rad[idx])
                z = np.where(a > 0.0, depth[idx], -1.0)
                above = z > top
                top = np.where(above, z, top)
                lab = np.where(above, idx, lab)
                # coverage: the top dot's own alpha, topped up by what is under it
                cov = np.where(above, a + (1.0 - a) * cov, np.maximum(cov, a))
        label[y0:y1] = lab
        alpha[y0:y1] = np.clip(cov, 0.0, 1.0)
    return label, alpha, sy, sx


def _pointillism(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    u = _unit(h, w)
    radius = max(1.5, 4.5 * u)
    # dot colours are sampled from a reduced, slightly blurred, saturated copy
    ha, wa = _analysis_size(h, w, 768)
    f = ha / h
    src = _saturate(_blur(_resize(img, ha, wa), 0.35 * radius * f), 1.5)
    # light canvas with a thin, lightened underpainting so gaps between dots are not stark white
    wash = _blur(src, 4.0 * radius * f)
    texture = 1.0 + 0.03 * _value_noise(h, w, 6.0 * radius, rng)
    canvas = (0.96, 0.94, 0.88)
    out = np.empty((3, h, w), _F32)
    for c in range(3):
        out[c] = (canvas[c] + (_resize(wash[..., c], h, w) - canvas[c]) * 0.5) * texture
    del wash, texture
    for _layer in range(2):
        label, alpha, sy, sx = _dot_layer(h, w, 2.1 * radius, radius, rng)
        n = sy.shape[0]
        iy = np.clip((sy * f).astype(np.int64), 0, ha - 1)
        ix = np.clip((sx * f).astype(np.int64), 0, wa - 1)
        col = src[iy, ix]
        col = col * (1.0 + 0.16 * rng.standard_normal((n, 3), dtype=_F32))  # hue jitter
        col = col * (1.0 + 0.10 * rng.standard_normal((n, 1), dtype=_F32)) + 0.03  # value jitter
        col = np.clip(col, 0.0, 1.0)
        for c in range(3):
            out[c] += (col[:, c][label] - out[c]) * alpha
        del label, alpha
    return out


def _neon(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    ha, wa = _analysis_size(h, w, 768)
    small = _resize(img, ha, wa)
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
    # the glow is blurry, so it is computed on the reduced copy; the tubes themselves at full size
    core_small = tubes_small[..., None] * colour
    glow = _blur(core_small, max(1.0, 3.0 * ua)) * 1.6 + _blur(core_small, max(2.0, 10.0 * ua)) * 1.4
    glow += 0.05 * _blur(small, max(1.0, 6.0 * ua)) * np.array([0.6, 0.6, 1.0], _F32)  # faint scene
    del core_small, small, sm, gx, gy, chroma_src, pure
    tubes = _smoothstep(0.35, 0.9, _resize(mag, h, w)) if (ha, wa) != (h, w) else tubes_small
    hot = 0.6 * tubes * tubes
    out = np.empty((3, h, w), _F32)
    for c in range(3):
        col = _resize(colour[..., c], h, w)
        light = tubes * col * 0.9 + _resize(glow[..., c], h, w) + hot * (0.5 + 0.5 * col)
        out[c] = 1.0 - np.exp(-1.6 * light)
    return out


def _woodcut(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    u = _unit(h, w)
    tone = _stretch(_blur(_lum(img), max(0.7, 1.5 * u)), 2.0, 98.0) ** 0.9
    # carved parallel gouges: a triangle-wave line screen that bends with the broad tonal forms
    period = max(3.0, 8.0 * u)
    yy, xx = _coords(h, w)
    phase = _blur(tone, max(2.0, 18.0 * u)) * 2.2 + _value_noise(h, w, 90.0 * u + 4.0, rng) * 0.6
    phase += (0.94 * yy + 0.34 * xx) / _F32(period)
    tri = np.abs((phase % 1.0) - 0.5) * 2.0  # 0 in the middle of a gouge, 1 between gouges
    del phase
    aa = 1.2 / period
    paper = _smoothstep(-aa, aa, tone - 0.15 - 0.7 * tri)
    del tri, tone
    paper *= 1.0 - _line_map(img, 1.3, 0.012, 0.03)
    return _mix_planes((0.07, 0.06, 0.06), (0.95, 0.92, 0.84), paper)


def _pixel(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    block = max(2, round(min(h, w) / 64))
    # block means (the last row/column of blocks may be partial)
    sums = np.add.reduceat(
        np.add.reduceat(img, np.arange(0, h, block), axis=0, dtype=np.float64), np.arange(0, w, block), axis=1
    )
    ny = np.minimum(block, h - np.arange(0, h, block))[:, None, None]
    nx = np.minimum(block, w - np.arange(0, w, block))[None, :, None]
    small = (sums / (ny * nx)).astype(_F32)
    small = _saturate(np.clip((small - 0.5) * 1.2 + 0.5, 0.0, 1.0), 1.35)
    palette = _kmeans(_sample_pixels(small, 6000, rng), 12, rng)
    # snap the palette to 4 bits per channel, like an old console
    palette = (np.round(palette * 15.0) / 15.0).astype(_F32)
    small = _quantise(small, palette)
    rows = np.arange(h) // block
    cols = np.arange(w) // block
    out = np.empty((3, h, w), _F32)
    for c in range(3):
        out[c] = small[..., c][rows][:, cols]
    return out


def _blueprint(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    u = _unit(h, w)
    yy, xx = _coords(h, w)

    def grid(step: float, width: float) -> np.ndarray:
        dy = 1.0 - _smoothstep(width * 0.5, width * 0.5 + 1.0, np.abs(((yy + step / 2) % step) - step / 2))
        dx = 1.0 - _smoothstep(width * 0.5, width * 0.5 + 1.0, np.abs(((xx + step / 2) % step) - step / 2))
        return np.maximum(dy, dx)

    # faint drafting grid: minor lines every 16 units, major every 64
    a = 0.12 * grid(max(6.0, 16.0 * u), max(0.5, 0.6 * u))
    a = np.maximum(a, 0.2 * grid(max(24.0, 64.0 * u), max(0.8, 1.2 * u)))
    lines = _line_map(img, 1.0, 0.008, 0.028)
    a = np.maximum(a, lines * 0.95)
    a = np.maximum(a, 0.16 * _blur(_stretch(_lum(img)), max(1.0, 3.0 * u)))
    a += 0.04 * _value_noise(h, w, 60.0 * u + 3.0, rng) * (1.0 - lines)
    del lines
    np.clip(a, 0.0, 1.0, out=a)
    return _mix_planes((0.06, 0.23, 0.50), (0.90, 0.95, 1.00), a)


_STYLES: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], str]] = {
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


def render_style(name: str, image: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Render ``image`` (B, 3, H, W) or (3, H, W) in [0, 1] in the built-in style ``name``.

    ``image`` may be 8-bit (uint8, read as ``image / 255`` into the one working copy, so a large 8-bit
    image needs no float copy of its own). Returns a tensor of the same shape and device (float32 for an
    8-bit image, the image's dtype otherwise) with values in [0, 1].  The result is a
    deterministic function of (name, image, seed); each image of a batch uses the same seed.
    """
    if name not in _STYLES:
        raise ValueError(f"unknown style {name!r}; valid styles: {', '.join(STYLE_NAMES)}")
    if not isinstance(image, torch.Tensor):
        raise TypeError("image must be a torch.Tensor")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W) or (3, H, W); got {tuple(image.shape)}")
    fn = _STYLES[name][0]
    batch = image.detach().unsqueeze(0) if image.ndim == 3 else image.detach()
    outs = []
    for item in batch:
        arr = np.empty((item.shape[1], item.shape[2], 3), _F32)  # the one (H, W, 3) working copy
        if item.dtype == torch.uint8:
            np.copyto(arr, item.cpu().permute(1, 2, 0).numpy())
            np.divide(arr, _F32(255), out=arr)
        else:
            np.copyto(arr, item.to("cpu", torch.float32).permute(1, 2, 0).numpy())
        np.nan_to_num(arr, copy=False)
        np.clip(arr, 0.0, 1.0, out=arr)
        res = fn(arr, np.random.default_rng(seed))
        del arr
        np.clip(res, 0.0, 1.0, out=res)
        outs.append(torch.from_numpy(res))
    out = outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)
    out = out.to(device=image.device, dtype=image.dtype if image.is_floating_point() else torch.float32)
    return out[0] if image.ndim == 3 else out
