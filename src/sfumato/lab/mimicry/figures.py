"""The mimicry report's figures: protection against the share cloaked, mimicry per condition, the
decoded-views predictor against the outcome, and grids of drawn images and training views."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from sfumato.lab.figures import image_grid, labelled, pyplot, save_figure, stack
from sfumato.lab.mimicry.settings import parse_condition, prompt_for_artist

GRID_IMAGES = 16
SHARES = (0, 25, 50, 75, 100)


def share_condition(share: int, intensity: str) -> str:
    return "clean" if share == 0 else f"cloak-{intensity}" if share == 100 else f"share{share}-{intensity}"


def share_plot(results: dict[str, Any], setting: str, intensity: str, path: Any) -> bool:
    """Protection success against the share of works cloaked, one line per artist."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drawn = False
    for artist, per in results["summary"].items():
        xs, ys, es = [], [], []
        for share in SHARES:
            entry = per.get(share_condition(share, intensity), {}).get(setting)
            if entry is not None:
                xs.append(share)
                ys.append(100 * entry["protection"]["mean"])
                es.append(100 * entry["protection"]["std"])
        if len(xs) > 1:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=artist)
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.axhline(90, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"works cloaked (%, {intensity})")
    ax.set_ylabel("protection success (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def conditions_plot(results: dict[str, Any], setting: str, path: Any) -> None:
    """Mimicry success per condition, grouped by artist."""
    plt = pyplot()
    conds = list(results["settings"]["conditions"])
    artists = list(results["summary"])
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(artists) * max(1, len(conds)) / 3), 3.8))
    width = 0.8 / max(1, len(conds))
    for i, c in enumerate(conds):
        xs, ys, es = [], [], []
        for j, a in enumerate(artists):
            entry = results["summary"][a].get(c, {}).get(setting)
            if entry is not None:
                xs.append(j + (i - (len(conds) - 1) / 2) * width)
                ys.append(100 * entry["mimicry"]["mean"])
                es.append(100 * entry["mimicry"]["std"])
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=c)
    ax.set_xticks(range(len(artists)), artists)
    ax.set_ylabel("mimicry success (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    save_figure(fig, path)


def decoded_pairs(results: dict[str, Any], setting: str) -> list[tuple[str, str, float, float]]:
    """``(artist, condition, decoded views judged as the artist, mimicry success)`` wherever both exist."""
    pairs = []
    for artist, per in results["protection"].items():
        for condition, p in per.items():
            entry = results["summary"].get(artist, {}).get(condition, {}).get(setting)
            if "decoded_judged" in p and entry is not None:
                pairs.append((artist, condition, p["decoded_judged"]["artist"], entry["mimicry"]["mean"]))
    return pairs


def decoded_plot(results: dict[str, Any], setting: str, path: Any) -> tuple[bool, float | None]:
    """Mimicry success against the judge's votes on the decoded training views, one point per artist and
    condition; returns whether it was drawn (three points at least) and their Pearson correlation
    (None where either axis is constant)."""
    plt = pyplot()
    pairs = decoded_pairs(results, setting)
    if len(pairs) < 3:
        return False, None
    xs = np.array([100 * p[2] for p in pairs])
    ys = np.array([100 * p[3] for p in pairs])
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for artist in dict.fromkeys(p[0] for p in pairs):
        pick = [i for i, p in enumerate(pairs) if p[0] == artist]
        ax.scatter(xs[pick], ys[pick], label=artist, s=22)
    ax.plot([0, 100], [0, 100], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("decoded training views judged as the artist (%)")
    ax.set_ylabel("mimicry success (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True, float(np.corrcoef(xs, ys)[0, 1]) if xs.std() > 0 and ys.std() > 0 else None


def sample_grid(exp: Any, setting: str, conditions: list[str]) -> tuple[Image.Image | None, int | None]:
    """Per artist, ``GRID_IMAGES`` images drawn for its prompt under each of ``conditions``, and the seed
    they come from: the first whose images this workdir holds (carried-over runs have none)."""
    for seed in exp.settings.seeds:
        rows = []
        for artist in exp.settings.artists:
            prompt = prompt_for_artist(artist)
            for c in conditions:
                path = exp.run_dir(artist, c, seed) / f"samples-{setting}.pt"
                if path.exists():
                    images = torch.load(path, weights_only=True)[prompt][:GRID_IMAGES]
                    rows.append(labelled(image_grid(images, columns=images.shape[0]), f"{artist}, {c}"))
        if rows:
            return stack(rows), seed
    return None, None


def works_grid(exp: Any, condition: str) -> Image.Image | None:
    """Per artist, training views of its works clean and the same views under ``condition``."""
    rows = []
    cond = parse_condition(condition)
    for artist in exp.settings.artists:
        variant = cond.variant(exp.settings.style)
        chosen = exp.cloaked_set(artist, cond)
        if variant is None or not all(exp.cloak_path(artist, variant, k).exists() for k in chosen):
            continue
        clean, _ = exp.training_views(artist, parse_condition("clean"))
        cloaked, _ = exp.training_views(artist, cond)
        step = max(1, clean.shape[0] // GRID_IMAGES)
        for views, label in ((clean, "clean"), (cloaked, condition)):
            shown = views[::step][:GRID_IMAGES]
            rows.append(labelled(image_grid(shown, columns=shown.shape[0]), f"{artist}, {label}"))
    return stack(rows) if rows else None
