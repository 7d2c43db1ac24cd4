"""``report.md`` and figures of the poisoning experiment, from its ``results.json`` and sample files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sfumato.imageio import atomic_write_text
from sfumato.lab.data.captions import prompt_for
from sfumato.lab.figures import fmt, save_png
from sfumato.lab.poison.figures import dose_response_plot, sample_grid
from sfumato.lab.poison.goals import goal_checks, goal_table


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


class _Context:
    """What every section reads: the settings, the pair, the judges and the main setting's key."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.c = results["settings"]
        self.source, self.target = self.c["source"], self.c["target"]
        self.source_prompt = prompt_for(self.source)
        self.judges = list(results["judges"])
        self.final = max(self.c["finetune_steps"])
        self.guidance = self.c["guidance"][0]
        self.main = _setting(self.final, self.guidance)


def _intro(x: _Context) -> list[str]:
    c, results = x.c, x.results
    accuracy = " / ".join(
        f"{100 * float(results['judges'][j].get('test_accuracy', float('nan'))):.1f} %" for j in x.judges
    )
    return [
        f"# Poisoning: {x.source} -> {x.target}",
        "",
        f"Fine-tuning the base generator on {c['clean_per_class']} clean CIFAR-10 images per class "
        f"({', '.join(c['base']['classes'])}) plus N poisoned '{x.source}' images captioned as '{x.source}'. "
        f"{c['samples']} images per prompt and setting, seeds {c['seeds']} (mean ± spread over the seeds "
        f"that finished), judged by {' / '.join(x.judges)} (test accuracy "
        + accuracy
        + "). Settings: `settings.json`; every figure: `results.json`.",
        *_transfer_lines(results.get("transfer")),
        "",
    ]


def _goals(x: _Context) -> list[str]:
    return [
        f"## Goal figures (guidance {x.guidance:g}, {x.final} fine-tuning steps)",
        "",
        *goal_table(goal_checks(x.results, x.main, x.source_prompt)),
        "",
    ]


def _poisons(x: _Context) -> list[str]:
    lines = [
        "## Poisons",
        "",
        "| method | latent distance to anchor closed | PSNR (dB) | seconds per image |",
        "|---|---:|---:|---:|",
    ]
    for m, st in x.results["poisons"].items():
        lines.append(
            f"| {m} | {st['closed_mean']:.3f} ± {st['closed_std']:.3f} | {st['psnr_mean']:.1f} "
            f"(min {st['psnr_min']:.1f}) | {st['seconds_per_image']:.2f} |"
        )
    lines.append("| dirty | (real target images, mislabelled) | – | – |")
    return lines


def _attack_success(x: _Context) -> list[str]:
    lines: list[str] = []
    for g in x.c["guidance"]:
        s = _setting(x.final, g)
        lines += [
            "",
            f"## Attack success: '{x.source_prompt}' drawn as {x.target} (guidance {g:g}, "
            f"{x.final} fine-tuning steps)",
            "",
            *_share_table(x.results, s, x.source_prompt, x.target),
            "",
            f"Still drawn as {x.source}:",
            "",
            *_share_table(x.results, s, x.source_prompt, x.source),
        ]
    return lines


def _transfer(x: _Context) -> list[str]:
    if not x.results.get("transfer"):
        return []
    return [
        "",
        f"## Transfer: '{x.source_prompt}' drawn as {x.target}, attacker's generator vs this one "
        f"(guidance {x.guidance:g}, {x.final} fine-tuning steps)",
        "",
        *_transfer_table(x.results, x.main, x.source_prompt, x.target),
    ]


def _frechet(x: _Context) -> list[str]:
    return [
        "",
        f"## Fréchet distance of '{x.source_prompt}' images to real {x.target} / real {x.source} images "
        f"(feature network, guidance {x.guidance:g})",
        "",
        *_frechet_table(x.results, x.main, x.source, x.target),
    ]


def _bleed_through(x: _Context) -> list[str]:
    lines: list[str] = []
    for judge in x.judges:
        lines += [
            "",
            f"## Bleed-through (judge {judge}, guidance {x.guidance:g})",
            "",
            *_bleed_table(x.results, x.main, judge),
        ]
    return lines


def _finetuning_length(x: _Context) -> list[str]:
    if len(x.c["finetune_steps"]) == 1:
        return []
    lines = ["", f"## Fine-tuning length (guidance {x.guidance:g})", ""]
    for length in x.c["finetune_steps"]:
        lines += [
            f"After {length} steps:",
            "",
            *_share_table(x.results, _setting(length, x.guidance), x.source_prompt, x.target),
            "",
        ]
    return lines


def _figures(x: _Context, exp: Any) -> list[str]:
    """Draws the dose-response plot and the sample grid into the experiment folder; their Markdown."""
    dose_response_plot(
        x.results["summary"],
        x.main,
        x.judges,
        x.source_prompt,
        x.target,
        exp.out / "dose_response.png",
        f"'{x.source_prompt}' -> {x.target} (guidance {x.guidance:g})",
    )
    lines = ["", "![dose response](dose_response.png)", ""]
    grid, seed = sample_grid(exp, x.main, x.source_prompt)
    if grid is not None:
        save_png(grid, exp.out / "samples.png")
        lines += [
            f"Images drawn for '{x.source_prompt}' (seed {seed}):",
            "",
            "![samples](samples.png)",
            "",
        ]
    return lines


def write_poison_report(exp: Any, results: dict[str, Any]) -> None:
    """``report.md`` (goals first, then tables), ``dose_response.png`` and ``samples.png`` in ``exp.out``."""
    x = _Context(results)
    lines = [
        *_intro(x),
        *_goals(x),
        *_poisons(x),
        *_attack_success(x),
        *_transfer(x),
        *_frechet(x),
        *_bleed_through(x),
        *_finetuning_length(x),
        *_figures(x, exp),
    ]
    atomic_write_text(exp.out / "report.md", "\n".join(lines) + "\n")
