"""Uploaded images: checked like the command line's inputs, stored under generated ids.

The browser's file name is only ever displayed (the page inserts it as text); files are stored as
``uploads/<random id>/source``, so no name can reach a path. Each accepted upload also gets
``original.png`` (the picture as displayed: EXIF rotation applied, alpha and ICC profile kept, the
"before" of the before/after view), a small ``thumb.png``, and on request small renderings of the
built-in styles (``styles/<name>.png``) so the artist sees what each target style does to their work.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from sfumato.app.config import AppConfig
from sfumato.app.db import Store, Upload, new_id
from sfumato.imageio import ImageInputError, atomic_write_bytes, load_image, save_image, to_pil, to_tensor
from sfumato.styles import STYLE_NAMES, render_style

MAX_NAME_CHARS = 120
THUMB_SIDE = 256  # the file list and the style previews
_CHUNK = 1 << 20
_ID = re.compile(r"^[0-9a-f]{16}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UploadRejected(Exception):
    """One uploaded file that cannot be used; ``str(e)`` names it and says why, for the page."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name} {problem}")


def display_name(raw: str | None) -> str:
    """The name to show for an upload: the last path component, without control characters, shortened.

    Browsers send bare names, but anything can be posted; this is for display and the zip's entry
    names only, and is still escaped by the page.
    """
    name = _CONTROL.sub("", (raw or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or name in (".", ".."):
        return "unnamed image"
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        keep = suffix if dot and len(suffix) <= 8 else ""
        name = name[: MAX_NAME_CHARS - len(keep) - 2] + "…" + ("." + keep if keep else "")
    return name


def valid_id(value: str) -> bool:
    """Ids come from URLs: only the shape :func:`~sfumato.app.db.new_id` makes may reach a path."""
    return bool(_ID.match(value))


def upload_dir(config: AppConfig, upload_id: str) -> Path:
    if not valid_id(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return config.uploads_dir / upload_id


def source_path(config: AppConfig, upload_id: str) -> Path:
    return upload_dir(config, upload_id) / "source"


def original_path(config: AppConfig, upload_id: str) -> Path:
    return upload_dir(config, upload_id) / "original.png"


def thumb_path(config: AppConfig, upload_id: str) -> Path:
    return upload_dir(config, upload_id) / "thumb.png"


def accept_upload(config: AppConfig, store: Store, raw_name: str | None, data: BinaryIO) -> Upload:
    """Copy one uploaded file in (at most ``config.max_upload_bytes``), check it, record it.

    Raises :class:`UploadRejected` naming the file and the problem: too large, empty, not an image,
    truncated, animated, too small, a decompression bomb... (the checks of :func:`load_image`).
    """
    name = display_name(raw_name)
    upload_id = new_id()
    folder = upload_dir(config, upload_id)
    folder.mkdir(parents=True)
    try:
        source = folder / "source"
        size = _copy_limited(data, source, config.max_upload_bytes, name)
        _check_pixels(source, config.max_pixels, name)
        try:
            loaded = load_image(source)
        except ImageInputError as e:
            raise UploadRejected(name, artist_words(e.problem)) from None
        save_image(loaded, loaded.rgb, folder / "original.png", forbidden=[source])
        thumb = to_pil(loaded.rgb)
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
        atomic_write_bytes(folder / "thumb.png", _png_bytes(thumb))
        upload = Upload(upload_id, name, size, loaded.size[0], loaded.size[1], tuple(loaded.notes))
        store.add_upload(upload)
        return upload
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _check_pixels(source: Path, limit: int, name: str) -> None:
    """Refuse an image above the size cap from its header, before decoding it (a 9990 x 9990 image
    took 9.2 GB of memory and hours): the artist can resize it, or raise the cap with --max-pixels."""
    try:
        with Image.open(source) as img:
            width, height = img.size
    except Exception:  # noqa: BLE001 - not readable: load_image says why, in its own words
        return
    if width * height > limit:
        side = int(limit**0.5)
        raise UploadRejected(
            name,
            f"is {width}x{height} ({width * height / 1e6:.0f} megapixels), larger than this app's cap of "
            f"{limit / 1e6:.0f} megapixels (about {side}x{side}): resize it, or start the app with a "
            "larger --max-pixels (it will need more memory and time)",
        )


def artist_words(problem: str) -> str:
    """An engine message in the page's words: no library names."""
    return problem.replace("an image Pillow can read", "an image file this app can read").replace(
        "Pillow's limit", "the safety limit"
    )


def _copy_limited(data: BinaryIO, target: Path, limit: int, name: str) -> int:
    """Copy in chunks, refusing as soon as the limit is passed (never the whole file in memory)."""
    size = 0
    with target.open("wb") as out:
        while chunk := data.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadRejected(name, f"is larger than the limit of {format_mb(limit)} a file")
            out.write(chunk)
    return size


def format_mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n / 1024:.0f} KB"


def style_preview(config: AppConfig, upload_id: str, style: str, seed: int = 0) -> Path:
    """The upload's thumbnail rendered in a built-in style (cached): what that target would look like.

    Raises ``ValueError`` for an unknown style and ``FileNotFoundError`` for an unknown upload.
    """
    if style not in STYLE_NAMES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLE_NAMES)}")
    target = upload_dir(config, upload_id) / "styles" / f"{style}.png"
    if target.is_file():
        return target
    with Image.open(thumb_path(config, upload_id)) as img:
        small = to_tensor(img.convert("RGB"))
    rendered = render_style(style, small, seed)
    atomic_write_bytes(target, _png_bytes(to_pil(rendered)))
    return target


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
