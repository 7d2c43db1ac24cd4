"""Finding encoder weight files on disk, and fetching the ones we can pin.

Weights are never shipped in the package (size, and the licences are the upstream author's), so
they are looked up by their upstream file name in a fixed order:

1. an explicit directory (the CLI's ``--weights DIR``),
2. the directory named by the ``SFUMATO_WEIGHTS`` environment variable,
3. the per-user cache directory (``platformdirs.user_cache_dir("sfumato") / "weights"``),
4. a download from upstream into that cache, verified against a pinned SHA-256.

A file a user put somewhere by hand is used as-is: it may be their own copy or a newer upstream
release, and refusing it would only push them to rename things. Files that *we* downloaded are
marked with a ``<name>.sha256`` sidecar and re-verified on every lookup, so a cache that was
tampered with or damaged is noticed instead of silently attacked against the wrong encoder.
Only files whose hash we know are ever downloaded; other upstream TAESD files are recognised
by name but must be fetched by the user.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import platformdirs

__all__ = [
    "ENV_VAR",
    "KNOWN_UNPINNED",
    "UPSTREAM",
    "UPSTREAM_BASE",
    "ChecksumError",
    "WeightsNotFoundError",
    "default_cache_dir",
    "download",
    "find_weights",
    "sha256_file",
]

ENV_VAR = "SFUMATO_WEIGHTS"

# All TAESD-family checkpoints live at the top of madebyollin/taesd (MIT). The hashes are those of
# the copies in shared/weights/taesd/SHA256SUMS; a third-party package index pinning the same
# raw/main URLs lists identical hashes, which is our evidence that this is where they live.
UPSTREAM_BASE = "https://github.com/madebyollin/taesd/raw/main/"

UPSTREAM: dict[str, tuple[str, str]] = {
    "taef2_encoder.pth": (
        UPSTREAM_BASE + "taef2_encoder.pth",
        "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    ),
    "taef2_decoder.pth": (
        UPSTREAM_BASE + "taef2_decoder.pth",
        "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
    ),
    "taesana_encoder.pth": (
        UPSTREAM_BASE + "taesana_encoder.pth",
        "858f4e4cc293f88efaf58107f4154b960b9ced0cb5d9c050dad11f926b618c1f",
    ),
}

# Upstream names a user may drop in by hand. We have not verified copies of them, so we cannot
# pin a hash and therefore never download them (an unverified download would be worse than none).
KNOWN_UNPINNED: frozenset[str] = frozenset(
    {
        "taesd_encoder.pth",
        "taesd_decoder.pth",
        "taesdxl_encoder.pth",
        "taesdxl_decoder.pth",
        "taesd3_encoder.pth",
        "taesd3_decoder.pth",
        "taef1_encoder.pth",
        "taef1_decoder.pth",
    }
)

_CHUNK = 1 << 20
_SIDECAR_SUFFIX = ".sha256"


class WeightsNotFoundError(FileNotFoundError):
    """A weight file is nowhere to be found and could not (or may not) be downloaded.

    Subclasses ``FileNotFoundError`` so generic handlers keep working; the message is meant to be
    shown to the user verbatim and says where we looked, where to get the file and where to put it.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        searched: tuple[str, ...] = (),
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.searched = searched
        self.url = url

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the pinned one: the wrong encoder would be attacked."""


def default_cache_dir() -> Path:
    """The per-user cache directory that downloads go to (and that is searched last)."""
    return Path(platformdirs.user_cache_dir("sfumato")) / "weights"


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in chunks so large VAEs do not need to fit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    """A tqdm bar if wanted and available; downloads must not depend on a cosmetic extra."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is normally present
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def download(url: str, dest: Path, sha256: str, *, progress: bool = True, timeout: float = 30) -> Path:
    """Fetch ``url`` to ``dest``, accepting it only if its SHA-256 equals ``sha256``.

    The body is streamed to a temporary file beside ``dest`` and moved into place with
    ``os.replace`` only after the hash matched, so ``dest`` is never a partial or unverified file,
    even if the process is killed mid-way. On a mismatch the temporary file is deleted and
    :class:`ChecksumError` is raised; a network failure raises :class:`WeightsNotFoundError`
    (the file is, after all, still not there) with a hint that the machine may be offline.
    """
    dest = Path(dest)
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing to download from a non-HTTP(S) URL: {url!r}")
    expected = sha256.strip().lower()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    moved = False
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "sfumato"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    bar = _progress_bar(
                        int(length) if length and length.isdigit() else None, dest.name, progress
                    )
                    try:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
                raise WeightsNotFoundError(
                    f"could not download {url}: {_describe(exc)}. Download the file by hand and put it "
                    f"at {dest}, or in a directory named by ${ENV_VAR}.",
                    name=dest.name,
                    url=url,
                ) from exc
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"download of {url} has SHA-256 {actual}, expected {expected}; it was discarded. "
                "Upstream may have replaced the file, or something altered it in transit."
            )
        os.replace(tmp, dest)
        moved = True
    finally:
        if not moved:
            tmp.unlink(missing_ok=True)
    return dest


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed download; only a failure to connect suggests being offline."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None) or exc
    return f"{reason} (is this machine offline?)"


def _candidates(weights_dir: Path | str | None, cache_dir: Path) -> list[tuple[str, Path | None]]:
    """The directories to search, in order, labelled for the error message (None = not set)."""
    dirs: list[tuple[str, Path | None]] = []
    if weights_dir is not None:
        dirs.append(("--weights", Path(weights_dir).expanduser()))
    env = os.environ.get(ENV_VAR, "").strip()
    dirs.append((f"${ENV_VAR}", Path(env).expanduser() if env else None))
    dirs.append(("user cache", cache_dir))
    return dirs


def _verify_cached(path: Path, sha256: str) -> None:
    """Re-check a file we downloaded earlier (it has a sidecar); leave hand-placed files alone."""
    sidecar = path.with_name(path.name + _SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path} was downloaded by sfumato but its SHA-256 is now {actual}, expected {sha256}. "
            f"Delete it (and {sidecar.name}) to download it again."
        )


def find_weights(
    name: str,
    weights_dir: Path | str | None = None,
    *,
    cache_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Return the path of the weight file called ``name``, downloading it if we can pin it.

    ``weights_dir`` is an explicit directory (``--weights``) searched first, then ``$SFUMATO_WEIGHTS``,
    then ``cache_dir`` (default :func:`default_cache_dir`; tests pass their own). Files found on the
    way are used as-is, except cached downloads, which are re-verified. If none is found and
    ``name`` is in :data:`UPSTREAM`, it is downloaded into ``cache_dir`` unless ``download`` is False.
    Raises :class:`WeightsNotFoundError` with a message saying where we looked and what to do.
    """
    if not name or Path(name).name != name or name in {".", ".."}:
        raise ValueError(f"weights are looked up by plain file name, got {name!r}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    pinned = UPSTREAM.get(name)

    searched: list[str] = []
    for label, directory in _candidates(weights_dir, cache):
        if directory is None:
            searched.append(f"{label} (not set)")
            continue
        path = directory / name
        if path.is_file():
            if pinned is not None and directory == cache:
                _verify_cached(path, pinned[1])
            return path
        note = "" if directory.is_dir() else ", directory does not exist"
        searched.append(f"{directory} ({label}{note})")

    failure = "Automatic download is off."
    if pinned is not None and download:
        url, sha256 = pinned
        try:
            return _download_into_cache(url, cache / name, sha256, progress)
        except WeightsNotFoundError as exc:
            cause = exc.__cause__
            failure = f"Downloading it failed: {_describe(cause) if cause is not None else exc}."
    raise WeightsNotFoundError(
        _not_found_message(name, searched, cache, failure),
        name=name,
        searched=tuple(searched),
        url=pinned[0] if pinned else _known_url(name),
    )


def _download_into_cache(url: str, dest: Path, sha256: str, progress: bool) -> Path:
    """Download and leave the sidecar that marks the file as ours, so later lookups re-verify it.

    Kept apart from :func:`find_weights` because its ``download`` flag shadows :func:`download`.
    """
    path = download(url, dest, sha256, progress=progress)
    path.with_name(path.name + _SIDECAR_SUFFIX).write_text(f"{sha256}  {path.name}\n")
    return path


def _known_url(name: str) -> str | None:
    return UPSTREAM_BASE + name if name in KNOWN_UNPINNED else None


def _not_found_message(name: str, searched: list[str], cache: Path, failure: str) -> str:
    """Everything a user needs to fix it by hand: what, where we looked, where from, where to."""
    lines = [f"weights file {name!r} not found. Looked in:"]
    lines += [f"  - {place}" for place in searched]
    where = f"put it in {cache}, or in a directory named by ${ENV_VAR}, or pass --weights DIR."
    pinned = UPSTREAM.get(name)
    if pinned is not None:
        lines.append(failure)
        lines.append(f"Download it from {pinned[0]} (sha256 {pinned[1]}) and {where}")
    elif name in KNOWN_UNPINNED:
        lines.append("sfumato does not download this one itself, as it has no pinned checksum for it.")
        lines.append(f"Download it from {_known_url(name)} and {where}")
    else:
        lines.append(
            f"sfumato knows no upstream for this name (it can download: {', '.join(sorted(UPSTREAM))})."
        )
        lines.append(f"Obtain the file and {where}")
    return "\n".join(lines)
