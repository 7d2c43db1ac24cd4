"""A verdict per protected image, in plain words: strong, weak or none, with one sentence why.

Why this exists: the figure the reports lead with, latent movement toward the target, is what the
optimiser maximises, and the lab (README, "The lab, measured") has shown that it does *not* decide
whether a generator fine-tuned on the images learns the style or the concept. So the verdict is
computed from what the lab has shown to matter, per mode and latent space:

- an image whose encoding did not move toward the target (nil or negative movement, e.g. flat colour)
  is never protected, whatever else the report says: ``none``;
- a cloak whose shift does not survive a fine-tuning pipeline's training views (``views.fraction_moved``
  nil) is ``none`` too: the crop-and-resize removes it;
- otherwise the lab's finding for that mode and latent space caps the verdict. In the tiny FLUX.2 space
  cloaks removed -7 to 22 % of the mimicry and shade taught no more than plain mislabelling, so the cap
  there is ``weak``, and the sentence says so with a link to the lab section. Latent spaces the lab has
  not tested are capped at ``weak`` as well: the one space measured says latent movement overstates
  the effect, and nothing says other spaces differ.

``strong`` is kept for a mode and latent space where the lab has measured the protection stopping a
fine-tuned model. No invisible protection has earned it yet; the level exists so that the words do not
change meaning when one does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEVELS = ("none", "weak", "strong")
# The section the verdicts rest on, relative to the project (the project has no public address yet).
LAB_URL = "README.md#the-lab-measured"
NIL_MOVEMENT = 0.02  # below 2 % of the way to the target the change is within the encoder's own noise


@dataclass(frozen=True)
class LabFinding:
    """What the lab measured for one mode in one latent space: the best verdict it allows, and why."""

    cap: str
    why: str


# (mode, latent space) -> finding. Spaces are the engine's encoder names; "*" is any space not listed.
LAB_FINDINGS: dict[tuple[str, str], LabFinding] = {
    ("cloak", "flux2"): LabFinding(
        "weak",
        "in the lab, a model of the FLUX.2 family trained on cloaked works still copied the style: "
        "cloaks removed -7 to 22 % of the copying",
    ),
    ("shade", "flux2"): LabFinding(
        "weak",
        "in the lab, poisons made for the FLUX.2 family taught a model trained on them no more than "
        "photos with a wrong caption would, and did nothing to a model with its own autoencoder",
    ),
    ("cloak", "flux2-decoded"): LabFinding(
        "weak",
        "in the lab, cloaks aimed at what the FLUX.2 family redraws moved it only 2-4 % of the way and "
        "left the copying of the style where it was",
    ),
    ("shade", "sd"): LabFinding(
        "weak",
        "in the lab's analogue of Stable Diffusion's autoencoder, poisons made for it taught a model trained "
        "on them no more than photos with a wrong caption would",
    ),
    ("cloak", "*"): LabFinding(
        "weak",
        "the lab has not tested this model family; in the one it tested (FLUX.2) an invisible cloak "
        "did not stop a model trained on the works from copying the style",
    ),
    ("shade", "*"): LabFinding(
        "weak",
        "the lab has not tested this model family; in the one it tested (FLUX.2) the poisons taught "
        "no more than a wrong caption would",
    ),
}


@dataclass(frozen=True)
class Verdict:
    """``level`` is one of :data:`LEVELS`; ``why`` is one sentence for the artist; ``lab`` links the
    lab section the verdict rests on; ``movement`` is the figure it was computed from (None if absent)."""

    level: str
    why: str
    movement: float | None = None
    lab: str = LAB_URL

    @property
    def protected(self) -> bool:
        """Only ``strong`` may be shown as protected; ``weak`` is a change that the lab found does not
        stop a fine-tuned model."""
        return self.level == "strong"

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "why": self.why, "movement": self.movement, "lab": self.lab}

    def line(self) -> str:
        """One line for a terminal: ``weak: why``."""
        return f"{self.level}: {self.why}"


def verdict(report: Mapping[str, Any]) -> Verdict:
    """The verdict for one image from its report (the engine's, a sidecar, or the app's record)."""
    settings = report.get("settings") or {}
    mode = str(settings.get("mode") or ("shade" if settings.get("concept") else "cloak"))
    latents: Mapping[str, Any] = (report.get("effect") or {}).get("latents") or {}
    attacked = [name for name, fig in latents.items() if fig.get("attacked")]
    spaces = attacked or list(settings.get("encoders") or ())
    moved = _movement(latents, attacked)
    if moved is None:
        return Verdict(
            "none",
            "how far the image moved toward its target was not measured, so there is no sign of protection",
            None,
        )
    if moved < NIL_MOVEMENT:
        how = "away from" if moved < 0 else "no closer to"
        return Verdict(
            "none",
            f"as the model reads it, the image moved {how} its target ({moved:+.0%}), so it is not protected "
            "(flat colour and very smooth images leave the change nowhere to hide)",
            moved,
        )
    views = _views_movement(report)
    if views is not None and views < NIL_MOVEMENT:
        return Verdict(
            "none",
            f"the change does not survive the crop and resize of model training ({views:+.0%} of the way "
            "in the training views), so it is not protected",
            moved,
        )
    finding = _weakest(mode, spaces)
    level = finding.cap
    return Verdict(
        level,
        f"the image changed as intended ({moved:.0%} of the way to its target), but {finding.why}",
        moved,
    )


def verdicts(reports: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many images got each level, every level present (for a batch summary)."""
    counts = dict.fromkeys(LEVELS, 0)
    for report in reports:
        counts[verdict(report).level] += 1
    return counts


def finding(mode: str, space: str) -> LabFinding:
    """The lab's finding for ``mode`` in latent space ``space`` (the catch-all when untested)."""
    return (
        LAB_FINDINGS.get((mode, space))
        or LAB_FINDINGS[(mode if mode in ("cloak", "shade") else "cloak", "*")]
    )


def _weakest(mode: str, spaces: Sequence[str]) -> LabFinding:
    """With several spaces attacked, the verdict is the lowest cap: a mimic may use any of them."""
    found = [finding(mode, s) for s in spaces] or [finding(mode, "*")]
    return min(found, key=lambda f: LEVELS.index(f.cap))


def _movement(latents: Mapping[str, Any], attacked: Sequence[str]) -> float | None:
    """The least movement over the attacked encoders (any encoder if none is marked attacked)."""
    names = attacked or list(latents)
    values = [latents[n].get("fraction_moved") for n in names]
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    return min(numbers) if numbers else None


def _views_movement(report: Mapping[str, Any]) -> float | None:
    moved = (report.get("views") or {}).get("fraction_moved")
    if isinstance(moved, Mapping):
        numbers = [float(v) for v in moved.values() if isinstance(v, (int, float))]
        return min(numbers) if numbers else None
    return float(moved) if isinstance(moved, (int, float)) else None


def batch_lines(named: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[list[str], list[str]]:
    """The end of a batch in words: (lines for stdout, warnings for stderr).

    One line counts the verdicts and gives the lab's reason for the commonest; every image with no
    protection at all is named in a warning, so a flat image is never passed over as protected.
    """
    if not named:
        return [], []
    judged = [(name, verdict(report)) for name, report in named]
    counts = dict.fromkeys(LEVELS, 0)
    for _, v in judged:
        counts[v.level] += 1
    words = ", ".join(f"{counts[level]} {level}" for level in reversed(LEVELS) if counts[level])
    lines = [f"verdict: {words} (see {LAB_URL})"]
    weak = next((v for _, v in judged if v.level == "weak"), None)
    if weak is not None:
        lines.append(f"  weak: {weak.why}")
    warnings = [f"warning: {name} is not protected: {v.why}" for name, v in judged if v.level == "none"]
    return lines, warnings


def lab_text(readme: Path | None) -> str:
    """The README's "The lab, measured" section (what :data:`LAB_URL` points to) as text, or, without
    the README (an installed package), the findings the verdicts quote."""
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8")
        start = text.find("## The lab, measured")
        if start >= 0:
            end = text.find("\n## ", start + 3)
            return text[start : end if end >= 0 else None].strip() + "\n"
    lines = ["The lab, measured (see README.md in the sfumato project)", ""]
    lines += [
        f"- {mode} in {space if space != '*' else 'other'} latent spaces: {f.why}"
        for (mode, space), f in LAB_FINDINGS.items()
    ]
    return "\n".join(lines) + "\n"
