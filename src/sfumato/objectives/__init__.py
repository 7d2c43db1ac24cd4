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

from sfumato.generators.base import Condition, Generator
from sfumato.objectives.denoiser import AdvDM, ScoreDistillation, Targeted
from sfumato.objectives.surrogate import DEFAULTS, SCHEMES, RoundReport, Schedule, protect_folder
from sfumato.optimise import Objective

IMAGE_OBJECTIVES = ("latent", "advdm", "sds-", "targeted")
FOLDER_OBJECTIVES = SCHEMES
OBJECTIVES = IMAGE_OBJECTIVES + FOLDER_OBJECTIVES
#: Objectives that pull toward a target image (a style rendering for cloak, the anchor for shade).
NEEDS_TARGET = ("latent", "targeted")

__all__ = [
    "DEFAULTS",
    "FOLDER_OBJECTIVES",
    "IMAGE_OBJECTIVES",
    "NEEDS_TARGET",
    "OBJECTIVES",
    "AdvDM",
    "RoundReport",
    "Schedule",
    "ScoreDistillation",
    "Targeted",
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
