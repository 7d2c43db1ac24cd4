"""``report.md`` and the plot of the robustness experiment, from its ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sfumato.imageio import atomic_write_text
from sfumato.lab.figures import fmt, pyplot, save_figure
from sfumato.lab.robustness.settings import NONE


def write_robustness_report(results: dict[str, Any], out: Path, judges: Sequence[str]) -> None:
    """``report.md`` and ``robustness.png`` from a ``results.json`` payload."""
    s = results["settings"]
    target, source = s["poison"]["target"], s["poison"]["source"]
    cms = [NONE, *s["countermeasures"]]
    lines = [
        f"# Robustness: {source} -> {target} poisons after countermeasures",
        "",
        f"N = {s['dose']} poisons among {s['poison']['clean_per_class']} clean images per class; the "
        "countermeasure is applied to every fine-tuning image. Attack success = share of images drawn "
        f"for '{source}' that the judge calls {target} ({s['setting']}; mean ± spread over seeds).",
        "",
        "Countermeasures:",
        "",
        *[f"- `{cm}`: {text}" for cm, text in results.get("countermeasures", {}).items()],
        "",
    ]
    for judge in judges:
        lines += [f"## Attack success, judge `{judge}`", ""]
        lines += ["| countermeasure | " + " | ".join(["clean (N=0)", *s["methods"]]) + " |"]
        lines += ["|---" * (len(s["methods"]) + 2) + "|"]
        for cm in cms:
            cell = results["attack"].get(cm, {})
            vals = [fmt(cell.get(m, {}).get(judge, {}).get("target")) for m in ["clean", *s["methods"]]]
            lines.append(f"| {cm} | " + " | ".join(vals) + " |")
        lines.append("")
    lines += ["## Latent shift kept after the countermeasure", ""]
    lines += ["Share of the distance to the anchor that the poisons still close (attacked encoder).", ""]
    lines += ["| countermeasure | " + " | ".join(s["methods"]) + " |", "|---" * (len(s["methods"]) + 1) + "|"]
    for cm in cms:
        vals = []
        for m in s["methods"]:
            v = results[m]["survival"][cm]
            vals.append(f"{v['closed']:.3f} ({100 * v['kept']:.0f} % kept)")
        lines.append(f"| {cm} | " + " | ".join(vals) + " |")
    lines += ["", "## Cost and detection", ""]
    lines += ["| method | PSNR (dB) | reconstruction-error AUC |", "|---|---|---|"]
    for m in s["methods"]:
        lines.append(f"| {m} | {results[m]['psnr_mean']:.2f} | {results[m]['detection_auc']:.2f} |")
    lines += ["", "AUC 0.5: a scraper cannot tell poisons from clean ones by this statistic; 1: it can.", ""]
    if results.get("cloak"):
        lines += _cloak_lines(results["cloak"])
    atomic_write_text(out / "report.md", "\n".join(lines))
    _plot(results, out / "robustness.png", judges)


def _cloak_lines(cloak: Mapping[str, Any]) -> list[str]:
    """The cloak table: mimicry success per artist and condition (rows) under each countermeasure."""
    cms = list(cloak)
    others = [cm for cm in cms if cm != NONE]
    # Conditions measured under some countermeasure; the unpurified experiment holds many more.
    conditions = sorted(
        {cond for cm in others for conds in cloak[cm]["artists"].values() for cond in conds},
        key=lambda c: (c != "clean", c),
    ) or sorted({cond for conds in cloak[NONE]["artists"].values() for cond in conds})
    artists = list(dict.fromkeys(a for cm in cms for a in cloak[cm]["artists"]))
    lines = [
        "## Cloaks after the countermeasure",
        "",
        "Mimicry success (share of the images drawn for the artist's prompt that the style judge calls the "
        "artist) when the scraper applies the countermeasure to every work before fine-tuning; from "
        "`sfumato lab mimicry --countermeasure CM` (mean ± spread where more than one seed finished). A "
        "cloak works where its row is well below `clean`'s.",
        "",
        "| artist | condition | " + " | ".join(cms) + " |",
        "|---|---" + "|---:" * len(cms) + "|",
    ]
    for artist in artists:
        for cond in conditions:
            vals = [fmt(cloak[cm]["artists"].get(artist, {}).get(cond, {}).get("mimicry")) for cm in cms]
            lines.append(f"| {artist} | {cond} | " + " | ".join(vals) + " |")
    return [*lines, ""]


def _plot(results: dict[str, Any], path: Path, judges: Sequence[str]) -> None:
    plt = pyplot()
    s = results["settings"]
    cms = [NONE, *s["countermeasures"]]
    methods = ["clean", *s["methods"]]
    fig, axes = plt.subplots(1, len(judges), figsize=(5.5 * len(judges), 3.6), squeeze=False)
    width = 0.8 / len(methods)
    for ax, judge in zip(axes[0], judges, strict=True):
        for k, m in enumerate(methods):
            ys = [results["attack"].get(cm, {}).get(m, {}).get(judge, {}).get("target") for cm in cms]
            ax.bar(
                [i + (k - (len(methods) - 1) / 2) * width for i in range(len(cms))],
                [100 * y["mean"] if y else 0 for y in ys],
                width,
                yerr=[100 * y["std"] if y else 0 for y in ys],
                label=m,
                capsize=2,
            )
        ax.set_xticks(range(len(cms)), cms, rotation=20)
        ax.set_ylabel(f"attack success at N = {s['dose']} (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"judge: {judge}")
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
