"""Progress and time left for a job, from the record and the worker's live step count.

The estimate uses measured seconds per pixel: this job's finished images first, else earlier jobs
at the same speed and mode, else the running image's own pace. Time per image grows with its pixel
count, so a job of mixed sizes is estimated by pixels, not by image count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

FINISHED = ("done", "failed", "cancelled")
PROCESSED = ("done", "failed")  # a cancelled image was not worked on: it counts as not done
# Before anything has run on this machine: benchmarks/speed.py's 512 px image at default took 15.7 s
# on 2 cores (with the effect report 18.1 s); fast about half, thorough about four times.
BENCHMARK_SECONDS_PER_PIXEL = {"fast": 9.0 / 512**2, "default": 18.1 / 512**2, "thorough": 72.0 / 512**2}
OPTIMISE_SHARE = 0.85  # of an image's time spent on optimisation steps (the rest: measuring, saving)


@dataclass
class Live:
    """What the worker is doing right now: which image of which job, how far, since when."""

    job_id: str
    idx: int
    started: float
    fraction: float = 0.0
    phase: str = "preparing"  # preparing, protecting, measuring


def step_fraction(done: int, total: int) -> float:
    """An image's progress after ``done`` of ``total`` optimisation steps."""
    return OPTIMISE_SHARE * done / total if total > 0 else 0.0


def job_progress(
    job: dict[str, Any], live: Live | None, history_rate: float | None, now: float | None = None
) -> dict[str, Any]:
    """Per-image fractions, the job's fraction and seconds left (None while unknown).

    ``job`` is :meth:`Store.get_job`'s dict; ``history_rate`` is seconds per pixel measured before.
    """
    now = time.time() if now is None else now
    items = job["items"]
    running = live if live is not None and live.job_id == job["id"] else None
    fractions = []
    for item in items:
        if item["status"] in PROCESSED:
            f = 1.0
        elif running is not None and item["idx"] == running.idx:
            f = running.fraction
        else:
            f = 0.0
        fractions.append(f)
    done = [i for i in items if i["status"] == "done" and i["seconds"] is not None]
    rate = sum(i["seconds"] for i in done) / sum(i["pixels"] for i in done) if done else history_rate
    elapsed = now - running.started if running is not None else 0.0
    current = next((i for i in items if running is not None and i["idx"] == running.idx), None)
    if rate is None and current is not None and running is not None and running.fraction >= 0.1:
        rate = elapsed / running.fraction / current["pixels"]
    left: float | None = None
    if job["status"] in FINISHED:
        left = 0.0
    elif rate is not None:
        waiting = sum(i["pixels"] for i in items if i["status"] not in FINISHED and i is not current)
        left = waiting * rate
        if current is not None and running is not None:
            if running.fraction >= 0.25:
                left += elapsed * (1 - running.fraction) / running.fraction
            else:
                left += max(current["pixels"] * rate - elapsed, 0.0)
    total_pixels = sum(i["pixels"] for i in items) or 1
    overall = sum(f * i["pixels"] for f, i in zip(fractions, items, strict=True)) / total_pixels
    return {
        "fraction": round(1.0 if job["status"] == "done" else overall, 4),
        "items": [round(f, 4) for f in fractions],
        "seconds_left": None if left is None else round(left, 1),
        "phase": running.phase if running is not None else None,
        "current": running.idx if running is not None else None,
    }


def estimate(pixels: int, speed: str, measured_rate: float | None) -> dict[str, Any]:
    """Seconds a job of ``pixels`` will take before it starts: from seconds per pixel measured on this
    machine (finished images at this speed and mode) when there are any, else from the benchmark.

    ``measured`` says which, so the page can say "about" or "roughly".
    """
    rate = measured_rate if measured_rate is not None else BENCHMARK_SECONDS_PER_PIXEL.get(speed)
    seconds = None if rate is None else round(pixels * rate, 1)
    return {"seconds": seconds, "measured": measured_rate is not None, "pixels": pixels}
