"""Make a contact sheet of every built-in target style (``docs/styles.png``).

Rows: two ImageNet sample photos and one Van Gogh painting from the shared data folder.
Columns: the original, then each style of ``sfumato.styles.STYLE_NAMES``.

    PYTHONPATH=src python scripts/make_style_sheet.py [--shared ../shared] [--out docs/styles.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sfumato.styles import STYLE_NAMES, render_style

DEFAULT_IMAGES = (
    "imagenet-samples/n01443537_goldfish.jpg",
    "imagenet-samples/n03877845_palace.jpg",
    "vangogh/00004-0-vincent-van-gogh_orchard-in-blossom-plum-trees-1888.png",
)


def load_square(path: Path, size: int) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    im = im.resize((size, size), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)


def to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray((t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="shared folder (holds data/)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "styles.png")
    ap.add_argument("--tile", type=int, default=192, help="tile size in the sheet (px)")
    ap.add_argument("--render", type=int, default=384, help="size the styles are rendered at (px)")
    ap.add_argument("--images", nargs="*", default=list(DEFAULT_IMAGES), help="paths under <shared>/data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = args.shared / "data"
    names = ("original", *STYLE_NAMES)
    label_h = 18
    t = args.tile
    sheet = Image.new("RGB", (t * len(names), label_h + t * len(args.images)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(names):
        draw.text((j * t + 6, 3), name, fill=(0, 0, 0))
    for i, rel in enumerate(args.images):
        img = load_square(data / rel, args.render)
        tiles = [img] + [render_style(name, img, seed=args.seed) for name in STYLE_NAMES]
        for j, tile in enumerate(tiles):
            pil = to_pil(tile)
            if pil.size != (t, t):
                pil = pil.resize((t, t), Image.LANCZOS)
            sheet.paste(pil, (j * t, label_h + i * t))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # a 256-colour palette keeps the PNG small enough for a README
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        args.out, optimize=True
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
