"""Tests for the built-in target styles (sfumato.styles)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sfumato.imageio import as_8bit
from sfumato.styles import STYLE_DESCRIPTIONS, STYLE_NAMES, render_style

SHARED_PHOTO = Path(__file__).resolve().parents[2] / "shared/data/imagenet-samples/n03877845_palace.jpg"


def synthetic(h: int = 70, w: int = 97, grey: bool = False) -> torch.Tensor:
    """A small picture: colour gradients, a disc, a bar and some texture (deterministic)."""
    yy = torch.linspace(0, 1, h)[:, None].expand(h, w)
    xx = torch.linspace(0, 1, w)[None, :].expand(h, w)
    img = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.8 - 0.6 * xx * yy])
    disc = ((yy - 0.45) ** 2 + (xx - 0.35) ** 2) < 0.06
    img[:, disc] = torch.tensor([0.95, 0.75, 0.1])[:, None]
    bar = (xx > 0.65) & (xx < 0.8) & (yy > 0.2)
    img[:, bar] = torch.tensor([0.1, 0.15, 0.35])[:, None]
    img = img + 0.05 * torch.sin(xx * 40) * torch.cos(yy * 31)
    img = img.clamp(0, 1)
    if grey:
        img = img.mean(0, keepdim=True).expand(3, h, w).contiguous()
    return img


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return synthetic()


@pytest.fixture(scope="module")
def rendered(image) -> dict[str, torch.Tensor]:
    return {name: render_style(name, image) for name in STYLE_NAMES}


def test_catalogue():
    assert len(STYLE_NAMES) >= 6
    assert len(set(STYLE_NAMES)) == len(STYLE_NAMES)
    assert set(STYLE_DESCRIPTIONS) == set(STYLE_NAMES)
    for name in STYLE_NAMES:
        desc = STYLE_DESCRIPTIONS[name]
        assert isinstance(desc, str) and 10 < len(desc) < 120


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_shape_range_dtype(name, image, rendered):
    out = rendered[name]
    assert out.shape == image.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_deterministic_and_input_untouched(name, image, rendered):
    before = image.clone()
    again = render_style(name, image, seed=0)
    assert torch.equal(again, rendered[name])
    assert torch.equal(image, before)


@pytest.mark.parametrize("name", ["mosaic", "pointillism", "woodcut"])
def test_seed_changes_random_styles(name, image, rendered):
    assert not torch.equal(render_style(name, image, seed=1), rendered[name])


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_differs_from_input(name, image, rendered):
    assert (rendered[name] - image).abs().mean() > 0.06


def test_styles_differ_from_each_other(rendered):
    for a, b in itertools.combinations(STYLE_NAMES, 2):
        assert (rendered[a] - rendered[b]).abs().mean() > 0.04, (a, b)


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_batch_matches_single(name, image, rendered):
    other = synthetic().flip(-1)
    out = render_style(name, torch.stack([image, other]))
    assert out.shape == (2, *image.shape)
    assert torch.equal(out[0], rendered[name])
    assert torch.equal(out[1], render_style(name, other))


@pytest.mark.parametrize("name", STYLE_NAMES)
@pytest.mark.parametrize("size", [(64, 64), (65, 131)])
def test_sizes_and_greyscale(name, size):
    img = synthetic(*size, grey=True)
    out = render_style(name, img, seed=3)
    assert out.shape == img.shape
    assert torch.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    # a smooth grey gradient is the hardest case for the posterising styles (pixel, comic)
    assert (out - img).abs().mean() > 0.02


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_flat_image(name):
    img = torch.full((3, 64, 80), 0.5)
    out = render_style(name, img)
    assert torch.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_scale_aware(name):
    """The look (its overall colour) is about the same when the same picture is twice as large."""
    small = render_style(name, synthetic(96, 128))
    large = render_style(name, synthetic(192, 256))
    large_down = F.interpolate(large[None], size=(96, 128), mode="area")[0]
    mean_gap = (small.mean((1, 2)) - large_down.mean((1, 2))).abs().max()
    assert mean_gap < 0.08, mean_gap


def test_errors(image):
    with pytest.raises(ValueError) as err:
        render_style("impressionism", image)
    for name in STYLE_NAMES:
        assert name in str(err.value)
    with pytest.raises(ValueError):
        render_style("sketch", torch.rand(4, 32, 32))
    with pytest.raises(ValueError):
        render_style("sketch", torch.rand(32, 32))


@pytest.mark.skipif(not SHARED_PHOTO.exists(), reason="shared sample photos not available")
def test_real_photo():
    from PIL import Image

    im = Image.open(SHARED_PHOTO).convert("RGB").resize((120, 90), Image.BILINEAR)
    img = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(90, 120, 3)
    img = img.permute(2, 0, 1).float() / 255.0
    outs = {name: render_style(name, img) for name in STYLE_NAMES}
    for name, out in outs.items():
        assert out.shape == img.shape
        assert (out - img).abs().mean() > 0.05, name
    for a, b in itertools.combinations(STYLE_NAMES, 2):
        assert (outs[a] - outs[b]).abs().mean() > 0.04, (a, b)


def test_an_8_bit_image_renders_in_8_bits_as_its_floats_round():
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=g)
    for name in STYLE_NAMES:
        out = render_style(name, pixels, seed=2)
        assert out.dtype == torch.uint8 and out.shape == pixels.shape
        assert torch.equal(out, as_8bit(render_style(name, pixels.float() / 255, seed=2))), name


@pytest.mark.parametrize("analysis", [None, 48])
def test_bands_render_what_the_whole_picture_renders(monkeypatch: pytest.MonkeyPatch, analysis) -> None:
    """Large pictures are rendered a band of rows at a time, each with a halo as wide as its filters
    reach: with bands of 5 rows (narrower than any halo) the result is the one-band result. With a small
    analysis copy (as a picture above 768 px has) the whole-picture decisions are enlarged band by band."""
    import sfumato.styles as styles

    image = synthetic(83, 97)
    if analysis:
        monkeypatch.setattr(styles, "_ANALYSIS", analysis)
    whole = {name: render_style(name, image, seed=4) for name in STYLE_NAMES}
    monkeypatch.setattr(styles, "_BAND_PIXELS", 5 * 97)
    for name in STYLE_NAMES:
        banded = render_style(name, image, seed=4)
        assert (banded - whole[name]).abs().max() < 1e-5, name
