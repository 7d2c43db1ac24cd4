"""DiffusersEncoder/Decoder on tiny randomly initialised VAEs saved to disk (no downloads)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from sfumato.encoders.diffusers_vae import DiffusersDecoder, DiffusersEncoder


def _save_tiny(path: Path, class_name: str = "AutoencoderKL") -> Path:
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    cls = getattr(diffusers, class_name)
    kwargs = {"latent_channels": 4} if class_name == "AutoencoderKL" else {"latent_channels": 8}
    vae = cls(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=32,
        **kwargs,
    )
    vae.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("tiny_vae"))


@pytest.fixture(scope="module")
def encoder(tiny_vae: Path) -> DiffusersEncoder:
    return DiffusersEncoder(tiny_vae)


def test_shape_and_attributes(encoder: DiffusersEncoder, tiny_vae: Path) -> None:
    assert encoder.multiple == 2 and encoder.latent_channels == 4
    assert encoder.name == f"diffusers:{tiny_vae.name}"
    assert all(not p.requires_grad for p in encoder.parameters())
    assert not encoder.training
    z = encoder(torch.rand(2, 3, 64, 96))
    assert z.shape == (2, 4, 32, 48) and z.dtype == torch.float32


def test_gradients_reach_the_image(encoder: DiffusersEncoder) -> None:
    x = torch.rand(1, 3, 64, 96, requires_grad=True)
    encoder.encode(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_deterministic_and_uses_the_mean(encoder: DiffusersEncoder) -> None:
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = encoder.encode(x), encoder.encode(x)
        mean = encoder.vae.encode(x * 2 - 1).latent_dist.mean
    assert torch.equal(a, b) and torch.equal(a, mean)


def test_decoder_round_trip_shape(encoder: DiffusersEncoder, tiny_vae: Path) -> None:
    z = torch.randn(1, 4, 8, 12)
    for decoder in (DiffusersDecoder(tiny_vae), DiffusersDecoder.from_encoder(encoder)):
        with torch.no_grad():
            y = decoder(z)
        assert y.shape == (1, 3, 16, 24)
        assert y.min() >= 0 and y.max() <= 1


def test_pipeline_folder_with_vae_subfolder(tiny_vae: Path, tmp_path: Path) -> None:
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "vae").symlink_to(tiny_vae, target_is_directory=True)
    assert DiffusersEncoder(tmp_path / "pipe").latent_channels == 4


def test_flux2_class(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "AutoencoderKLFlux2"):
        pytest.skip("this diffusers has no AutoencoderKLFlux2")
    enc = DiffusersEncoder(_save_tiny(tmp_path, "AutoencoderKLFlux2"))
    assert enc.latent_channels == 8
    assert enc(torch.rand(1, 3, 32, 32)).shape == (1, 8, 16, 16)


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such"):
        DiffusersEncoder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        DiffusersEncoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderDC"}))
    with pytest.raises(ValueError, match="AutoencoderDC"):
        DiffusersEncoder(tmp_path)


def test_missing_diffusers_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(ImportError, match=r"pip install 'sfumato\[diffusers\]'"):
        DiffusersEncoder(tmp_path)
