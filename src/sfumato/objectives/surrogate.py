"""Folder-level objectives: a surrogate of the generator, fine-tuned on the protected works, attacked in
rounds.

A mimic fine-tunes the generator on the whole folder, so the strongest published protections attack
what that fine-tuning run becomes, not the base generator alone:

- ``aspl`` (Anti-DreamBooth, Van Le et al. 2023): rounds alternate ``train_steps`` fine-tuning steps of a
  surrogate copy of the denoiser on the currently protected folder with ``attack_steps`` AdvDM steps on
  every work against that surrogate.
- ``metacloak`` (Liu et al. 2024): a pool of ``pool`` surrogate states taken along a ``pool_steps``-step
  fine-tuning run on the clean folder; each round attacks every work against one state of the pool
  (in turn) under an expectation over crops, blur and flips, then fine-tunes that state ``train_steps``
  steps on the protected folder and puts it back.
- ``mist`` (Mist-v2, Zheng et al. 2023, with its surrogate training): rounds as ``aspl``, but the attack
  pulls the surrogate's prediction toward each work's *target* latents (``targeted``) instead of raising
  its loss: a cloak's style rendering, a poison's anchor. For ``shade`` this is the surrogate-trained
  poison: a fine-tuned copy of the generator, captioned with the poison's concept, is steered to draw
  the anchor.

Both resume: after every round, the perturbations and the surrogate state(s) are written atomically to
``checkpoint``; a rerun with the same works and settings continues from the last finished round and ends
with the very same perturbations as an uninterrupted run (every draw is seeded by round and work).
The generator's own denoiser is used as the surrogate's storage and restored when the run ends.

Defaults: Anti-DreamBooth runs 50 rounds of 3 training and 3-9 attack steps on Stable Diffusion at
5e-6; MetaCloak a pool of 5. Here a cheaper schedule (5 rounds of 10 training and 8 attack steps, pool 3)
is the starting point, not yet measured: the lab verdict of issue 21 (item 3) sets the defaults.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sfumato.countermeasures.differentiable import ROBUST_RECIPE
from sfumato.countermeasures.views import TrainingViews
from sfumato.encoders.ensemble import Ensemble, pad_to_multiple
from sfumato.generators.base import Condition, Generator, GeneratorEncoder, denoising_loss
from sfumato.imageio import atomic_write_bytes
from sfumato.objectives.denoiser import AdvDM, Targeted
from sfumato.objectives.transforms import CropBlurFlip, ViewTransform, chain
from sfumato.optimise import attack

SCHEMES = ("aspl", "metacloak", "mist")
#: The schemes that pull toward a target image per work (``protect_folder(targets=...)``).
TARGETED_SCHEMES = ("mist",)


@dataclass(frozen=True)
class Schedule:
    """How a folder-level scheme spends its work; see the module docstring for the defaults' status."""

    rounds: int = 5
    attack_steps: int = 8  # AdvDM steps per work per round
    attack_lr: float = 0.5  # first step as a fraction of the allowance (decays within each round)
    train_steps: int = 10  # surrogate fine-tuning steps per round
    train_lr: float = 1e-4
    batch: int = 4  # works per fine-tuning step
    draws: int = 1  # (time, noise) draws per AdvDM step
    pool: int = 0  # metacloak: surrogate states in the pool
    pool_steps: int = 0  # metacloak: length of the clean fine-tuning run the pool is taken from

    def __post_init__(self) -> None:
        if min(self.rounds, self.attack_steps, self.batch, self.draws) < 1 or self.train_steps < 0:
            raise ValueError(f"a schedule needs positive rounds, steps, batch and draws: {self}")


DEFAULTS: dict[str, Schedule] = {
    "aspl": Schedule(),
    "metacloak": Schedule(train_steps=5, pool=3, pool_steps=30),
    "mist": Schedule(),
}


@dataclass
class RoundReport:
    """What a round did: shown as progress, kept in the run's report."""

    round: int
    rounds: int
    surrogate_loss: float  # the surrogate's denoising loss on the protected folder after the round
    seconds: float


RoundFn = Callable[[RoundReport], None]


def _train(
    generator: Generator,
    images: Sequence[torch.Tensor],
    conds: Sequence[Condition],
    steps: int,
    schedule: Schedule,
    seed: int,
    views: TrainingViews | None,
) -> None:
    """``steps`` AdamW steps of the generator's denoiser on ``images`` (a fresh optimiser, seeded draws).

    Without views a work's latents are the same at every step, so each is encoded once per call."""
    if steps == 0:
        return
    model = generator.denoiser
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=schedule.train_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    encoded: dict[int, torch.Tensor] = {}
    model.train()
    try:
        for _ in range(steps):
            picks = torch.randint(len(images), (min(schedule.batch, len(images)),), generator=gen).tolist()
            loss = torch.zeros(())
            for i in picks:
                x = images[i]
                if views is not None:
                    x = ViewTransform(
                        views, tuple(x.shape[-2:]), int(torch.randint(2**31, (1,), generator=gen)), 1
                    )(x, gen)
                    with torch.no_grad():
                        z = _encode(generator, x)
                else:
                    if i not in encoded:
                        with torch.no_grad():
                            encoded[i] = _encode(generator, x)
                    z = encoded[i]
                loss = loss + denoising_loss(generator, z, conds[i], gen) / len(picks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        model.eval()
        for p in params:
            p.requires_grad_(False)


def _folder_loss(
    generator: Generator, images: Sequence[torch.Tensor], conds: Sequence[Condition], seed: int
) -> float:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        losses = [
            float(denoising_loss(generator, _encode(generator, x), c, gen, 2))
            for x, c in zip(images, conds, strict=True)
        ]
    return sum(losses) / len(losses)


def _encode(generator: Generator, x: torch.Tensor) -> torch.Tensor:
    return generator.encode(pad_to_multiple(x, generator.multiple))


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _fingerprint(
    scheme: str,
    schedule: Schedule,
    works: Sequence[torch.Tensor],
    prompts: Sequence[str],
    seed: int,
    extra: dict[str, Any],
) -> str:
    shapes = [list(x.shape) for x in works]
    sums = [round(float(x.double().sum()), 6) for x in works]
    return json.dumps(
        {
            "scheme": scheme,
            "schedule": asdict(schedule),
            "shapes": shapes,
            "sums": sums,
            "prompts": list(prompts),
            "seed": seed,
            **extra,
        },
        sort_keys=True,
    )


def protect_folder(
    works: Sequence[torch.Tensor],
    allowances: Sequence[torch.Tensor],
    generator: Generator,
    prompts: Sequence[str],
    *,
    scheme: str = "aspl",
    schedule: Schedule | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    views: TrainingViews | None = None,
    robust: bool = False,
    on_round: RoundFn | None = None,
    stop_after: int | None = None,
    targets: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Perturbations for ``works`` (each (1, 3, H, W) in [0, 1], within its ``allowance``) by ``scheme``.

    ``prompts``: one caption per work (the mimic's). ``views`` (training views at the mimic's resolution)
    and ``robust`` (robust mode's countermeasures) shape both the attack and, for views, the surrogate's
    fine-tuning. ``on_round`` sees each finished round; ``stop_after`` ends the run after that many rounds
    (the checkpoint then resumes it), as an interruption would. ``targets`` (``mist`` only): one target
    image per work, of the work's size.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
    if not (len(works) == len(allowances) == len(prompts)) or not works:
        raise ValueError("one allowance and one prompt per work, and at least one work")
    if (scheme in TARGETED_SCHEMES) != (targets is not None):
        raise ValueError(
            f"targets are for {', '.join(TARGETED_SCHEMES)} only, and {scheme} needs them"
            if targets is not None
            else f"{scheme} needs one target image per work"
        )
    if targets is not None and [t.shape for t in targets] != [x.shape for x in works]:
        raise ValueError("one target image per work, each of its work's size")
    schedule = schedule or DEFAULTS[scheme]
    if scheme == "metacloak" and schedule.pool < 1:
        schedule = replace(
            schedule, pool=DEFAULTS["metacloak"].pool, pool_steps=DEFAULTS["metacloak"].pool_steps
        )
    model = generator.denoiser
    original = _state(model)
    conds = [generator.condition([p]) for p in prompts]
    ensemble = Ensemble([GeneratorEncoder(generator)], bf16=False)
    fingerprint = _fingerprint(
        scheme,
        schedule,
        works,
        prompts,
        seed,
        {
            "views": views.describe() if views else None,
            "robust": robust,
            "generator": generator.name,
            **({"targets": [round(float(t.double().sum()), 6) for t in targets]} if targets else {}),
        },
    )
    path = Path(checkpoint) if checkpoint is not None else None
    state = _load(path, fingerprint)
    aims = _aims(works, targets, ensemble, views, robust, seed) if targets is not None else None
    try:
        if state is None:
            deltas = [torch.zeros_like(x) for x in works]
            pool: list[dict[str, torch.Tensor]] = []
            if scheme == "metacloak":
                # The pool: states along a clean fine-tuning run, one every pool_steps / pool steps.
                every = max(1, schedule.pool_steps // schedule.pool)
                for k in range(schedule.pool):
                    _train(generator, works, conds, every, schedule, seed * 7919 + 17 * k + 1, views)
                    pool.append(_state(model))
                model.load_state_dict(original)
            else:
                pool = [original]
            state = {"round": 0, "deltas": deltas, "pool": pool, "reports": []}
        state["deltas"] = [d.to(x.device) for d, x in zip(state["deltas"], works, strict=True)]
        rounds_done = 0
        for r in range(state["round"], schedule.rounds):
            if stop_after is not None and rounds_done >= stop_after:
                break
            started = time.perf_counter()
            k = r % len(state["pool"])
            model.load_state_dict(state["pool"][k])
            protected = [x + d for x, d in zip(works, state["deltas"], strict=True)]
            if scheme in ("aspl", "mist"):
                _train(
                    generator, protected, conds, schedule.train_steps, schedule, seed * 7919 + 1000 + r, views
                )
            for i, (x, a) in enumerate(zip(works, allowances, strict=True)):
                goal: list[torch.Tensor] = []
                objective: AdvDM | Targeted
                if aims is not None:
                    goal, transform = aims[i]
                    objective = Targeted(generator, conds[i], schedule.draws)
                else:
                    transform = chain(
                        [
                            ViewTransform(views, tuple(x.shape[-2:]), seed + i)
                            if views is not None
                            else None,
                            CropBlurFlip() if scheme == "metacloak" else None,
                            ROBUST_RECIPE if robust else None,
                        ]
                    )
                    objective = AdvDM(generator, conds[i], schedule.draws)
                state["deltas"][i] = attack(
                    x,
                    goal,
                    ensemble,
                    a,
                    steps=schedule.attack_steps,
                    lr=schedule.attack_lr,
                    seed=seed + 100_003 * (r + 1) + i,
                    transform=transform,
                    objective=objective,
                    start=state["deltas"][i],
                ).delta
            protected = [x + d for x, d in zip(works, state["deltas"], strict=True)]
            if scheme == "metacloak":
                _train(
                    generator, protected, conds, schedule.train_steps, schedule, seed * 7919 + 1000 + r, views
                )
            state["pool"][k] = _state(model)
            report = RoundReport(r + 1, schedule.rounds, _folder_loss(generator, protected, conds, seed), 0.0)
            report.seconds = round(time.perf_counter() - started, 3)
            state["reports"].append(asdict(report))
            state["round"] = r + 1
            rounds_done += 1
            if path is not None:
                _save(path, state, fingerprint)
            if on_round is not None:
                on_round(report)
        return [d.clone() for d in state["deltas"]]
    finally:
        model.load_state_dict(original)


def _aims(
    works: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    ensemble: Ensemble,
    views: TrainingViews | None,
    robust: bool,
    seed: int,
) -> list[tuple[list[torch.Tensor], Any]]:
    """Per work, the target latents and the attack's transform for a targeted scheme: the target's own
    latents (tiled over robust mode's draws), or, with views, the views bound to the target so that each
    view of the work is pulled toward the same view of its target. The generator's encoder is not
    fine-tuned, so these hold for every round."""
    out: list[tuple[list[torch.Tensor], Any]] = []
    then = ROBUST_RECIPE if robust else None
    for i, (x, t) in enumerate(zip(works, targets, strict=True)):
        if views is not None:
            out.append(([], views.bind(x, t.to(x.device), ensemble, seed + i, then=then)))
        else:
            with torch.no_grad():
                out.append((ensemble.encode(t.to(x.device)), then))
    return out


def _save(path: Path, state: dict[str, Any], fingerprint: str) -> None:
    buf = io.BytesIO()
    torch.save({**state, "fingerprint": fingerprint}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path | None, fingerprint: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.pop("fingerprint", None) != fingerprint:
        raise ValueError(
            f"{path} is the checkpoint of another run (other works, prompts or settings); "
            "delete it to start over"
        )
    return state
