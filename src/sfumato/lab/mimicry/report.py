"""``report.md`` and figures of the mimicry experiment, from its ``results.json`` and stored images.

Every figure in the report is read from ``results.json`` (itself the style judge's votes on the stored
``samples-*.pt``), so the report can be rewritten at any time (``--report-only``) without new runs."""

from __future__ import annotations

from typing import Any

from sfumato.imageio import atomic_write_text
from sfumato.lab.figures import fmt, save_png
from sfumato.lab.mimicry.figures import (
    SHARES,
    conditions_plot,
    decoded_plot,
    sample_grid,
    share_condition,
    share_plot,
    works_grid,
)
from sfumato.lab.mimicry.settings import GENERATOR_OBJECTIVES, mimicry_to_remove, parse_condition


def _stat(results: dict[str, Any], artist: str, condition: str, setting: str, what: str) -> str:
    try:
        return fmt(results["summary"][artist][condition][setting][what])
    except KeyError:
        return "–"


def _psnr(results: dict[str, Any], artist: str, condition: str) -> str:
    p = results["protection"].get(artist, {}).get(condition, {})
    return "–" if "psnr_mean" not in p else f"{p['psnr_mean']:.1f}"


def _table(results: dict[str, Any], setting: str, what: str) -> list[str]:
    conds = [c for c in results["settings"]["conditions"]]
    lines = ["| artist | " + " | ".join(conds) + " |", "|---|" + "---:|" * len(conds)]
    for a in results["summary"]:
        lines.append(f"| {a} | " + " | ".join(_stat(results, a, c, setting, what) for c in conds) + " |")
    return lines


class _Context:
    """What every section reads: the results, the settings, the main setting's key, the conditions."""

    def __init__(self, exp: Any, results: dict[str, Any]) -> None:
        self.results = results
        self.s = results["settings"]
        self.setting = exp.main_setting()
        self.guidance = self.s["guidance"][0]
        self.conds = list(self.s["conditions"])


def _intro(x: _Context) -> list[str]:
    s, judge = x.s, x.results["judge"]
    acc = judge.get("test_accuracy")
    lines = [
        "# Style mimicry: does `cloak` stop a generator from learning an artist's style?",
        "",
        f"The base generator is fine-tuned on {s['views']} views ({s['base']['size']} px) of each artist's "
        f"mimicry works (at most {s['works'] or 'all'} works, rendered at {s['work_size']} px), captioned "
        f'"a painting by <artist>", for {max(s["finetune_steps"])} steps, then draws {s["samples"]} images '
        f"per seed (seeds {s['seeds']}, guidance {x.guidance:g}) for that prompt. The style judge "
        f"({len(judge['classes'])} classes: the artists, photos and the cloak's target styles; held-out "
        f"accuracy {'–' if acc is None else f'{100 * float(acc):.1f} %'} on works it never trained on, "
        "none of them mimicry works) says whose style each image is. Mimicry success: the share judged as "
        "the artist; protection success: one minus that. Fixed cloak target: "
        f"`{s['style']}`. Figures are mean ± spread over seeds; settings: `settings.json`; every figure: "
        "`results.json`.",
        "",
    ]
    if any(parse_condition(c).kind in GENERATOR_OBJECTIVES for c in x.conds):
        lines += [f"**The protector's generator** (generator-aware conditions): {_protector(s)}.", ""]
    if s.get("countermeasure"):
        lines += [
            f"**Countermeasure:** every work, cloaked or not, went through `{s['countermeasure']}` before "
            "it was cut into training views (a scraper's purification), so these figures say how much "
            "protection survives it.",
            "",
        ]
    return lines


def _protector(s: dict[str, Any]) -> str:
    """Whose generator the generator-aware cloaks were made against, in the field's words."""
    victim, surrogate = s["base"], s.get("surrogate")
    if surrogate is None:
        return "the victim's own base generator (white-box)"
    if surrogate.get("encoder") != victim.get("encoder"):
        return (
            f"a base generator in another latent space (`{surrogate.get('encoder')}`; the victim's is "
            f"`{victim.get('encoder')}`): black-box"
        )
    width, seed = surrogate["generator"]["width"], surrogate["training"]["seed"]
    return (
        f"a base generator trained apart (width {width}, seed {seed}; the victim: width "
        f"{victim['generator']['width']}, seed {victim['training']['seed']}), never the victim (grey-box)"
    )


def _removed(x: _Context) -> list[str]:
    """The verdict's table: per artist and protecting condition, the share of the clean mimicry taken
    away and the PSNR it cost (the goal: >= 90 % at >= 35 dB)."""
    conds = [c for c in x.conds if parse_condition(c).kind not in ("clean", "share")]
    if "clean" not in x.conds or not conds:
        return []
    lines = [
        "## Share of the mimicry removed (1 - protected / clean mimicry), with the mean PSNR",
        "",
        "| artist | " + " | ".join(conds) + " |",
        "|---|" + "---:|" * len(conds),
    ]
    for a, per in x.results["summary"].items():
        clean = per.get("clean", {}).get(x.setting, {}).get("mimicry", {}).get("mean")
        cells = []
        for c in conds:
            got = per.get(c, {}).get(x.setting, {}).get("mimicry", {}).get("mean")
            if got is None or clean is None:
                cells.append("–")
            elif not mimicry_to_remove(clean):
                cells.append("no mimicry")
            else:
                cells.append(f"{100 * (1 - got / clean):.0f} % ({_psnr(x.results, a, c)} dB)")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _goal(x: _Context) -> list[str]:
    goal = x.results["goal"]["artists"]
    if not goal:
        return []
    lines = [
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
        no_mimicry = clean is not None and not mimicry_to_remove(clean)
        lines.append(
            f"| {a} | {100 * g['protection']:.0f} % | {psnr} | "
            f"{'– (no mimicry to remove)' if no_mimicry else 'yes' if g['met'] else 'no'} | {shift} | "
            f"{removed} |"
        )
    return [
        *lines,
        "",
        "Protection success counts every image not judged as the artist, so it is high wherever the "
        "mimic itself is weak; *share removed* (1 - cloaked mimicry / clean mimicry) is what the cloak "
        "took away.",
        "",
    ]


def _shares_judged(x: _Context) -> list[str]:
    return [
        f"## Mimicry success (share judged as the artist, {x.setting})",
        "",
        *_table(x.results, x.setting, "mimicry"),
        "",
        "## Share judged as the cloak's target style (clean: the fixed style, by chance)",
        "",
        *_table(x.results, x.setting, "target"),
        "",
        "## Share judged as a plain photo (no style learned)",
        "",
        *_table(x.results, x.setting, "photo"),
        "",
    ]


def _share_cloaked(x: _Context, exp: Any) -> list[str]:
    """Protection against the share of works cloaked, a table and a plot per intensity."""
    results, setting = x.results, x.setting
    intensities = sorted(
        {parse_condition(c).intensity for c in x.conds if parse_condition(c).kind == "share"},
        key=["low", "default", "high"].index,
    )
    lines: list[str] = []
    for intensity in intensities:
        head = [share_condition(p, intensity) for p in SHARES]
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
    return lines


def _linf_budget(x: _Context) -> list[str]:
    results, setting = x.results, x.setting
    pairs = [(f"cloak-{i}", f"linf-{i}") for i in ("low", "default", "high") if f"linf-{i}" in x.conds]
    if not pairs:
        return []
    lines = [
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
    return [*lines, ""]


def _auto_style(x: _Context) -> list[str]:
    results, setting = x.results, x.setting
    autos = [(f"cloak-{i}", f"auto-{i}") for i in ("low", "default", "high") if f"auto-{i}" in x.conds]
    if not autos:
        return []
    lines = [
        f"## `--style auto` vs the fixed target `{x.s['style']}`",
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
    return [*lines, ""]


def _cloaked_works(x: _Context) -> list[str]:
    lines = [
        "## The cloaked works",
        "",
        "PSNR and SSIM over the cloaked works (L-inf: the mean bound where the budget is a plain one); "
        "latent movement: fraction of the way to the target's latents "
        "(attacked encoder) and on other encoders (transfer); moved, training views: the same on the "
        "generator's encoder for 64 px views cut alike from the clean work, its cloaked copy and the "
        "rendered target (how much of the shift survives the crop-and-resize); views judged: the "
        "judge's votes on the training views themselves (clean or cloaked), i.e. whether the change "
        "shows to it; decoded: its votes on the views' latents decoded, i.e. what a generator that learnt "
        "those latents perfectly would draw.",
        "",
        "| artist | condition | cloaked | PSNR mean (min) | SSIM | L-inf (/255) | moved | "
        "moved, training views | s/work | views judged artist / target | "
        "decoded views judged artist / target |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for a, per in x.results["protection"].items():
        for c, p in per.items():
            psnr = f"{p['psnr_mean']:.1f} ({p['psnr_min']:.1f})" if "psnr_mean" in p else "–"
            ssim = f"{p['ssim_mean']:.3f}" if "ssim_mean" in p else "–"
            bound = f"{p['eps_255_mean']:.1f}" if "eps_255_mean" in p else "–"
            moved = ", ".join(f"{e} {v:.2f}" for e, v in p.get("moved_mean", {}).items()) or "–"
            secs = f"{p['seconds_per_work']:.1f}" if "seconds_per_work" in p else "–"
            judged, decoded = (
                "–" if v is None else f"{100 * v['artist']:.0f} % / {100 * v['target']:.0f} %"
                for v in (p.get("views_judged"), p.get("decoded_judged"))
            )
            vm = "–" if "views_moved" not in p else f"{p['views_moved']:.2f}"
            lines.append(
                f"| {a} | {c} | {p['cloaked']}/{p['works']} | {psnr} | {ssim} | {bound} | {moved} | {vm} "
                f"| {secs} | {judged} "
                f"| {decoded} |"
            )
    return [*lines, ""]


def _finetuning_length(x: _Context) -> list[str]:
    if len(x.s["finetune_steps"]) == 1:
        return []
    lines = [f"## Fine-tuning length (guidance {x.guidance:g}): mimicry success", ""]
    for length in x.s["finetune_steps"]:
        lines += [
            f"After {length} steps:",
            "",
            *_table(x.results, f"L{length}-w{x.guidance:g}", "mimicry"),
            "",
        ]
    return lines


def _figures(x: _Context, exp: Any) -> list[str]:
    """Draws the per-condition plot, the decoded-views plot and the grids into ``exp.out``; their Markdown."""
    results, setting = x.results, x.setting
    conditions_plot(results, setting, exp.out / "conditions.png")
    lines = ["![mimicry success per condition](conditions.png)", ""]
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
    shown = [c for c in ("clean", "cloak-default", "views-default", "auto-default") if c in x.conds]
    grid, seed = sample_grid(exp, setting, shown)
    if grid is not None:
        save_png(grid, exp.out / "samples.png")
        lines += [
            f"Images drawn for each artist's prompt (seed {seed}):",
            "",
            "![samples](samples.png)",
            "",
        ]
    for c in ("cloak-default", "views-default"):
        grid = works_grid(exp, c) if c in x.conds else None
        if grid is not None:
            save_png(grid, exp.out / f"works-{c}.png")
            lines += [f"Training views, clean and cloaked (`{c}`):", "", f"![works](works-{c}.png)", ""]
    return lines


def _artists(x: _Context) -> list[str]:
    lines = ["## The artists", ""]
    for a, info in x.results["artists"].items():
        n = len(info["works"])
        lines.append(f'- **{a}** ("{info["prompt"]}", {n} works): {info["look"]} {info["why_distinct"]}')
    return lines


def write_mimicry_report(exp: Any, results: dict[str, Any]) -> None:
    """``report.md`` (goal first, then tables, figures and the artists) and its figures in ``exp.out``."""
    x = _Context(exp, results)
    lines = [
        *_intro(x),
        *_goal(x),
        *_removed(x),
        *_shares_judged(x),
        *_share_cloaked(x, exp),
        *_linf_budget(x),
        *_auto_style(x),
        *_cloaked_works(x),
        *_finetuning_length(x),
        *_figures(x, exp),
        *_artists(x),
    ]
    atomic_write_text(exp.out / "report.md", "\n".join(lines) + "\n")
