"""The poisoning report's figures: attack success against the dose, and the images drawn per dose."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sfumato.lab.figures import image_grid, labelled, pyplot, save_figure, stack

GRID_DOSES = (0, 50, 200)
GRID_IMAGES = 16


def dose_response_plot(
    summary: Mapping[str, Any],
    setting: str,
    judges: Sequence[str],
    source_prompt: str,
    target: str,
    path: Path,
    title: str,
) -> None:
    """Share of ``source_prompt`` images judged ``target`` against N: a panel per judge, a line per method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(judges), figsize=(5 * len(judges), 3.6), squeeze=False)
    for ax, judge in zip(axes[0], judges, strict=True):
        for method, per_setting in summary.items():
            rows = per_setting.get(setting, {})
            doses = sorted(int(d) for d in rows)
            if not doses:
                continue
            ys = [rows[str(d)]["judges"][judge][source_prompt][target] for d in doses]
            ax.errorbar(
                doses,
                [y["mean"] * 100 for y in ys],
                yerr=[y["std"] * 100 for y in ys],
                marker="o",
                capsize=3,
                label=method,
            )
        ax.set_xlabel("poisoned images N")
        ax.set_ylabel("attack success (%)")
        ax.set_title(f"judge: {judge}")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def sample_grid(exp: Any, setting: str, source_prompt: str) -> tuple[Image.Image | None, int | None]:
    """``GRID_IMAGES`` images drawn for ``source_prompt`` per method and dose, one row each, and the seed
    they come from: the first whose images this workdir holds (runs carried over from another workdir's
    results have scores but no images)."""
    doses = [d for d in exp.config.doses if d in GRID_DOSES]
    if doses in ([], [0]):  # a folder without N = 50 or 200 shows the doses it has
        doses = list(exp.config.doses)
    for seed in exp.config.seeds:
        rows = []
        for method in ["clean", *exp.config.methods]:
            for dose in doses:
                if (method == "clean") != (dose == 0):
                    continue
                path = exp.run_dir(method, dose, seed) / f"samples-{setting}.pt"
                if not path.exists():
                    continue
                images = torch.load(path, weights_only=True)[source_prompt][:GRID_IMAGES]
                label = "no poison" if dose == 0 else f"{method}, N={dose}"
                rows.append(labelled(image_grid(images, columns=GRID_IMAGES, scale=1), label))
        if rows:
            return stack(rows), seed
    return None, None
