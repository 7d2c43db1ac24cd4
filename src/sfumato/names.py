"""Output file names that are safe to write, copy and show anywhere.

An input name is the user's, but an output name is sfumato's: it ends up in zip files, on Windows
machines and in file browsers. Two kinds of name are dangerous there. Names Windows reserves for devices
(``CON``, ``NUL``, ``COM1``, ... with any extension) cannot be created or opened on Windows. Bidirectional
control characters (the right-to-left override U+202E above all) make ``cat\u202egnp.exe`` display as
``catexe.png``: a file that lies about its type. Both are rewritten here; the rest of a name is kept.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

__all__ = ["safe_name", "safe_relative"]

_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in (*range(1, 10), "¹", "²", "³")}
    | {f"LPT{i}" for i in (*range(1, 10), "¹", "²", "³")}
)
# Bidirectional controls (embeddings, overrides, isolates, marks) and characters Windows forbids.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f'[{_BIDI}<>:"|?*\\\\\\x00-\\x1f\\x7f]')


def safe_name(name: str) -> str:
    """``name`` with bidirectional controls and characters Windows forbids replaced by ``_``, trailing
    dots and spaces replaced, and a device name Windows reserves given a ``_`` after its stem."""
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", name))
    cleaned = cleaned.rstrip(". ") + "_" * (len(cleaned) - len(cleaned.rstrip(". ")))
    if not cleaned:
        return "_"
    stem, dot, rest = cleaned.partition(".")
    if stem.rstrip(" ").upper() in _RESERVED:
        return f"{stem}_{dot}{rest}"
    return cleaned


def safe_relative(relative: Path) -> Path:
    """Each part of a relative output path made safe by :func:`safe_name`."""
    return Path(*(safe_name(part) for part in relative.parts)) if relative.parts else relative
