from __future__ import annotations

import torch
from tests.conftest import photo

from sfumato.encoders import load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.imageio import to_tensor
from sfumato.optimise import attack, encode_tiled, latent_distance, protect_tensor, tile_grid
from sfumato.targets import fit_to


def _pair(size=(128, 96)):
    x = to_tensor(photo("golden_retriever", size))[None]
    t = fit_to(to_tensor(photo("tabby"))[None], size[1], size[0])
    return x, t


def test_attack_moves_latents_toward_target_within_budget(weights_dir):
    x, t = _pair()
    ens = Ensemble([load_encoder("flux2", weights_dir)])
    with torch.no_grad():
        zt, z0 = ens.encode(t), ens.encode(x)
    allowance = torch.full_like(x[:, :1], 8 / 255)
    for method in ("momentum", "sign"):
        r = attack(x, zt, ens, allowance, steps=6, lr=0.6, method=method)
        assert r.delta.abs().max() <= 8 / 255 + 1e-6
        adv = x + r.delta
        assert adv.min() >= 0 and adv.max() <= 1
        with torch.no_grad():
            z1 = ens.encode(adv)
        assert latent_distance(z1[0], zt[0]) < 0.95 * latent_distance(z0[0], zt[0])
        assert r.losses[-1] < r.losses[0]


def test_per_pixel_allowance_is_respected(weights_dir):
    x, t = _pair()
    ens = Ensemble([load_encoder("flux2", weights_dir)])
    allowance = torch.zeros_like(x[:, :1])
    allowance[..., :, 64:] = 6 / 255
    with torch.no_grad():
        zt = ens.encode(t)
    d = attack(x, zt, ens, allowance, steps=3, lr=0.6).delta
    assert d[..., :, :64].abs().max() == 0
    assert d[..., :, 64:].abs().max() > 0


def test_shared_channels_give_a_grey_perturbation(weights_dir):
    x, t = _pair()
    x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    ens = Ensemble([load_encoder("flux2", weights_dir)])
    with torch.no_grad():
        zt = ens.encode(t)
    d = attack(x, zt, ens, torch.full_like(x[:, :1], 0.03), steps=2, lr=0.6, shared_channels=True).delta
    assert torch.equal(d[:, 0], d[:, 1]) and torch.equal(d[:, 1], d[:, 2])


def test_tile_grid_covers_with_overlap_and_few_tiles():
    for length in (600, 768, 1024, 1400, 4096):
        starts, size = tile_grid(length, 512, 64)
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(b - a <= size - 64 for a, b in zip(starts, starts[1:], strict=False))
        assert size <= 512 + 64
    assert tile_grid(1024, 512, 64) == ([0, 480], 544)
    assert tile_grid(300, 512, 64) == ([0], 300)


def test_tiled_protection_stays_in_budget_and_is_deterministic(weights_dir):
    x, t = _pair((200, 136))
    ens = Ensemble([load_encoder("flux2", weights_dir)])
    allowance = torch.full_like(x[:, :1], 6 / 255)
    kw = dict(steps=2, lr=0.6, tile=96, overlap=32)
    d1 = protect_tensor(x, t, ens, allowance, **kw)
    d2 = protect_tensor(x, t, ens, allowance, **kw)
    assert torch.equal(d1, d2)
    assert d1.abs().max() <= 6 / 255 + 1e-6
    with torch.no_grad():
        before = latent_distance(ens.encode(x)[0], ens.encode(t)[0])
        after = latent_distance(ens.encode(x + d1)[0], ens.encode(t)[0])
    assert after < before


def test_ensemble_weights_normalise_and_pad_to_common_multiple(weights_dir):
    ens = Ensemble([load_encoder("flux2", weights_dir), load_encoder("sana", weights_dir)], [3, 1])
    assert ens.weights == [0.75, 0.25] and ens.multiple == 32
    lats = ens.encode(torch.rand(1, 3, 70, 100))
    assert lats[0].shape[-2:] == (12, 16) and lats[1].shape[-2:] == (3, 4)


def test_encode_tiled_matches_direct_for_small_images(weights_dir):
    enc = load_encoder("sana", weights_dir)
    x = torch.rand(1, 3, 96, 160)
    assert torch.allclose(encode_tiled(enc, x), enc(x), atol=1e-6)
    # forced tiling: Sana has no global normalisation, so cores match closely
    big = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 24), size=(640, 640), mode="bilinear")
    with torch.no_grad():
        direct = enc(big)
    tiled = encode_tiled(enc, big, tile=384, halo=128, direct_max=0)
    assert float((tiled - direct).norm() / direct.norm()) < 0.05
