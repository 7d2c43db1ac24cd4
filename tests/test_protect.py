from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import VANGOGH, photo

import sfumato
from sfumato.imageio import to_tensor
from sfumato.targets import choose_anchor, fit_to, latent_style_transfer

FAST = dict(steps=2, device="cpu")


def test_shade_returns_same_kind_and_size_with_a_report(dog, cat, weights_dir):
    out = sfumato.shade(dog, cat, concept="dog", as_concept="cat", weights_dir=weights_dir, **FAST)
    assert isinstance(out.image, Image.Image) and out.image.size == dog.size and out.image.mode == "RGB"
    r = out.report
    assert r["settings"]["mode"] == "shade" and r["caption"] == "dog"
    lat = r["effect"]["latents"]
    assert lat["flux2"]["attacked"] and lat["sana"]["attacked"]  # the default: both fetchable families
    assert lat["flux2"]["fraction_moved"] > 0.02
    q = r["effect"]["quality"]
    assert q["psnr_db"] > 33 and q["max_change"] <= 6.5  # default jnd cap 6/255, plus rounding


def test_results_are_reproducible(dog, cat, weights_dir):
    a = sfumato.shade(dog, cat, weights_dir=weights_dir, seed=3, **FAST)
    b = sfumato.shade(dog, cat, weights_dir=weights_dir, seed=3, **FAST)
    assert torch.equal(a.tensor, b.tensor)


def test_tensor_in_tensor_out_and_linf_budget(dog, cat, weights_dir):
    x = to_tensor(dog)
    out = sfumato.shade(x, to_tensor(cat), budget="linf", intensity="low", weights_dir=weights_dir, **FAST)
    assert isinstance(out.image, torch.Tensor) and out.image.shape == x.shape
    assert (out.image - x).abs().max() <= 3.5 / 255 + 1e-6  # low linf bound 3/255 plus 8-bit rounding


def test_greyscale_stays_grey_and_alpha_is_kept(dog, cat, weights_dir):
    grey = sfumato.cloak(dog.convert("L"), "sketch", weights_dir=weights_dir, **FAST)
    assert grey.image.mode == "L"
    rgba = dog.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(dog.size))
    out = sfumato.cloak(rgba, "mosaic", weights_dir=weights_dir, **FAST)
    assert out.image.mode == "RGBA"
    assert np.array_equal(np.asarray(out.image.getchannel("A")), np.asarray(rgba.getchannel("A")))


def test_cloak_auto_picks_a_middling_to_far_builtin_style(weights_dir):
    art = photo("goldfish", (96, 96))
    out = sfumato.cloak(art, "auto", weights_dir=weights_dir, **FAST)
    chosen, dist = out.report["style"], out.report["style_distances"]
    assert chosen in sfumato.STYLE_NAMES
    ranked = sorted(dist, key=dist.get)
    assert ranked.index(chosen) >= len(ranked) // 2


def test_cloak_with_a_style_image(weights_dir):
    paintings = sorted(VANGOGH.glob("*.png"))
    if not paintings:
        pytest.skip("no Van Gogh paintings in ../shared")
    art = photo("goldfish", (96, 64))
    out = sfumato.cloak(art, style_image=paintings[0], weights_dir=weights_dir, **FAST)
    assert out.target.shape == (1, 3, 64, 96)
    assert out.report["settings"]["style_image"] == paintings[0].name  # a display name, never a path
    assert len(out.report["settings"]["style_image_sha256"]) == 16


def test_unknown_style_and_speed_are_clear_errors(dog, weights_dir):
    with pytest.raises(ValueError, match="unknown style"):
        sfumato.cloak(dog, "cubism", weights_dir=weights_dir, **FAST)
    with pytest.raises(ValueError, match="speed"):
        sfumato.cloak(dog, "sketch", speed="ludicrous", weights_dir=weights_dir, device="cpu")


def test_fit_to_and_anchor_choice():
    t = fit_to(torch.rand(1, 3, 100, 300), 64, 64)
    assert t.shape == (1, 3, 64, 64)
    from pathlib import Path

    cands = [(Path("wide.jpg"), (300, 100)), (Path("tall.jpg"), (100, 300)), (Path("tall2.jpg"), (110, 300))]
    assert choose_anchor((90, 280), cands, "a").name.startswith("tall")
    picks = {choose_anchor((90, 280), cands, k).name for k in "abcdefgh"}
    assert picks == {"tall.jpg", "tall2.jpg"}


def test_latent_style_transfer_takes_the_reference_colours(weights_dir):
    from sfumato.encoders import load_decoder, load_encoder

    x = to_tensor(photo("goldfish", (128, 96)))[None]
    ref = torch.zeros(1, 3, 96, 96)
    ref[:, 2] = 0.9  # a blue reference
    y = latent_style_transfer(x, ref, load_encoder("flux2", weights_dir), load_decoder("flux2", weights_dir))
    assert y.shape == x.shape
    assert y[:, 2].mean() > y[:, 0].mean()


def test_results_are_kept_in_8_bits(dog, cat, weights_dir):
    out = sfumato.shade(dog, cat, weights_dir=weights_dir, **FAST)
    assert out.pixels.dtype == torch.uint8 and out.pixels.shape == (3, dog.size[1], dog.size[0])
    assert out.target_pixels.dtype == torch.uint8 and out.target.shape == (1, 3, dog.size[1], dog.size[0])
    assert torch.equal(out.tensor, out.pixels.float() / 255)  # the float view is exact
    assert np.array_equal(np.asarray(out.image), out.pixels.permute(1, 2, 0).numpy())
    assert out.report["precision"] in ("bf16", "fp32")
