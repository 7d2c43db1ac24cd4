"""Differentiable stand-ins for the countermeasures, for robust mode (expectation over transformations).

A perturbation optimised on the clean image alone lives largely in fine detail that JPEG quantises
away and resizing averages out. Robust mode (``shade(..., robust=True)``) therefore optimises through
random draws of these transformations, so the latent shift it finds is one that survives them: the
optimiser's ``transform`` hook (:func:`sfumato.optimise.attack`) receives a :class:`RobustTransform`,
which maps the perturbed image (1, 3, H, W) to ``draws`` transformed copies (draws, 3, H, W) whose
latents are all pulled to the target (their gradients averaged in one backward pass).

The JPEG stand-in follows libjpeg step by step (JFIF YCbCr, 4:2:0 chroma box-subsampling, 8x8
orthonormal DCT, the IJG quantisation tables scaled by quality, bilinear "fancy" chroma upsampling),
with the rounding of the quantised coefficients made differentiable: the forward pass is the true
rounding, so the encoder sees what real JPEG would give it (within about 1-1.5/255 RMS on photos,
against JPEG's own 2-12/255; tests/test_robust.py), and the backward pass is the identity
(straight-through) or, in robust mode, the identity gated off deep inside JPEG's dead zone, so the
optimiser stops spending budget on coefficients JPEG zeroes anyway.

The recipe (mixture, ranges, dead-zone gate, 2 draws per step, 3x the steps) was tuned on 3 pairs at
256 px, in points of the shift surviving JPEG q75: 2 draws per step instead of 1 about +2.5, the
dead-zone gate about +8 (one pair), more JPEG draws at lower quality +1 to +4, 36 steps instead of
24 about +3.5; 3 draws instead of 2 did no better than 36 steps, and 48 steps little more.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# IJG (libjpeg) base quantisation tables, Annex K of the JPEG standard.
_LUMA = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_CHROMA = [
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
] + [[99] * 8 for _ in range(4)]


def jpeg_tables(quality: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The luma and chroma quantisation tables (8, 8) libjpeg uses at ``quality`` (1-100)."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q

    def scaled(base: list[list[int]]) -> torch.Tensor:
        t = (torch.tensor(base, dtype=torch.int64) * scale + 50) // 100
        return t.clamp(1, 255).float()

    return scaled(_LUMA), scaled(_CHROMA)


def _dct_matrix(device: torch.device) -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float32)
    k = n[:, None]
    m = torch.cos((2 * n[None, :] + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    m[0] = math.sqrt(1 / 8)
    return m.to(device)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """True rounding forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def _round_deadzone(x: torch.Tensor, width: float) -> torch.Tensor:
    """True rounding forward; backward, the identity gated by how close ``|x|`` is to 0.5 or above.

    A coefficient well inside JPEG's dead zone (``|x|`` near 0) is zeroed whatever a small change
    does, so its gradient is dropped instead of passed straight through; the gate
    ``sigmoid((|x| - 0.5) / width)`` keeps the coefficients that survive or are about to.
    """
    gate = torch.sigmoid((x.detach().abs() - 0.5) / width)
    return x * gate + (torch.round(x) - x * gate).detach()


def _blocks(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    b, c, nh, nw = x.shape[:4]
    return x.permute(0, 1, 2, 4, 3, 5).reshape(b, c, nh * 8, nw * 8)


def _quantise(
    plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor, deadzone: float | None = None
) -> torch.Tensor:
    """Block DCT, quantise with ``table``, dequantise, inverse DCT (plane in 0..255 minus 128).

    The plane is rounded first: libjpeg codes integer samples, and leaving that out doubles the
    difference from real JPEG."""
    coef = dct @ _blocks(_round_ste(plane)) @ dct.T
    q = coef / table
    coef = (_round_ste(q) if deadzone is None else _round_deadzone(q, deadzone)) * table
    return _unblocks(dct.T @ coef @ dct)


def diff_jpeg(
    x: torch.Tensor, quality: float = 75, subsampling: bool = True, deadzone: float | None = None
) -> torch.Tensor:
    """A differentiable JPEG round trip of (B, 3, H, W) images in [0, 1] at ``quality``.

    ``subsampling``: 4:2:0 chroma, Pillow's default (what :func:`sfumato.countermeasures.jpeg` does).
    Sizes that are not multiples of 16 are edge-padded, as libjpeg does, and cropped back.
    ``deadzone``: the backward pass of the coefficient rounding; None is the straight-through
    identity, a width (e.g. 0.1) gates it as in :func:`_round_deadzone`. The forward is the same.
    """
    luma_t, chroma_t = (t.to(x.device) for t in jpeg_tables(round(quality)))
    dct = _dct_matrix(x.device)
    h, w = x.shape[-2:]
    mult = 16 if subsampling else 8
    xp = F.pad(x, (0, (-w) % mult, 0, (-h) % mult), mode="replicate") * 255
    r, g, b = xp[:, 0:1], xp[:, 1:2], xp[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    chroma = torch.cat([cb, cr], 1)
    if subsampling:
        chroma = F.avg_pool2d(_round_ste(chroma), 2)
    y = _quantise(y - 128, luma_t, dct, deadzone) + 128
    chroma = _quantise(chroma, chroma_t, dct, deadzone)
    if subsampling:
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    rgb = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (rgb[..., :h, :w] / 255).clamp(0, 1)


def diff_resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Antialiased downscale by ``scale`` and bilinear back up: differentiable down-and-up resizing."""
    h, w = x.shape[-2:]
    small = (max(8, round(h * scale)), max(8, round(w * scale)))
    down = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)


def diff_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``sigma`` px with reflected edges."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    xp = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(xp, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def diff_shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate by whole pixels, edges reflected: a crop that moves content by less than a latent cell."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    return xp[..., p - dy : p - dy + h, p - dx : p - dx + w]


@dataclass(frozen=True)
class RobustTransform:
    """Expectation over transformations: each call draws ``draws`` random transformations.

    Each draw picks one kind by ``weights`` (jpeg, resize, blur, noise, shift, none) and its strength
    uniformly from the ranges. Called by :func:`sfumato.optimise.attack` as ``transform(x, gen)``
    with the attack's seeded generator, so a robust run is reproducible. Returns (draws * B, 3, H, W),
    draws-major.
    """

    draws: int = 2
    jpeg_quality: tuple[float, float] = (40, 90)
    resize_scale: tuple[float, float] = (0.5, 0.9)
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    noise_sigma: tuple[float, float] = (0.0, 0.05)
    shift_px: int = 4
    jpeg_deadzone: float | None = 0.1
    weights: tuple[tuple[str, float], ...] = (
        ("jpeg", 4.0),
        ("resize", 2.0),
        ("blur", 1.0),
        ("noise", 0.5),
        ("shift", 0.5),
    )

    KINDS = ("jpeg", "resize", "blur", "noise", "shift", "none")

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError(f"draws must be at least 1, not {self.draws}")
        unknown = [k for k, _ in self.weights if k not in self.KINDS]
        if unknown or sum(w for _, w in self.weights) <= 0:
            raise ValueError(f"weights must name kinds among {self.KINDS} with a positive total")

    def draw(self, gen: torch.Generator) -> tuple[str, float]:
        """One (kind, strength) from the mixture."""
        kinds = [k for k, _ in self.weights]
        probs = torch.tensor([w for _, w in self.weights], dtype=torch.float64)
        kind = kinds[int(torch.multinomial(probs, 1, generator=gen))]
        u = float(torch.rand((), generator=gen, dtype=torch.float64))
        lo, hi = {
            "jpeg": self.jpeg_quality,
            "resize": self.resize_scale,
            "blur": self.blur_sigma,
            "noise": self.noise_sigma,
            "shift": (0.0, 1.0),
            "none": (0.0, 0.0),
        }[kind]
        return kind, lo + (hi - lo) * u

    def apply(self, x: torch.Tensor, kind: str, strength: float, gen: torch.Generator) -> torch.Tensor:
        """One transformation of (B, 3, H, W) images."""
        if kind == "jpeg":
            return diff_jpeg(x, strength, deadzone=self.jpeg_deadzone)
        if kind == "resize":
            return diff_resize(x, strength)
        if kind == "blur":
            return diff_blur(x, strength)
        if kind == "noise":
            noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
            return (x + strength * noise).clamp(0, 1)
        if kind == "shift":
            dy, dx = (int(v) for v in torch.randint(-self.shift_px, self.shift_px + 1, (2,), generator=gen))
            return diff_shift(x, dy, dx)
        return x

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.cat([self.apply(x, *self.draw(gen), gen) for _ in range(self.draws)])

    def describe(self) -> dict[str, object]:
        d = asdict(self)
        d["weights"] = dict(self.weights)
        return d


# The default robust-mode recipe; protect.py multiplies the speed preset's steps by STEP_FACTOR.
ROBUST_RECIPE = RobustTransform()
ROBUST_STEP_FACTOR = 3  # 36 steps at `default`: JPEG q75 survival 0.72 -> 0.76 over 24 (3 pairs)
