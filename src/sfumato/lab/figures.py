"""Pictures every lab report draws: image grids with row labels, matplotlib figures, table cells.

Shared by the poisoning, mimicry and robustness reports so a figure looks (and is saved) the same in each.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from sfumato.imageio import atomic_write_bytes


def image_grid(images: torch.Tensor, columns: int = 10, pad: int = 2, scale: int = 1) -> Image.Image:
    """uint8 (N, 3, H, W) -> one PIL image, row-major, white padding."""
    n, _, h, w = images.shape
    rows = max(1, math.ceil(n / columns))
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    arr = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[
            pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w
        ] = arr[i]
    img = Image.fromarray(canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def labelled(img: Image.Image, text: str, width: int = 170) -> Image.Image:
    """``img`` with ``text`` written in a white margin on its left (a grid row's name)."""
    out = Image.new("RGB", (img.width + width, img.height), "white")
    out.paste(img, (width, 0))
    ImageDraw.Draw(out).text((4, img.height // 2 - 6), text, fill="black")
    return out


def stack(rows: list[Image.Image]) -> Image.Image:
    """Rows one under another on white, as wide as the widest."""
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    return canvas


def save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (reports are written on machines with no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically (110 dpi, the size every report uses) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def fmt(stat: Mapping[str, float] | None, pct: bool = True) -> str:
    """A table cell from a ``{"mean", "std", "n"}`` statistic: "42 ± 3" (percent) or "–" when empty."""
    if not stat or stat.get("n", 0) == 0 or math.isnan(stat["mean"]):
        return "–"
    k = 100 if pct else 1
    if stat.get("n", 1) > 1:
        return (
            f"{stat['mean'] * k:.0f} ± {stat['std'] * k:.0f}"
            if pct
            else f"{stat['mean']:.1f} ± {stat['std']:.1f}"
        )
    return f"{stat['mean'] * k:.0f}" if pct else f"{stat['mean']:.1f}"
