"""What a generator draws, and what the judges make of it.

:func:`generate` draws images for prompts (the lab's deterministic ODE sampler, then the latent family's
decoder); :func:`judge_prompts` turns each prompt's images into shares per judge (the share called each
class); :func:`frechet_to_classes` measures, in an independent network's feature space, how far the
images drawn for a prompt are from real images of each named class ("does it now draw cats, or just broken
dogs?"). All figures come from real generations; nothing here is tuned with the judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from sfumato.encoders.precision import bf16_autocast
from sfumato.lab.judging.classifiers import Judge
from sfumato.lab.judging.frechet import frechet_between
from sfumato.lab.models.generator import LatentUNet, sample

TextFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]

SAMPLER_STEPS = 20
DEFAULT_GUIDANCE = 3.0


def decode_latents(latents: torch.Tensor, decoder: torch.nn.Module, batch: int = 250) -> torch.Tensor:
    """Latents -> uint8 images (N, 3, H, W), batched; in bf16 autocast where the CPU makes that fast."""
    out = []
    dev = next(decoder.parameters()).device
    with torch.no_grad(), bf16_autocast(dev):
        for s in range(0, latents.shape[0], batch):
            x = decoder(latents[s : s + batch].to(dev)).float().clamp(0, 1)
            out.append((x * 255).round().to(torch.uint8).cpu())
    return torch.cat(out) if out else torch.zeros((0, 3, 0, 0), dtype=torch.uint8)


def generate(
    model: LatentUNet,
    decoder: torch.nn.Module,
    text: TextFn,
    prompts: Sequence[str],
    n: int,
    *,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    steps: int = SAMPLER_STEPS,
    batch_size: int = 400,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """``n`` uint8 images per prompt. Prompt ``i`` draws its noise from seed ``seed * 1000 + i``, so
    a prompt's images do not depend on which other prompts are asked for."""
    emb, mask = text(list(prompts))
    out: dict[str, torch.Tensor] = {}
    for i, prompt in enumerate(prompts):
        e = emb[i : i + 1].expand(n, -1, -1)
        m = mask[i : i + 1].expand(n, -1)
        lat = sample(model, e, m, steps=steps, guidance=guidance, seed=seed * 1000 + i, batch_size=batch_size)
        out[prompt] = decode_latents(lat, decoder)
        if progress is not None:
            progress(i + 1, len(prompts))
    return out


def shares(judge: Judge, images: torch.Tensor) -> dict[str, float]:
    """The share of ``images`` the judge assigns to each of its classes."""
    pred = judge.predict(images)
    counts = torch.bincount(pred, minlength=len(judge.classes)).float()
    return {c: float(counts[i] / max(1, pred.numel())) for i, c in enumerate(judge.classes)}


def judge_prompts(
    judges: Sequence[Judge], images: Mapping[str, torch.Tensor]
) -> dict[str, dict[str, dict[str, float]]]:
    """``{judge name: {prompt: {class: share}}}``."""
    return {j.name: {p: shares(j, x) for p, x in images.items()} for j in judges}


def frechet_to_classes(
    features: Judge, images: torch.Tensor, references: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Fréchet distance from ``images`` to each class's real ``references`` in ``features``' space."""
    return {c: frechet_between(features, images, ref) for c, ref in references.items()}


def class_accuracy(
    judges: Sequence[Judge], images: Mapping[str, torch.Tensor], prompt_class: Mapping[str, str]
) -> dict[str, Any]:
    """Per judge: the share of each prompt's images called the prompt's class, and their mean."""
    out: dict[str, Any] = {}
    for j in judges:
        per = {c: shares(j, images[p])[c] for p, c in prompt_class.items()}
        out[j.name] = {"per_class": per, "mean": sum(per.values()) / max(1, len(per))}
    return out
