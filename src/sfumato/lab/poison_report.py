"""``report.md`` and figures of the poisoning experiment, from its ``results.json`` and sample files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from sfumato.imageio import atomic_write_text
from sfumato.lab.data import prompt_for
from sfumato.lab.poison_goals import goal_checks, goal_table
from sfumato.lab.report import dose_response_plot, fmt, image_grid, save_png

GRID_DOSES = (0, 50, 200)
GRID_IMAGES = 16


def _setting(length: int, guidance: float) -> str:
    return f"L{length}-w{guidance:g}"


def _doses(summary: dict[str, Any], setting: str) -> list[int]:
    return sorted({int(d) for per in summary.values() for d in per.get(setting, {})})


def _cell(
    summary: dict[str, Any], method: str, setting: str, dose: int, judge: str, prompt: str, cls: str
) -> str:
    try:
        return fmt(summary[method][setting][str(dose)]["judges"][judge][prompt][cls])
    except KeyError:
        return "–"


def _share_table(results: dict[str, Any], setting: str, prompt: str, cls: str) -> list[str]:
    summary = results["summary"]
    judges = list(results["judges"])
    methods = list(summary)
    head = "| N | " + " | ".join(f"{m} ({'/'.join(judges)})" for m in methods) + " |"
    lines = [head, "|---:|" + "---|" * len(methods)]
    for dose in _doses(summary, setting):
        cells = [
            " / ".join(_cell(summary, m, setting, dose, j, prompt, cls) for j in judges) for m in methods
        ]
        lines.append(f"| {dose} | " + " | ".join(cells) + " |")
    return lines


def _frechet_table(results: dict[str, Any], setting: str, source: str, target: str) -> list[str]:
    summary = results["summary"]
    methods = list(summary)
    lines = [
        "| N | " + " | ".join(f"{m}: to {target} / to {source}" for m in methods) + " |",
        "|---:|" + "---|" * len(methods),
    ]
    for dose in _doses(summary, setting):
        cells = []
        for m in methods:
            fr = summary[m].get(setting, {}).get(str(dose), {}).get("frechet")
            cells.append("–" if not fr else f"{fmt(fr[target], False)} / {fmt(fr[source], False)}")
        lines.append(f"| {dose} | " + " | ".join(cells) + " |")
    return lines


def _bleed_table(results: dict[str, Any], setting: str, judge: str) -> list[str]:
    """One row per run (method, N), one column per prompt: the source, related and unrelated prompts'
    shares side by side, so bleed-through and collateral damage read along a row."""
    target = results["settings"]["target"]
    summary = results["summary"]
    if not summary:
        return []
    cols = [
        (prompt, target if info["role"] != "unrelated" else info["classes"][-1], info["role"])
        for prompt, info in results["prompts"].items()
    ]
    lines = [
        "| method | N | " + " | ".join(f"'{p}' ({role}) called {cls}" for p, cls, role in cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    rows = [("no poison", 0, next(iter(summary)))]
    rows += [(m, d, m) for m in summary for d in _doses({m: summary[m]}, setting) if d]
    for label, dose, method in rows:
        cells = [_cell(summary, method, setting, dose, judge, p, cls) for p, cls, _ in cols]
        lines.append(f"| {label} | {dose} | " + " | ".join(cells) + " |")
    return lines


def _label(img: Image.Image, text: str, width: int = 170) -> Image.Image:
    out = Image.new("RGB", (img.width + width, img.height), "white")
    out.paste(img, (width, 0))
    ImageDraw.Draw(out).text((4, img.height // 2 - 6), text, fill="black")
    return out


def sample_grid(exp: Any, setting: str, source_prompt: str) -> Image.Image | None:
    rows = []
    doses = [d for d in exp.config.doses if d in GRID_DOSES]
    if doses in ([], [0]):  # a folder without N = 50 or 200 shows the doses it has
        doses = list(exp.config.doses)
    for method in ["clean", *exp.config.methods]:
        for dose in doses:
            if (method == "clean") != (dose == 0):
                continue
            folder = exp.run_dir(method, dose, exp.config.seeds[0])
            path = folder / f"samples-{setting}.pt"
            if not path.exists():
                continue
            images = torch.load(path, weights_only=True)[source_prompt][:GRID_IMAGES]
            label = "no poison" if dose == 0 else f"{method}, N={dose}"
            rows.append(_label(image_grid(images, columns=GRID_IMAGES, scale=1), label))
    if not rows:
        return None
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    return canvas


def _transfer_lines(transfer: dict[str, Any] | None) -> list[str]:
    if not transfer:
        return []
    return [
        "",
        f"**Transfer test.** The poisons are the attacker's, taken as they are from "
        f"`{transfer['poisons_from']}`: crafted against {' + '.join(transfer['poison_encoders'])} "
        f"toward anchors drawn by the attacker's generator (latent space "
        f"`{transfer['attacker_base_encoder']}`). The generator fine-tuned here works in the latent space "
        f"`{transfer['victim_encoder']}`, which the attacker never queried.",
        *(
            f"In that latent space the {m} poisons close {v['closed_mean']:.3f} ± {v['closed_std']:.3f} of "
            f"the distance to their anchors (n = {v['n']}; the attacked encoders' figure is under Poisons)."
            for m, v in transfer.get("closed_in_victim_space", {}).items()
        ),
    ]


def _transfer_table(results: dict[str, Any], setting: str, prompt: str, target: str) -> list[str]:
    """Attack success on the attacker's own generator beside this (private) one, where both were run."""
    path = Path(results["transfer"]["poisons_from"]) / "results.json"
    if not path.exists():
        return ["(the attacker's experiment has no results.json: no runs of its own to compare with)"]
    theirs_summary = json.loads(path.read_text())["summary"]
    judges = list(results["judges"])
    summary = results["summary"]
    lines = [
        f"| method | N | attacker's generator ({'/'.join(judges)}) | this generator ({'/'.join(judges)}) |",
        "|---|---:|---:|---:|",
    ]
    for m in summary:
        for dose in _doses({m: summary[m]}, setting):
            theirs = " / ".join(_cell(theirs_summary, m, setting, dose, j, prompt, target) for j in judges)
            ours = " / ".join(_cell(summary, m, setting, dose, j, prompt, target) for j in judges)
            lines.append(f"| {m} | {dose} | {theirs} | {ours} |")
    return lines


def write_poison_report(exp: Any, results: dict[str, Any]) -> None:
    c = results["settings"]
    source, target = c["source"], c["target"]
    source_prompt = prompt_for(source)
    judges = list(results["judges"])
    final = max(c["finetune_steps"])
    main = _setting(final, c["guidance"][0])
    lines = [
        f"# Poisoning: {source} -> {target}",
        "",
        f"Fine-tuning the base generator on {c['clean_per_class']} clean CIFAR-10 images per class "
        f"({', '.join(c['base']['classes'])}) plus N poisoned '{source}' images captioned as '{source}'. "
        f"{c['samples']} images per prompt and setting, seeds {c['seeds']} (mean ± spread over the seeds "
        f"that finished), judged by {' / '.join(judges)} (test accuracy "
        + " / ".join(
            f"{100 * float(results['judges'][j].get('test_accuracy', float('nan'))):.1f} %" for j in judges
        )
        + "). Settings: `settings.json`; every figure: `results.json`.",
        *_transfer_lines(results.get("transfer")),
        "",
        f"## Goal figures (guidance {c['guidance'][0]:g}, {final} fine-tuning steps)",
        "",
        *goal_table(goal_checks(results, main, source_prompt)),
        "",
        "## Poisons",
        "",
        "| method | latent distance to anchor closed | PSNR (dB) | seconds per image |",
        "|---|---:|---:|---:|",
    ]
    for m, st in results["poisons"].items():
        lines.append(
            f"| {m} | {st['closed_mean']:.3f} ± {st['closed_std']:.3f} | {st['psnr_mean']:.1f} "
            f"(min {st['psnr_min']:.1f}) | {st['seconds_per_image']:.2f} |"
        )
    lines.append("| dirty | (real target images, mislabelled) | – | – |")
    for g in c["guidance"]:
        s = _setting(final, g)
        lines += [
            "",
            f"## Attack success: '{source_prompt}' drawn as {target} (guidance {g:g}, "
            f"{final} fine-tuning steps)",
            "",
            *_share_table(results, s, source_prompt, target),
            "",
            f"Still drawn as {source}:",
            "",
            *_share_table(results, s, source_prompt, source),
        ]
    if results.get("transfer"):
        lines += [
            "",
            f"## Transfer: '{source_prompt}' drawn as {target}, attacker's generator vs this one "
            f"(guidance {c['guidance'][0]:g}, {final} fine-tuning steps)",
            "",
            *_transfer_table(results, main, source_prompt, target),
        ]
    lines += [
        "",
        f"## Fréchet distance of '{source_prompt}' images to real {target} / real {source} images "
        f"(feature network, guidance {c['guidance'][0]:g})",
        "",
        *_frechet_table(results, main, source, target),
    ]
    for judge in judges:
        lines += [
            "",
            f"## Bleed-through (judge {judge}, guidance {c['guidance'][0]:g})",
            "",
            *_bleed_table(results, main, judge),
        ]
    if len(c["finetune_steps"]) > 1:
        lines += ["", "## Fine-tuning length (guidance {:g})".format(c["guidance"][0]), ""]
        for length in c["finetune_steps"]:
            lines += [
                f"After {length} steps:",
                "",
                *_share_table(results, _setting(length, c["guidance"][0]), source_prompt, target),
                "",
            ]
    dose_response_plot(
        results["summary"],
        main,
        judges,
        source_prompt,
        target,
        exp.out / "dose_response.png",
        f"'{source_prompt}' -> {target} (guidance {c['guidance'][0]:g})",
    )
    lines += ["", "![dose response](dose_response.png)", ""]
    grid = sample_grid(exp, main, source_prompt)
    if grid is not None:
        save_png(grid, exp.out / "samples.png")
        lines += [
            f"Images drawn for '{source_prompt}' (seed {c['seeds'][0]}):",
            "",
            "![samples](samples.png)",
            "",
        ]
    atomic_write_text(exp.out / "report.md", "\n".join(lines) + "\n")
