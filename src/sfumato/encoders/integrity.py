"""Checking a weight file before torch reads it: the pinned SHA-256 of every file we know, at every load.

A damaged encoder does not fail loudly: flipped bytes change a few weights, the attack runs against
the wrong function, and the report still says the latents moved. So every file whose upstream name has a
pinned hash (:data:`sfumato.encoders.weights.UPSTREAM`) is hashed before it is loaded, wherever it lies
(``--weights``, ``$SFUMATO_WEIGHTS``, the cache, a path given by hand). Hashing a few MB on every run is
cheap but not free, so the verdict is cached by (path, size, mtime): in the process, and in
``verified.json`` in the user cache, which a changed file misses because its size or mtime changed.

Files with no pinned hash (a user's own checkpoint, an upstream file we never verified) are loaded, but
the caller is told they are unverified so the command line can say so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sfumato.encoders.weights import UPSTREAM, ChecksumError, default_cache_dir, sha256_file

__all__ = ["DamagedWeightsError", "check_weights_file", "verdict_cache_path"]

_VERDICTS: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256


class DamagedWeightsError(ChecksumError):
    """A weight file is empty, truncated, altered or not a checkpoint; the message names it and says why."""


def verdict_cache_path() -> Path:
    """Where verified hashes are remembered between runs (beside the downloaded weights)."""
    return default_cache_dir() / "verified.json"


def check_weights_file(path: Path | str) -> bool:
    """Refuse an empty file or one whose name is pinned but whose SHA-256 differs; return whether it was
    verified (False: no hash is pinned for this name, so it is used as the user's own file)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as e:
        raise DamagedWeightsError(f"weights file {path} cannot be read: {e.strerror or e}") from None
    if stat.st_size == 0:
        raise DamagedWeightsError(
            f"weights file {path} is empty (0 bytes), perhaps an interrupted copy; replace it"
        )
    pinned = UPSTREAM.get(path.name)
    if pinned is None:
        return False
    expected = pinned[1]
    actual = _hash(path, stat.st_size, stat.st_mtime_ns)
    if actual != expected:
        raise DamagedWeightsError(
            f"weights file {path} ({stat.st_size:,} bytes) is damaged: its SHA-256 is {actual}, but "
            f"{path.name} from upstream has {expected}. Using it would attack the wrong encoder. Replace "
            f"it with a fresh copy from {pinned[0]}, or, if it is your own checkpoint, give it another "
            "name (it is then used unverified)."
        )
    return True


def _hash(path: Path, size: int, mtime_ns: int) -> str:
    key = (str(path.resolve()), size, mtime_ns)
    if key in _VERDICTS:
        return _VERDICTS[key]
    stored = _read_store()
    entry = stored.get(key[0])
    if isinstance(entry, dict) and entry.get("size") == size and entry.get("mtime_ns") == mtime_ns:
        digest = str(entry.get("sha256"))
    else:
        digest = sha256_file(path)
        stored[key[0]] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest}
        _write_store(stored)
    _VERDICTS[key] = digest
    return digest


def _read_store() -> dict[str, object]:
    try:
        doc = json.loads(verdict_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_store(stored: dict[str, object]) -> None:
    """Best effort: a read-only cache only costs hashing again next time."""
    target = verdict_cache_path()
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(stored, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)
