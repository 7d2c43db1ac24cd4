from __future__ import annotations

import pytest
import torch
from tests.conftest import photo

from sfumato.budget import INTENSITY, Budget, jnd_map, make_budget
from sfumato.imageio import to_tensor
from sfumato.quality import flat_mask


def test_linf_gives_every_pixel_the_same_bound():
    a = make_budget("default", "linf").allowance(torch.rand(2, 3, 40, 50))
    assert a.shape == (2, 1, 40, 50)
    assert torch.allclose(a, torch.full_like(a, INTENSITY["linf"]["default"]["eps"]))


def test_jnd_allows_less_on_flat_colour_than_on_texture():
    flat = torch.full((1, 3, 64, 64), 0.6)
    texture = torch.rand(1, 3, 64, 64) * 0.5 + 0.25
    image = torch.cat([flat, texture], dim=-1)
    a = make_budget("default", "jnd").allowance(image)
    assert a[..., :, 8:56].mean() < 0.5 * a[..., :, 72:120].mean()
    assert float(a.max()) <= INTENSITY["jnd"]["default"]["eps"] + 1e-7


def test_jnd_on_a_photo_spends_less_in_flat_regions():
    x = to_tensor(photo("goldfish", (256, 256)))[None]
    a = make_budget("default", "jnd").allowance(x)
    m = flat_mask(x)
    if m.any():
        assert a[m].mean() < a[~m].mean()


def test_intensity_presets_are_ordered():
    x = torch.rand(1, 3, 32, 32)
    for kind in ("linf", "jnd"):
        means = [float(make_budget(i, kind).allowance(x).mean()) for i in ("low", "default", "high")]
        assert means == sorted(means) and means[0] < means[2]


def test_overrides_and_errors():
    assert make_budget("default", "linf", eps=2 / 255).eps == pytest.approx(2 / 255)
    assert make_budget("high", "jnd", scale=0.3).scale == 0.3
    with pytest.raises(ValueError, match="intensity"):
        make_budget("extreme")
    with pytest.raises(ValueError, match="kind"):
        Budget(kind="l2")
    with pytest.raises(ValueError, match="eps"):
        Budget(kind="linf", eps=0.5)


def test_jnd_map_is_higher_in_the_dark_than_mid_grey():
    dark, mid = torch.full((1, 3, 16, 16), 0.02), torch.full((1, 3, 16, 16), 0.5)
    assert jnd_map(dark).mean() > jnd_map(mid).mean()
