"""Files the lab writes: checkpoints and caches saved atomically, logs trimmed on resume."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from sfumato.encoders.precision import precision
from sfumato.imageio import atomic_write_bytes, atomic_write_text


def atomic_torch_save(payload: object, path: Path) -> None:
    """``torch.save`` that never leaves a half-written file (the lab's caches and checkpoints)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def trim_log(path: Path, key: str, upto: int) -> None:
    """Keep the JSON-lines log entries whose ``key`` is <= ``upto``: what came after the checkpoint a
    run resumes from is written again."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get(key, 0) <= upto:
                kept.append(line)
        except json.JSONDecodeError:
            continue
    path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")


def merge_folder_settings(
    out: Path, settings: dict[str, Any], growable: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Write an experiment folder's ``settings.json`` and return what it now says.

    A folder holds one experiment, run by several calls (one after another or at once): a call may add
    runs along the ``growable`` keys (seeds, doses, conditions, ...; each with its sort key), and the
    folder's settings then list every run in it, so the report covers them all. Any other difference
    would mix two experiments in one report, so it is refused with the keys that differ.
    """
    path = out / "settings.json"
    new = json.loads(json.dumps(settings))
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(new) if k not in growable and old.get(k) != new.get(k))
        if diff:
            raise ValueError(
                f"{out} holds an experiment with other settings ({', '.join(diff)}); "
                "use another --out or the same settings"
            )
        for k, order in growable.items():
            new[k] = sorted(set(old[k]) | set(new[k]), key=order)
    atomic_write_text(path, json.dumps(new, indent=2) + "\n")
    return new


def with_precision(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` plus ``precision: fp32`` where the lab's encoders and decoders run in fp32 here (a CPU
    without fast bf16, :mod:`sfumato.encoders.precision`): the two round differently, so their runs are
    one experiment only with the same precision. bf16, the lab's first, is left out, so folders made
    before this setting existed keep their settings."""
    here = precision()
    return settings if here == "bf16" else {**settings, "precision": here}


def without_precision(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as a config takes them: the precision is this machine's, not a choice."""
    return {k: v for k, v in settings.items() if k != "precision"}
