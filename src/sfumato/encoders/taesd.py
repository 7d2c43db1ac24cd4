"""Tiny autoencoders (TAESD family) rebuilt from their state-dict layout.

The upstream checkpoints are flat ``nn.Sequential`` state dicts; which indices are blocks,
which blocks carry the pool branch and how many latent channels there are can all be read
from the keys. Only the strides cannot, so the two encoder families (8x, used by SD1.x, SDXL,
SD3, FLUX.1 and FLUX.2; 32x, used by Sana's DC-AE) are told apart by their first layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def _conv(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp the decoder applies to incoming latents."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block; with ``pool`` it first adds a channel-mixing 1x1 branch (FLUX.2 style)."""

    def __init__(self, n: int = 64, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))
        self.pool = (
            nn.Sequential(
                nn.Conv2d(n, 4 * n, 1, bias=False),
                nn.GroupNorm(4, 4 * n),
                nn.ReLU(),
                nn.Conv2d(4 * n, n, 1, bias=False),
            )
            if pool
            else None
        )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def _has_pool(sd: Mapping[str, torch.Tensor], index: int) -> bool:
    return f"{index}.pool.0.weight" in sd


def _latent_channels(sd: Mapping[str, torch.Tensor], key: str, dim: int) -> int:
    return int(sd[key].shape[dim])


def build_encoder(sd: Mapping[str, torch.Tensor]) -> tuple[nn.Sequential, int]:
    """Build the encoder matching ``sd``; returns the module and its downscale factor."""
    if sd["0.weight"].shape[0] == 32 and "2.bias" in sd:
        # Sana DC-AE tiny encoder: two strided stem convolutions, 32x downscale.
        layers: list[nn.Module] = [
            _conv(3, 32, 2),
            nn.ReLU(),
            _conv(32, 64, 2),
            nn.ReLU(),
            Block(64, _has_pool(sd, 4)),
        ]
        index = 5
        for _ in range(3):
            layers.append(_conv(64, 64, 2, bias=False))
            layers += [Block(64, _has_pool(sd, index + k)) for k in range(1, 4)]
            index += 4
        last = index
        layers.append(_conv(64, _latent_channels(sd, f"{last}.weight", 0)))
        return nn.Sequential(*layers), 32
    layers = [_conv(3, 64), Block(64, _has_pool(sd, 1))]
    index = 2
    for _ in range(3):
        layers.append(_conv(64, 64, 2, bias=False))
        layers += [Block(64, _has_pool(sd, index + k)) for k in range(1, 4)]
        index += 4
    layers.append(_conv(64, _latent_channels(sd, f"{index}.weight", 0)))
    return nn.Sequential(*layers), 8


def build_decoder(sd: Mapping[str, torch.Tensor]) -> nn.Sequential:
    """Build the 8x decoder matching ``sd`` (latent channels read from the first convolution)."""
    latent = _latent_channels(sd, "1.weight", 1)
    layers: list[nn.Module] = [Clamp(), _conv(latent, 64), nn.ReLU()]
    index = 3
    for stage in range(3):
        layers += [Block(64, _has_pool(sd, index + k)) for k in range(3)]
        layers += [nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]
        index += 5
        del stage
    layers += [Block(64, _has_pool(sd, index)), _conv(64, 3)]
    return nn.Sequential(*layers)
