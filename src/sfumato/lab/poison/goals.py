"""The poisoning experiment's goal figures, checked against its ``results.json``.

A reader of a report wants to know at once whether the attack did what the field claims, not to assemble
it from six tables; these checks read the same summary the tables do, at the default guidance and the
longest fine-tune, and say which poison came closest. Poisons are every method but ``dirty``; the
dirty-label baseline is what they must beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUCCESS = 0.80  # attack success by both judges ...
SUCCESS_MAX_DOSE = 100  # ... at N <= 100
DIRTY_MARGIN = 0.20  # "dirty label stays far lower": read here as at least 20 points lower
UNRELATED_DROP = 0.05  # unrelated prompts lose at most 5 points
TRANSFER = 0.50  # transfer to the private generator ...
TRANSFER_DOSE = 200  # ... at N = 200


@dataclass(frozen=True)
class Goal:
    goal: str
    measured: str
    met: bool | None  # None: the runs it needs are not in the folder


def _share(cell: dict[str, Any], judge: str, prompt: str, cls: str) -> float | None:
    try:
        stat = cell["judges"][judge][prompt][cls]
    except KeyError:
        return None
    return float(stat["mean"]) if stat.get("n", 0) else None


def _pct(values: list[float] | list[float | None]) -> str:
    return " / ".join("–" if v is None else f"{100 * v:.0f}" for v in values) + " %"


def _best_poison(
    results: dict[str, Any], setting: str, doses: range, prompt: str, cls: str
) -> tuple[str, int, list[float]] | None:
    """The poison run (method, N) whose weaker judge calls the most source-prompt images the target."""
    judges = list(results["judges"])
    best: tuple[str, int, list[float]] | None = None
    for method, per in results["summary"].items():
        if method == "dirty":
            continue
        for dose, cell in per.get(setting, {}).items():
            if int(dose) not in doses:
                continue
            shares = [s for j in judges if (s := _share(cell, j, prompt, cls)) is not None]
            if len(shares) == len(judges) and (best is None or min(shares) > min(best[2])):
                best = (method, int(dose), shares)
    return best


def goal_checks(results: dict[str, Any], setting: str, source_prompt: str) -> list[Goal]:
    target = results["settings"]["target"]
    judges = "/".join(results["judges"])
    goals: list[Goal] = []
    best = _best_poison(results, setting, range(1, SUCCESS_MAX_DOSE + 1), source_prompt, target)
    success = (
        f"a poison draws {target} for '{source_prompt}' >= {100 * SUCCESS:.0f} % at N <= {SUCCESS_MAX_DOSE}"
    )
    if best is None:
        goals.append(Goal(f"{success} ({judges})", f"no poison run at N <= {SUCCESS_MAX_DOSE}", None))
    else:
        goals += _success(results, setting, source_prompt, f"{success} ({judges})", *best)
    goals.append(_unrelated(results, setting))
    if results.get("transfer"):
        best = _best_poison(results, setting, range(TRANSFER_DOSE, TRANSFER_DOSE + 1), source_prompt, target)
        goals.append(
            Goal(
                f"transfer: this generator draws {target} >= {100 * TRANSFER:.0f} % at N = {TRANSFER_DOSE}",
                f"no poison run at N = {TRANSFER_DOSE}"
                if best is None
                else f"best: {best[0]}: {_pct(best[2])}",
                None if best is None else min(best[2]) >= TRANSFER,
            )
        )
    return goals


def _success(
    results: dict[str, Any], setting: str, prompt: str, goal: str, method: str, dose: int, shares: list[float]
) -> list[Goal]:
    """The success goal for the best poison run, its Fréchet condition and the dirty label beside it."""
    source, target = results["settings"]["source"], results["settings"]["target"]
    summary = results["summary"]
    goals = [Goal(goal, f"best: {method} N={dose}: {_pct(shares)}", min(shares) >= SUCCESS)]
    fr = summary[method][setting][str(dose)].get("frechet")
    if fr:
        to_t, to_s = float(fr[target]["mean"]), float(fr[source]["mean"])
        goals.append(
            Goal(
                f"... its images nearer real {target} than real {source} (Fréchet)",
                f"{method} N={dose}: {to_t:.1f} to {target}, {to_s:.1f} to {source}",
                to_t < to_s,
            )
        )
    dirty = summary.get("dirty", {}).get(setting, {}).get(str(dose))
    if dirty is not None:
        d = [_share(dirty, j, prompt, target) for j in results["judges"]]
        gaps = [s - x for s, x in zip(shares, d, strict=True) if x is not None]
        goals.append(
            Goal(
                f"... while dirty label stays far lower (>= {100 * DIRTY_MARGIN:.0f} points) at that N",
                f"dirty N={dose}: {_pct(d)}",
                len(gaps) == len(shares) and min(gaps) >= DIRTY_MARGIN,
            )
        )
    return goals


def _unrelated(results: dict[str, Any], setting: str) -> Goal:
    """The largest fall, over poisons, doses and judges, in an unrelated prompt's own-class share."""
    judges = list(results["judges"])
    worst: tuple[float, str] | None = None
    for prompt, info in results["prompts"].items():
        if info["role"] != "unrelated":
            continue
        cls = info["classes"][-1]
        for method, per in results["summary"].items():
            cells = per.get(setting, {})
            if method == "dirty" or "0" not in cells:
                continue
            for dose, cell in cells.items():
                if dose == "0":
                    continue
                for j in judges:
                    before, after = _share(cells["0"], j, prompt, cls), _share(cell, j, prompt, cls)
                    if before is None or after is None:
                        continue
                    drop = before - after
                    if worst is None or drop > worst[0]:
                        worst = (drop, f"'{prompt}', {method} N={dose}, {j}")
    goal = f"unrelated prompts lose <= {100 * UNRELATED_DROP:.0f} points"
    if worst is None:
        return Goal(goal, "no poison run yet", None)
    fall = round(100 * worst[0])
    unit = "point" if abs(fall) == 1 else "points"
    return Goal(goal, f"largest fall {fall} {unit} ({worst[1]})", worst[0] <= UNRELATED_DROP)


def goal_table(goals: list[Goal]) -> list[str]:
    lines = ["| goal | measured | |", "|---|---|---|"]
    for g in goals:
        verdict = "not run" if g.met is None else "met" if g.met else "missed"
        lines.append(f"| {g.goal} | {g.measured} | {verdict} |")
    return lines
