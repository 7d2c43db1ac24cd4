"""Robustness: how much of the latent shift survives each countermeasure, standard vs robust mode.

For dog -> cat pairs, ``sfumato.shade`` protects each dog photo at the default budget and speed,
once in standard mode and once with ``robust=True``. Every countermeasure of
``sfumato.countermeasures.COUNTERMEASURES`` is then applied to the original and to both protected
images, and the tiny FLUX.2 latent distance to the cat's latent is measured (fp32, 8-bit images).
With d = that distance, x the original, p the protected image and c the countermeasure:

- survival (reference): (d(c(x)) - d(c(p))) / (d(x) - d(p)), the shift left after the
  countermeasure measured from where the countermeasure takes the clean image, so the
  countermeasure's own effect on the distance is separated out (the headline figure);
- survival (naive): (d(x) - d(c(p))) / (d(x) - d(p)), from the clean image's own distance;
- closed after: (d(c(x)) - d(c(p))) / d(x), the fraction of the distance still closed, comparable
  between modes whose own shifts differ.

For ``crop0.9`` (moves content) the target is cropped with the same seed, so latents stay aligned.
Detection: per image the tiny FLUX.2 autoencoder's reconstruction error RMS(D(E(x)) - x) and the
high-frequency energy RMS(x - blur(x)), clean against protected, with the ROC AUC of telling them
apart by thresholding the statistic (0.5: no better than chance; 1: perfect).

    python benchmarks/robustness.py            # 6 pairs at 256 px (about 6 minutes on 2 idle cores)
    python benchmarks/robustness.py --quick    # 2 pairs at 128 px, fast speed, short IMPRESS
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import _common as C
import sfumato
from sfumato.countermeasures import (
    COUNTERMEASURES,
    ROBUST_RECIPE,
    Countermeasure,
    high_frequency_energy,
    impress,
    reconstruction_error,
)
from sfumato.countermeasures.differentiable import ROBUST_STEP_FACTOR
from sfumato.encoders import load_encoder
from sfumato.optimise import encode_tiled, latent_distance

NAME = "robustness"
MODES = ("standard", "robust")
GOAL_CMS = ("jpeg75", "resize0.5")
GOAL_SURVIVAL = 0.70
GOAL_PSNR_COST = 2.0


def _countermeasure(name: str, quick: bool) -> Countermeasure:
    cm = COUNTERMEASURES[name]
    if quick and name == "impress":  # a smoke run only checks the plumbing
        return Countermeasure(name, impress, cm.description, {"steps": 3}, autoencoder=True)
    return cm


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "pairs": C.pairs(args.pairs),
        "size": args.size,
        "intensity": "default",
        "budget": "jnd",
        "speed": args.speed,
        "encoder": "flux2",
        "countermeasures": {n: c.description for n, c in COUNTERMEASURES.items()},
        "countermeasure_seed": 0,
        "robust_recipe": {**ROBUST_RECIPE.describe(), "step_factor": ROBUST_STEP_FACTOR},
        "device": "cpu",
        "seed": 0,
        "quick": args.quick,
    }
    data: dict[str, Any] = {
        "benchmark": NAME,
        "started": C.now(),
        "loadavg_start": C.loadavg(),
        "machine": C.machine(),
        "settings": settings,
        "runs": [],
    }
    enc = load_encoder("flux2", C.WEIGHTS)

    def dist(image: torch.Tensor, target: torch.Tensor) -> float:
        return latent_distance(encode_tiled(enc, image), encode_tiled(enc, target))

    C.say(f"[robustness] {len(settings['pairs'])} pairs at {args.size} px, speed {args.speed}")
    for dog, cat in settings["pairs"]:
        src = C.load_photo(dog, args.size, args.size)[0]
        anchor = C.load_photo(cat)[0]
        row: dict[str, Any] = {"source": dog, "anchor": cat, "modes": {}}
        images = {"clean": src}
        target = None
        for mode in MODES:
            t0 = time.perf_counter()
            out = sfumato.shade(
                src, anchor, speed=args.speed, robust=mode == "robust", device="cpu", weights_dir=C.WEIGHTS
            )
            wall = time.perf_counter() - t0
            target = out.target
            images[mode] = out.tensor
            q = out.report["effect"]["quality"]
            row["modes"][mode] = {
                "psnr_db": q["psnr_db"],
                "ssim": q["ssim"],
                "fraction_moved": out.report["effect"]["latents"]["flux2"]["fraction_moved"],
                "steps": out.report["steps"],
                "seconds": out.report["seconds"],
                "wall_seconds": round(wall, 2),
            }
            C.say(
                f"  {dog} -> {cat} {mode}: PSNR {q['psnr_db']:.2f} dB, moved "
                f"{row['modes'][mode]['fraction_moved']:.3f}, {out.report['seconds']:.1f} s"
            )
        assert target is not None
        batch = torch.stack([images["clean"], images["standard"], images["robust"]])
        d0 = dist(batch[:1], target)
        row["distance"] = {"clean": d0, **{m: dist(images[m][None], target) for m in MODES}}
        row["countermeasures"] = {}
        for name in COUNTERMEASURES:
            cm = _countermeasure(name, args.quick)
            t0 = time.perf_counter()
            after = cm(batch, seed=0, weights_dir=C.WEIGHTS)
            seconds = time.perf_counter() - t0
            tgt = cm(target, seed=0, weights_dir=C.WEIGHTS) if cm.geometric else target
            dc = {k: dist(after[i : i + 1], tgt) for i, k in enumerate(("clean", "standard", "robust"))}
            fig: dict[str, Any] = {"distance": dc, "seconds": round(seconds, 2)}
            for mode in MODES:
                shift = d0 - row["distance"][mode]
                fig[mode] = {
                    "survival_reference": (dc["clean"] - dc[mode]) / shift,
                    "survival_naive": (d0 - dc[mode]) / shift,
                    "closed_after": (dc["clean"] - dc[mode]) / d0,
                }
            row["countermeasures"][name] = fig
            C.say(
                f"    {name:<13} survival (reference) standard {fig['standard']['survival_reference']:.3f}"
                f"  robust {fig['robust']['survival_reference']:.3f}  ({seconds:.1f} s)"
            )
        rec = reconstruction_error(batch, C.WEIGHTS).tolist()
        hf = high_frequency_energy(batch).tolist()
        row["detection"] = {
            "reconstruction_error": dict(zip(("clean", *MODES), rec, strict=True)),
            "high_frequency_energy": dict(zip(("clean", *MODES), hf, strict=True)),
        }
        data["runs"].append(row)
        if args.partial is not None:  # keep what is done if a long run is interrupted
            C.write_json(args.partial, data)
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def auc(negatives: list[float], positives: list[float]) -> float:
    """ROC AUC of flagging positives by a high statistic (Mann-Whitney; ties count one half)."""
    if not negatives or not positives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Means over pairs, goal checks and detection AUCs, from the raw runs."""
    runs = data["runs"]
    out: dict[str, Any] = {"modes": {}, "countermeasures": {}, "detection": {}, "goal": {}}
    for mode in MODES:
        vals = {
            k: [r["modes"][mode][k] for r in runs] for k in ("psnr_db", "ssim", "fraction_moved", "seconds")
        }
        out["modes"][mode] = {k: C.mean_std(v) for k, v in vals.items()}
    for name in COUNTERMEASURES:
        per = [r["countermeasures"][name] for r in runs if name in r["countermeasures"]]
        out["countermeasures"][name] = {
            mode: {
                k: C.mean_std([p[mode][k] for p in per])
                for k in ("survival_reference", "survival_naive", "closed_after")
            }
            for mode in MODES
        }
    for stat in ("reconstruction_error", "high_frequency_energy"):
        clean = [r["detection"][stat]["clean"] for r in runs]
        fig: dict[str, Any] = {"clean": C.mean_std(clean)}
        for mode in MODES:
            prot = [r["detection"][stat][mode] for r in runs]
            fig[mode] = C.mean_std(prot)
            fig[f"auc_{mode}"] = auc(clean, prot)
            fig[f"paired_higher_{mode}"] = sum(p > c for p, c in zip(prot, clean, strict=True))
        out["detection"][stat] = fig
    std_psnr = out["modes"]["standard"]["psnr_db"][0]
    rob_psnr = out["modes"]["robust"]["psnr_db"][0]
    survivals = {cm: out["countermeasures"][cm]["robust"]["survival_reference"][0] for cm in GOAL_CMS}
    out["goal"] = {
        "survival": survivals,
        "psnr_cost_db": std_psnr - rob_psnr,
        "time_ratio": out["modes"]["robust"]["seconds"][0] / out["modes"]["standard"]["seconds"][0],
        "met": all(v >= GOAL_SURVIVAL for v in survivals.values()) and std_psnr - rob_psnr <= GOAL_PSNR_COST,
    }
    return out


def _f(ms: tuple[float, float], digits: int = 3) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    summ = summarise(data)
    n = len(data["runs"])
    recipe = s["robust_recipe"]
    body = [
        "## Robustness to countermeasures\n",
        f"{n} dog -> cat pairs at {s['size']}x{s['size']} px, `sfumato.shade` at the default budget "
        f"({s['budget']}, intensity {s['intensity']}) and speed `{s['speed']}` on the CPU, standard mode "
        f"and `robust=True` (expectation over {recipe['draws']} random draws per step of differentiable "
        f"JPEG q{recipe['jpeg_quality'][0]:g}-{recipe['jpeg_quality'][1]:g}, down/up resizing "
        f"{recipe['resize_scale'][0]:g}-{recipe['resize_scale'][1]:g}x, blur, noise and shifts up to "
        f"{recipe['shift_px']} px, mixture weights {recipe['weights']}; {recipe['step_factor']}x the "
        "preset's steps). Latent distances on the attacked tiny FLUX.2 encoder.\n",
        "### The two modes\n",
        C.table(
            ["mode", "PSNR dB", "SSIM", "moved (flux2)", "steps", "protect s", "pairs"],
            [
                [
                    mode,
                    _f(summ["modes"][mode]["psnr_db"], 2),
                    _f(summ["modes"][mode]["ssim"], 4),
                    _f(summ["modes"][mode]["fraction_moved"]),
                    data["runs"][0]["modes"][mode]["steps"] if n else "",
                    _f(summ["modes"][mode]["seconds"], 1),
                    n,
                ]
                for mode in MODES
            ],
        ),
        "\n### Share of the latent shift that survives each countermeasure\n",
        "*survival (ref.)*: (d(c(x)) - d(c(p))) / (d(x) - d(p)), measured from where the countermeasure "
        "takes the clean image; *survival (naive)*: (d(x) - d(c(p))) / (d(x) - d(p)); *closed after*: "
        "(d(c(x)) - d(c(p))) / d(x), the fraction of the distance to the target still closed (comparable "
        "between the modes, whose own shifts differ). d: latent distance to the target, x: original, p: "
        "protected, c: countermeasure. Mean ± std over pairs.\n",
        C.table(
            [
                "countermeasure",
                "survival (ref.) standard",
                "survival (ref.) robust",
                "survival (naive) standard",
                "survival (naive) robust",
                "closed after standard",
                "closed after robust",
            ],
            [
                [name]
                + [_f(summ["countermeasures"][name][m]["survival_reference"]) for m in MODES]
                + [_f(summ["countermeasures"][name][m]["survival_naive"]) for m in MODES]
                + [_f(summ["countermeasures"][name][m]["closed_after"]) for m in MODES]
                for name in COUNTERMEASURES
            ],
        ),
    ]
    g = summ["goal"]
    body.append(
        f"\n**Goal**: robust mode keeps >= {GOAL_SURVIVAL:.0%} of its latent shift after "
        + " and after ".join(GOAL_CMS)
        + f" (reference definition), at a PSNR cost of at most {GOAL_PSNR_COST:g} dB vs standard mode: "
        + ", ".join(f"{cm} {v:.1%}" for cm, v in g["survival"].items())
        + f", PSNR cost {g['psnr_cost_db']:.2f} dB, {g['time_ratio']:.1f}x the time -> "
        + ("**met**" if g["met"] else "**not met**")
        + ".\n"
    )
    det_rows = []
    for stat, label in (
        ("reconstruction_error", "AE reconstruction error (x255)"),
        ("high_frequency_energy", "high-frequency energy (x255)"),
    ):
        d = summ["detection"][stat]
        scaled = {k: (d[k][0] * 255, d[k][1] * 255) for k in ("clean", *MODES)}
        det_rows.append(
            [label, _f(scaled["clean"], 2), _f(scaled["standard"], 2), _f(scaled["robust"], 2)]
            + [f"{d['auc_standard']:.2f}", f"{d['auc_robust']:.2f}"]
            + [f"{d['paired_higher_standard']}/{n}", f"{d['paired_higher_robust']}/{n}"]
        )
    body += [
        "\n### Detection: could a scraper filter protected images out?\n",
        "Per image, the tiny FLUX.2 autoencoder's reconstruction error RMS(D(E(x)) - x) and the "
        "high-frequency energy RMS(x - blur_1px(x)), in 0..255 units. *AUC*: ROC AUC of separating "
        "protected from clean images by thresholding the statistic over all images (0.5 = chance); "
        "*paired higher*: pairs where the protected image scores above its own original.\n",
        C.table(
            [
                "statistic",
                "clean",
                "standard",
                "robust",
                "AUC standard",
                "AUC robust",
                "paired higher standard",
                "paired higher robust",
            ],
            det_rows,
        ),
        "\n![robustness](robustness.png)\n",
        f"\nRun {data['started']} - {data.get('finished', '?')}; load average "
        f"{data['loadavg_start']} -> {data.get('loadavg_end')}; {data['machine']['cpu']}, "
        f"{data['machine']['torch_threads']} torch threads, torch {data['machine']['torch']}. "
        "Timings are noisy: the machine is shared.\n",
    ]
    return "\n".join(body)


def plot(data: dict[str, Any], path: Any) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        C.say("[robustness] matplotlib not installed: no plot")
        return False
    summ = summarise(data)
    names = list(COUNTERMEASURES)
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.38
    for i, mode in enumerate(MODES):
        means = [summ["countermeasures"][n][mode]["survival_reference"][0] for n in names]
        stds = [summ["countermeasures"][n][mode]["survival_reference"][1] for n in names]
        xs = [k + (i - 0.5) * width for k in range(len(names))]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=f"{mode} mode")
    ax.axhline(GOAL_SURVIVAL, color="grey", linestyle="--", linewidth=1, label=f"goal {GOAL_SURVIVAL:.0%}")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("share of latent shift surviving")
    ax.set_title(f"Survival of the latent shift (reference definition), {len(data['runs'])} pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 pairs at 128 px, fast speed")
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="square side in px")
    ap.add_argument("--speed", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.pairs = args.pairs or (2 if args.quick else 6)
    args.size = args.size or (128 if args.quick else 256)
    args.speed = args.speed or ("fast" if args.quick else "default")
    out = C.out_dir(args.quick)
    path = out / f"{NAME}.json"
    args.partial = out / f"{NAME}.partial.json"
    if args.render_only:
        data = C.read_json(path)
    else:
        data = run(args)
        data["summary"] = summarise(data)
        C.write_json(path, data)
        args.partial.unlink(missing_ok=True)
    plot(data, out / f"{NAME}.png")
    md = C.write_markdown(NAME, render(data), args.quick)
    C.say(render(data))
    C.say(f"[robustness] wrote {path} and {md}")


if __name__ == "__main__":
    main()
