"""Tests for sfumato.imageio: every bad input gets a specific message or a correct conversion."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, TiffImagePlugin

from sfumato.imageio import (
    JPEG_ALPHA_WARNING,
    JPEG_LOSSY_WARNING,
    SIXTEEN_BIT_NOTE,
    ImageInputError,
    LoadedImage,
    atomic_write_bytes,
    atomic_write_text,
    collect_inputs,
    load_image,
    save_image,
    to_pil,
    to_tensor,
)

SIDE = 64


def _rgb_array(width: int = SIDE, height: int = SIDE) -> np.ndarray:
    """Deterministic, non-trivial pixels so round-trip tests can catch shifts and flips."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 3 % 256, y * 5 % 256, (x + y) * 7 % 256], axis=-1).astype(np.uint8)


def _save(img: Image.Image, path: Path, **options: object) -> Path:
    img.save(path, **options)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_header(path: Path, width: int, height: int, depth: int, colour_type: int, rows: bytes) -> Path:
    """Hand-built PNG: Pillow cannot write 16-bit colour, nor a header that lies about the image size."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    body = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _problem(path: Path, **kwargs: object) -> str:
    with pytest.raises(ImageInputError) as caught:
        load_image(path, **kwargs)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    return str(caught.value)


# ------------------------------------------------------------------------------------------ bad inputs


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "is empty (0 bytes)" in _problem(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in _problem(tmp_path / "nope.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = _save(Image.fromarray(_rgb_array(96, 96)), tmp_path / f"cut{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "is truncated or corrupt" in _problem(path)


def test_header_only_fragment_is_reported_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "stub.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "is truncated or corrupt: it starts like a PNG" in _problem(path)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    assert "is not an image Pillow can read" in _problem(path)


def test_unsupported_container_format(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_rgb_array()), tmp_path / "picture.pcx")
    assert "is a PCX file" in _problem(path)


def test_too_many_pixels_refused_from_header(tmp_path: Path) -> None:
    path = _save(Image.fromarray(_rgb_array(100, 80)), tmp_path / "big.png")
    message = _problem(path, max_pixels=5000)
    assert "100x80 = 8,000 pixels" in message and "limit of 5,000 pixels" in message


@pytest.mark.parametrize(("width", "height"), [(12_000, 10_000), (20_000, 20_000)])
def test_decompression_bomb_header_is_refused_without_decoding(
    tmp_path: Path, width: int, height: int
) -> None:
    """The IDAT holds one row, so any attempt to decode would fail as truncated instead."""
    path = _png_with_header(tmp_path / "bomb.png", width, height, 1, 0, b"\x00" + bytes(width // 8))
    message = _problem(path)
    assert f"{width * height:,} pixels" in message and "decompression bomb" in message


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_refused(tmp_path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (SIDE, SIDE), colour) for colour in ("red", "lime", "blue")]
    path = _save(frames[0], tmp_path / f"anim.{fmt.lower()}", save_all=True, append_images=frames[1:])
    assert "is animated (3 frames); sfumato protects still images" in _problem(path)


def test_multi_page_tiff_refused(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (SIDE, SIDE), colour) for colour in ("red", "blue")]
    path = _save(pages[0], tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert "has 2 pages" in _problem(path)


def test_too_small(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (63, 80)), tmp_path / "small.png")
    assert "is 63x80; sfumato needs at least 64 px on each side" in _problem(path)


def test_float_image_out_of_range_refused(tmp_path: Path) -> None:
    path = _save(Image.fromarray(np.full((SIDE, SIDE), 3.5, np.float32)), tmp_path / "hdr.tif")
    assert "values from 3.5 to 3.5" in _problem(path)


# ----------------------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_converted_to_rgb(tmp_path: Path, suffix: str) -> None:
    path = _save(Image.new("CMYK", (SIDE, SIDE), (255, 0, 0, 0)), tmp_path / f"cyan{suffix}")
    image = load_image(path)
    assert torch.allclose(image.rgb[:, 5, 5], torch.tensor([0.0, 1.0, 1.0]), atol=0.02)
    assert any(note.startswith("converted CMYK to RGB") for note in image.notes)
    assert not image.greyscale and image.icc_profile is None


def test_cmyk_with_unusable_profile_falls_back_and_drops_it(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = _save(Image.new("CMYK", (SIDE, SIDE), (255, 0, 0, 0)), tmp_path / "cyan.tif", icc_profile=srgb)
    image = load_image(path)
    assert image.rgb[:, 0, 0].tolist() == [0.0, 1.0, 1.0]
    assert image.icc_profile is None
    assert any("unusable" in note for note in image.notes)
    assert any("dropped the CMYK ICC profile" in note for note in image.notes)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_scaled_by_65535(tmp_path: Path, suffix: str) -> None:
    values = np.zeros((SIDE, SIDE), np.uint16)
    values[0, 0], values[0, 1], values[0, 2] = 65535, 32768, 257
    path = _save(Image.fromarray(values), tmp_path / f"deep{suffix}")
    image = load_image(path)
    assert image.greyscale and SIXTEEN_BIT_NOTE in image.notes
    assert image.rgb[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert image.rgb[0, 0, 1].item() == pytest.approx(32768 / 65535)
    assert image.rgb[0, 0, 2].item() == pytest.approx(1 / 255)


def test_16_bit_colour_png_noted(tmp_path: Path) -> None:
    pixels = np.full((SIDE, SIDE, 3), 65535, np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    image = load_image(_png_with_header(tmp_path / "deep.png", SIDE, SIDE, 16, 2, rows))
    assert SIXTEEN_BIT_NOTE in image.notes
    assert torch.all(image.rgb == 1.0)


@pytest.mark.parametrize("transparent", [True, False])
def test_palette_converted(tmp_path: Path, transparent: bool) -> None:
    palette_image = Image.fromarray(_rgb_array()).quantize(16)
    options = {"transparency": 0} if transparent else {}
    image = load_image(_save(palette_image, tmp_path / "pal.png", **options))
    expected = np.asarray(palette_image.convert("RGB"), np.float32) / 255
    assert np.allclose(image.rgb.permute(1, 2, 0).numpy(), expected)
    assert (image.alpha is not None) == transparent
    assert f"palette image converted to {'RGBA' if transparent else 'RGB'}" in image.notes


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_greyscale_gives_three_equal_channels(tmp_path: Path, mode: str) -> None:
    grey = Image.fromarray(_rgb_array()[..., 0]).convert(mode)
    image = load_image(_save(grey, tmp_path / "grey.png"))
    assert image.greyscale
    assert torch.equal(image.rgb[0], image.rgb[1]) and torch.equal(image.rgb[1], image.rgb[2])
    assert (image.alpha is not None) == (mode == "LA")


def test_exif_orientation_applied_and_reset(tmp_path: Path) -> None:
    """Orientation 6 means 'rotate 90 degrees clockwise to display': a top-left mark ends top-right."""
    stored = np.zeros((SIDE, 96, 3), np.uint8)
    stored[:16, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera"
    path = _save(Image.fromarray(stored), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    image = load_image(path)
    assert image.size == (SIDE, 96)
    assert image.rgb[0, 4, -4] > 0.9 and image.rgb[0, 4, 4] < 0.1
    assert "applied EXIF orientation 6" in image.notes
    kept = Image.Exif()
    kept.load(image.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "Camera"


def test_tiff_orientation_applied(tmp_path: Path) -> None:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 8
    path = _save(Image.fromarray(_rgb_array(96, SIDE)), tmp_path / "turned.tif", tiffinfo=tags)
    image = load_image(path)
    assert image.size == (SIDE, 96) and "applied EXIF orientation 8" in image.notes
    expected = np.asarray(Image.fromarray(_rgb_array(96, SIDE)).transpose(Image.Transpose.ROTATE_90))
    assert np.array_equal((image.rgb * 255).round().byte().permute(1, 2, 0).numpy(), expected)


def test_lab_converted(tmp_path: Path) -> None:
    path = _save(Image.new("LAB", (SIDE, SIDE), (255, 128, 128)), tmp_path / "lab.tif")
    image = load_image(path)
    assert "converted LAB to RGB" in image.notes
    assert torch.all(image.rgb > 0.95)


def test_float_image_in_unit_range_accepted(tmp_path: Path) -> None:
    path = _save(Image.fromarray(np.full((SIDE, SIDE), 0.25, np.float32)), tmp_path / "f.tif")
    image = load_image(path)
    assert image.greyscale and image.rgb[0, 0, 0].item() == 0.25


def test_multi_picture_jpeg_uses_primary(tmp_path: Path) -> None:
    first, second = Image.new("RGB", (SIDE, SIDE), "red"), Image.new("RGB", (SIDE, SIDE), "blue")
    path = _save(first, tmp_path / "camera.jpg", format="MPO", save_all=True, append_images=[second])
    image = load_image(path)
    assert image.rgb[0, 0, 0] > 0.9 and any("multi-picture" in note for note in image.notes)


# --------------------------------------------------------------------------------------------- saving


def _loaded(tmp_path: Path, img: Image.Image, name: str = "in.png", **options: object) -> LoadedImage:
    return load_image(_save(img, tmp_path / name, **options))


def test_png_round_trip_is_exact_with_alpha_and_icc(tmp_path: Path) -> None:
    pixels = np.dstack([_rgb_array(), np.arange(SIDE * SIDE, dtype=np.uint8).reshape(SIDE, SIDE)])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = _loaded(tmp_path, Image.fromarray(pixels), icc_profile=icc)
    assert image.icc_profile == icc
    warnings = save_image(image, image.rgb, tmp_path / "out" / "protected.png")
    assert warnings == []
    with Image.open(tmp_path / "out" / "protected.png") as saved:
        assert saved.mode == "RGBA" and saved.info["icc_profile"] == icc
        assert np.array_equal(np.asarray(saved), pixels)


def test_save_rounds_rather_than_truncates(tmp_path: Path) -> None:
    image = _loaded(tmp_path, Image.new("RGB", (SIDE, SIDE)))
    save_image(image, torch.full((3, SIDE, SIDE), 0.7 / 255), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as saved:
        assert saved.getpixel((0, 0)) == (1, 1, 1)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_saved_as_grey(tmp_path: Path, mode: str) -> None:
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()[..., 1]).convert(mode))
    rgb = image.rgb.clone()
    rgb[0] += 3 / 255
    save_image(image, rgb.clamp(0, 1), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as saved:
        assert saved.mode == mode
        expected = np.clip(np.asarray(Image.fromarray(_rgb_array()[..., 1])).astype(int) + 1, 0, 255)
        assert np.array_equal(np.asarray(saved.getchannel(0)), expected)


def test_jpeg_warns_and_drops_alpha(tmp_path: Path) -> None:
    image = _loaded(tmp_path, Image.new("RGBA", (SIDE, SIDE), (10, 20, 30, 128)))
    warnings = save_image(image, image.rgb, tmp_path / "out.jpg")
    assert JPEG_LOSSY_WARNING in warnings and JPEG_ALPHA_WARNING in warnings
    with Image.open(tmp_path / "out.jpg") as saved:
        assert saved.mode == "RGB"


def test_exif_kept_on_save(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()), "in.jpg", exif=exif.tobytes())
    save_image(image, image.rgb, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as saved:
        assert saved.getexif()[0x0112] == 1


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".bmp"])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()))
    save_image(image, image.rgb, tmp_path / f"out{suffix}", quality=100)
    assert torch.equal(load_image(tmp_path / f"out{suffix}").rgb, image.rgb)


def test_refuses_to_overwrite_inputs(tmp_path: Path) -> None:
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()))
    other = _save(Image.fromarray(_rgb_array()), tmp_path / "other.png")
    before = image.path.read_bytes()
    (tmp_path / "sub").mkdir()
    for target in (image.path, tmp_path / "sub" / ".." / "in.png"):
        with pytest.raises(ImageInputError, match="never overwrites its inputs"):
            save_image(image, image.rgb * 0, target)
    with pytest.raises(ImageInputError, match="other.png"):
        save_image(image, image.rgb, other, forbidden=[other])
    assert image.path.read_bytes() == before


def test_save_rejects_wrong_shape_and_suffix(tmp_path: Path) -> None:
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()))
    with pytest.raises(ValueError, match="64x32"):
        save_image(image, torch.zeros(3, 32, 64), tmp_path / "out.png")
    with pytest.raises(ValueError, match="unsupported suffix '.gif'"):
        save_image(image, image.rgb, tmp_path / "out.gif")


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    image = _loaded(tmp_path, Image.fromarray(_rgb_array()))
    out = tmp_path / "out"
    save_image(image, image.rgb, out / "a.png")
    atomic_write_text(out / "report.txt", "ok\n")
    atomic_write_bytes(out / "report.txt", b"replaced\n")
    assert sorted(os.listdir(out)) == ["a.png", "report.txt"]
    assert (out / "report.txt").read_bytes() == b"replaced\n"


def test_failed_atomic_write_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "taken", b"data")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


# ------------------------------------------------------------------------------------------ utilities


def test_to_pil_and_to_tensor_round_trip() -> None:
    pixels = Image.fromarray(_rgb_array())
    assert np.array_equal(np.asarray(to_pil(to_tensor(pixels))), np.asarray(pixels))
    with pytest.raises(ValueError, match="NaN"):
        to_pil(torch.full((3, 4, 4), float("nan")))


def test_collect_inputs_nested_folder(tmp_path: Path) -> None:
    root = tmp_path / "art"
    for name in [
        "b.png",
        "a.JPG",
        "sub/c.webp",
        "sub/deeper/d.tif",
        "notes.txt",
        ".hidden.png",
        ".cache/e.png",
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    loose = tmp_path / "loose.txt"
    loose.write_text("x")
    found = collect_inputs([root, str(loose), root / "b.png"])
    assert [relative.as_posix() for _, relative in found] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
        "sub/deeper/d.tif",
        "loose.txt",
    ]
    assert found[2][0] == root / "sub" / "c.webp"


def test_collect_inputs_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="does not exist"):
        collect_inputs([tmp_path / "missing"])
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.png").write_bytes(b"x")
    with pytest.raises(ImageInputError, match="same output path"):
        collect_inputs([tmp_path / "one" / "same.png", tmp_path / "two" / "same.png"])
