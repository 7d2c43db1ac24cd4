"""Runs carried over from earlier results: one experiment finished across sessions or machines.

A run's generated images are hundreds of MB and a workdir does not outlive its machine, but what the
tables come from is small: each run's scores (the judges' shares per setting). ``results.json`` keeps them
per run, so a later report (``--merge RESULTS``) combines the runs of this workdir with the runs another
workdir made, for example seeds 1-2 made today beside seed 0 made and committed last week.

Only runs of the same experiment are combined: every setting must agree except the growable ones
(seeds, doses, methods, artists, conditions), and a carried run must fall inside the folder's grid (its
method and dose, or its artist and condition) so the tables and the cloaks measured beside them cover it.
A run that this workdir also holds is taken from the workdir (its images are there to draw).

Files written before runs kept their scores hold them only in their summary. Where such a file holds a
single seed, each summary entry is the mean over one run, so it *is* that run's score and is read back
exactly (``from_summary``); a file with several seeds and no per-run scores cannot be split and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS = "results.json"

RunKey = Callable[[dict[str, Any]], Hashable]


def results_path(source: str | Path) -> Path:
    """``source`` itself, or the ``results.json`` in it when it is a folder."""
    path = Path(source)
    return path / RESULTS if path.is_dir() else path


def load_results(source: str | Path, schema: str) -> dict[str, Any]:
    path = results_path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: --merge takes an experiment's results.json or its folder")
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable results file ({e})") from e
    if results.get("schema") != schema:
        raise ValueError(f"{path}: a {results.get('schema')!r} results file, not {schema!r}")
    return results


def settings_differ(ours: dict[str, Any], theirs: dict[str, Any], growable: Collection[str]) -> list[str]:
    """The settings two folders must share to be one experiment, and do not."""
    return sorted(k for k in set(ours) | set(theirs) if k not in growable and ours.get(k) != theirs.get(k))


def carried_runs(
    sources: Iterable[str | Path],
    *,
    schema: str,
    settings: dict[str, Any],
    growable: Collection[str],
    within: Callable[[dict[str, Any]], bool],
    from_summary: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Every run (with its ``scores``) of the results files in ``sources`` that fits this experiment.

    ``settings``: this folder's settings; ``within``: whether a run lies in this folder's grid;
    ``from_summary``: the runs of an old single-seed results file, their scores read off its summary.
    Each run is returned with ``carried_from`` (the file it came from).
    """
    carried: list[dict[str, Any]] = []
    for source in sources:
        path = results_path(source)
        results = load_results(path, schema)
        diff = settings_differ(settings, results.get("settings", {}), growable)
        if diff:
            raise ValueError(
                f"{path} is another experiment (its {', '.join(diff)} differ from this folder's): "
                "only runs of the same settings are combined"
            )
        runs = results.get("runs", [])
        if runs and not all("scores" in r for r in runs):
            seeds = {r["seed"] for r in runs}
            if len(seeds) > 1:
                raise ValueError(
                    f"{path} keeps no per-run scores and holds seeds {sorted(seeds)}: its summary cannot be "
                    "split into runs; rewrite it with --report-only in the workdir that made it"
                )
            runs = from_summary(results)
        carried += [{**r, "carried_from": str(path)} for r in runs if within(r)]
    return carried


def combine(
    present: Sequence[dict[str, Any]], carried: Sequence[dict[str, Any]], key: RunKey
) -> list[dict[str, Any]]:
    """This workdir's runs, then the carried runs it does not hold (the first file wins a repeated run)."""
    seen = {key(r) for r in present}
    out = list(present)
    for r in carried:
        if key(r) not in seen:
            seen.add(key(r))
            out.append(r)
    return out


def merged_seeds(settings_seeds: Sequence[int], runs: Sequence[dict[str, Any]]) -> list[int]:
    """The seeds the report covers: the folder's and the carried runs'."""
    return sorted(set(settings_seeds) | {int(r["seed"]) for r in runs})


def sources_note(runs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many runs each carried-from file contributed (for ``results.json``)."""
    counts: dict[str, int] = {}
    for r in runs:
        if "carried_from" in r:
            counts[r["carried_from"]] = counts.get(r["carried_from"], 0) + 1
    return counts
