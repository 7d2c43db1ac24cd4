"""Image file input and output for the sfumato batch tool.

A batch run meets every kind of file an artist's folder can hold. Each input therefore either becomes a
clean float tensor, with every conversion recorded in ``LoadedImage.notes``, or raises an
``ImageInputError`` that names the file and the problem, so one bad file is reported rather than
crashing the batch or being silently mangled. Outputs are written atomically and never over an input,
because losing an artist's original is the worst failure this tool could have.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
MIN_SIDE = 64
DEFAULT_MAX_PIXELS = 100_000_000

SIXTEEN_BIT_NOTE = "16-bit input; output is 8-bit"
JPEG_LOSSY_WARNING = "JPEG is lossy: saving as .jpg weakens the protection; prefer PNG"
JPEG_ALPHA_WARNING = "JPEG cannot store alpha; transparency dropped"

_READABLE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "DIB", "GIF"})
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_ORIENTATION_TAG = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
_HIGH_BIT_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_PLAIN_CONVERSIONS = {"La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB", "HSV": "RGB", "LAB": "RGB"}
_SAVE_FORMATS = {
    "": "PNG",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_GREY_SAVE_MODES = {"PNG": {"L", "LA"}, "TIFF": {"L", "LA"}, "JPEG": {"L"}, "BMP": {"L"}, "WEBP": set()}
_JPEG_MAX_EXIF = 65533


class ImageInputError(Exception):
    """A specific, human-readable problem with one input file.

    ``str(e)`` reads as a sentence naming the file, e.g. ``"/in/a.png is empty (0 bytes)"``, so a batch
    tool can print it as is and carry on with the next file.
    """

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path} {problem}")


def as_unit(t: torch.Tensor) -> torch.Tensor:
    """An image as floats in [0, 1]: float images as they are, 8-bit ones (uint8: how a decoded 8-bit file
    and a protected result are kept) divided by 255, which gives exactly the floats that decoding to float
    gave. Applied to a band or a tile at a time, it keeps a large image from ever existing whole as floats
    (4 bytes a sample instead of 1)."""
    return t if t.is_floating_point() else t.float().div_(255)


@dataclass
class LoadedImage:
    """A decoded input plus everything needed to save the protected result faithfully.

    ``pixels`` (3, H, W) is uint8 for 8-bit sources (a quarter of the memory of floats: the engine reads
    them a tile at a time) and float32 in [0, 1] for 16-bit and float ones; ``rgb`` is always float32.
    """

    path: Path
    pixels: torch.Tensor
    alpha: torch.Tensor | None
    greyscale: bool
    icc_profile: bytes | None
    exif: bytes | None
    notes: list[str] = field(default_factory=list)
    source_format: str = ""

    @property
    def rgb(self) -> torch.Tensor:
        """The pixels as float32 (3, H, W) in [0, 1] (for 8-bit sources a new tensor at every access)."""
        return as_unit(self.pixels)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), in PIL's order, of the upright image."""
        return int(self.pixels.shape[2]), int(self.pixels.shape[1])


class _Pixels(NamedTuple):
    colour: np.ndarray
    alpha: np.ndarray | None
    greyscale: bool
    icc_profile: bytes | None


# ---------------------------------------------------------------------------------------------- loading


def load_image(
    path: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE
) -> LoadedImage:
    """Decode one still image into an upright float RGB tensor, or explain precisely why not.

    Size limits are checked from the header before any pixel is decoded, so a decompression bomb
    costs nothing. Pillow's own bomb limit (``Image.MAX_IMAGE_PIXELS``, doubled for the hard error)
    still applies on top of ``max_pixels``.
    """
    path = Path(path)
    _check_file(path)
    notes: list[str] = []
    with _open(path, max_pixels) as img:
        source_format = img.format or "unknown"
        _check_format(path, img)
        _check_still(path, img, notes)
        _check_dimensions(path, img.size, max_pixels, min_side)
        sixteen_bit = img.mode in _HIGH_BIT_GREY_MODES or _has_16_bit_samples(img)
        _decode(path, img, max_pixels, notes)
        exif, orientation = _read_exif(img, notes)
        upright = _upright(img, orientation, notes)
        pixels = _to_pixels(path, upright, img.info.get("icc_profile") or None, notes)
    if sixteen_bit:
        notes.append(SIXTEEN_BIT_NOTE)
    rgb, alpha = _to_tensors(pixels)
    return LoadedImage(
        path=path,
        pixels=rgb,
        alpha=alpha,
        greyscale=pixels.greyscale,
        icc_profile=pixels.icc_profile,
        exif=exif,
        notes=notes,
        source_format=source_format,
    )


def _check_file(path: Path) -> None:
    """Catch the cases that have a clearer explanation than whatever Pillow would say about them."""
    if not path.exists():
        raise ImageInputError(path, "does not exist")
    if not path.is_file():
        raise ImageInputError(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise ImageInputError(path, "is empty (0 bytes)")


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily (header only); our own pixel limit, checked next, replaces Pillow's bomb warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageInputError(path, _bomb_problem(str(e), max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageInputError(path, _unidentified_problem(path)) from None
    except PermissionError as e:
        raise ImageInputError(path, f"cannot be read: {e.strerror}") from None
    except _DECODE_ERRORS as e:
        raise ImageInputError(path, f"is truncated or corrupt: {e}") from None


def _unidentified_problem(path: Path) -> str:
    """A file that starts like a known format but has no readable header is damaged, not foreign."""
    with path.open("rb") as fh:
        head = fh.read(16)
    kind = next((name for magic, name in _SIGNATURES.items() if head.startswith(magic)), None)
    if kind is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "WEBP"
    if kind is not None:
        return f"is truncated or corrupt: it starts like a {kind} file but its header cannot be read"
    return "is not an image Pillow can read"


def _bomb_problem(message: str, max_pixels: int) -> str:
    """Turn Pillow's DecompressionBombError text into our wording, naming whichever limit applied."""
    numbers = [int(n) for n in re.findall(r"(\d+) pixels", message)]
    if not numbers:
        return f"is too large to decode safely ({message})"
    pixels = numbers[0]
    if pixels > max_pixels or len(numbers) < 2:
        return _too_many_pixels(f"{pixels:,} pixels", max_pixels)
    return (
        f"has {pixels:,} pixels, more than Pillow's limit of {numbers[1]:,} pixels "
        "(PIL.Image.MAX_IMAGE_PIXELS); refused as a possible decompression bomb"
    )


def _too_many_pixels(what: str, max_pixels: int) -> str:
    return (
        f"is {what}, more than the limit of {max_pixels:,} pixels; refused as a possible decompression bomb"
    )


def _check_format(path: Path, img: Image.Image) -> None:
    """Pillow opens many exotic formats (some through external programs); only trust the common ones."""
    if img.format not in _READABLE_FORMATS:
        raise ImageInputError(
            path, f"is a {img.format} file; sfumato reads PNG, JPEG, WebP, TIFF, BMP and still GIF images"
        )


def _check_still(path: Path, img: Image.Image, notes: list[str]) -> None:
    """Refuse animations and multi-page files, whose other frames would silently be lost.

    A multi-picture JPEG (MPO) is the exception: cameras add depth maps or previews as extra pictures,
    and the first one is the photograph itself.
    """
    try:
        frames = int(getattr(img, "n_frames", 1))
    except _DECODE_ERRORS as e:
        raise ImageInputError(path, f"is truncated or corrupt: {e}") from None
    if frames <= 1:
        return
    if img.format == "MPO":
        notes.append(f"multi-picture JPEG ({frames} pictures): used the primary image only")
    elif img.format == "TIFF":
        raise ImageInputError(path, f"has {frames} pages; sfumato protects single still images")
    else:
        raise ImageInputError(path, f"is animated ({frames} frames); sfumato protects still images")


def _check_dimensions(path: Path, size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageInputError(
            path, _too_many_pixels(f"{width}x{height} = {width * height:,} pixels", max_pixels)
        )
    if min(width, height) < min_side:
        raise ImageInputError(path, f"is {width}x{height}; sfumato needs at least {min_side} px on each side")


def _has_16_bit_samples(img: Image.Image) -> bool:
    """Pillow reads 16-bit colour PNG/TIFF as 8-bit RGB; only the raw mode of its tiles tells."""
    for tile in img.tile:
        args = tile.args
        rawmode = args if isinstance(args, str) else next((a for a in args or () if isinstance(a, str)), "")
        if ";16" in rawmode:
            return True
    return False


def _decode(path: Path, img: Image.Image, max_pixels: int, notes: list[str]) -> None:
    """Force a full decode now: Image.open is lazy, and a truncated file only fails when read.

    Pillow rotates TIFFs upright during load() and deletes their orientation tag, so the tag is read
    first to record the conversion like any other.
    """
    tiff_orientation = _tiff_orientation(img)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as e:
        raise ImageInputError(path, _bomb_problem(str(e), max_pixels)) from None
    except _DECODE_ERRORS as e:
        raise ImageInputError(path, f"is truncated or corrupt: {e}") from None
    if tiff_orientation in range(2, 9) and _tiff_orientation(img) is None:
        notes.append(f"applied EXIF orientation {tiff_orientation}")


def _tiff_orientation(img: Image.Image) -> object:
    tags = getattr(img, "tag_v2", None)
    return None if tags is None else tags.get(_ORIENTATION_TAG)


def _read_exif(img: Image.Image, notes: list[str]) -> tuple[bytes | None, int]:
    """Return the EXIF block to keep (orientation reset to 1) and the orientation to apply.

    Only a real EXIF block is kept: for TIFF, Pillow's getexif() returns the file's own structural
    tags, which must not be copied into another file. The copy is edited, not ``img.getexif()``,
    which Pillow caches and exif_transpose reads afterwards. Malformed EXIF raises assorted exception
    types (or only warns), hence the long except clause.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exif = img.getexif()
            value = exif.get(_ORIENTATION_TAG, 1)
    except (*_DECODE_ERRORS, TypeError, KeyError, UserWarning) as e:
        notes.append(f"EXIF data unreadable ({e}); dropped it and ignored any orientation")
        return None, 1
    orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    if orientation != value:
        notes.append(f"ignored invalid EXIF orientation {value!r}")
    raw = img.info.get("exif")
    if not raw:
        return None, orientation
    if value == 1:
        return raw if raw.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + raw, orientation
    kept = Image.Exif()
    kept.load(raw)
    kept[_ORIENTATION_TAG] = 1
    return kept.tobytes(), orientation


def _upright(img: Image.Image, orientation: int, notes: list[str]) -> Image.Image:
    """Store pixels the way they are displayed, since the perturbation is computed on what people see."""
    if orientation == 1:
        return img
    notes.append(f"applied EXIF orientation {orientation}")
    return ImageOps.exif_transpose(img)


def _to_pixels(path: Path, img: Image.Image, icc: bytes | None, notes: list[str]) -> _Pixels:
    """Bring any Pillow mode to 8-bit planes (uint8) or better (float), noting each lossy or visible step."""
    mode = img.mode
    if mode == "CMYK":
        rgb = _cmyk_to_rgb(img, icc, notes)
        if icc:
            notes.append("dropped the CMYK ICC profile: an RGB file cannot carry it")
        return _split(rgb, greyscale=False, icc=None)
    if mode in _HIGH_BIT_GREY_MODES:
        return _Pixels(_high_bit_grey(img, notes), None, True, icc)
    if mode == "F":
        return _Pixels(_float_grey(path, img, notes), None, True, icc)
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or img.has_transparency_data else "RGB"
        notes.append(f"palette image converted to {target}")
        return _split(img.convert(target), greyscale=False, icc=icc)
    if mode == "1":
        notes.append("1-bit image converted to 8-bit greyscale")
        img = img.convert("L")
    elif mode in _PLAIN_CONVERSIONS:
        notes.append(f"converted {mode} to {_PLAIN_CONVERSIONS[mode]}")
        img = img.convert(_PLAIN_CONVERSIONS[mode])
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageInputError(path, f"has pixel mode {mode!r}, which sfumato cannot convert to RGB")
    return _split(img, greyscale=img.mode in ("L", "LA"), icc=icc)


def _split(img: Image.Image, *, greyscale: bool, icc: bytes | None) -> _Pixels:
    """8-bit planes stay 8-bit (see :class:`LoadedImage`); alpha becomes float, as it is only read."""
    planes = np.array(img)  # writable: torch refuses to share read-only memory
    if img.mode in ("LA", "RGBA"):
        colour = planes[..., 0] if greyscale else planes[..., :3]
        return _Pixels(colour, planes[..., -1].astype(np.float32) / 255, greyscale, icc)
    return _Pixels(planes, None, greyscale, icc)


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """Use the embedded profile when there is one: naive CMYK->RGB is far off for print separations."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                img, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError) as e:
            notes.append(f"converted CMYK to RGB without its ICC profile, which is unusable ({e})")
            return img.convert("RGB")
        notes.append("converted CMYK to RGB (sRGB) using the embedded ICC profile")
        return converted
    notes.append("converted CMYK to RGB (no ICC profile; colours are approximate)")
    return img.convert("RGB")


def _high_bit_grey(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Scale 16-bit samples by 65535 ourselves: Pillow's convert('L') would clip them at 255."""
    values = np.asarray(img).astype(np.float32)
    if values.min() < 0 or values.max() > 65535:
        notes.append("32-bit integer values outside 0..65535 were clipped")
    return np.clip(values / 65535, 0, 1)


def _float_grey(path: Path, img: Image.Image, notes: list[str]) -> np.ndarray:
    """Accept float images only in 0..1: any other range (HDR, scientific data) has no safe mapping."""
    values = np.array(img, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ImageInputError(path, "is a floating-point image containing NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ImageInputError(
            path,
            f"is a floating-point image with values from {low:g} to {high:g}; "
            "sfumato needs 0..1 (export it as an 8- or 16-bit image)",
        )
    notes.append("32-bit floating-point input; output is 8-bit")
    return values


def _to_tensors(pixels: _Pixels) -> tuple[torch.Tensor, torch.Tensor | None]:
    colour = torch.from_numpy(np.ascontiguousarray(pixels.colour))
    rgb = colour.expand(3, *colour.shape) if colour.ndim == 2 else colour.permute(2, 0, 1)
    alpha = None if pixels.alpha is None else torch.from_numpy(np.ascontiguousarray(pixels.alpha))[None]
    return rgb.contiguous(), alpha


# ----------------------------------------------------------------------------------------------- saving


def save_image(
    image: LoadedImage,
    rgb: torch.Tensor,
    path: Path | str,
    *,
    quality: int = 95,
    forbidden: Iterable[Path] = (),
) -> list[str]:
    """Save protected pixels with the source's alpha, ICC profile and EXIF; return warnings for the user.

    The format follows the suffix (none means PNG). PNG, TIFF, BMP and WebP at ``quality=100`` are
    lossless; JPEG and lossy WebP blur away part of the perturbation, which the warnings say. Pass every
    input of the batch as ``forbidden``, so no output can land on another input either.
    """
    target = Path(path)
    data, notes = encode_image(image, rgb, target, quality=quality, forbidden=forbidden)
    atomic_write_bytes(target, data)
    return notes


def encode_image(
    image: LoadedImage,
    rgb: torch.Tensor,
    path: Path | str,
    *,
    quality: int = 95,
    forbidden: Iterable[Path] = (),
) -> tuple[bytes, list[str]]:
    """The bytes :func:`save_image` would write to ``path``, and its warnings, without writing them.

    The batch needs the bytes first: their hash goes into the sidecar report, written before the image,
    so that a reader can always tell whether a report describes the image beside it.
    """
    target = Path(path)
    fmt = _save_format(target)
    _refuse_overwrite(image.path, target, forbidden)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer from 1 to 100, got {quality!r}")
    picture, notes = _compose(image, rgb, fmt)
    options, more = _save_options(image, picture.mode, fmt, quality)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue(), notes + more


def _save_format(target: Path) -> str:
    fmt = _SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        choices = ", ".join(s for s in _SAVE_FORMATS if s)
        raise ValueError(f"cannot save {target}: unsupported suffix {target.suffix!r}; use one of {choices}")
    return fmt


def _refuse_overwrite(source: Path, target: Path, forbidden: Iterable[Path]) -> None:
    for protected in (source, *forbidden):
        if _same_file(target, Path(protected)):
            raise ImageInputError(
                source,
                f"cannot be saved to {target}: that is the input file {protected}, "
                "and sfumato never overwrites its inputs",
            )


def _same_file(a: Path, b: Path) -> bool:
    """Compare resolved paths, and inodes too, to catch hard links and case-insensitive file systems."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _compose(image: LoadedImage, rgb: torch.Tensor, fmt: str) -> tuple[Image.Image, list[str]]:
    """Build the PIL image to write: grey where the source was grey, alpha where the format allows."""
    colour = to_pil(rgb)
    if colour.size != image.size:
        raise ValueError(
            f"protected image is {colour.size[0]}x{colour.size[1]}, but {image.path} is "
            f"{image.size[0]}x{image.size[1]}"
        )
    notes: list[str] = []
    alpha = None if image.alpha is None else Image.fromarray(_to_uint8(image.alpha[0]))
    if alpha is not None and fmt == "JPEG":
        notes.append(JPEG_ALPHA_WARNING)
        alpha = None
    grey_mode = "L" if alpha is None else "LA"
    if image.greyscale and grey_mode in _GREY_SAVE_MODES[fmt]:
        picture = Image.fromarray(_to_uint8(_checked(as_unit(rgb)).mean(dim=0)))
    else:
        picture = colour
    if alpha is not None:
        picture.putalpha(alpha)
    return picture, notes


def _save_options(
    image: LoadedImage, mode: str, fmt: str, quality: int
) -> tuple[dict[str, object], list[str]]:
    """Per-format encoder settings plus warnings about whatever the format cannot keep."""
    notes: list[str] = []
    options: dict[str, object] = {}
    if fmt == "JPEG":
        notes.append(JPEG_LOSSY_WARNING)
        options.update(quality=quality, subsampling=0)
    elif fmt == "WEBP" and quality < 100:
        notes.append("WebP below quality 100 is lossy and weakens the protection; prefer PNG or quality=100")
        options.update(quality=quality)
    elif fmt == "WEBP":
        options.update(lossless=True, quality=100, exact=True)
    elif fmt == "TIFF":
        options.update(compression="tiff_lzw")
    icc = _usable_icc(image.icc_profile, mode, notes)
    exif = image.exif
    if fmt == "BMP":
        notes.extend(
            f"BMP cannot store {what}; dropped"
            for what, kept in (("ICC profile", icc), ("EXIF", exif))
            if kept
        )
        return options, notes
    if fmt == "JPEG" and exif and len(exif) > _JPEG_MAX_EXIF:
        notes.append(f"EXIF block ({len(exif)} bytes) is too large for JPEG; dropped")
        exif = None
    options.update({k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v})
    return options, notes


def _usable_icc(icc: bytes | None, mode: str, notes: list[str]) -> bytes | None:
    """A profile for the wrong colour space (e.g. grey profile on RGB output) makes viewers misrender."""
    if not icc:
        return None
    space = icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 20 else "?"
    wanted = "GRAY" if mode in ("L", "LA") else "RGB"
    if space != wanted:
        notes.append(f"ICC profile is for {space}, not the {wanted} output; dropped")
        return None
    return icc


# --------------------------------------------------------------------------------------- tensors and PIL


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 (3, H, W) in [0, 1]."""
    if img.mode != "RGB":
        raise ValueError(f"to_tensor needs an RGB image, got mode {img.mode!r}; load files with load_image")
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def as_8bit(t: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
    """An image in 8 bits (uint8), as a saved file holds it: floats in [0, 1] rounded to nearest, 8-bit
    images as they are. A quarter of the memory of floats, for images kept whole (targets, results).
    ``in_place`` rounds ``t`` where it lies (a temporary the caller drops) instead of in one float copy."""
    if t.dtype == torch.uint8:
        return t
    scaled = t.detach().clamp_(0, 1) if in_place else t.detach().clamp(0, 1)
    return scaled.mul_(255).round_().to(torch.uint8)


def to_pil(rgb: torch.Tensor) -> Image.Image:
    """(3, H, W) -> RGB PIL image: float in [0, 1] rounded to nearest (so a load/save cycle is exact),
    or uint8 (a protected result) as it is, without a float copy."""
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor of shape (3, H, W), got {tuple(rgb.shape)}")
    if rgb.dtype == torch.uint8:
        return Image.fromarray(np.ascontiguousarray(rgb.detach().cpu().permute(1, 2, 0).numpy()))
    return Image.fromarray(_to_uint8(_checked(rgb).permute(1, 2, 0)))


def _checked(values: torch.Tensor) -> torch.Tensor:
    if not values.is_floating_point():
        raise ValueError(f"expected a floating-point tensor in [0, 1], got {values.dtype}")
    values = values.detach().to("cpu", torch.float32)
    if not torch.isfinite(values).all():
        raise ValueError("image tensor contains NaN or infinite values")
    return values


def _to_uint8(values: torch.Tensor) -> np.ndarray:
    """Round, not truncate: truncation darkens every pixel by half a level on average."""
    return np.ascontiguousarray(as_8bit(_checked(values)).numpy())


# ------------------------------------------------------------------------------------------ file system


def collect_inputs(
    inputs: Sequence[Path | str], *, ignored: list[tuple[Path, str]] | None = None
) -> list[tuple[Path, Path]]:
    """Expand files and folders into (file, path relative to the output folder), in a stable order.

    Folders are searched recursively, skipping hidden entries and unsupported suffixes. A file named
    explicitly is always returned, so that load_image can say what is wrong with it instead of it being
    silently ignored. Pictures met in a folder but not protected (GIF, HEIC, ...) and broken links are
    appended to ``ignored`` with the reason, for the caller to name. The same file reached twice is kept
    once; two different files that would be written to the same relative path are refused rather than
    one overwriting the other's output.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            found.extend(_walk(root, ignored if ignored is not None else []))
        elif root.exists():
            found.append((root, Path(root.name)))
        else:
            raise ImageInputError(root, "does not exist")
    return _unique(found)


# Picture formats an artist's folder may hold that sfumato does not protect: named, not silently skipped.
_UNPROTECTED_PICTURES = {
    ".gif": "GIF is not protected (it may be animated); convert it to PNG to protect it",
    ".heic": "HEIC is not read; export it as PNG or JPEG",
    ".heif": "HEIF is not read; export it as PNG or JPEG",
    ".avif": "AVIF is not read; export it as PNG or JPEG",
    ".jxl": "JPEG XL is not read; export it as PNG or JPEG",
    ".psd": "a Photoshop file is not read; export it as PNG",
    ".svg": "a vector drawing is not read; export it as PNG",
    ".ico": "an icon is not protected",
    ".jp2": "JPEG 2000 is not read; export it as PNG",
    ".dng": "a raw photo is not read; export it as PNG or JPEG",
}


def _walk(root: Path, ignored: list[tuple[Path, str]]) -> list[tuple[Path, Path]]:
    found = []
    for folder, dirnames, filenames in os.walk(root, onerror=_unlistable):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            file = Path(folder, name)
            suffix = file.suffix.lower()
            if name.startswith("."):
                continue
            if suffix in _UNPROTECTED_PICTURES:
                ignored.append((file, _UNPROTECTED_PICTURES[suffix]))
            elif suffix in SUPPORTED_SUFFIXES:
                if file.is_file():
                    found.append((file, file.relative_to(root)))
                elif file.is_symlink() and not file.exists():
                    ignored.append((file, f"is a broken link (to {os.readlink(file)})"))
                else:
                    ignored.append((file, "is not a regular file"))
    return sorted(found, key=lambda pair: pair[1].parts)


def _unlistable(error: OSError) -> None:
    """os.walk skips unreadable folders silently; a batch must not quietly leave part of a portfolio out."""
    raise ImageInputError(Path(error.filename or "."), f"cannot be listed: {error.strerror or error}")


def _unique(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    seen: set[Path] = set()
    owners: dict[Path, Path] = {}
    result = []
    for file, relative in found:
        key = file.resolve()
        if key in seen:
            continue
        seen.add(key)
        owner = owners.setdefault(relative, file)
        if owner != file:
            raise ImageInputError(file, f"would be written to the same output path {relative} as {owner}")
        result.append((file, relative))
    return result


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write so that readers see the old file or the new one, never a half-written one."""
    with _atomic_open(Path(path)) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic UTF-8 text write (reports, manifests)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def _atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Yield a hidden temp file next to ``path``; replace ``path`` with it only if the block succeeds.

    The temp file lives in the same directory so os.replace is a rename on one file system. It is
    created with mode 0o666 filtered by the umask, the permissions a plain open() would give.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
