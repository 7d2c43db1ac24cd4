"""Training views: what a fine-tuning pipeline makes of an image, as a transformation to optimise through.

Fine-tuning scripts do not train on the image a scraper saved: they cut random square crops and
resize them to the training resolution (e.g. 512 px for Stable Diffusion LoRAs, 64 px in the lab),
often mirrored. That crop-and-resize is a countermeasure nobody has to choose: the lab measured that a
cloak which moves a 128 px work's latents 19-44 % of the way to its target keeps only 4-12 % in the
64 px views the generator trains on (benchmarks/results/lab/mimicry). A per-pixel perturbation aligned
to the encoder's 8 px latent grid at the image's own size is averaged away by the downscale and
misaligned by the crop.

``views=TrainingViews(size=...)`` in :func:`sfumato.protect.cloak` / :func:`~sfumato.protect.shade`
therefore pulls the latents of random training views of the protected image toward the latents of
the same views of the target image (the crop boxes are shared, so target and image stay aligned).
The boxes are drawn from a seeded bank, fixed before the attack and independent of any scraper's
own crops; the target views' latents are encoded once per box. The whole image is attacked at once
(no tiles): every step encodes only ``draws`` views at the training resolution, which is cheaper than
the image itself whenever the training resolution is below the image's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from sfumato.countermeasures.differentiable import RobustTransform as Transform
    from sfumato.encoders.ensemble import Ensemble

Box = tuple[int, int, int, bool, str]  # top, left, side, mirrored, interpolation mode
VIEWS_STEP_FACTOR = 3  # times the speed preset's steps: each step sees only a few views of the image


@dataclass(frozen=True)
class TrainingViews:
    """The view distribution: square crops of side ``scale`` x the short side, resized to ``size``.

    ``modes``: the resampling filters a pipeline may use (antialiased); ``bank``: how many boxes are
    drawn up front; ``draws``: views per optimiser step (their gradients averaged).
    """

    size: int = 512
    scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    draws: int = 4
    bank: int = 32
    modes: tuple[str, ...] = ("bicubic", "bilinear")

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"views: scale must satisfy 0 < low <= high <= 1, not {self.scale}")
        if self.size < 8 or self.draws < 1 or self.bank < 1:
            raise ValueError("views: size must be >= 8 px, draws and bank >= 1")
        unknown = [m for m in self.modes if m not in ("bicubic", "bilinear", "area")]
        if not self.modes or unknown:
            raise ValueError(f"views: modes must be among bicubic, bilinear, area, not {self.modes}")

    def boxes(self, h: int, w: int, gen: torch.Generator) -> list[Box]:
        """``bank`` random crop boxes for an (h, w) image (they depend on the shape and seed only)."""
        out = []
        short = min(h, w)
        lo, hi = self.scale
        for _ in range(self.bank):
            u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
            side = max(8, min(short, round((lo + (hi - lo) * u[0]) * short)))
            top, left = round(u[1] * (h - side)), round(u[2] * (w - side))
            mode = self.modes[int(torch.randint(len(self.modes), (1,), generator=gen))]
            out.append((top, left, side, self.flip and u[3] < 0.5, mode))
        return out

    def cut(self, x: torch.Tensor, box: Box) -> torch.Tensor:
        """One view of (B, 3, H, W) images, differentiably (crop, mirror, antialiased resize)."""
        top, left, side, mirrored, mode = box
        crop = x[..., top : top + side, left : left + side]
        if mirrored:
            crop = crop.flip(-1)
        if side == self.size:
            return crop
        if mode == "area":
            return F.interpolate(crop, size=(self.size, self.size), mode="area")
        out = F.interpolate(crop, size=(self.size, self.size), mode=mode, antialias=True, align_corners=False)
        return out.clamp(0, 1)

    def bind(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        ensemble: Ensemble,
        seed: int,
        then: Transform | None = None,
    ) -> BoundViews:
        """Draw the bank for ``x``'s shape and encode the target's views: the attack's transform.

        ``then`` (e.g. robust mode's :class:`~sfumato.countermeasures.differentiable.RobustTransform`)
        is applied to each view of the perturbed image, one random draw per view."""
        gen = torch.Generator().manual_seed(seed ^ 0x5F1E)
        boxes = self.boxes(*x.shape[-2:], gen)
        with torch.no_grad():
            targets = [ensemble.encode(self.cut(target, b)) for b in boxes]
            clean = [ensemble.encode(self.cut(x, b)) for b in boxes]
        pairs = list(zip(clean, targets, strict=True))
        base = [
            max(sum(float((c[e] - t[e]).square().mean()) for c, t in pairs) / len(pairs), 1e-12)
            for e in range(len(ensemble.encoders))
        ]
        return BoundViews(self, boxes, targets, base, clean, then)

    def describe(self) -> dict[str, object]:
        d = asdict(self)
        d["scale"] = list(self.scale)
        d["modes"] = list(self.modes)
        return d


@dataclass
class BoundViews:
    """:class:`TrainingViews` bound to one image and target: maps the perturbed image to ``draws`` views
    and the matching target latents (a *paired* transform for :func:`sfumato.optimise.attack`)."""

    spec: TrainingViews
    boxes: list[Box]
    targets: list[list[torch.Tensor]]  # per box, per encoder
    base: list[float]  # per encoder: mean squared latent distance of the clean views to the target's
    clean: list[list[torch.Tensor]]  # per box, per encoder: the latents of the unprotected image's views
    then: Transform | None = None
    paired: bool = field(default=True, init=False)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        picks = torch.randint(len(self.boxes), (self.spec.draws,), generator=gen).tolist()
        parts = [self.spec.cut(x, self.boxes[i]) for i in picks]
        if self.then is not None:
            parts = [self.then.apply(v, *self.then.draw(gen), gen) for v in parts]
        targets = [torch.cat([self.targets[i][e] for i in picks]) for e in range(len(self.base))]
        return torch.cat(parts), targets

    def moved(self, protected: torch.Tensor, ensemble: Ensemble) -> list[float]:
        """Per encoder, the share of the bank views' latent distance to the target that ``protected`` (the
        bound image, changed) closes: the engine's ``fraction_moved``, as the training views see it."""
        before = [0.0] * len(self.base)
        after = [0.0] * len(self.base)
        with torch.no_grad():
            for box, t, zc in zip(self.boxes, self.targets, self.clean, strict=True):
                zp = ensemble.encode(self.spec.cut(protected, box))
                for e in range(len(self.base)):
                    before[e] += float((zc[e] - t[e]).norm())
                    after[e] += float((zp[e] - t[e]).norm())
        return [1 - a / max(b, 1e-12) for a, b in zip(after, before, strict=True)]
