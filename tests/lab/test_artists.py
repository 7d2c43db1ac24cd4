"""The mimicry experiment's artists: deterministic, distinct from each other and from the cloak's styles,
and split so that no work the style judge learns from is ever mimicked."""

from __future__ import annotations

import itertools

import pytest
import torch
from tests.conftest import PHOTOS, SHARED, VANGOGH

from sfumato.lab.data.artists import (
    ARTISTS,
    BLOCK,
    JUDGE_CLASSES,
    MIMICRY_WORKS,
    PHOTO,
    STYLE_BLOCK,
    VANGOGH_JUDGE,
    cut_views,
    photo_files,
    render_artist,
    views_of,
    work_files,
    works,
)
from sfumato.styles import STYLE_NAMES, render_style

needs_shared = pytest.mark.skipif(
    not (PHOTOS.is_dir() and VANGOGH.is_dir()), reason=f"photos and paintings not found in {SHARED}"
)
RENDERED = [k for k, a in ARTISTS.items() if a.render is not None]


def _synthetic(h: int = 96, w: int = 128) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.06).float()
    return torch.stack([xx, yy * (1 - disc) + disc * 0.2, 0.5 + 0.4 * disc - 0.3 * xx]).clamp(0, 1)


def test_renderings_are_deterministic_and_keep_shape() -> None:
    x = _synthetic()
    for key in RENDERED:
        a, b = render_artist(key, x, seed=3), render_artist(key, x, seed=3)
        assert a.shape == x.shape and torch.equal(a, b), key
        assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(render_artist(PHOTO, x), x)


def test_views_depend_on_the_seed_and_shape_only() -> None:
    work = (_synthetic() * 255).round().to(torch.uint8)
    a = cut_views(work, 6, seed=11)
    b = cut_views(255 - work, 6, seed=11)  # other pixels, same crops: the views are inverted too
    assert a.shape == (6, 3, 64, 64) and a.dtype == torch.uint8
    assert int((a.int() + b.int() - 255).abs().max()) <= 1
    assert not torch.equal(a, cut_views(work, 6, seed=12))
    spread = views_of("x", [work, work, work], 7)
    assert spread.shape[0] == 7


@needs_shared
def test_splits_are_disjoint() -> None:
    files = photo_files(SHARED)
    assert len(files) == len(set(files)) and len(files) >= (STYLE_BLOCK + 1) * BLOCK
    assert photo_files(SHARED) == files  # a fixed order
    owners: dict[str, str] = {}
    for key in [*ARTISTS, STYLE_NAMES[0]]:  # the built-in styles share one block of photos
        for part in ["judge"] if key in STYLE_NAMES else ["judge", "mimicry"]:
            for path in work_files(key, part, SHARED):
                assert path.name not in owners, f"{path.name} used by {owners[path.name]} and {key}/{part}"
                owners[path.name] = f"{key}/{part}"
    assert work_files("sketch", "judge", SHARED) == work_files("neon", "judge", SHARED)
    vg_judge, vg_mimic = (work_files("van-gogh", part, SHARED) for part in ("judge", "mimicry"))
    assert len(vg_judge) == len(VANGOGH_JUDGE) == 8 and len(vg_mimic) == 12
    assert len(work_files("riso", "mimicry", SHARED)) == MIMICRY_WORKS


@needs_shared
def test_works_are_deterministic_and_distinct_from_the_cloak_styles() -> None:
    first = works("ukiyo-e", "mimicry", SHARED, limit=2)
    again = works("ukiyo-e", "mimicry", SHARED, limit=2)
    assert all(torch.equal(a, b) for a, b in zip(first.images, again.images, strict=True))
    assert min(first.images[0].shape[1:]) == 128
    # Every rendering, on the same photos, is far from every other artist's and every built-in style.
    photos = works(PHOTO, "judge", SHARED, limit=2).images
    for x in photos:
        x = x.float() / 255
        looks = {k: render_artist(k, x) for k in RENDERED}
        looks.update({s: render_style(s, x) for s in STYLE_NAMES})
        looks[PHOTO] = x
        for a, b in itertools.combinations(looks, 2):
            if a in RENDERED or b in RENDERED:
                assert float((looks[a] - looks[b]).abs().mean()) > 0.08, (a, b)
    assert set(JUDGE_CLASSES) == {*ARTISTS, *STYLE_NAMES}
