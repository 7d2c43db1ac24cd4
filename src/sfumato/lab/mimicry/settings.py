"""What a mimicry experiment is: its conditions (``clean``, ``cloak-default``, ``share50-high``, ...),
the artists' prompts, and its settings.

Kept apart from the runner (:mod:`sfumato.lab.mimicry.experiment`) so the report and the CLI parse
conditions and read settings without importing the machinery that runs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sfumato.lab.data.artists import (
    ARTISTS,
    MIMICRY_ARTISTS,
    WORK_SIZE,
)
from sfumato.lab.judging.evaluation import DEFAULT_GUIDANCE, SAMPLER_STEPS
from sfumato.lab.judging.style_judge import StyleJudgeSpec
from sfumato.lab.models.base import BaseSpec
from sfumato.lab.storage import with_precision, without_precision
from sfumato.styles import STYLE_NAMES

SCHEMA = "sfumato.lab.mimicry/1"
#: The clean mimic's share judged as the artist below which there is no mimicry for a cloak to remove
#: (4 of 80 images a seed): the goal is neither met nor missed there.
MIN_MIMICRY = 0.05


def mimicry_to_remove(clean_mimicry: float | None) -> bool:
    """Whether a clean mimic drew the style often enough for a cloak's effect on it to be measured."""
    return clean_mimicry is not None and clean_mimicry >= MIN_MIMICRY


INTENSITIES = ("low", "default", "high")
#: The field's plain budgets, usable where an intensity is (``targeted-linf16``): a fixed L-inf bound in
#: 8-bit levels, the optimiser's steps as at ``default`` (Anti-DreamBooth, Mist and MetaCloak report at
#: 8/255 to 16/255; our presets are visibility-aware and aim at >= 35 dB instead).
FIXED_LINF = {"linf8": 8, "linf16": 16}
BUDGET_TOKENS = (*INTENSITIES, *FIXED_LINF)


def optimiser_budget(token: str) -> tuple[str, float | None]:
    """A condition's budget token as the optimiser takes it: (intensity, fixed L-inf bound in [0, 1] or
    None); ``linf16`` is the ``default`` optimiser under a 16-level bound."""
    return ("default", FIXED_LINF[token] / 255) if token in FIXED_LINF else (token, None)


KINDS = (
    "clean",
    "cloak",
    "robust",
    "views",
    "decoded",
    "linf",
    "auto",
    "blend",
    "share",
    "advdm",
    "sds",
    "targeted",
    "aspl",
    "metacloak",
)
#: Generator-aware conditions and the objective each one runs (:mod:`sfumato.objectives`) against the
#: protector's copy of the generator (``MimicryConfig.surrogate``): ``sds`` is score distillation's
#: "minimise the loss" variant, ``sds-``.
GENERATOR_OBJECTIVES = {
    "advdm": "advdm",
    "sds": "sds-",
    "targeted": "targeted",
    "aspl": "aspl",
    "metacloak": "metacloak",
}
#: Of those, the ones that protect an artist's works together (a surrogate fine-tuned on all of them).
FOLDER_KINDS = ("aspl", "metacloak")
DEFAULT_CONDITIONS: tuple[str, ...] = (
    "clean",
    "cloak-low",
    "cloak-default",
    "cloak-high",
    "views-default",
    "linf-default",
    "auto-default",
    "share25-default",
    "share50-default",
    "share75-default",
)

#: Training captions; the first is also the evaluation prompt.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a painting by {}",
    "an artwork by {}",
    "a picture painted by {}",
    "a work of art by {}",
    "art by {}",
)


@dataclass(frozen=True)
class Condition:
    """A parsed condition name (the conditions: :mod:`sfumato.lab.mimicry.experiment`)."""

    name: str
    kind: str
    intensity: str | None = None
    share: int = 100  # percent of the works cloaked
    blend: int = 0  # percent of the target rendering blended into each work (``blend<NN>``)

    @property
    def budget(self) -> str | None:
        if self.kind in ("clean", "blend"):
            return None
        return "linf" if self.kind == "linf" or self.intensity in FIXED_LINF else "jnd"

    def variant(self, style: str) -> str | None:
        """The protected copies this condition uses: ``<budget, robust or views>-<intensity>-<style or
        auto>``, or ``blend<NN>-<style>``."""
        if self.kind == "clean":
            return None
        if self.kind == "blend":
            return f"blend{self.blend}-{style}"
        mode = (
            self.kind if self.kind in ("robust", "views", "decoded", *GENERATOR_OBJECTIVES) else self.budget
        )
        return f"{mode}-{self.intensity}-{'auto' if self.kind == 'auto' else style}"


_PATTERN = re.compile(
    r"^(?:(cloak|robust|views|decoded|linf|auto|advdm|sds|targeted|aspl|metacloak)|share(\d+))"
    r"-(low|default|high|linf8|linf16)$"
)


def parse_condition(name: str) -> Condition:
    if name == "clean":
        return Condition(name, "clean", share=0)
    blend = re.fullmatch(r"blend(\d+)", name)
    if blend:
        if not 0 < int(blend.group(1)) <= 100:
            raise ValueError(f"{name}: the blend must be between 1 and 100 %")
        return Condition(name, "blend", blend=int(blend.group(1)))
    m = _PATTERN.match(name)
    if not m:
        raise ValueError(
            f"unknown condition {name!r}; use clean, cloak-<i>, robust-<i>, views-<i>, decoded-<i>, "
            f"linf-<i>, auto-<i>, share<NN>-<i>, advdm-<i>, sds-<i>, targeted-<i>, aspl-<i>, "
            f"metacloak-<i> with <i> one of {', '.join(BUDGET_TOKENS)}, or blend<NN>"
        )
    kind, share, intensity = m.group(1) or "share", m.group(2), m.group(3)
    if kind == "linf" and intensity in FIXED_LINF:
        raise ValueError(f"{name}: a fixed L-inf bound is 'cloak-{intensity}'; 'linf-<i>' matches the PSNR")
    if share is not None and not 0 < int(share) < 100:
        raise ValueError(
            f"{name}: the share must be between 1 and 99 (0 is 'clean', 100 'cloak-{intensity}')"
        )
    return Condition(name, kind, intensity, int(share) if share is not None else 100)


def condition_order(name: str) -> tuple[int, int, int]:
    """Sort order: the kinds as in ``KINDS``; then intensity; then NN."""
    c = parse_condition(name)
    return (KINDS.index(c.kind), BUDGET_TOKENS.index(c.intensity) if c.intensity else -1, c.blend or c.share)


def prompt_for_artist(artist: str) -> str:
    """The evaluation prompt: "a painting by <name>"."""
    return CAPTION_TEMPLATES[0].format(ARTISTS[artist].name)


@dataclass
class MimicryConfig:
    """Everything that determines the experiment's figures (written beside them as ``settings.json``)."""

    artists: tuple[str, ...] = MIMICRY_ARTISTS
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    style: str = "sketch"  # the fixed cloak target (built-in style)
    works: int | None = None  # at most this many mimicry works per artist (None: all, 12-20)
    work_size: int = WORK_SIZE  # short side the works are rendered, cloaked and cut at
    view_scale: tuple[float, float] = (0.5, 1.0)  # crop side as a fraction of the work's short side
    views: int = 320  # training views per artist, spread evenly over its works
    samples: int = 80  # images drawn per run (per seed): 240 per condition over 3 seeds
    guidance: tuple[float, ...] = (DEFAULT_GUIDANCE,)
    sampler_steps: int = SAMPLER_STEPS
    finetune_steps: tuple[int, ...] = (400,)  # evaluated at each; constant learning rate after warm-up
    finetune_batch: int = 32
    # 5x the poisoning experiment's: a new caption and a new look, not a shifted class, must be learnt
    # (at 1e-4 a clean Van Gogh fine-tune was judged Van Gogh 50-56 %, ukiyo-e 20 %; at 5e-4, 400 steps:
    # ukiyo-e 39 %).
    finetune_lr: float = 5e-4
    cloak_encoders: tuple[str, ...] = ("flux2",)
    cloak_speed: str = "default"
    cloak_steps: int | None = None  # None: the speed preset's
    linf_passes: int = 2  # cloaks per work to match the jnd copy's PSNR with a plain L-inf bound
    countermeasure: str = ""  # applied by the scraper to every work before training ("": none)
    judge: StyleJudgeSpec = field(default_factory=StyleJudgeSpec)
    base: BaseSpec = field(default_factory=BaseSpec)
    # The generator the protector attacks in the generator-aware conditions: None, the victim base itself
    # (white-box); a base of another seed and width (grey-box) or another latent space (black-box).
    surrogate: BaseSpec | None = None

    def __post_init__(self) -> None:
        self.artists = tuple(self.artists)
        self.conditions = tuple(self.conditions)
        self.seeds = tuple(self.seeds)
        self.view_scale = tuple(self.view_scale)  # type: ignore[assignment]
        for a in self.artists:
            if a not in MIMICRY_ARTISTS:
                raise ValueError(f"unknown artist {a!r}; known: {', '.join(MIMICRY_ARTISTS)}")
        parsed = [parse_condition(c) for c in self.conditions]
        if self.style not in STYLE_NAMES:
            raise ValueError(f"unknown cloak style {self.style!r}; choose one of {', '.join(STYLE_NAMES)}")
        needed = set(self.artists) | {self.style}
        if any(c.kind == "auto" for c in parsed):
            needed |= set(STYLE_NAMES)
        missing = sorted(needed - set(self.judge.classes))
        if missing:
            raise ValueError(f"the style judge must know {missing} to score these artists and conditions")
        if not self.finetune_steps or sorted(self.finetune_steps) != list(self.finetune_steps):
            raise ValueError("finetune_steps must be increasing")
        if self.samples < 1 or self.views < 1 or self.linf_passes < 1 or not self.guidance:
            raise ValueError("samples, views and linf_passes must be >= 1, and guidance not empty")
        if self.countermeasure:
            from sfumato.countermeasures import check_name

            check_name(self.countermeasure)

    def parsed(self) -> list[Condition]:
        return [parse_condition(c) for c in self.conditions]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["judge"] = self.judge.to_dict()
        d["base"] = self.base.to_dict()
        if self.surrogate is None:
            del d["surrogate"]  # so folders made before generator-aware conditions keep their settings
        else:
            d["surrogate"] = self.surrogate.to_dict()
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if not d["countermeasure"]:
            del d["countermeasure"]  # so folders made before countermeasures existed keep their settings
        return with_precision(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MimicryConfig:
        from sfumato.lab.models.base import spec_from_dict

        d = without_precision(d)
        d["base"] = spec_from_dict(d["base"])
        if d.get("surrogate") is not None:
            d["surrogate"] = spec_from_dict(d["surrogate"])
        d["judge"] = StyleJudgeSpec.from_dict(d["judge"])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


#: The settings a later call may extend (each with its sort order); any other difference is refused.
GROWABLE: dict[str, Callable[[Any], Any]] = {
    "artists": list(ARTISTS).index,
    "conditions": condition_order,
    "seeds": int,
}


def load_settings(out: str | Path) -> MimicryConfig:
    """The configuration a mimicry folder was run with (the union of every call's artists, ...)."""
    path = Path(out) / "settings.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not a mimicry experiment folder")
    return MimicryConfig.from_dict(json.loads(path.read_text()))
