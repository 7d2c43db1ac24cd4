"""Objectives: the losses the engine's optimiser minimises, one module per kind.

- ``latent``: the engine's latent distance to the target's latents (``shade`` and ``cloak`` as before),
  here on the latents of the generator named by ``--against``;
- per-work objectives on the denoiser (:mod:`sfumato.objectives.denoiser`): ``advdm``, ``sds-``,
  ``targeted``;
- folder-level surrogate-training schemes (:mod:`sfumato.objectives.surrogate`): ``aspl``, ``metacloak``.

Every one runs through :func:`sfumato.optimise.attack` (budget, momentum sign steps, tiles, views and
robust mode are the engine's), so they differ only in the loss.
"""

from __future__ import annotations

from typing import Any

import torch

from sfumato.encoders.ensemble import pad_to_multiple
from sfumato.generators.base import Condition, Generator
from sfumato.objectives.denoiser import (
    AdvDM,
    ScoreDistillation,
    Targeted,
    mean_denoising_loss,
    prediction_distance,
)
from sfumato.objectives.surrogate import DEFAULTS, SCHEMES, RoundReport, Schedule, protect_folder
from sfumato.optimise import Objective

IMAGE_OBJECTIVES = ("latent", "advdm", "sds-", "targeted")
#: With ``--against`` and no ``--objective``: today's latent distance, on the generator's own latents,
#: until the lab's verdict (issue 21, item 3) shows which objective protects.
DEFAULT_OBJECTIVE = "latent"
FOLDER_OBJECTIVES = SCHEMES
OBJECTIVES = IMAGE_OBJECTIVES + FOLDER_OBJECTIVES

__all__ = [
    "DEFAULTS",
    "DEFAULT_OBJECTIVE",
    "FOLDER_OBJECTIVES",
    "IMAGE_OBJECTIVES",
    "OBJECTIVES",
    "AdvDM",
    "RoundReport",
    "Schedule",
    "ScoreDistillation",
    "Targeted",
    "generator_effect",
    "make_objective",
    "protect_folder",
]

_KINDS = {"advdm": AdvDM, "sds-": ScoreDistillation, "targeted": Targeted}


def make_objective(name: str, generator: Generator, cond: Condition, draws: int = 1) -> Objective | None:
    """The per-work objective ``name`` against ``generator`` for a work captioned ``cond``; None for
    ``latent`` (the engine's own latent distance)."""
    if name == "latent":
        return None
    if name in FOLDER_OBJECTIVES:
        raise ValueError(f"{name!r} is a folder-level scheme: use protect_folder")
    if name not in _KINDS:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {name!r}")
    return _KINDS[name](generator, cond, draws)


def generator_effect(
    generator: Generator,
    settings: Any,
    original: torch.Tensor,
    protected: torch.Tensor,
    target: torch.Tensor | None = None,
) -> dict[str, Any]:
    """What the protection did to the attacked generator, at fixed draws: its denoising loss on the work
    under the prompt (AdvDM raises it, ``sds-`` lowers it), its prediction's distance to the target's
    latents (``targeted`` lowers it) and the latent shift, before and after."""
    m = generator.multiple
    with torch.no_grad():
        z0, z1 = (generator.encode(pad_to_multiple(v, m)) for v in (original, protected))
        zt = None if target is None else generator.encode(pad_to_multiple(target, m))
    cond = generator.condition([settings.prompt or ""])
    loss0, loss1 = mean_denoising_loss(generator, z0, cond), mean_denoising_loss(generator, z1, cond)
    out: dict[str, Any] = {
        "generator": generator.name,
        "objective": settings.objective or DEFAULT_OBJECTIVE,
        "prompt": settings.prompt,
        "latent_shift": round(float((z1 - z0).square().mean().sqrt()), 5),
        "denoising_loss": {"before": round(loss0, 5), "after": round(loss1, 5)},
    }
    if zt is not None:
        d0, d1 = prediction_distance(generator, z0, zt, cond), prediction_distance(generator, z1, zt, cond)
        out["prediction_distance"] = {"before": round(d0, 5), "after": round(d1, 5)}
    return out
