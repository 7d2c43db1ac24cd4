"""The common face of every image encoder sfumato attacks."""

from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """Maps RGB images in [0, 1] of shape (B, 3, H, W) to latents (B, C, H/f, W/f).

    ``multiple`` is the side-length granularity the network needs; callers pad to it.
    Parameters are frozen: sfumato only ever differentiates with respect to the image.
    """

    name: str = "encoder"
    multiple: int = 8
    latent_channels: int = 0
    verified: bool = False  # True once the weights matched a pinned SHA-256 (encoders/integrity.py)
    source: str = ""  # where the weights came from, for the note an unverified file gets

    def freeze(self) -> ImageEncoder:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)
