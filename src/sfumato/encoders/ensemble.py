"""Several encoders attacked as one: the optimiser's view of "the generator's image encoder".

Below the optimiser and the training views alike (both need it, neither owns it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sfumato.encoders.base import ImageEncoder
from sfumato.encoders.precision import bf16_autocast


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right edges so both sides are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@dataclass
class Ensemble:
    """Weighted encoders attacked together, so the perturbation transfers beyond any one of them."""

    encoders: Sequence[ImageEncoder]
    weights: Sequence[float] = field(default_factory=list)
    bf16: bool = True  # gradients in bf16 autocast where the CPU makes that fast (encoders.precision)

    def __post_init__(self) -> None:
        if not self.weights:
            self.weights = [1.0] * len(self.encoders)
        if len(self.weights) != len(self.encoders):
            raise ValueError("one weight per encoder")
        total = float(sum(self.weights))
        self.weights = [w / total for w in self.weights]

    @property
    def multiple(self) -> int:
        return math.lcm(*[e.multiple for e in self.encoders])

    def encode(self, x: torch.Tensor, grad: bool = False) -> list[torch.Tensor]:
        xp = pad_to_multiple(x, self.multiple)
        with bf16_autocast(xp.device, grad and self.bf16):
            return [e(xp).float() for e in self.encoders]
