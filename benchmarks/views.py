"""Training views: how much of a cloak's latent shift reaches the crops a fine-tuning pipeline trains on.

A fine-tuning script does not train on the saved image: it cuts random square crops (half to all of the
short side, some mirrored) and resizes them to its training resolution. For Van Gogh paintings from
``../shared`` (512 px) cloaked toward ``sketch`` at the default budget, in standard mode, robust mode
(``robust=True``) and training-view mode (``views=<training size>``), this measures on the tiny FLUX.2
encoder:

- moved (image): the engine's ``fraction_moved`` at the image's own size;
- moved (views): the same on 32 training views, 1 - sum d(view(p), view(t)) / sum d(view(x), view(t))
  over a bank of crop boxes that no attack drew from (x original, p protected, t the target rendering);
- PSNR, SSIM and the seconds each protection took.

    python benchmarks/views.py            # 4 paintings at 512 px, training at 256 px (one CPU core: ~15 min)
    python benchmarks/views.py --quick    # 2 paintings at 128 px, training at 64 px, fast speed
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

import _common as C
import sfumato
from sfumato.countermeasures.views import VIEWS_STEP_FACTOR, TrainingViews
from sfumato.encoders import load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.imageio import load_image
from sfumato.targets import fit_to

NAME = "views"
MODES = ("standard", "robust", "views")
PAINTINGS = C.REPO.parent / "shared/data/vangogh"
CHECK_SEED = 424242  # the scoring bank of boxes; the attacks draw theirs from the image's seed


def paintings(n: int) -> list[Path]:
    found = sorted(PAINTINGS.glob("*.png")) + sorted(PAINTINGS.glob("*.jpg"))
    if len(found) < n:
        raise FileNotFoundError(f"{n} paintings wanted, {len(found)} found in {PAINTINGS}")
    step = len(found) // n  # spread over the collection (its files are grouped by subject)
    return [found[i * step] for i in range(n)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = TrainingViews(size=args.train_size)
    files = paintings(args.paintings)
    settings = {
        "paintings": [p.name for p in files],
        "size": args.size,
        "style": "sketch",
        "intensity": "default",
        "budget": "jnd",
        "speed": args.speed,
        "encoder": "flux2",
        "views": {**spec.describe(), "step_factor": VIEWS_STEP_FACTOR},
        "check_bank_seed": CHECK_SEED,
        "device": "cpu",
        "quick": args.quick,
    }
    data = C.new_record(NAME, settings)
    ensemble = Ensemble([load_encoder("flux2", C.WEIGHTS)], bf16=False)
    C.say(f"[views] {len(files)} paintings at {args.size} px, training views at {args.train_size} px")
    for k, path in enumerate(files):
        x = fit_to(load_image(path).rgb[None], args.size, args.size)
        row: dict[str, Any] = {"painting": path.name, "modes": {}}
        check = None
        for mode in MODES:
            out = sfumato.cloak(
                x[0],
                "sketch",
                speed=args.speed,
                seed=k,
                robust=mode == "robust",
                views=spec if mode == "views" else None,
                device="cpu",
                weights_dir=C.WEIGHTS,
            )
            if check is None:
                check = spec.bind(x, out.target.reshape(x.shape), ensemble, CHECK_SEED)
            q = out.report["effect"]["quality"]
            row["modes"][mode] = {
                "psnr_db": q["psnr_db"],
                "ssim": q["ssim"],
                "moved_image": out.report["effect"]["latents"]["flux2"]["fraction_moved"],
                "moved_views": check.moved(out.tensor[None], ensemble)[0],
                "steps": out.report["steps"],
                "seconds": out.report["seconds"],
            }
            m = row["modes"][mode]
            C.say(
                f"  {path.name[:40]} {mode:<8}: PSNR {m['psnr_db']:.2f} dB, moved image "
                f"{m['moved_image']:.3f}, views {m['moved_views']:.3f}, {m['seconds']:.1f} s"
            )
        data["runs"].append(row)
        C.write_json(args.partial, data)
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    runs = data["runs"]
    v = s["views"]
    keys = ("psnr_db", "ssim", "moved_image", "moved_views", "seconds")
    rows = []
    for mode in MODES:
        vals = {k: [r["modes"][mode][k] for r in runs] for k in keys}
        rows.append(
            [mode, runs[0]["modes"][mode]["steps"] if runs else ""]
            + [C.pm(vals[k], 2 if k in ("psnr_db", "seconds") else 3) for k in keys]
        )
    return "\n".join(
        [
            "## Training views\n",
            f"{len(runs)} Van Gogh paintings at {s['size']}x{s['size']} px cloaked toward `{s['style']}` "
            f"(budget {s['budget']}, intensity {s['intensity']}, speed `{s['speed']}`, CPU, one torch thread "
            f"per process). *moved (views)*: the share of the latent distance to the target that "
            f"{v['bank']} training views close: square crops of {v['scale'][0]:g}-{v['scale'][1]:g} of the "
            f"short side, half mirrored, resized to {v['size']} px (bicubic or bilinear, antialiased), "
            "from a bank of boxes no attack drew from. `views` mode optimises through the same kind of "
            f"crops ({v['draws']} per step, {v['step_factor']}x the preset's steps). Mean ± std.\n",
            C.table(["mode", "steps", "PSNR dB", "SSIM", "moved (image)", "moved (views)", "seconds"], rows),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paintings", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--speed", default="default")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.paintings, args.size, args.train_size, args.speed = 2, 128, 64, "fast"
    out = C.out_dir(args.quick)
    args.partial = out / f"{NAME}.partial.json"
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = C.run_or_load(out / f"{NAME}.json", args.render_only, lambda: run(args))
    path = C.write_markdown(NAME, render(data), args.quick)
    if args.partial.exists():
        args.partial.unlink()
    C.say(f"wrote {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
