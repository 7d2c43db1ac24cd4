"""``report.md`` and figures of the mimicry experiment, from its ``results.json`` and stored images.

Every figure in the report is read from ``results.json`` (itself the style judge's votes on the stored
``samples-*.pt``), so the report can be rewritten at any time (``--report-only``) without new runs.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from sfumato.imageio import atomic_write_bytes, atomic_write_text
from sfumato.lab.mimicry import parse_condition, prompt_for_artist
from sfumato.lab.poison_report import _label
from sfumato.lab.report import fmt, image_grid, save_png

GRID_IMAGES = 16
SHARES = (0, 25, 50, 75, 100)


def _stat(results: dict[str, Any], artist: str, condition: str, setting: str, what: str) -> str:
    try:
        return fmt(results["summary"][artist][condition][setting][what])
    except KeyError:
        return "–"


def _psnr(results: dict[str, Any], artist: str, condition: str) -> str:
    p = results["protection"].get(artist, {}).get(condition, {})
    return "–" if "psnr_mean" not in p else f"{p['psnr_mean']:.1f}"


def _share_condition(share: int, intensity: str) -> str:
    return "clean" if share == 0 else f"cloak-{intensity}" if share == 100 else f"share{share}-{intensity}"


def _table(results: dict[str, Any], setting: str, what: str) -> list[str]:
    conds = [c for c in results["settings"]["conditions"]]
    lines = ["| artist | " + " | ".join(conds) + " |", "|---|" + "---:|" * len(conds)]
    for a in results["summary"]:
        lines.append(f"| {a} | " + " | ".join(_stat(results, a, c, setting, what) for c in conds) + " |")
    return lines


def _figure(fig: Any, path: Any) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def share_plot(results: dict[str, Any], setting: str, intensity: str, path: Any) -> bool:
    """Protection success against the share of works cloaked, one line per artist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drawn = False
    for artist, per in results["summary"].items():
        xs, ys, es = [], [], []
        for share in SHARES:
            entry = per.get(_share_condition(share, intensity), {}).get(setting)
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
    _figure(fig, path)
    return True


def conditions_plot(results: dict[str, Any], setting: str, path: Any) -> None:
    """Mimicry success per condition, grouped by artist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    _figure(fig, path)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    _figure(fig, path)
    return True, float(np.corrcoef(xs, ys)[0, 1]) if xs.std() > 0 and ys.std() > 0 else None


def _stack(rows: list[Image.Image]) -> Image.Image:
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    return canvas


def sample_grid(exp: Any, setting: str, conditions: list[str]) -> Image.Image | None:
    """Per artist, ``GRID_IMAGES`` images drawn for its prompt under each of ``conditions`` (first seed)."""
    rows = []
    seed = exp.settings.seeds[0]
    for artist in exp.settings.artists:
        prompt = prompt_for_artist(artist)
        for c in conditions:
            path = exp.run_dir(artist, c, seed) / f"samples-{setting}.pt"
            if path.exists():
                images = torch.load(path, weights_only=True)[prompt][:GRID_IMAGES]
                rows.append(_label(image_grid(images, columns=images.shape[0]), f"{artist}, {c}"))
    return _stack(rows) if rows else None


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
            rows.append(_label(image_grid(shown, columns=shown.shape[0]), f"{artist}, {label}"))
    return _stack(rows) if rows else None


def write_mimicry_report(exp: Any, results: dict[str, Any]) -> None:
    s = results["settings"]
    judge = results["judge"]
    setting = exp.main_setting()
    guidance = s["guidance"][0]
    conds = list(s["conditions"])
    acc = judge.get("test_accuracy")
    lines = [
        "# Style mimicry: does `cloak` stop a generator from learning an artist's style?",
        "",
        f"The base generator is fine-tuned on {s['views']} views ({s['base']['size']} px) of each artist's "
        f"mimicry works (at most {s['works'] or 'all'} works, rendered at {s['work_size']} px), captioned "
        f'"a painting by <artist>", for {max(s["finetune_steps"])} steps, then draws {s["samples"]} images '
        f"per seed (seeds {s['seeds']}, guidance {guidance:g}) for that prompt. The style judge "
        f"({len(judge['classes'])} classes: the artists, photos and the cloak's target styles; held-out "
        f"accuracy {'–' if acc is None else f'{100 * float(acc):.1f} %'} on works it never trained on, "
        "none of them mimicry works) says whose style each image is. Mimicry success: the share judged as "
        "the artist; protection success: one minus that. Fixed cloak target: "
        f"`{s['style']}`. Figures are mean ± spread over seeds; settings: `settings.json`; every figure: "
        "`results.json`.",
        "",
    ]
    if s.get("countermeasure"):
        lines += [
            f"**Countermeasure:** every work, cloaked or not, went through `{s['countermeasure']}` before "
            "it was cut into training views (a scraper's purification), so these figures say how much "
            "protection survives it.",
            "",
        ]
    goal = results["goal"]["artists"]
    if goal:
        lines += [
            "## Goal: at `default` intensity, all works cloaked, protection >= 90 % at PSNR >= 35 dB",
            "",
            "| artist | protection success | PSNR (dB) | met | mimicry: clean -> cloaked | share removed |",
            "|---|---:|---:|---|---:|---:|",
        ]
        for a, g in goal.items():
            psnr = "–" if g["psnr_mean"] is None else f"{g['psnr_mean']:.1f}"
            clean = g.get("clean_mimicry")
            shift = "–" if clean is None else f"{100 * clean:.0f} -> {100 * (1 - g['protection']):.0f} %"
            removed = "–" if g.get("mimicry_removed") is None else f"{100 * g['mimicry_removed']:.0f} %"
            lines.append(
                f"| {a} | {100 * g['protection']:.0f} % | {psnr} | {'yes' if g['met'] else 'no'} | {shift} | "
                f"{removed} |"
            )
        lines += [
            "",
            "Protection success counts every image not judged as the artist, so it is high wherever the "
            "mimic itself is weak; *share removed* (1 - cloaked mimicry / clean mimicry) is what the cloak "
            "took away.",
        ]
        lines.append("")
    lines += [
        f"## Mimicry success (share judged as the artist, {setting})",
        "",
        *_table(results, setting, "mimicry"),
        "",
        "## Share judged as the cloak's target style (clean: the fixed style, by chance)",
        "",
        *_table(results, setting, "target"),
        "",
        "## Share judged as a plain photo (no style learned)",
        "",
        *_table(results, setting, "photo"),
        "",
    ]
    intensities = sorted(
        {parse_condition(c).intensity for c in conds if parse_condition(c).kind == "share"},
        key=["low", "default", "high"].index,
    )
    for intensity in intensities:
        head = [_share_condition(p, intensity) for p in SHARES]
        lines += [
            f"## Protection success against the share of works cloaked ({intensity})",
            "",
            "| artist | " + " | ".join(f"{p} %" for p in SHARES) + " |",
            "|---|" + "---:|" * len(SHARES),
        ]
        for a in results["summary"]:
            lines.append(
                f"| {a} | " + " | ".join(_stat(results, a, c, setting, "protection") for c in head) + " |"
            )
        lines.append("")
        if share_plot(results, setting, intensity, exp.out / f"share_cloaked-{intensity}.png"):
            lines += [f"![protection against share cloaked](share_cloaked-{intensity}.png)", ""]
    pairs = [(f"cloak-{i}", f"linf-{i}") for i in ("low", "default", "high") if f"linf-{i}" in conds]
    if pairs:
        lines += [
            "## Visibility-aware budget vs plain L-inf at equal PSNR",
            "",
            "| artist | condition | PSNR (dB) | L-inf bound (/255) | protection | target share |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for a in results["summary"]:
            for pair in pairs:
                for c in pair:
                    p = results["protection"].get(a, {}).get(c, {})
                    eps = f"{p['eps_255_mean']:.2f}" if "eps_255_mean" in p else "–"
                    prot, target = (_stat(results, a, c, setting, w) for w in ("protection", "target"))
                    lines.append(f"| {a} | {c} | {_psnr(results, a, c)} | {eps} | {prot} | {target} |")
        lines.append("")
    autos = [(f"cloak-{i}", f"auto-{i}") for i in ("low", "default", "high") if f"auto-{i}" in conds]
    if autos:
        lines += [
            f"## `--style auto` vs the fixed target `{s['style']}`",
            "",
            "| artist | condition | protection | target share | styles chosen |",
            "|---|---|---:|---:|---|",
        ]
        for a in results["summary"]:
            for pair in autos:
                for c in pair:
                    styles = results["protection"].get(a, {}).get(c, {}).get("styles", {})
                    lines.append(
                        f"| {a} | {c} | {_stat(results, a, c, setting, 'protection')} | "
                        f"{_stat(results, a, c, setting, 'target')} | "
                        + ", ".join(f"{k} {v}" for k, v in styles.items())
                        + " |"
                    )
        lines.append("")
    lines += [
        "## The cloaked works",
        "",
        "PSNR over the cloaked works; latent movement: fraction of the way to the target's latents "
        "(attacked encoder) and on other encoders (transfer); moved, training views: the same on the "
        "generator's encoder for 64 px views cut alike from the clean work, its cloaked copy and the "
        "rendered target (how much of the shift survives the crop-and-resize); views judged: the "
        "judge's votes on the training views themselves (clean or cloaked), i.e. whether the change "
        "shows to it; decoded: its votes on the views' latents decoded, i.e. what a generator that learnt "
        "those latents perfectly would draw.",
        "",
        "| artist | condition | cloaked | PSNR mean (min) | moved | moved, training views | s/work | "
        "views judged artist / target | decoded views judged artist / target |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for a, per in results["protection"].items():
        for c, p in per.items():
            psnr = f"{p['psnr_mean']:.1f} ({p['psnr_min']:.1f})" if "psnr_mean" in p else "–"
            moved = ", ".join(f"{e} {v:.2f}" for e, v in p.get("moved_mean", {}).items()) or "–"
            secs = f"{p['seconds_per_work']:.1f}" if "seconds_per_work" in p else "–"
            judged, decoded = (
                "–" if v is None else f"{100 * v['artist']:.0f} % / {100 * v['target']:.0f} %"
                for v in (p.get("views_judged"), p.get("decoded_judged"))
            )
            vm = "–" if "views_moved" not in p else f"{p['views_moved']:.2f}"
            lines.append(
                f"| {a} | {c} | {p['cloaked']}/{p['works']} | {psnr} | {moved} | {vm} | {secs} | {judged} "
                f"| {decoded} |"
            )
    lines.append("")
    if len(s["finetune_steps"]) > 1:
        lines += [f"## Fine-tuning length (guidance {guidance:g}): mimicry success", ""]
        for length in s["finetune_steps"]:
            lines += [
                f"After {length} steps:",
                "",
                *_table(results, f"L{length}-w{guidance:g}", "mimicry"),
                "",
            ]
    conditions_plot(results, setting, exp.out / "conditions.png")
    lines += ["![mimicry success per condition](conditions.png)", ""]
    drawn, r = decoded_plot(results, setting, exp.out / "decoded.png")
    if drawn:
        lines += [
            "What a perfect mimic would draw (the judge on the training views' latents, decoded) against "
            "what the fine-tuned generator drew, per artist and condition"
            + ("" if r is None else f" (Pearson r = {r:.2f})")
            + ". A cloak can only work by moving the left axis.",
            "",
            "![decoded views vs mimicry](decoded.png)",
            "",
        ]
    shown = [c for c in ("clean", "cloak-default", "views-default", "auto-default") if c in conds]
    grid = sample_grid(exp, setting, shown)
    if grid is not None:
        save_png(grid, exp.out / "samples.png")
        lines += [
            f"Images drawn for each artist's prompt (seed {s['seeds'][0]}):",
            "",
            "![samples](samples.png)",
            "",
        ]
    for c in ("cloak-default", "views-default"):
        grid = works_grid(exp, c) if c in conds else None
        if grid is not None:
            save_png(grid, exp.out / f"works-{c}.png")
            lines += [f"Training views, clean and cloaked (`{c}`):", "", f"![works](works-{c}.png)", ""]
    lines += ["## The artists", ""]
    for a, info in results["artists"].items():
        n = len(info["works"])
        lines.append(f'- **{a}** ("{info["prompt"]}", {n} works): {info["look"]} {info["why_distinct"]}')
    atomic_write_text(exp.out / "report.md", "\n".join(lines) + "\n")
