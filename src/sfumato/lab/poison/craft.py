"""Poisoned training images for the lab, made by the engine's optimiser in batches.

The lab poisons hundreds of 64-px images; :func:`sfumato.protect.shade` handles one picture of any size
(loading, tiling, reports), which at this size costs more in overhead than in optimisation. So this module
runs the same pieces — :func:`~sfumato.budget.make_budget`, :class:`~sfumato.optimise.Ensemble`,
:func:`~sfumato.optimise.attack` with the engine's speed presets — on a whole batch at once, and returns
per-image figures (latent distance closed, PSNR) so the experiment can report poison strength.

Anchors are chosen without any evaluation judge: for each source image, the candidate target image whose
latents (on the attacked encoders) are nearest, as an attacker with only the encoder would do; a candidate
is used at most ``ceil(sources / candidates)`` times so a few easy anchors do not stand in for all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sfumato.budget import make_budget
from sfumato.countermeasures.differentiable import ROBUST_RECIPE, ROBUST_STEP_FACTOR
from sfumato.encoders import load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.encoders.precision import bf16_autocast
from sfumato.lab.models.autoencoders import register_lab_encoders
from sfumato.optimise import SPEED, attack

register_lab_encoders()  # the engine attacks the lab's own latent spaces by checkpoint path


@dataclass
class PoisonBatch:
    images: torch.Tensor  # uint8 (N, 3, S, S), the poisoned images as saved
    anchors: torch.Tensor  # long (N,), index of each poison's anchor among the candidates
    closed: torch.Tensor  # (N,) fraction of the latent distance to the anchor closed, attacked encoders
    psnr: torch.Tensor  # (N,) dB against the unpoisoned image


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1], from uint8 or already-float tensors."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).square().mean(1).sqrt()


def closed_fraction(after: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the latent distance from ``source`` to ``target`` that ``after`` closed."""
    return 1 - _dist(after, target) / _dist(source, target).clamp_min(1e-12)


def choose_anchors(source_latents: torch.Tensor, candidate_latents: torch.Tensor) -> torch.Tensor:
    """For each source, the nearest candidate (latent L2), each candidate used at most ceil(N/K) times."""
    n, k = source_latents.shape[0], candidate_latents.shape[0]
    cap = math.ceil(n / k)
    d = torch.cdist(source_latents.flatten(1), candidate_latents.flatten(1))
    uses = torch.zeros(k, dtype=torch.long)
    out = torch.empty(n, dtype=torch.long)
    # Greedy over the globally closest pairs first, so no source takes an anchor another needs more.
    order = torch.argsort(d.flatten())
    done = torch.zeros(n, dtype=torch.bool)
    for flat in order.tolist():
        i, j = divmod(flat, k)
        if done[i] or uses[j] >= cap:
            continue
        out[i], done[i] = j, True
        uses[j] += 1
        if bool(done.all()):
            break
    return out


def encode_with(encoders: Sequence[torch.nn.Module], x: torch.Tensor, batch: int = 128) -> list[torch.Tensor]:
    out: list[list[torch.Tensor]] = [[] for _ in encoders]
    with torch.no_grad(), bf16_autocast(x.device):
        for s in range(0, x.shape[0], batch):
            for i, e in enumerate(encoders):
                out[i].append(e(x[s : s + batch]).float())
    return [torch.cat(o) for o in out]


def assign_anchors(
    sources: torch.Tensor,
    candidates: torch.Tensor,
    encoders: Sequence[str] = ("flux2",),
    weights_dir: str | None = None,
) -> torch.Tensor:
    """For each source, the index of its anchor among ``candidates`` (see :func:`choose_anchors`)."""
    encs = [load_encoder(name, weights_dir) for name in encoders]
    src_lat, cand_lat = encode_with(encs, as_unit(sources)), encode_with(encs, as_unit(candidates))
    joint = torch.cat([z.flatten(1) / z.flatten(1).std() for z in src_lat], 1)
    joint_c = torch.cat([z.flatten(1) / z.flatten(1).std() for z in cand_lat], 1)
    return choose_anchors(joint, joint_c)


def make_poisons(
    sources: torch.Tensor,
    candidates: torch.Tensor,
    *,
    anchors: torch.Tensor | None = None,
    encoders: Sequence[str] = ("flux2",),
    intensity: str = "high",
    budget: str = "jnd",
    eps: float | None = None,
    speed: str = "thorough",
    steps: int | None = None,
    robust: bool = False,
    seed: int = 0,
    batch: int = 32,
    weights_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PoisonBatch:
    """Poison ``sources`` (N, 3, S, S) toward ``candidates`` (K, 3, S, S), uint8 or [0, 1].

    ``eps`` overrides the budget preset's L-inf bound. ``anchors`` (N,) names each source's candidate;
    by default :func:`assign_anchors` picks them.
    Batch ``b`` of ``batch`` images is optimised with seed ``seed + b * batch``. ``robust=True``
    optimises through the engine's random differentiable countermeasures, with ``ROBUST_STEP_FACTOR``
    times the steps, exactly as ``sfumato shade --robust`` does.
    """
    encs = [load_encoder(name, weights_dir) for name in encoders]
    ensemble = Ensemble(encs)
    if anchors is None:
        anchors = assign_anchors(sources, candidates, encoders, weights_dir)
    src = as_unit(sources)
    targets_all = encode_with(encs, as_unit(candidates)[anchors])
    src_lat = encode_with(encs, src)
    rule = make_budget(intensity, budget, eps=eps)
    preset = SPEED[speed]
    n_steps = (steps or int(preset["steps"])) * (ROBUST_STEP_FACTOR if robust else 1)
    out = torch.empty_like(src)
    for start in range(0, src.shape[0], batch):
        x = src[start : start + batch]
        targets = [z[start : start + batch] for z in targets_all]
        result = attack(
            x,
            targets,
            ensemble,
            rule.allowance(x),
            steps=n_steps,
            lr=preset["lr"],
            seed=seed + start,
            transform=ROBUST_RECIPE if robust else None,
        )
        out[start : start + x.shape[0]] = ((x + result.delta) * 255).round().clamp(0, 255) / 255
        if progress is not None:
            progress(min(start + batch, src.shape[0]), src.shape[0])
    return _batch(out, src, src_lat, targets_all, anchors, encs)


def _batch(
    out: torch.Tensor,
    src: torch.Tensor,
    src_lat: list[torch.Tensor],
    target_lat: list[torch.Tensor],
    anchors: torch.Tensor,
    encs: Sequence[torch.nn.Module],
) -> PoisonBatch:
    """The crafted images (in [0, 1], 8-bit values) as a batch, with each one's share of the latent
    distance to its anchor closed (mean over ``encs``) and its PSNR against the source."""
    after = encode_with(encs, out)
    closed = torch.stack(
        [closed_fraction(a, s, t) for a, s, t in zip(after, src_lat, target_lat, strict=True)]
    ).mean(0)
    mse = (out - src).flatten(1).square().mean(1).clamp_min(1e-12)
    return PoisonBatch((out * 255).round().to(torch.uint8), anchors, closed, 10 * torch.log10(1 / mse))


def make_mist_poisons(
    sources: torch.Tensor,
    candidates: torch.Tensor,
    anchors: torch.Tensor,
    generator: Any,
    captions: Sequence[str],
    *,
    encoders: Sequence[str] = ("flux2",),
    intensity: str = "high",
    budget: str = "jnd",
    eps: float | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    schedule: Any = None,
    weights_dir: str | None = None,
) -> PoisonBatch:
    """``shade-mist``: the surrogate-trained poison (:mod:`sfumato.objectives.surrogate`, ``mist``).

    A copy of ``generator`` (a :class:`~sfumato.generators.Generator`) is fine-tuned round by round on the
    poisons captioned as the source (``captions``), and each poison is steered so that the fine-tuned
    copy's prediction for it moves toward its anchor's latents: what the victim's fine-tuning will
    learn from it, rather than what its encoder reads. ``closed`` is measured on ``encoders`` as for
    :func:`make_poisons`, so the two are compared on the same scale. ``checkpoint`` resumes by round.
    """
    from sfumato.objectives.surrogate import protect_folder

    src = as_unit(sources)
    targets = as_unit(candidates)[anchors]
    rule = make_budget(intensity, budget, eps=eps)
    works = [src[i : i + 1] for i in range(src.shape[0])]
    deltas = protect_folder(
        works,
        [rule.allowance(x) for x in works],
        generator,
        list(captions),
        scheme="mist",
        schedule=schedule,
        seed=seed,
        checkpoint=checkpoint,
        targets=[targets[i : i + 1] for i in range(targets.shape[0])],
    )
    out = torch.cat([((x + d) * 255).round().clamp(0, 255) / 255 for x, d in zip(works, deltas, strict=True)])
    encs = [load_encoder(name, weights_dir) for name in encoders]
    return _batch(out, src, encode_with(encs, src), encode_with(encs, targets), anchors, encs)
