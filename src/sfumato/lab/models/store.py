"""The lab's trained models, committed: half-precision safetensors that a new machine restores instead of
retraining for hours.

A training run leaves a resumable ``checkpoint.pt`` (weights, optimiser state, RNG) in the workdir. Once a
model is final, :func:`export_model` keeps what a rerun of the experiments needs: every weight tensor
(floating tensors of 1024 elements or more in float16, smaller ones such as normalisation statistics
exact), the checkpoint's other fields as JSON, and the folder's small side files (``metrics.json``,
``spec.json``, ...). The store mirrors the workdir's layout (``judges/pixel/``, ``base/flux2-<hash>/``) and
``MANIFEST.json`` pins each weights file's SHA-256 and the command that trained it.

:func:`restore_models` turns every stored model that the workdir lacks back into the ``checkpoint.pt`` its
loader reads (float32, no optimiser state: a finished run), after checking its checksum. A generator keeps
only its EMA weights (what fine-tuning and sampling use); restored, they stand for the raw weights too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.storage import atomic_torch_save

MANIFEST = "MANIFEST.json"
WEIGHTS = "weights.safetensors"
SKELETON = "checkpoint.json"
CHECKPOINT = "checkpoint.pt"
STORE_ENV = "SFUMATO_LAB_MODELS"
FORMAT = "sfumato.lab.models/1"
HALF_FROM = 1024  # floating tensors at least this large are stored in float16
DROPPED = ("optimizer", "scheduler", "rng")  # training state: a restored model is a finished run
SIDE_FILE_MAX = 2_000_000  # side files copied with a model (metrics, spec, train log), bytes
SIDE_SUFFIXES = (".json", ".jsonl")
RESTORED = "restored.json"


class StoreError(Exception):
    """A stored model is missing, damaged or does not match its manifest."""


@dataclass(frozen=True)
class Entry:
    """One stored model: its folder (relative, the same in the workdir and the store) and provenance."""

    folder: str
    sha256: str
    bytes: int
    command: str
    fields: dict[str, Any]


def checkout_store() -> Path:
    """The ``lab-models`` folder of the source checkout this package runs from (committed with the code)."""
    return Path(__file__).resolve().parents[4] / "lab-models"


def default_store() -> Path | None:
    """``$SFUMATO_LAB_MODELS``, else the checkout's ``lab-models`` when it holds models (None if neither)."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env)
    return checkout_store() if (checkout_store() / MANIFEST).exists() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The checkpoint's JSON skeleton; tensors go to ``tensors`` under their dotted path."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        if t.is_floating_point() and t.numel() >= HALF_FROM:
            t = t.half()
        tensors[prefix] = t
        return {"__tensor__": prefix, "dtype": dtype}
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            raise StoreError(f"{prefix or 'checkpoint'}: only string keys can be stored")
        return {k: _split(v, f"{prefix}.{k}" if prefix else k, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, torch.Tensor) for v in value):
            raise StoreError(f"{prefix}: tensors inside lists cannot be stored")
        return list(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise StoreError(f"{prefix}: cannot store a {type(value).__name__}")


def _join(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]].to(getattr(torch, skeleton["dtype"]))
        return {k: _join(v, tensors) for k, v in skeleton.items()}
    return skeleton


def read_manifest(store: Path) -> dict[str, Entry]:
    path = store / MANIFEST
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {folder: Entry(folder=folder, **e) for folder, e in raw["models"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{path}: not a sfumato lab model manifest ({e})") from None


def _write_manifest(store: Path, entries: dict[str, Entry]) -> None:
    models = {
        f: {"sha256": e.sha256, "bytes": e.bytes, "command": e.command, "fields": e.fields}
        for f, e in sorted(entries.items())
    }
    atomic_write_text(store / MANIFEST, json.dumps({"format": FORMAT, "models": models}, indent=1) + "\n")


def export_model(workdir: Path, folder: str, store: Path, command: str) -> Entry:
    """Store the finished model in ``workdir/folder`` (its ``checkpoint.pt`` and small side files)."""
    from safetensors.torch import save_file

    src = workdir / folder
    ckpt = src / CHECKPOINT
    if not ckpt.exists():
        raise StoreError(f"{ckpt}: no checkpoint to export")
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or "format" not in ck:
        raise StoreError(f"{ckpt}: not a sfumato lab checkpoint")
    kept = {k: v for k, v in ck.items() if k not in DROPPED}
    if "ema" in kept:  # a generator: sampling and fine-tuning read the EMA weights only
        kept.pop("model", None)
        kept["__ema_is_model__"] = True
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(kept, "", tensors)
    dest = store / folder
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "source": str(ck["format"])})
    os.replace(tmp, dest / WEIGHTS)
    atomic_write_text(dest / SKELETON, json.dumps(skeleton, indent=1) + "\n")
    for side in sorted(src.iterdir()):
        if side.suffix in SIDE_SUFFIXES and side.name != RESTORED and side.stat().st_size <= SIDE_FILE_MAX:
            shutil.copyfile(side, dest / side.name)
    fields = {k: ck[k] for k in ("format", "step", "epoch", "test_accuracy") if k in ck}
    weights = dest / WEIGHTS
    entry = Entry(folder, _sha256(weights), weights.stat().st_size, command, fields)
    entries = read_manifest(store)
    entries[folder] = entry
    _write_manifest(store, entries)
    return entry


def load_stored(store: Path, entry: Entry) -> dict[str, Any]:
    """The checkpoint dict of a stored model, in float32 where it was trained so; checksum verified."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = store / entry.folder / WEIGHTS
    if not weights.exists():
        raise StoreError(f"{weights}: missing (listed in {store / MANIFEST})")
    digest = _sha256(weights)
    if digest != entry.sha256:
        raise StoreError(
            f"{weights}: damaged or replaced (SHA-256 {digest[:16]}..., the manifest pins "
            f"{entry.sha256[:16]}...); restore it from git ('git checkout -- {weights}')"
        )
    try:
        tensors = load_file(str(weights))
        skeleton = json.loads((store / entry.folder / SKELETON).read_text())
    except (SafetensorError, OSError, ValueError) as e:
        raise StoreError(f"{weights.parent}: cannot read the stored model ({e})") from None
    ck = _join(skeleton, tensors)
    if ck.pop("__ema_is_model__", False):
        ck["model"] = ck["ema"]
    for key in DROPPED:
        ck.setdefault(key, None)
    return ck


def restore_models(
    workdir: Path,
    store: Path | None,
    only: Iterable[str] | None = None,
    log: Callable[[str], None] | None = print,
) -> list[str]:
    """Write every stored model the workdir lacks as a ``checkpoint.pt`` (and its side files) there.

    A folder that already holds a checkpoint is left alone, trained here or restored before. Returns
    the folders restored.
    """
    if store is None:
        return []
    entries = read_manifest(store)
    wanted = set(only) if only is not None else set(entries)
    restored = []
    for folder, entry in sorted(entries.items()):
        dest = workdir / folder
        if folder not in wanted or (dest / CHECKPOINT).exists():
            continue
        ck = load_stored(store, entry)
        dest.mkdir(parents=True, exist_ok=True)
        for side in sorted((store / folder).iterdir()):
            if side.suffix in SIDE_SUFFIXES and side.name != SKELETON and not (dest / side.name).exists():
                shutil.copyfile(side, dest / side.name)
        atomic_torch_save(ck, dest / CHECKPOINT)
        note = {"from": str(store / folder), "sha256": entry.sha256, "command": entry.command}
        atomic_write_text(dest / RESTORED, json.dumps(note, indent=1) + "\n")
        restored.append(folder)
        if log is not None:
            log(f"restored {folder} from {store} (half precision; trained by: {entry.command})")
    return restored
