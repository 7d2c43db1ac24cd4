"""The private autoencoder: trains, resumes, loads, and plugs into the lab as a latent space."""

from __future__ import annotations

import json
from pathlib import Path

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
