"""How much of a picture each lab latent space keeps: the judges on real images after a round trip.

A base generator can draw no better than its decoder renders, so the judges' accuracy on real CIFAR-10
test images encoded and decoded by an autoencoder is a ceiling for a generator trained in its latent
space (the issue's base-quality goal asks >= 80 % for every class). This measures that ceiling and the
round trip's PSNR for FLUX.2's tiny autoencoder and for any private autoencoder
(``sfumato lab private``), on the lab's six classes at 64 px.

    python benchmarks/lab_autoencoders.py --workdir W --autoencoders flux2,W/private-autoencoder

Rows already in the saved table for other autoencoders are kept (same test images), so an autoencoder
trained later is added with ``--autoencoders W/NEW``; ``--judges`` limits the judges to those trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from kornia.metrics import psnr

import _common as C
from sfumato.lab.cli import VOTERS
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.judging.classifiers import load_judge
from sfumato.lab.models.autoencoders import load_lab_decoder, load_lab_encoder
from sfumato.lab.models.base import LAB_CLASSES
from sfumato.lab.models.latent_cache import to_unit

NAME = "lab_autoencoders"


def _accuracy(judge: Any, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per-class and mean share of ``images`` (uint8) the judge calls their own class."""
    pred = judge.predict(images)
    own = torch.tensor([judge.classes.index(c) for c in LAB_CLASSES])[labels]
    hit = (pred == own).float()
    per = {c: round(100 * float(hit[labels == k].mean()), 1) for k, c in enumerate(LAB_CLASSES)}
    return {"mean": round(100 * float(hit.mean()), 1), **per}


def run(args: argparse.Namespace) -> dict[str, Any]:
    test = load_cifar(args.cifar, "test", classes=LAB_CLASSES, per_class=args.per_class, progress=False)
    real = to_unit(test.images, 64)
    judges = {name: load_judge(args.workdir / "judges" / name) for name in args.judges}
    data = C.new_record(
        NAME,
        {
            "workdir": str(args.workdir),
            "autoencoders": list(args.autoencoders),
            "per_class": args.per_class,
            "threads": torch.get_num_threads(),
        },
    )
    saved = C.out_dir(False) / f"{NAME}.json"
    if saved.exists():
        old = C.read_json(saved)
        if old["settings"]["per_class"] == args.per_class:
            data["runs"] = [r for r in old["runs"] if r["autoencoder"] not in args.autoencoders]
            earlier = [a for a in old["settings"]["autoencoders"] if a not in args.autoencoders]
            data["settings"]["autoencoders"] = earlier + list(args.autoencoders)

    def record(name: str, images: torch.Tensor, db: float | None) -> None:
        u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        acc = {j: _accuracy(judge, u8, test.labels) for j, judge in judges.items()}
        data["runs"].append({"autoencoder": name, "psnr_db": db, "judges": acc})
        C.say(f"  {name}: " + ", ".join(f"{j} {a['mean']:.1f} %" for j, a in acc.items()))

    if not any(r["autoencoder"] == "none (real images)" for r in data["runs"]):
        record("none (real images)", real, None)
    for name in args.autoencoders:
        encoder, decoder = load_lab_encoder(name), load_lab_decoder(name)
        with torch.no_grad():
            out = torch.cat([decoder(encoder(b)) for b in real.split(100)]).clamp(0, 1)
        record(name, out, round(float(psnr(out, real, 1.0)), 2))
    data["finished"] = C.now()
    return data


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    judges = list(dict.fromkeys(j for r in data["runs"] for j in r["judges"]))
    rows = []
    for r in data["runs"]:
        for j in judges:
            if j not in r["judges"]:
                continue
            a = r["judges"][j]
            db = "–" if r["psnr_db"] is None else f"{r['psnr_db']:.1f}"
            rows.append([r["autoencoder"], db, j, f"{a['mean']:.1f}", *(f"{a[c]:.0f}" for c in LAB_CLASSES)])
    return "\n".join(
        [
            "## Lab autoencoders: what a generator in each latent space could draw at best\n",
            f"{s['per_class']} CIFAR-10 test images per class at 64 px, encoded and decoded, then judged "
            "(share called their own class, %). A base generator in that latent space draws no better.\n",
            C.table(["autoencoder", "PSNR dB", "judge", "mean", *LAB_CLASSES], rows),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="the lab folder (its judges/)")
    ap.add_argument(
        "--autoencoders",
        type=lambda s: [x for x in s.split(",") if x],
        default=["flux2"],
        help="comma-separated: flux2 and/or private autoencoder folders or checkpoints",
    )
    ap.add_argument("--per-class", type=int, default=200, help="test images per class")
    ap.add_argument(
        "--judges",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(VOTERS),
        help=f"comma-separated lab judges (default: {','.join(VOTERS)})",
    )
    args = C.lab_args(ap)
    C.run_and_write(NAME, args.render_only, lambda: run(args), render)


if __name__ == "__main__":
    main()
