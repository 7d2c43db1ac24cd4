"""Files the lab writes: checkpoints and caches saved atomically, logs trimmed on resume."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from sfumato.imageio import atomic_write_bytes


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
