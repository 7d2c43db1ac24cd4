"""Unpaired transforms for objectives that need no target latents: training views and MetaCloak's
crops, blur and flips. Each maps (B, 3, H, W) to draw-major stacks (draws * B, 3, h, w) with the attack's
seeded generator, so they chain (views, then MetaCloak's, then robust mode's) and stay reproducible."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sfumato.countermeasures.views import TrainingViews

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class ViewTransform:
    """``draws`` random views per call, from a bank drawn once for the image's shape (as
    :meth:`TrainingViews.bind` draws it, without encoding any target)."""

    def __init__(
        self, views: TrainingViews, shape: tuple[int, int], seed: int, draws: int | None = None
    ) -> None:
        self.views = views
        self.boxes = views.boxes(*shape, torch.Generator().manual_seed(seed ^ 0x5F1E))
        self.draws = draws or views.draws

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        picks = torch.randint(len(self.boxes), (self.draws,), generator=gen).tolist()
        return torch.cat([self.views.cut(x, self.boxes[i]) for i in picks])


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@dataclass(frozen=True)
class CropBlurFlip:
    """MetaCloak's expectation over transformations: a random crop (``scale`` of each side) resized back,
    a Gaussian blur of random sigma with probability ``blur_p``, a mirror with probability 1/2."""

    draws: int = 2
    scale: tuple[float, float] = (0.8, 1.0)
    sigma: tuple[float, float] = (0.5, 1.5)
    blur_p: float = 0.5

    def one(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        u = torch.rand(6, generator=gen, dtype=torch.float64).tolist()
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]
        ch, cw = max(8, round(h * s)), max(8, round(w * s))
        top, left = round(u[1] * (h - ch)), round(u[2] * (w - cw))
        y = x[..., top : top + ch, left : left + cw]
        if (ch, cw) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        if u[3] < self.blur_p:
            y = _blur(y, self.sigma[0] + (self.sigma[1] - self.sigma[0]) * u[4])
        if u[5] < 0.5:
            y = y.flip(-1)
        return y.clamp(0, 1)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.cat([self.one(x, gen) for _ in range(self.draws)])


def chain(transforms: Sequence[Transform | None]) -> Transform | None:
    """The transforms applied in order (None entries skipped); None when none is left."""
    kept = [t for t in transforms if t is not None]
    if not kept:
        return None

    def apply(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for t in kept:
            x = t(x, gen)
        return x

    return apply
