"""What a generator-aware objective needs from a text-to-image generator, and nothing more.

A :class:`Generator` is the pair a latent diffusion model is made of, seen from an attacker: the image
encoder (pixels -> the latents the denoiser is trained on) and the denoiser's training step (noise the
latents at a time, predict, compare with the training target). Both the lab's flow-matching UNet and a
diffusers Stable Diffusion pipeline fit it (:mod:`sfumato.generators.lab`,
:mod:`sfumato.generators.diffusers_pipeline`), so every objective in :mod:`sfumato.objectives` is written
once against this protocol.

The protocol splits the training loss into its pieces (``draw``, ``noisy``, ``predict``, ``target``)
because the objectives use them differently: AdvDM back-propagates through all of them, score
distillation skips the denoiser's Jacobian (it needs ``noisy`` alone), and Mist-v2's targeted loss
replaces ``target``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from sfumato.encoders.base import ImageEncoder

#: Text conditioning, opaque to the objectives: named tensors whose first dimension is the batch.
Condition = dict[str, torch.Tensor]


@runtime_checkable
class Generator(Protocol):
    """A text-to-image latent diffusion model, as the attacks see it.

    ``encode`` maps images in [0, 1] (B, 3, H, W), H and W multiples of ``multiple`` (what both the
    encoder and the denoiser's down-sampling need; callers pad), to the latents
    the denoiser trains on (differentiably); ``condition`` embeds prompts (no gradient). ``draw`` samples
    the training times and noise for latents ``z`` from ``gen`` (a CPU generator, so draws do not depend
    on the device); ``noisy`` is the forward process, ``predict`` the denoiser, ``target`` what
    training regresses ``predict`` onto. ``denoiser`` is the module fine-tuning trains (the surrogate
    schemes copy and train it). ``resolution`` is the side the generator was trained at, in px.
    """

    name: str
    multiple: int
    resolution: int
    denoiser: torch.nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def condition(self, prompts: Sequence[str]) -> Condition: ...

    def draw(self, z: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

    def noisy(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...

    def predict(self, zt: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor: ...

    def target(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...


def repeat_condition(cond: Condition, batch: int) -> Condition:
    """``cond`` for ``batch`` rows: a single row broadcasts, a batch of B repeats draw-major (k * B + i),
    the layout :func:`sfumato.optimise.attack` stacks transformed draws in."""
    out = {}
    for k, v in cond.items():
        n = v.shape[0]
        if n == batch:
            out[k] = v
        elif batch % n == 0:
            out[k] = v.repeat(batch // n, *([1] * (v.dim() - 1)))
        else:
            raise ValueError(f"a condition of {n} rows cannot serve a batch of {batch}")
    return out


def denoising_loss(
    generator: Generator, z: torch.Tensor, cond: Condition, gen: torch.Generator, draws: int = 1
) -> torch.Tensor:
    """The generator's own training loss on latents ``z`` (mean squared error, averaged over ``draws``
    draws of time and noise): what fine-tuning minimises, so what AdvDM maximises."""
    cond = repeat_condition(cond, z.shape[0])
    total = z.new_zeros(())
    for _ in range(draws):
        t, noise = generator.draw(z, gen)
        pred = generator.predict(generator.noisy(z, t, noise), t, cond)
        total = total + F.mse_loss(pred.float(), generator.target(z, t, noise).float())
    return total / draws


class GeneratorEncoder(ImageEncoder):
    """A generator's image encoder as an engine encoder, so the engine's ensemble, views and latent
    distance run on the latents the denoiser sees."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator
        self.name = f"generator:{generator.name}"
        self.multiple = generator.multiple

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.encode(x)
