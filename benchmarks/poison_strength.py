"""Poison strength at the lab's size: how far can a budget move 64 px images' FLUX.2 latents?

The lab's poisons (``sfumato.lab.poison.craft.make_poisons``, the engine's optimiser in batches) close only
about a third of the latent distance from a CIFAR-10 dog to its cat anchor at an invisible budget, and
the poisoning experiment asks whether more steps or a larger budget would do better. For the first
``--images`` dogs of the lab's poison pool (CIFAR-10 train, upscaled to 64 px), each toward its nearest
cat anchor (on the FLUX.2 latents, each anchor used at most twice), this crafts poisons under several
budgets and step counts and reports the latent distance closed, the PSNR and the time per image.

Anchors: real CIFAR-10 cats from the lab's anchor range (no trained generator needed), or
``--anchors FILE``: a uint8 tensor (K, 3, 64, 64) such as the lab's generated ``anchors-shade.pt``.

    python benchmarks/poison_strength.py                 # 32 dogs, 8 settings (about 3 min, one thread)
    python benchmarks/poison_strength.py --quick         # 4 dogs, 3 settings, few steps (seconds)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

import _common as C
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.models.latent_cache import to_unit
from sfumato.lab.poison.craft import assign_anchors, make_poisons
from sfumato.lab.poison.settings import ANCHOR_OFFSET, POISON_OFFSET

NAME = "poison_strength"
# (budget, intensity, eps in 0..255 or None for the preset's, steps)
SETTINGS: tuple[tuple[str, str, float | None, int], ...] = (
    ("jnd", "default", None, 48),
    ("jnd", "high", None, 48),
    ("jnd", "high", None, 200),
    ("linf", "high", None, 48),
    ("jnd", "high", 16, 48),
    ("linf", "high", 16, 48),
    ("linf", "high", 24, 48),
    ("linf", "high", 32, 100),
)
QUICK = (("jnd", "high", None, 6), ("linf", "high", None, 6), ("linf", "high", 16, 6))


def run(args: argparse.Namespace) -> dict[str, Any]:
    dogs = load_cifar(args.cifar, "train", classes=["dog"], per_class=args.images, offset=POISON_OFFSET)
    dogs = to_unit(dogs.images, 64)
    if args.anchors:
        candidates = torch.load(args.anchors, weights_only=True)
        anchor_source = str(args.anchors)
    else:
        n = args.candidates
        cats = load_cifar(args.cifar, "train", classes=["cat"], per_class=n, offset=ANCHOR_OFFSET)
        candidates = (to_unit(cats.images, 64) * 255).round().to(torch.uint8)
        anchor_source = f"CIFAR-10 train cats {ANCHOR_OFFSET}..{ANCHOR_OFFSET + args.candidates}"
    anchors = assign_anchors(dogs, candidates, weights_dir=C.WEIGHTS)
    settings = QUICK if args.quick else SETTINGS
    data = C.new_record(
        NAME,
        {
            "images": args.images,
            "anchors": anchor_source,
            "size": 64,
            "encoder": "flux2",
            "trials": [list(s) for s in settings],
            "seed": 0,
            "threads": torch.get_num_threads(),
            "quick": args.quick,
        },
    )
    C.say(f"[{NAME}] {args.images} dogs -> nearest cats ({anchor_source}), {len(settings)} settings")
    for budget, intensity, eps, steps in settings:
        t0 = time.perf_counter()
        batch = make_poisons(
            dogs,
            candidates,
            anchors=anchors,
            intensity=intensity,
            budget=budget,
            eps=None if eps is None else eps / 255,
            steps=steps,
            seed=0,
            weights_dir=C.WEIGHTS,
        )
        wall = time.perf_counter() - t0
        row = {
            "budget": budget,
            "intensity": intensity,
            "eps_255": eps,
            "steps": steps,
            "closed": [round(float(v), 4) for v in batch.closed],
            "psnr_db": [round(float(v), 3) for v in batch.psnr],
            "seconds_per_image": round(wall / args.images, 3),
        }
        data["runs"].append(row)
        C.say(
            f"  {budget} {intensity} eps={eps or 'preset'} {steps} steps: closed "
            f"{C.pm(row['closed'])}, PSNR {C.pm(row['psnr_db'], 2)} dB ({wall:.1f} s)"
        )
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    rows = [
        [
            r["budget"],
            r["intensity"],
            "preset" if r["eps_255"] is None else f"{r['eps_255']:g}/255",
            r["steps"],
            C.pm(r["closed"]),
            C.pm(r["psnr_db"], 2),
            f"{r['seconds_per_image']:.2f}",
        ]
        for r in data["runs"]
    ]
    return "\n".join(
        [
            "## Poison strength at 64 px\n",
            f"{s['images']} CIFAR-10 dogs (upscaled to 64 px), each poisoned toward its nearest cat anchor "
            f"({s['anchors']}) on the FLUX.2 tiny encoder by the lab's batch crafter (the engine's "
            f"optimiser, momentum sign steps), {s['threads']} torch thread(s). Closed: the fraction of the "
            "latent distance to the anchor closed (mean ± std over images).\n",
            C.table(["budget", "intensity", "L-inf bound", "steps", "closed", "PSNR dB", "s / image"], rows),
            "More steps barely help and the bound buys closure slowly: the tiny FLUX.2 encoder does not let "
            "a 64 px image's latents be moved most of the way to a different picture's without a visible "
            "change. (A larger bound alone does not widen the JND budget: there the eye's threshold times "
            "the intensity's multiple binds first.) See README, 'The lab, measured', for what this does to "
            "attack success.\n",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 dogs, 3 settings, 6 steps")
    ap.add_argument("--images", type=int, default=None, help="dogs poisoned (default 32)")
    ap.add_argument("--candidates", type=int, default=400, help="real cat anchors to choose from")
    ap.add_argument("--anchors", type=Path, default=None, help="uint8 (K, 3, 64, 64) anchor images instead")
    args = C.lab_args(ap)
    args.images = args.images or (4 if args.quick else 32)
    C.run_and_write(NAME, args.render_only, lambda: run(args), render, args.quick)


if __name__ == "__main__":
    main()
