"""The output folder of a batch: is it usable, which files in it are sfumato's, and what a kill left behind.

sfumato writes into folders that also hold the artist's own files (``sfumato shade DIR -o DIR`` is the
usual dataset layout: ``a.jpg`` beside its caption ``a.txt``). So it only ever replaces a file it can
show it wrote: an image or caption named in one of its own sidecar reports, a summary that starts with
its own header. Everything else is kept, and the caller says so.

Problems of the folder itself (it is a file, read-only, full) would otherwise surface only after every
image was computed, as a raw ``OSError`` naming a hidden temporary file; :func:`prepare_output_folder`
finds them before any work, and :func:`folder_problem` tells a write error that will repeat for every
image (stop the batch) from one that concerns a single file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

__all__ = [
    "OutputFolderError",
    "digest_bytes",
    "digest_file",
    "folder_problem",
    "is_our_report",
    "prepare_output_folder",
    "read_report",
    "remove_leftovers",
]

# The temporary names imageio._atomic_open uses: ".<name>.<8 hex>.tmp" beside the target.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")
_FOLDER_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "it is on a read-only file system",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "it is not writable (permission denied)",
    errno.EPERM: "it is not writable (operation not permitted)",
}


class OutputFolderError(Exception):
    """The output folder cannot take the outputs; one line for the user, naming the folder."""


def prepare_output_folder(out: Path) -> None:
    """Create ``out`` and write (then remove) a probe file in it, so that a folder that is a file,
    read-only or full stops the batch before the first image is computed."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"the output folder {out} is a file; choose a folder with -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".sfumato-probe.{secrets.token_hex(4)}.tmp"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as e:
        why = _FOLDER_ERRNOS.get(e.errno or 0, e.strerror or str(e))
        raise OutputFolderError(f"cannot write to the output folder {out}: {why}") from None


def folder_problem(error: OSError, out: Path) -> str | None:
    """A message if ``error`` means no further output can be written to ``out`` (full, read-only),
    else None (a problem with one file only, reported against that file)."""
    if error.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return None
    return f"stopped: cannot write to the output folder {out}: {_FOLDER_ERRNOS[error.errno]}"


def remove_leftovers(*targets: Path) -> list[Path]:
    """Delete the temporary files an interrupted atomic write of any of ``targets`` left beside it."""
    removed = []
    for target in targets:
        try:
            entries = list(target.parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _LEFTOVER.match(entry.name)
            if match and match["name"] == target.name and entry.is_file():
                try:
                    entry.unlink()
                except OSError:
                    continue
                removed.append(entry)
    return removed


def read_report(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None if it is missing or not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_our_report(doc: dict[str, Any] | None) -> bool:
    """Whether a sidecar was written by sfumato (it records its output and settings key)."""
    return isinstance(doc, dict) and "output" in doc and "settings_key" in doc


def digest_bytes(data: bytes) -> str:
    """The SHA-256 an output's sidecar records, so a reader can tell the image it describes."""
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str | None:
    """SHA-256 of a file read in chunks, or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
