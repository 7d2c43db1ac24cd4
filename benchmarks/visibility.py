"""Visibility: the just-noticeable-difference budget against a plain L-inf bound at equal PSNR.

For each image, protect with the ``jnd`` budget at each intensity, and with ``linf`` at a ladder of
bounds; interpolate the L-inf figures at the JND run's PSNR and compare the change left on flat
regions (where published tools' artifacts show) and the latent shift achieved.

    python benchmarks/visibility.py            # 8 images at 384 px
    python benchmarks/visibility.py --quick    # 2 images at 128 px
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import sfumato
from sfumato.imageio import to_tensor

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SFUMATO_SHARED", REPO.parent / "shared"))
RESULTS = REPO / "benchmarks" / "results"
LINF_LADDER = (2, 3, 4, 6, 8, 10)  # 0..255 units


def images(n: int, size: int) -> list[tuple[str, torch.Tensor]]:
    photos = sorted((SHARED / "data" / "imagenet-samples").glob("*.jpg"))[::97][: n - n // 4]
    paintings = sorted((SHARED / "data" / "vangogh").glob("*.png"))[::5][: n // 4]
    out = []
    for p in photos + paintings:
        im = Image.open(p).convert("RGB")
        s = min(im.size)
        im = im.crop(((im.width - s) // 2, (im.height - s) // 2, (im.width + s) // 2, (im.height + s) // 2))
        out.append((p.name, to_tensor(im.resize((size, size), Image.BICUBIC))))
    return out


def run_one(x: torch.Tensor, name: str, budget: str, intensity: str, eps: float | None, args) -> dict:
    out = sfumato.cloak(
        x,
        "mosaic",
        budget=budget,
        intensity=intensity,
        eps=eps,
        speed=args.speed,
        seed=0,
        device="cpu",
        weights_dir=args.weights,
    )
    q = out.report["effect"]["quality"]
    return {
        "image": name,
        "budget": budget,
        "intensity": intensity,
        "eps_255": None if eps is None else eps * 255,
        "psnr_db": q["psnr_db"],
        "flat_fraction": q["flat_fraction"],
        "flat_change": q["flat_mean_change"],
        "textured_change": q["textured_mean_change"],
        "ssim": q["ssim"],
        "moved": out.report["effect"]["latents"]["flux2"]["fraction_moved"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--weights", default=str(SHARED / "weights" / "taesd"))
    ap.add_argument("--speed", default="default")
    args = ap.parse_args()
    n, size = (2, 128) if args.quick else (8, 384)
    name = "visibility_quick" if args.quick else "visibility"
    settings = {
        "images": n,
        "size": size,
        "style": "mosaic",
        "speed": args.speed,
        "linf_ladder": LINF_LADDER,
        "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rows = []
    for i, (img_name, x) in enumerate(images(n, size)):
        for intensity in ("low", "default", "high"):
            rows.append(run_one(x, img_name, "jnd", intensity, None, args))
        for e in LINF_LADDER:
            rows.append(run_one(x, img_name, "linf", "default", e / 255, args))
        print(f"[{i + 1}/{n}] {img_name}", flush=True)
    comparison = []
    for intensity in ("low", "default", "high"):
        per_image = []
        for img_name in dict.fromkeys(r["image"] for r in rows):
            j = next(
                r
                for r in rows
                if r["image"] == img_name and r["budget"] == "jnd" and r["intensity"] == intensity
            )
            ladder = sorted(
                (r for r in rows if r["image"] == img_name and r["budget"] == "linf"),
                key=lambda r: r["psnr_db"],
            )
            ps = [r["psnr_db"] for r in ladder]
            if not ps[0] <= j["psnr_db"] <= ps[-1]:
                continue
            interp = {
                k: float(np.interp(j["psnr_db"], ps, [r[k] for r in ladder]))
                for k in ("flat_change", "moved")
            }
            per_image.append(
                {
                    "image": img_name,
                    "psnr_db": j["psnr_db"],
                    "flat_fraction": j["flat_fraction"],
                    "jnd_flat_change": j["flat_change"],
                    "linf_flat_change": interp["flat_change"],
                    "jnd_moved": j["moved"],
                    "linf_moved": interp["moved"],
                }
            )
        flat_imgs = [p for p in per_image if p["flat_fraction"] > 0.01]
        comparison.append(
            {
                "intensity": intensity,
                "images_compared": len(per_image),
                "images_with_flat_regions": len(flat_imgs),
                "psnr_db": float(np.mean([p["psnr_db"] for p in per_image])) if per_image else None,
                "jnd_flat_change": float(np.mean([p["jnd_flat_change"] for p in flat_imgs]))
                if flat_imgs
                else None,
                "linf_flat_change": float(np.mean([p["linf_flat_change"] for p in flat_imgs]))
                if flat_imgs
                else None,
                "jnd_moved": float(np.mean([p["jnd_moved"] for p in per_image])) if per_image else None,
                "linf_moved": float(np.mean([p["linf_moved"] for p in per_image])) if per_image else None,
            }
        )
    out = RESULTS / "quick" if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(
        json.dumps({"settings": settings, "rows": rows, "comparison": comparison}, indent=1)
    )
    lines = [
        f"# Visibility: JND budget vs L-inf at equal PSNR ({n} images, {size} px, cloak toward 'mosaic')",
        "",
        "Flat change: mean |change| (0..255) on flat/smooth pixels, averaged over images that have them. "
        "Moved: fraction of the FLUX.2 latent distance to the target closed. L-inf figures interpolated "
        "at the JND run's PSNR along a ladder of bounds " + ", ".join(f"{e}/255" for e in LINF_LADDER) + ".",
        "",
        "| intensity | images | PSNR dB | flat change, JND | flat change, L-inf | moved, JND "
        "| moved, L-inf |",
        "|---|---|---|---|---|---|---|",
    ]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    for c in comparison:
        lines.append(
            f"| {c['intensity']} | {c['images_compared']} | {f(c['psnr_db'])} | {f(c['jnd_flat_change'])} | "
            f"{f(c['linf_flat_change'])} | {f(c['jnd_moved'])} | {f(c['linf_moved'])} |"
        )
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
