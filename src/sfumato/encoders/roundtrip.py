"""The autoencoder's round trip as an attack surface: ``decode(encode(x))``.

A generator fine-tuned on an image learns to reproduce its latents, and what it draws is those latents
decoded. Measured in the lab (benchmarks/results/lab/mimicry), a cloak that closes 20 % of the
*latent* distance to its target decodes to a picture a style judge still calls the artist's: the shift
lies in directions the decoder barely shows. Attacking the round trip instead aims the shift at what the
decoder, and so the generator's output, shows. Measured there too: at about 35 dB it moves the tiny FLUX.2
round trip only 2-4 % of the way to the target, no further than the pixel change itself could, so against a
faithful autoencoder it is the honest yardstick of a cloak rather than a rescue. Named ``<family>-decoded``
(e.g. ``flux2-decoded``).
"""

from __future__ import annotations

import torch
from torch import nn

from sfumato.encoders.base import ImageEncoder

SUFFIX = "-decoded"


class RoundTripEncoder(ImageEncoder):
    """``decoder(encoder(x))``: RGB in, the generator's view of it (RGB at the same size) out."""

    def __init__(self, encoder: ImageEncoder, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.name = f"{encoder.name}{SUFFIX}"
        self.multiple = encoder.multiple
        self.latent_channels = 3
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
