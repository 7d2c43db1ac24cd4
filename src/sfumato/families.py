"""The generator families a user protects against, and how the default ensemble weighs them.

Why this exists: artists think in models ("FLUX.2", "Stable Diffusion"), the engine in encoders. A
family is the latent space a set of public generators share, so protecting against a family means
attacking its image encoder. Which families, and with which weights, follows the latent-space table
(``benchmarks/latent_spaces.py``, results in ``benchmarks/results/latent_spaces.md``): attacked alone
under the same visibility budget (the 35 dB preset), each family's encoder closes a different share
of its latent distance to the target. Attacked together with equal weights, the family that gives way
more easily takes more of the budget. The default ensemble therefore weighs each family by the inverse
of that share, so every family is pushed toward the same fraction of what it can reach.

The default ensemble is the families whose encoder weights sfumato can fetch and verify itself
(:data:`DEFAULT_FAMILIES`); the others need a copy of their tiny autoencoder supplied by the user, so
a default that depended on them would give different results on different machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"


@dataclass(frozen=True)
class Family:
    """One latent-space family: its name on the command line, its name for artists, the engine's encoder.

    ``closed`` is the mean share of the latent distance closed when the family's encoder is attacked
    alone at the 35 dB preset (photos and paintings, 128 and 256 px); ``None`` means unmeasured, and the
    family is weighted as the mean measured family.
    """

    name: str
    label: str
    encoder: str
    closed: float | None
    fetchable: bool  # sfumato downloads and verifies its encoder weights itself


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("flux2", "FLUX.2", "flux2", 0.255, True),  # measured on TAEF2 itself
        Family("sana", "Sana", "sana", 0.2524, True),  # measured on TAESana itself
        # measured on the lab's SD-class autoencoder (4 channels, KL-regularised), an analogue of TAESD
        Family("sd", "Stable Diffusion 1.x/2.x", "sd", 0.226, False),
        Family("sdxl", "Stable Diffusion XL", "sdxl", None, False),
        Family("sd3", "Stable Diffusion 3", "sd3", None, False),
        Family("flux1", "FLUX.1", "flux1", None, False),
    )
}

DEFAULT_FAMILIES: tuple[str, ...] = tuple(name for name, f in FAMILIES.items() if f.fetchable)


def parse_families(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"auto"`` or a comma-separated list of family names, checked; ``auto`` is the default set."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names or names == [AUTO]:
        return DEFAULT_FAMILIES
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or AUTO in names:
        raise ValueError(
            f"unknown model family {', '.join(map(repr, unknown or [AUTO]))}; choose {AUTO} or any of "
            f"{', '.join(FAMILIES)} (comma-separated)"
        )
    return tuple(dict.fromkeys(names))


def family_weight(name: str) -> float:
    """The unnormalised weight of a family in an ensemble: the inverse of the share it closes alone."""
    measured = [f.closed for f in FAMILIES.values() if f.closed is not None]
    closed = FAMILIES[name].closed
    return 1.0 / (closed if closed is not None else sum(measured) / len(measured))


def family_ensemble(families: str | Sequence[str] = AUTO) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The engine's encoders and their weights (summing to 1, rounded to 4 places) for ``families``."""
    names = parse_families(families)
    encoders = tuple(FAMILIES[n].encoder for n in names)
    if len(names) == 1:
        return encoders, ()  # one encoder: no weights, the same settings as naming the encoder itself
    raw = [family_weight(n) for n in names]
    total = sum(raw)
    return encoders, tuple(round(w / total, 4) for w in raw)


def default_ensemble() -> tuple[tuple[str, ...], tuple[float, ...]]:
    """What ``cloak``/``shade`` attack when no encoders are named: :data:`DEFAULT_FAMILIES`, weighted."""
    return family_ensemble(AUTO)


def resolve_encoders(
    encoders: Sequence[str] | None, encoder_weights: Sequence[float] = ()
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The encoders and weights to attack: as given, or the default ensemble when ``encoders`` is None."""
    if encoders is None:
        if encoder_weights:
            raise ValueError("encoder weights need the encoders they weigh (encoders=...)")
        return default_ensemble()
    return tuple(encoders), tuple(encoder_weights)


def available_families(weights_dir: str | Path | None = None) -> tuple[str, ...]:
    """The families that can be attacked here: the default ones (fetched on first use) and every other
    one whose tiny encoder file is already at hand (``weights_dir``, ``$SFUMATO_WEIGHTS``, the cache)."""
    from sfumato.encoders.tiny import TINY_ENCODERS
    from sfumato.encoders.weights import WeightsNotFoundError, find_weights

    found = []
    for name, family in FAMILIES.items():
        if family.fetchable:
            found.append(name)
            continue
        try:
            find_weights(TINY_ENCODERS[family.encoder], weights_dir, download=False)
        except WeightsNotFoundError:
            continue
        found.append(name)
    return tuple(found)
