"""What a poisoning experiment is: its methods, where its images come from in CIFAR-10, its settings.

Kept apart from the runner (:mod:`sfumato.lab.poison.experiment`) so the CLI, the robustness experiment
and the benchmarks read and check settings without importing the machinery that runs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sfumato.lab.data.captions import RELATED, prompt_for
from sfumato.lab.judging.evaluation import DEFAULT_GUIDANCE, SAMPLER_STEPS
from sfumato.lab.models.base import BaseSpec
from sfumato.lab.storage import with_precision, without_precision

METHODS = ("shade", "shade-gm", "shade-mist", "shade-robust", "shade-real", "dirty")
#: The methods that attack a generator (the protector's surrogate: the victim base unless one is named).
GENERATOR_METHODS = ("shade-gm", "shade-mist")


# method -> the anchor set it aims at
ANCHOR_SET = {
    "shade": "shade",
    "shade-gm": "shade",
    "shade-mist": "shade",
    "shade-robust": "shade",
    "shade-real": "shade-real",
}
POISON_OFFSET = 1000  # CIFAR-10 train index where the poison sources (and dirty-label images) start
ANCHOR_OFFSET = 2000  # where the real anchors for shade-real start
POISON_CHUNK = 50  # poisons crafted (and saved) per chunk


@dataclass
class PoisonConfig:
    """Everything that determines the experiment's figures (written beside them as ``settings.json``)."""

    source: str = "dog"
    target: str = "cat"
    related: tuple[str, ...] = ()  # empty: RELATED[source]
    unrelated: tuple[str, ...] = ("truck", "ship")
    doses: tuple[int, ...] = (0, 25, 50, 100, 200, 400)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    clean_per_class: int = 200
    samples: int = 200  # images per prompt per evaluation
    guidance: tuple[float, ...] = (DEFAULT_GUIDANCE, 1.0)
    sampler_steps: int = SAMPLER_STEPS
    finetune_steps: tuple[int, ...] = (200, 400)  # evaluated at each; constant learning rate after warm-up
    finetune_batch: int = 64
    finetune_lr: float = 1e-4
    poison_pool: int = 400  # poisons per method; a dose takes the first N
    anchor_candidates: int = 400  # generated (shade) or real (shade-real) target images poisons may aim at
    poison_encoders: tuple[str, ...] = ("flux2",)
    intensity: str = "high"
    budget: str = "jnd"
    poison_steps: int = 48
    poison_eps: float | None = None  # override of the budget preset's L-inf bound (0..1 units)
    countermeasure: str = ""  # applied to every fine-tuning image ("": none)
    # The attacker's experiment folder whose poison pool is used as is ("": craft against this base).
    # Set for the transfer test: poisons made against public encoders, trained on by a private generator.
    poisons_from: str = ""
    base: BaseSpec = field(default_factory=BaseSpec)
    # The generator shade-gm and shade-mist attack: None, the victim base itself (white-box); else a base
    # of another seed and width (grey-box) or latent space (black-box), trained apart.
    surrogate: BaseSpec | None = None

    def __post_init__(self) -> None:
        self.related = tuple(self.related) or tuple(RELATED[self.source])
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown poisoning method {m!r}; known: {', '.join(METHODS)}")
        for c in (self.source, self.target):
            if c not in self.base.classes:
                raise ValueError(
                    f"{c!r} is not one of the base generator's classes {list(self.base.classes)}"
                )
        if self.countermeasure:
            from sfumato.countermeasures import check_name

            check_name(self.countermeasure)
        if max(self.doses) > self.poison_pool:
            raise ValueError(f"the largest dose {max(self.doses)} exceeds poison_pool {self.poison_pool}")
        if sorted(self.finetune_steps) != list(self.finetune_steps) or not self.finetune_steps:
            raise ValueError("finetune_steps must be increasing")

    @property
    def pair(self) -> str:
        return f"{self.source}-to-{self.target}"

    def poison_settings(self) -> dict[str, Any]:
        """The settings a poison pool depends on: pools agreeing on these can be shared."""
        keys = ("source", "target", "poison_pool", "anchor_candidates", "poison_encoders")
        keys += ("intensity", "budget", "poison_steps", "poison_eps", "sampler_steps")
        out = {k: v for k, v in self.to_dict().items() if k in keys} | {"base": self.base.to_dict()}
        if self.surrogate is not None:
            out["surrogate"] = self.surrogate.to_dict()
        return out

    def prompts(self) -> dict[str, str]:
        """Evaluation prompts and their role: source, related, unrelated."""
        out = {prompt_for(self.source): "source"}
        out.update({prompt_for(w): "related" for w in self.related})
        out.update({prompt_for(w): "unrelated" for w in self.unrelated})
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["base"] = self.base.to_dict()
        if self.surrogate is None:
            del d["surrogate"]
        else:
            d["surrogate"] = self.surrogate.to_dict()
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        # Unset options are left out, so folders made before they existed keep their settings.
        if not d["countermeasure"]:
            del d["countermeasure"]
        if d["poison_eps"] is None:
            del d["poison_eps"]
        if not d["poisons_from"]:
            del d["poisons_from"]
        return with_precision(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoisonConfig:
        from sfumato.lab.models.base import spec_from_dict

        d = without_precision(d)
        d["base"] = spec_from_dict(d["base"])
        if d.get("surrogate") is not None:
            d["surrogate"] = spec_from_dict(d["surrogate"])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


#: The settings a later call may extend (each with its sort order); any other difference is refused.
GROWABLE: dict[str, Callable[[Any], Any]] = {"doses": int, "methods": METHODS.index, "seeds": int}


def load_settings(out: str | Path) -> PoisonConfig:
    """The configuration an experiment folder was run with."""
    path = Path(out) / "settings.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not an experiment folder")
    return PoisonConfig.from_dict(json.loads(path.read_text()))


def crafted_chunks(pool: str | Path, method: str) -> list[dict[str, Any]]:
    """The saved chunks of ``method``'s poison pool in ``pool`` (images, closed, psnr, seconds), in order."""
    return [torch.load(p, weights_only=True) for p in sorted((Path(pool) / method).glob("chunk-*.pt"))]
