"""The private autoencoder: trains, resumes, loads, and plugs into the lab as a latent space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sfumato.lab.models.autoencoders import load_lab_decoder, load_lab_encoder
from sfumato.lab.models.private_autoencoder import (
    PrivateConfig,
    load_private,
    reconstruction_psnr,
    train_private_autoencoder,
)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth random images (upsampled noise): learnable by a tiny autoencoder in a few steps.
    small = torch.rand(n, 3, 8, 8, generator=g)
    return (torch.nn.functional.interpolate(small, size=64, mode="bilinear") * 255).round().to(torch.uint8)


def test_trains_resumes_and_loads(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = PrivateConfig(
        latent_channels=4, widths=(8, 8, 8), steps=40, batch=8, lr=3e-3, checkpoint_every=20, log_every=10
    )
    images, held = _images(32), _images(8, seed=1)
    ckpt = train_private_autoencoder(images, held, tmp_path / "ae", config, progress=False)
    ae = load_private(ckpt)
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "ae" / "train_log.jsonl").read_text().splitlines()
    ]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert ae.metrics["held_out_psnr_db"] == reconstruction_psnr(ae, held)

    # Interrupted at step 20 and resumed: the same weights as the uninterrupted run.
    train_private_autoencoder(images, held, tmp_path / "ae2", config, progress=False, stop_after=20)
    assert not (tmp_path / "ae2" / "metrics.json").exists()
    train_private_autoencoder(images, held, tmp_path / "ae2", config, progress=False)
    assert torch.equal(load_private(tmp_path / "ae2").encoder.net[0][0].weight, ae.encoder.net[0][0].weight)

    enc = load_lab_encoder(str(ckpt))
    dec = load_lab_decoder(str(ckpt))
    z = enc(images[:2].float() / 255)
    assert z.shape == (2, 4, 8, 8)
    assert dec(z).shape == (2, 3, 64, 64)


def test_an_sd_class_space_is_variational_and_old_settings_still_match(tmp_path: Path) -> None:
    """--kl: mean and log-variance, a sampled latent in training, the mean afterwards; the KL term
    pulls the posterior toward N(0, 1). Plain configs keep the settings dict of autoencoders trained
    before these options existed."""
    torch.set_num_threads(1)
    plain = PrivateConfig(latent_channels=4, widths=(8, 8, 8), steps=30, batch=8, lr=3e-3, log_every=10)
    assert set(plain.to_dict()) == {
        "latent_channels", "widths", "steps", "batch", "lr", "seed", "checkpoint_every", "log_every"
    }  # fmt: skip
    images, held = _images(32), {"smooth": _images(8, seed=1), "other": _images(4, seed=2)}
    kl_weights = {}
    for kl in (1e-6, 1.0):
        config = PrivateConfig(**{**plain.__dict__, "kl": kl})
        ckpt = train_private_autoencoder(images, held, tmp_path / f"kl{kl}", config, progress=False)
        ae = load_private(ckpt)
        assert ae.encoder.variational and ae.config.kl == kl
        assert set(ae.metrics) == {
            "held_out_psnr_db",
            "held_out_n",
            "held_out_other_psnr_db",
            "held_out_other_n",
        }
        x = images[:4].float() / 255
        with torch.no_grad():
            mean, logvar = ae.encoder.posterior(x)
        assert mean.shape == logvar.shape == (4, 4, 8, 8)
        with torch.no_grad():
            assert torch.equal(ae.encoder(x), mean)  # the encoder attacked and cached is the mean
        kl_weights[kl] = float(0.5 * (mean.square() + logvar.exp() - 1 - logvar).mean())
    assert kl_weights[1.0] < kl_weights[1e-6]  # a strong KL weight keeps the posterior near N(0, 1)
    with pytest.raises(ValueError, match="negative"):
        PrivateConfig(kl=-1)


def test_the_perceptual_term_sees_structure_and_needs_a_colour_network() -> None:
    from sfumato.lab.judging.classifiers import build_judge, judge_config
    from sfumato.lab.models.perceptual import PerceptualDistance

    torch.set_num_threads(1)
    net = build_judge(judge_config("features", widths=(8, 8, 16)))
    dist = PerceptualDistance(net)
    x = _images(4).float() / 255
    assert torch.allclose(dist(x, x), torch.zeros(4))
    shifted, noisy = (x + 0.05).clamp(0, 1), (x + 0.05 * torch.randn(x.shape)).clamp(0, 1)
    assert (dist(x, noisy) > 0).all() and (dist(x, shifted) >= 0).all()
    with pytest.raises(ValueError, match="colour"):
        PerceptualDistance(build_judge(judge_config("grey64", widths=(8, 8, 16))))
    with pytest.raises(ValueError, match="feature network"):
        train_private_autoencoder(
            _images(8),
            _images(2),
            Path("/nonexistent/never-written"),
            PrivateConfig(perceptual=1.0),
            progress=False,
        )


def test_photo_crops_are_real_detail_with_held_out_photos() -> None:
    from tests.conftest import PHOTOS

    from sfumato.lab.data.datasets import photo_crops

    if not PHOTOS.is_dir():
        pytest.skip(f"no photos at {PHOTOS}")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for p in sorted(PHOTOS.glob("*.jpg"))[:20]:
            shutil.copy(p, tmp)
        train = photo_crops(tmp, 2, seed=0)
        held = photo_crops(tmp, 2, held_out=True, seed=0)
        assert train.shape == (36, 3, 64, 64) and held.shape == (4, 3, 64, 64) and train.dtype == torch.uint8
        assert torch.equal(train, photo_crops(tmp, 2, seed=0))  # seeded
        assert not any(torch.equal(h, t) for h in held for t in train)
        assert float(train.float().std()) > 20  # photo detail, not flat colour


def test_photo_crops_take_photos_smaller_than_the_smallest_crop(tmp_path: Path) -> None:
    from PIL import Image

    from sfumato.lab.data.datasets import photo_crops

    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(56, 90), (200, 150)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.jpg")
    crops = photo_crops(tmp_path, 3, every=10, seed=0)
    assert crops.shape == (6, 3, 64, 64)


def test_the_engine_attacks_a_private_space_by_its_checkpoint_path(tmp_path: Path) -> None:
    """Registered by the lab, a private autoencoder is an encoder the engine's cloak can aim at
    (the lab's runs in its SD-class space need this); unregistered names still fail clearly."""
    import sfumato
    from sfumato.lab.models.autoencoders import register_lab_encoders

    torch.set_num_threads(1)
    config = PrivateConfig(latent_channels=4, widths=(8, 8, 8), steps=30, batch=8, lr=3e-3, log_every=10)
    ckpt = train_private_autoencoder(_images(16), _images(4, seed=1), tmp_path / "ae", config, progress=False)
    register_lab_encoders()
    register_lab_encoders()  # idempotent
    image = _images(1, seed=3)[0].float() / 255
    out = sfumato.cloak(image, "sketch", encoders=(str(ckpt),), steps=4, device="cpu")
    moved = out.report["effect"]["latents"]["private:ae"]
    assert moved["attacked"] and moved["fraction_moved"] > 0
    assert list(out.report["settings"]["encoders"]) == [str(ckpt)]
    with pytest.raises(ValueError, match="unknown encoder"):
        sfumato.cloak(image, "sketch", encoders=(str(tmp_path / "nothing"),), steps=1, device="cpu")
