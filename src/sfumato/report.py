"""The effect report: how far the latents moved toward the target, on every encoder, at what cost."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sfumato.encoders import ImageEncoder
from sfumato.optimise import encode_tiled, latent_distance
from sfumato.quality import measure_quality
from sfumato.verdict import verdict


@torch.no_grad()
def latent_effect(
    original: torch.Tensor,
    protected: torch.Tensor,
    target: torch.Tensor | None,
    encoders: Sequence[ImageEncoder],
    attacked: Sequence[str] = (),
) -> dict[str, dict[str, float | bool]]:
    """Per encoder: distance to the target before and after, and the fraction of the way moved.

    Encoders not in ``attacked`` measure transfer: a shift crafted on one latent space showing in
    another. Without a target, only the size of the latent shift is known.
    """
    out: dict[str, dict[str, float | bool]] = {}
    for enc in encoders:
        z0, z1 = encode_tiled(enc, original), encode_tiled(enc, protected)
        row: dict[str, float | bool] = {
            "attacked": enc.name in attacked,
            "shift": round(latent_distance(z1, z0), 5),
        }
        if target is not None:
            zt = encode_tiled(enc, target)
            before, after = latent_distance(z0, zt), latent_distance(z1, zt)
            row.update(
                distance_before=round(before, 5),
                distance_after=round(after, 5),
                fraction_moved=round(1 - after / before, 4) if before > 0 else 0.0,
            )
        out[enc.name] = row
    return out


def effect_report(
    original: torch.Tensor,
    protected: torch.Tensor,
    target: torch.Tensor | None,
    encoders: Sequence[ImageEncoder],
    attacked: Sequence[str] = (),
) -> dict[str, object]:
    """Quality and latent figures for one image pair (tensors (1, 3, H, W) in [0, 1])."""
    return {
        "quality": measure_quality(original, protected).as_dict(),
        "latents": latent_effect(original, protected, target, encoders, attacked),
    }


def summary_row(name: str, report: dict) -> dict[str, object]:
    """One line of the batch summary table."""
    effect = report.get("effect", {})
    q = effect.get("quality", {})
    lat = effect.get("latents", {})
    row: dict[str, object] = {
        "image": name,
        "psnr_db": q.get("psnr_db"),
        "ssim": q.get("ssim"),
        "max_change": q.get("max_change"),
        "flat_change": q.get("flat_mean_change"),
    }
    for enc, fig in lat.items():
        row[f"moved_{enc}"] = fig.get("fraction_moved")
    row["seconds"] = report.get("seconds")
    row["verdict"] = verdict(report).level  # what the figures mean, per the lab (sfumato.verdict)
    return row


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    """Rows (dicts sharing keys) as a Markdown table."""
    if not rows:
        return "(no images)\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"
