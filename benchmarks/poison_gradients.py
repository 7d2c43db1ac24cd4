"""What each kind of poison asks of the generator: its training gradient against the target concept's.

Fine-tuning moves the generator along the summed gradient of its loss on the training images. For a
poisoning experiment folder (``sfumato lab poison``), this takes the first ``--images`` images of every
pool (clean source images, each poison method's pool, the mislabelled target images of ``dirty``, and the
anchors themselves), captioned as the source, and measures on the base generator:

- ``cosine``: between the images' summed parameter gradient and the *target gradient* (the mean gradient
  on all anchors captioned as the source: "draw the target for the source prompt");
- ``norm``: that gradient's size per image, relative to the anchors' (how much each image weighs in a
  batch).

Each figure is averaged over ``--draws`` noise/time draws that no crafting step saw. ``shade-gm`` is the
method crafted to maximise the cosine; the others are measured as they are.

    python benchmarks/poison_gradients.py --poison W/poison/dog-to-cat --base W/base/<base>/checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import _common as C
from sfumato.lab.data.captions import captions_for
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.models.autoencoders import load_lab_encoder
from sfumato.lab.models.latent_cache import to_unit
from sfumato.lab.models.text_encoder import TextEncoder
from sfumato.lab.models.training import load_generator
from sfumato.lab.poison.craft import as_unit, encode_with
from sfumato.lab.poison.gradient_match import GradientPoisoner
from sfumato.lab.poison.settings import POISON_OFFSET, crafted_chunks

NAME = "poison_gradients"


def _pool(folder: Path, method: str, n: int) -> torch.Tensor | None:
    if method == "dirty":
        path = folder / "dirty" / "images.pt"
        return torch.load(path, weights_only=True)[:n] if path.exists() else None
    chunks = crafted_chunks(folder, method)
    return torch.cat([ch["images"] for ch in chunks])[:n] if chunks else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = json.loads((args.poison / "settings.json").read_text())
    source, encoder_name = settings["source"], settings["base"]["encoder"]
    pool = args.poison / "poisons"
    model, _, _, _ = load_generator(args.base)
    encoder = load_lab_encoder(encoder_name)
    text = TextEncoder()
    anchors = torch.load(pool / "anchors-shade.pt", weights_only=True)
    sets: dict[str, torch.Tensor] = {}
    clean = load_cifar(args.cifar, "train", classes=[source], per_class=args.images, offset=POISON_OFFSET)
    sets["clean source"] = (to_unit(clean.images, 64) * 255).round().to(torch.uint8)
    for method in ("shade", "shade-gm", "shade-robust", "shade-real", "dirty"):
        images = _pool(pool, method, args.images)
        if images is not None:
            sets[method] = images
    sets["anchors"] = anchors[: args.images]
    data = C.new_record(
        NAME,
        {
            "poison": str(args.poison),
            "base": str(args.base),
            "images": args.images,
            "draws": args.draws,
            "threads": torch.get_num_threads(),
        },
    )
    # The same target as the shade-gm crafter's (Experiment._gradient_poisoner).
    target_captions = captions_for([0] * anchors.shape[0], [source], seed=7)
    poisoner = GradientPoisoner(model, encoder, anchors, text.encode_tokens, target_captions)
    match = poisoner.match(captions_for([0] * args.images, [source], seed=100))
    with sdpa_kernel(SDPBackend.MATH):
        norms: dict[str, list[float]] = {}
        for name, images in sets.items():
            lat = encode_with([encoder], as_unit(images))[0]
            cos, size = [], []
            for d in range(args.draws):
                grad = match.gradient(lat, torch.Generator().manual_seed(10_000 + d))
                cos.append(float(torch.nn.functional.cosine_similarity(grad, poisoner.target, 0)))
                size.append(float(grad.norm()))
            norms[name] = size
            data["runs"].append({"set": name, "cosine": [round(c, 4) for c in cos], "norm": size})
            C.say(f"  {name}: cosine {C.pm(cos)}, mean-gradient norm {C.pm(size, 4)}")
    ref = sum(norms["anchors"]) / len(norms["anchors"])
    for row in data["runs"]:
        row["relative_norm"] = round(sum(row["norm"]) / len(row["norm"]) / ref, 3)
    data["finished"] = C.now()
    return data


def render(data: dict[str, Any]) -> str:
    s = data["settings"]
    rows = [[r["set"], C.pm(r["cosine"]), f"{r['relative_norm']:.2f}"] for r in data["runs"]]
    return "\n".join(
        [
            "## Poison gradients: what each poison asks of the generator\n",
            f"The first {s['images']} images of each pool of `{s['poison']}`, captioned as the source, on "
            f"the base generator `{s['base']}`; {s['draws']} noise/time draws no crafting step saw. "
            "Cosine: between their mean parameter gradient and the target gradient (all anchors captioned as "
            "the source); relative norm: that gradient's size against the anchors' own.\n",
            C.table(["images", "cosine to target gradient", "relative norm"], rows),
            "`shade-gm` is crafted to raise the cosine (gradient matching); the rest are measured as they "
            "are. See README, 'The lab, measured', for what each does to attack success.\n",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--poison", type=Path, required=True, help="a poisoning experiment folder")
    ap.add_argument("--base", type=Path, required=True, help="its base generator checkpoint")
    ap.add_argument("--images", type=int, default=50, help="images per pool")
    ap.add_argument("--draws", type=int, default=4, help="noise/time draws")
    args = C.lab_args(ap)
    C.run_and_write(NAME, args.render_only, lambda: run(args), render)


if __name__ == "__main__":
    main()
