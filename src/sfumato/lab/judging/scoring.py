"""Scoring a poisoning experiment's runs: judges' votes and Fréchet distances, then mean ± spread.

:func:`score_run` judges one run's generated images (cached as ``score.json`` beside them);
:func:`summarise` turns all runs into the ``results.json`` schema documented in ``docs/lab.md``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.judging.classifiers import Judge
from sfumato.lab.judging.evaluation import frechet_to_classes, shares

SCORE = "score.json"


def judges_key(judges: Sequence[Judge], features: Judge | None) -> str:
    parts = [f"{j.name}:{j.info.get('test_accuracy', '')}" for j in judges]
    if features is not None:
        parts.append(f"features={features.name}:{features.info.get('test_accuracy', '')}")
    return ",".join(parts)


def _samples_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("samples-L*-w*.pt"))


def _parse(name: str) -> tuple[int, float]:
    stem = name[len("samples-L") : -len(".pt")]
    length, guidance = stem.split("-w")
    return int(length), float(guidance)


def score_run(
    folder: Path,
    judges: Sequence[Judge],
    features: Judge | None,
    references: Mapping[str, torch.Tensor],
    source_prompt: str,
) -> dict[str, Any]:
    """``{"L<len>-w<g>": {"shares": {judge: {prompt: {class: share}}}, "frechet": {class: d}}}``."""
    path = folder / SCORE
    key = judges_key(judges, features)
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("judges") == key:
            return cached["scores"]
    scores: dict[str, Any] = {}
    for f in _samples_files(folder):
        length, g = _parse(f.name)
        images: dict[str, torch.Tensor] = torch.load(f, weights_only=True)
        entry: dict[str, Any] = {
            "shares": {j.name: {p: shares(j, x) for p, x in images.items()} for j in judges}
        }
        if features is not None and source_prompt in images:
            entry["frechet"] = frechet_to_classes(features, images[source_prompt], references)
        scores[f"L{length}-w{g:g}"] = entry
    atomic_write_text(path, json.dumps({"judges": key, "scores": scores}, indent=1) + "\n")
    return scores


def mean_std(values: Sequence[float]) -> dict[str, float]:
    vals = [float(v) for v in values]
    return {
        "mean": statistics.fmean(vals) if vals else math.nan,
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "n": len(vals),
    }


def summarise(
    runs: Sequence[dict[str, Any]], classes_of_prompt: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Aggregate over seeds: ``summary[method][setting][dose]["judges"][judge][prompt][class] = stat``.

    ``runs`` items: ``{"method", "dose", "seed", "scores"}`` (from :func:`score_run`); a setting is
    ``L<fine-tune steps>-w<guidance>``; a stat is ``{"mean", "std", "n"}`` over seeds of the share of the
    prompt's images called ``class``, for the classes named per prompt in ``classes_of_prompt``. The
    N = 0 runs ("clean") are listed under every method. ``frechet[class]`` likewise, for the source prompt.
    """
    methods = sorted({r["method"] for r in runs if r["method"] != "clean"}) or ["clean"]
    table: dict[str, Any] = {}
    for method in methods:
        rows = [r for r in runs if r["method"] in (method, "clean")]
        settings = sorted({s for r in rows for s in r["scores"]})
        per_setting: dict[str, Any] = {}
        for setting in settings:
            doses = sorted({r["dose"] for r in rows if setting in r["scores"]})
            per_dose: dict[str, Any] = {}
            for dose in doses:
                group = [r["scores"][setting] for r in rows if r["dose"] == dose and setting in r["scores"]]
                judged = {
                    judge: {
                        prompt: {c: mean_std([g["shares"][judge][prompt][c] for g in group]) for c in cls}
                        for prompt, cls in classes_of_prompt.items()
                        if prompt in group[0]["shares"][judge]
                    }
                    for judge in group[0]["shares"]
                }
                entry: dict[str, Any] = {"judges": judged, "seeds": len(group)}
                if all("frechet" in g for g in group):
                    entry["frechet"] = {
                        c: mean_std([g["frechet"][c] for g in group]) for c in group[0]["frechet"]
                    }
                per_dose[str(dose)] = entry
            per_setting[setting] = per_dose
        table[method] = per_setting
    return table
