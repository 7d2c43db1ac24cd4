"""Which latent spaces can be attacked at all: encoder vulnerability, decoder amplification, training views.

An encoder-only protection can only mislead a generator if three things hold in that generator's latent
space: the encoder's latents move toward the target under an invisible budget, the decoder draws the
moved latents (what a generator that learnt them would draw), and the shift survives the crop-and-resize
of fine-tuning. For every latent space given (``flux2`` and ``sana``, the tiny FLUX.2 and Sana encoders;
a private autoencoder checkpoint such as the lab's 16-channel one or its 4-channel KL-regularised
SD-class one; a diffusers VAE folder), on the same image pairs (dog photos toward cat photos, Van Gogh
paintings toward the same painting rendered as a `sketch`), at each size and budget, this measures:

- closed: the share of the latent distance to the target that the attack closes (the engine's
  ``fraction_moved``);
- pixels: the share of the pixel (L2) distance to the target that the protected image closes;
  decoded: the same for the autoencoder's round trip D(E(x')) against D(E(target)); amplification:
  decoded / pixels (about 1: the decoder draws only the pixel change; far above 1: what the encoder
  reads is what the decoder, hence the generator, draws);
- views: the share of the latent distance closed on 64 px training views (square crops, half to all of
  the short side, resized) from a bank of boxes no attack drew from;
- with ``--judge`` (a lab judge folder), for the photo pairs, the change in the judge's target-class
  probability on the protected image and on its round trip.

Budgets: ``jnd35``, the visibility-aware budget scaled so that its largest possible change is 35 dB PSNR
(the attack can only stay at or above it), and ``linf8``, the field's L-inf 8/255. Attacks use the
engine's optimiser at the ``default`` speed, one encoder at a time, no views or robust mode.

    python benchmarks/latent_spaces.py --spaces flux2,sana,LAB/private-autoencoder/checkpoint.pt
    python benchmarks/latent_spaces.py --quick      # flux2 only, 2 pairs of each kind, 64 px

A rerun resumes an interrupted run, and a run with other spaces (at the same pairs and budgets) adds its
rows to the saved table: ``--spaces LAB/sd-class-autoencoder/checkpoint.pt`` adds one space.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

import _common as C
from sfumato.budget import make_budget
from sfumato.countermeasures.views import TrainingViews
from sfumato.encoders.ensemble import Ensemble
from sfumato.imageio import load_image
from sfumato.optimise import SPEED, attack, latent_distance
from sfumato.quality import measure_quality
from sfumato.styles import render_style
from sfumato.targets import fit_to

NAME = "latent_spaces"
PAINTINGS = C.REPO.parent / "shared/data/vangogh"
BUDGETS = {"jnd35": 35.0, "linf8": 8 / 255}
STYLE = "sketch"
VIEW_SIZE = 64
CHECK_SEED = 424242


class Space:
    """One latent space: its encoder (attacked), its decoder when it has one (``sana`` has none here)."""

    def __init__(self, spec: str, weights: Path) -> None:
        from sfumato.lab.models.autoencoders import load_lab_decoder, load_lab_encoder

        self.spec = spec
        path = Path(spec)
        if path.is_dir() and not (path / "checkpoint.pt").exists():  # a diffusers VAE folder
            from sfumato.encoders.diffusers_vae import DiffusersDecoder, DiffusersEncoder

            self.encoder = DiffusersEncoder(path)
            self.decoder = DiffusersDecoder.from_encoder(self.encoder)
            self.name = self.encoder.name
        else:
            import os

            os.environ.setdefault("SFUMATO_WEIGHTS", str(weights))
            self.encoder = load_lab_encoder(spec)
            try:
                self.decoder = load_lab_decoder(spec)
            except (ValueError, FileNotFoundError, KeyError):
                self.decoder = None
            self.name = spec if spec in ("flux2", "sana") else f"private:{path.parent.name or path.stem}"
        for module in (self.encoder, self.decoder):
            if module is not None:
                module.eval().requires_grad_(False)
        if not hasattr(self.encoder, "multiple"):
            self.encoder.multiple = 8
        self.ensemble = Ensemble([self.encoder], bf16=False)
        self.channels = int(self.encode(torch.zeros(1, 3, 64, 64)).shape[1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.ensemble.encode(x)[0]

    def round_trip(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.decoder is None:
            return None
        with torch.no_grad():
            y = self.decoder(self.encode(x))
        return y[..., : x.shape[-2], : x.shape[-1]].clamp(0, 1)


def _closed(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor) -> float:
    """Share of b's distance to ``target`` that ``a`` (b changed) closes."""
    before = float((b - target).norm())
    return 1 - float((a - target).norm()) / max(before, 1e-12)


def _allowance(x: torch.Tensor, budget: str) -> torch.Tensor:
    if budget == "linf8":
        return make_budget("default", "linf", eps=BUDGETS[budget]).allowance(x)
    a = make_budget("default", "jnd", eps=0.25).allowance(x)  # the JND map, capped only far above it
    # scaled so that moving every pixel by its whole allowance would give exactly the PSNR asked for
    worst_mse = float(a.square().mean())
    return a * math.sqrt(10 ** (-BUDGETS[budget] / 10) / worst_mse)


def pairs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(kind, name, source, target) at every size: dogs toward cats; paintings toward their sketch."""
    out = []
    for size in args.sizes:
        for dog, cat in C.pairs(args.pairs):
            out.append(
                {
                    "kind": "photo",
                    "name": f"{dog}->{cat}",
                    "size": size,
                    "x": C.load_photo(dog, size, size),
                    "t": C.load_photo(cat, size, size),
                    "target_class": "cat",
                }
            )
        found = sorted(PAINTINGS.glob("*.png"))[: args.paintings]
        for path in found:
            x = fit_to(load_image(path).rgb[None], size, size)
            out.append(
                {
                    "kind": "painting",
                    "name": path.stem[:40],
                    "size": size,
                    "x": x,
                    "t": render_style(STYLE, x, 0),
                    "target_class": None,
                }
            )
    return out


def measure(space: Space, pair: dict[str, Any], budget: str, judge: Any, seed: int) -> dict[str, Any]:
    x, t = pair["x"], pair["t"]
    target = space.ensemble.encode(t)
    speed = SPEED["default"]
    started = time.perf_counter()
    result = attack(
        x, target, space.ensemble, _allowance(x, budget), steps=int(speed["steps"]), lr=speed["lr"], seed=seed
    )
    seconds = time.perf_counter() - started
    xp = ((x + result.delta) * 255).round() / 255  # what a saved 8-bit file holds
    zx, zp, zt = space.encode(x), space.encode(xp), space.encode(t)
    row: dict[str, Any] = {
        "psnr_db": measure_quality(x, xp).psnr_db,
        "ssim": measure_quality(x, xp).ssim,
        "closed": 1 - latent_distance(zp, zt) / max(latent_distance(zx, zt), 1e-12),
        "pixels": _closed(xp, x, t),
        "seconds": seconds,
    }
    rx, rp, rt = space.round_trip(x), space.round_trip(xp), space.round_trip(t)
    if rx is not None:
        row["decoded"] = _closed(rp, rx, rt)
        row["amplification"] = row["decoded"] / row["pixels"] if row["pixels"] > 1e-6 else None
    bound = TrainingViews(size=VIEW_SIZE).bind(x, t, space.ensemble, CHECK_SEED)
    row["views"] = bound.moved(xp, space.ensemble)[0]
    if judge is not None and pair["target_class"] in judge.classes:
        k = judge.classes.index(pair["target_class"])
        p = judge.predict_proba(torch.cat([x, xp] + ([rx, rp] if rx is not None else [])))[:, k]
        row["judge_pixels"] = float(p[1] - p[0])
        if rx is not None:
            row["judge_decoded"] = float(p[3] - p[2])
    return row


# settings that must match for an earlier run's rows to stand beside this run's
SAME = ("pairs", "paintings", "style", "budgets", "speed", "view_size", "check_bank_seed", "judge", "quick")


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["space"], row["kind"], row["name"], row["size"], row["budget"])


def _earlier_runs(args: argparse.Namespace, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of an interrupted run (the partial file) or of the finished table, measured at the same
    settings: a rerun resumes, and a run with another space adds its rows to the table (the spaces and
    sizes of both are kept in ``settings``)."""
    for path in (args.partial, args.final):
        if not path.exists():
            continue
        old = C.read_json(path)
        if any(old["settings"].get(k) != settings[k] for k in SAME):
            C.say(f"  {path.name}: other settings, measured afresh")
            continue
        settings["spaces"] = {**old["settings"]["spaces"], **settings["spaces"]}  # earlier rows first
        settings["sizes"] = sorted(set(settings["sizes"]) | set(old["settings"]["sizes"]))
        return list(old["runs"])
    return []


def run(args: argparse.Namespace) -> dict[str, Any]:
    judge = None
    if args.judge:
        from sfumato.lab.judging.classifiers import load_judge

        judge = load_judge(args.judge)
    spaces = [Space(s, C.WEIGHTS) for s in args.spaces]
    items = pairs(args)
    settings = {
        "spaces": {
            s.name: {"spec": s.spec, "latent_channels": s.channels, "decoder": s.decoder is not None}
            for s in spaces
        },
        "sizes": args.sizes,
        "pairs": args.pairs,
        "paintings": args.paintings,
        "style": STYLE,
        "budgets": {"jnd35": "JND budget scaled to a worst case of 35 dB PSNR", "linf8": "L-inf 8/255"},
        "speed": "default",
        "view_size": VIEW_SIZE,
        "check_bank_seed": CHECK_SEED,
        "judge": str(args.judge) if args.judge else None,
        "quick": args.quick,
    }
    data = C.new_record(NAME, settings)
    data["runs"] = _earlier_runs(args, settings)
    done = {_key(r) for r in data["runs"]}
    C.say(
        f"[{NAME}] {len(spaces)} spaces x {len(items)} images x {len(BUDGETS)} budgets"
        f" ({len(done)} rows kept from an earlier run)"
    )
    for space in spaces:
        for i, pair in enumerate(items):
            for budget in BUDGETS:
                if (space.name, pair["kind"], pair["name"], pair["size"], budget) in done:
                    continue
                row = {
                    "space": space.name,
                    "kind": pair["kind"],
                    "name": pair["name"],
                    "size": pair["size"],
                    "budget": budget,
                    **measure(space, pair, budget, judge, seed=i),
                }
                data["runs"].append(row)
                amp = row.get("amplification")
                decoded = row.get("decoded", float("nan"))
                C.say(
                    f"  {space.name:<24} {pair['kind']:<8} {pair['size']:>4} {budget:<6} "
                    f"PSNR {row['psnr_db']:.1f} closed {row['closed']:.3f} pixels {row['pixels']:.4f} "
                    f"decoded {decoded:.4f} amp {'–' if amp is None else f'{amp:.2f}'} "
                    f"views {row['views']:.3f}"
                )
            C.write_json(args.partial, data)
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    runs = data["runs"]
    keys = (
        "psnr_db",
        "closed",
        "pixels",
        "decoded",
        "amplification",
        "views",
        "judge_pixels",
        "judge_decoded",
    )
    rows = []
    for space in s["spaces"]:
        for size in s["sizes"]:
            for budget in BUDGETS:
                for kind in ("photo", "painting"):
                    sel = [
                        r
                        for r in runs
                        if r["space"] == space
                        and r["size"] == size
                        and r["budget"] == budget
                        and r["kind"] == kind
                    ]
                    if not sel:
                        continue
                    cells = []
                    for k in keys:
                        vals = [r[k] for r in sel if r.get(k) is not None]
                        cells.append(C.pm(vals, 1 if k == "psnr_db" else 3) if vals else "–")
                    rows.append([space, s["spaces"][space]["latent_channels"], size, budget, kind, *cells])
    return "\n".join(
        [
            "## Latent spaces: where an encoder attack can reach the generator\n",
            f"Dog photos toward cat photos ({s['pairs']} pairs) and Van Gogh paintings toward their "
            f"`{s['style']}` rendering ({s['paintings']}), attacked on each space's encoder at the `default` "
            "speed. *closed*: share of the latent distance to the target closed; *pixels* / *decoded*: share "
            "of the pixel distance closed by the protected image / by its autoencoder round trip; *amp.*: "
            f"decoded / pixels (the decoder's amplification); *views*: latent share closed on "
            f"{s['view_size']} px training views; "
            "*judge*: change of the lab judge's target-class probability on the protected image / its round "
            "trip (photo pairs). `jnd35`: visibility-aware budget with a worst case of 35 dB; `linf8`: L-inf "
            "8/255. Mean ± std.\n",
            C.table(
                [
                    "space",
                    "ch.",
                    "px",
                    "budget",
                    "images",
                    "PSNR dB",
                    "closed",
                    "pixels",
                    "decoded",
                    "amp.",
                    "views",
                    "judge: pixels",
                    "judge: decoded",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--spaces", default="flux2,sana", help="comma-separated: flux2, sana, checkpoint paths, VAE folders"
    )
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--pairs", type=int, default=4, help="dog -> cat photo pairs")
    ap.add_argument("--paintings", type=int, default=4)
    ap.add_argument("--judge", type=Path, default=None, help="a lab judge folder (e.g. LAB/judges/pixel)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    args.spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.spaces, args.sizes, args.pairs, args.paintings = ["flux2"], [64], 2, 2
    out = C.out_dir(args.quick)
    args.partial = out / f"{NAME}.partial.json"
    args.final = out / f"{NAME}.json"
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = C.run_or_load(out / f"{NAME}.json", args.render_only, lambda: run(args))
    path = C.write_markdown(NAME, render(data), args.quick)
    if args.partial.exists():
        args.partial.unlink()
    C.say(f"wrote {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
