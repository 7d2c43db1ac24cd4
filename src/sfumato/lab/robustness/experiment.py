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
``robustness.png`` in the experiment folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.poison.experiment import Experiment
from sfumato.lab.robustness.report import write_robustness_report
from sfumato.lab.robustness.settings import NONE, SCHEMA, RobustnessConfig


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
        from sfumato.lab.poison.craft import encode_with
        from sfumato.lab.poison.settings import ANCHOR_SET, POISON_OFFSET

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
