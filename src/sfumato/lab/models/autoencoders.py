"""The image autoencoders the lab's generators live in: the engine's (FLUX.2, Sana) or the lab's own.

:func:`load_lab_encoder` / :func:`load_lab_decoder` take a latent-family name known to
:mod:`sfumato.encoders` (``flux2``; ``sana`` has no decoder here) or the path of a private autoencoder
trained by :func:`train_private_autoencoder`, whose latents no attacker has seen: the transfer test.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sfumato.encoders import ImageEncoder, load_decoder, load_encoder, register_loader


def _is_private(name: str) -> bool:
    return Path(name).suffix == ".pt" or (Path(name) / "checkpoint.pt").is_file()


def load_lab_encoder(name: str) -> torch.nn.Module:
    """An encoder (pixels in [0, 1] -> latents) by family name or private-autoencoder path."""
    if _is_private(name):
        from sfumato.lab.models.private_autoencoder import load_private

        return load_private(name).encoder
    return load_encoder(name)


def load_lab_decoder(name: str) -> torch.nn.Module:
    """The decoder (latents -> pixels in [0, 1]) matching :func:`load_lab_encoder` of ``name``."""
    if _is_private(name):
        from sfumato.lab.models.private_autoencoder import load_private

        return load_private(name).decoder
    return load_decoder(name)


class LabEncoder(ImageEncoder):
    """A private autoencoder's encoder (its latent mean) as the engine's :class:`ImageEncoder`, so the
    engine's attacks (``sfumato.cloak``/``shade``, the lab's poisons and cloaks) can aim at the lab's own
    latent spaces, e.g. the SD-class one (``encoders=("<workdir>/sd-class-autoencoder/checkpoint.pt",)``)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from sfumato.lab.models.private_autoencoder import load_private

        p = Path(path)
        self.inner = load_private(p).encoder
        self.name = f"private:{(p if p.is_dir() else p.parent).name}"
        self.multiple = int(self.inner.multiple)
        self.latent_channels = int(self.inner.latent_channels)
        self.source = str(p)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _private_loader(name: str) -> ImageEncoder | None:
    return LabEncoder(name) if _is_private(name) else None


def register_lab_encoders() -> None:
    """Make the engine's encoder loader accept private-autoencoder checkpoints (idempotent)."""
    register_loader(_private_loader)
