from __future__ import annotations

import pytest
import torch
from tests.conftest import photo
from torch import nn

from sfumato.encoders import load_decoder, load_encoder
from sfumato.encoders.tiny import TinyEncoder
from sfumato.imageio import to_tensor


def test_real_checkpoints_load_strictly(weights_dir):
    flux = load_encoder("flux2", weights_dir)
    sana = load_encoder("sana", weights_dir)
    x = torch.rand(1, 3, 64, 96)
    assert flux(x).shape == (1, 32, 8, 12)
    assert sana(x).shape == (1, 32, 2, 3)
    assert (flux.multiple, sana.multiple) == (8, 32)
    assert not any(p.requires_grad for p in flux.parameters())


def test_flux2_round_trip_reconstructs_a_photo(weights_dir):
    x = to_tensor(photo("goldfish", (128, 128)))[None]
    enc, dec = load_encoder("flux2", weights_dir), load_decoder("flux2", weights_dir)
    with torch.no_grad():
        y = dec(enc(x))
    psnr = -10 * torch.log10((y - x).square().mean())
    assert psnr > 22  # the real autoencoder pair, not random weights (those give ~10 dB)


def _sd_style_state_dict(latent: int) -> dict[str, torch.Tensor]:
    """The SD1.x TAESD encoder layout (4 latent channels, no pool branch), written out independently."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(64, 64, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, padding=1),
            )

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), Block()]
    for _ in range(3):
        layers += [nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False), Block(), Block(), Block()]
    layers.append(nn.Conv2d(64, latent, 3, padding=1))
    return {k: v.half() for k, v in nn.Sequential(*layers).state_dict().items()}


@pytest.mark.parametrize("latent", [4, 16])
def test_user_copies_of_other_taesd_variants_load(tmp_path, latent):
    path = tmp_path / "taesd_encoder.pth"
    torch.save(_sd_style_state_dict(latent), path)
    enc = load_encoder(str(path))
    assert isinstance(enc, TinyEncoder)
    assert enc.latent_channels == latent
    assert enc(torch.rand(1, 3, 64, 64)).shape == (1, latent, 8, 8)


def test_wrong_layout_fails_loudly(tmp_path):
    sd = _sd_style_state_dict(4)
    sd["99.weight"] = torch.zeros(1)
    path = tmp_path / "broken_encoder.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="(?s)does not have a TAESD encoder layout.*Unexpected key"):
        load_encoder(str(path))


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("dalle")


def test_round_trip_encoder_is_the_generators_view(weights_dir):
    x = to_tensor(photo("goldfish", (64, 64)))[None]
    rt = load_encoder("flux2-decoded", weights_dir)
    enc, dec = load_encoder("flux2", weights_dir), load_decoder("flux2", weights_dir)
    with torch.no_grad():
        assert torch.equal(rt(x), dec(enc(x)))
    assert rt.name == "flux2-decoded" and rt(x).shape == x.shape
    x.requires_grad_(True)
    rt(x).square().mean().backward()  # differentiable through both halves: an attack surface
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no decoder for 'sana'"):
        load_encoder("sana-decoded", weights_dir)
