"""The robustness experiment: do poisons still work when the scraper compresses or purifies first?

A scraper that suspects protection can pass everything it collects through JPEG, resizing, an autoencoder
round trip or an IMPRESS-style purification before training (see ``../shared/docs/anchors.md``: published
work broke earlier protections this way). For one (source -> target) pair and one dose (N = 100 by
default) this experiment measures, for every countermeasure and for standard and robust poisons:

- **attack success** in the lab: the poisoning experiment (:mod:`sfumato.lab.poisoning`) rerun with the
  countermeasure applied to every fine-tuning image, clean and poisoned alike, one experiment folder per
  countermeasure, all sharing the main experiment's poison pool (the same poisons, crafted once); the
  "none" column is the main experiment itself;
- **survival of the latent shift**: the share of the distance to the anchor that the poisons still close
  after the countermeasure (on the attacked encoder);
- **detection**: how well a scraper could filter poisons out on the autoencoder's reconstruction error,
  as the area under the ROC curve separating the poisons from the clean source images they were made from
  (0.5: indistinguishable);
- **cloaks** (when given): mimicry success per artist and condition from the mimicry experiments run with
  the same countermeasures (``sfumato lab mimicry --countermeasure CM``), gathered beside the poisons so
  both halves of the protection read in one table.

Outputs: ``results.json`` (schema ``sfumato.lab.robustness/1``, in ``docs/lab.md``), ``report.md`` and
``robustness.png`` in the experiment folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.poisoning import Experiment, PoisonConfig
from sfumato.lab.report import fmt

SCHEMA = "sfumato.lab.robustness/1"
DEFAULT_COUNTERMEASURES = ("jpeg75", "resize0.5", "ae_roundtrip", "impress")
NONE = "none"


@dataclass
class RobustnessConfig:
    """What is measured; the poisoning settings themselves come from the main experiment's config."""

    poison: PoisonConfig
    dose: int = 100
    countermeasures: tuple[str, ...] = DEFAULT_COUNTERMEASURES
    methods: tuple[str, ...] = ("shade", "shade-robust")

    def experiment_config(self, countermeasure: str) -> PoisonConfig:
        """The poisoning settings of one countermeasure's runs (the main ones for ``none``).

        Countermeasure runs are evaluated at the main experiment's longest fine-tuning and default
        guidance only: the setting the report compares, at two thirds of a full run's cost.
        """
        if countermeasure == NONE:
            return replace(self.poison, doses=(0, self.dose), methods=self.methods)
        return replace(
            self.poison,
            doses=(0, self.dose),
            methods=self.methods,
            guidance=self.poison.guidance[:1],
            finetune_steps=self.poison.finetune_steps[-1:],
            countermeasure=countermeasure,
        )


def cloak_protection(mimicry: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mimicry success per countermeasure, artist and condition, from mimicry ``results.json`` payloads.

    Each ``sfumato lab mimicry --countermeasure CM`` run is its own experiment with its own seeds; this
    takes each one's main setting (longest fine-tuning, first guidance scale) so that the cloak half of
    the robustness question sits beside the poison half without rerunning anything.
    """
    out: dict[str, Any] = {}
    for cm, results in mimicry.items():
        s = results["settings"]
        setting = f"L{max(s['finetune_steps'])}-w{s['guidance'][0]:g}"
        artists = {
            artist: {
                condition: {"mimicry": rows[setting]["mimicry"], "target": rows[setting]["target"]}
                for condition, rows in conditions.items()
                if setting in rows
            }
            for artist, conditions in results["summary"].items()
        }
        out[cm] = {"setting": setting, "seeds": list(s["seeds"]), "artists": artists}
    return out


def auc(negatives: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the ROC curve of a statistic that should be larger for ``positives`` (ties count 1/2)."""
    neg, pos = negatives.flatten().double(), positives.flatten().double()
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


class RobustnessExperiment:
    """Countermeasure experiments beside the main poisoning experiment ``main_out``; resumable."""

    def __init__(
        self,
        config: RobustnessConfig,
        out: str | Path,
        main_out: str | Path,
        base_checkpoint: str | Path,
        zip_path: str | Path,
        *,
        mimicry: Mapping[str, str | Path] | None = None,
        bars: bool = False,
    ) -> None:
        """``mimicry``: countermeasure (or ``none``) -> a mimicry experiment's ``results.json``, for the
        cloak table; read when the report is written, so runs finished later are picked up."""
        self.config = config
        self.mimicry = dict(mimicry or {})
        self.out = Path(out)
        self.main_out = Path(main_out)
        self.base_checkpoint = base_checkpoint
        self.zip_path = zip_path
        self.bars = bars
        from sfumato.countermeasures import check_name

        for cm in config.countermeasures:
            check_name(cm)

    def experiment(self, countermeasure: str) -> Experiment:
        folder = self.main_out if countermeasure == NONE else self.out / countermeasure
        return Experiment(
            self.config.experiment_config(countermeasure),
            folder,
            self.base_checkpoint,
            self.zip_path,
            pool=self.main_out / "poisons",
            bars=self.bars,
        )

    def columns(self) -> list[str]:
        return [NONE, *self.config.countermeasures]

    def run_all(self) -> None:
        for cm in self.columns():
            print(f"== countermeasure: {cm}")
            self.experiment(cm).run_all()

    # -- figures without training -------------------------------------------------------------------

    def shift_and_detection(self) -> dict[str, Any]:
        """Latent-shift survival per countermeasure and reconstruction-error AUC, per method."""
        from sfumato.countermeasures import COUNTERMEASURES, reconstruction_error
        from sfumato.encoders import load_encoder
        from sfumato.lab.craft import encode_with
        from sfumato.lab.poisoning import ANCHOR_SET, POISON_OFFSET

        main = self.experiment(NONE)
        c = main.config
        n = self.config.dose
        encoder = load_encoder(c.poison_encoders[0])
        sources = main._cifar(c.source, POISON_OFFSET, n)
        src_u8 = (sources * 255).round().to(torch.uint8)

        def encode(x: torch.Tensor) -> torch.Tensor:
            return encode_with([encoder], x)[0].flatten(1)

        out: dict[str, Any] = {}
        for method in self.config.methods:
            poisons = main.poisons(method, n)
            anchors = torch.load(main.pool / method / "anchors.pt", weights_only=True)[:n]
            targets = encode(main.anchors(ANCHOR_SET[method]).float().div(255)[anchors])
            poisons_f = poisons.float() / 255
            entry: dict[str, Any] = {"survival": {}}
            for cm in self.columns():
                if cm == NONE:
                    clean_x, poison_x = sources, poisons_f
                else:
                    clean_x = main.scraped_with(cm, src_u8, "sources").float() / 255
                    poison_x = main.scraped_with(cm, poisons, method).float() / 255
                before = (encode(clean_x) - targets).norm(dim=1)
                after = (encode(poison_x) - targets).norm(dim=1)
                closed = 1 - after / before.clamp_min(1e-12)
                entry["survival"][cm] = {"closed": float(closed.mean())}
            base = entry["survival"][NONE]["closed"]
            for v in entry["survival"].values():
                v["kept"] = v["closed"] / base if base > 0 else float("nan")
            err_clean, err_poison = reconstruction_error(sources), reconstruction_error(poisons_f)
            entry["detection_auc"] = auc(err_clean, err_poison)
            mse = (poisons_f - sources).square().flatten(1).mean(1).clamp_min(1e-12)
            entry["psnr_mean"] = float((10 * torch.log10(1 / mse)).mean())
            out[method] = entry
        out["countermeasures"] = {cm: COUNTERMEASURES[cm].description for cm in self.config.countermeasures}
        return out

    # -- results --------------------------------------------------------------------------------------

    def finish(self, judges: Sequence[Any], features: Any | None) -> Path:
        """Score every countermeasure's runs and write ``results.json``, ``report.md`` and the plot."""
        c = self.config
        setting = f"L{c.poison.finetune_steps[-1]}-w{c.poison.guidance[0]:g}"
        source_prompt = next(p for p, r in c.poison.prompts().items() if r == "source")
        attack: dict[str, Any] = {}
        for cm in self.columns():
            exp = self.experiment(cm)
            results = json.loads(exp.finish(judges, features).read_text())
            summary = results["summary"]
            cell: dict[str, Any] = {}
            for method in [*c.methods, "clean"]:
                rows = summary.get(method if method != "clean" else c.methods[0], {}).get(setting, {})
                row = rows.get(str(0 if method == "clean" else c.dose))
                if row is None:
                    continue
                cell[method] = {
                    j: {
                        "target": row["judges"][j][source_prompt][c.poison.target],
                        "source": row["judges"][j][source_prompt][c.poison.source],
                    }
                    for j in row["judges"]
                }
            attack[cm] = cell
        results = {
            "schema": SCHEMA,
            "settings": {
                "dose": c.dose,
                "countermeasures": list(c.countermeasures),
                "methods": list(c.methods),
                "setting": setting,
                "poison": c.poison.to_dict(),
            },
            "judges": {j.name: j.info for j in judges},
            "attack": attack,
            **self.shift_and_detection(),
        }
        found = {cm: Path(p) for cm, p in self.mimicry.items() if Path(p).exists()}
        if found:
            results["cloak"] = cloak_protection({cm: json.loads(p.read_text()) for cm, p in found.items()})
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "results.json"
        atomic_write_text(path, json.dumps(results, indent=1) + "\n")
        write_robustness_report(results, self.out, [j.name for j in judges])
        return path


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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sfumato.imageio import atomic_write_bytes

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
