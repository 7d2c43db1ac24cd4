"""The lab's latents: batched FLUX.2 encoding of CIFAR images and the resumable disk cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.conftest import SHARED

from sfumato.encoders import load_encoder
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.models.latent_cache import cached_latents, encode_images, to_unit

CIFAR_ZIP = SHARED / "data" / "cifar10.zip"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    if not CIFAR_ZIP.exists():
        pytest.skip(f"CIFAR-10 zip not found at {CIFAR_ZIP}")
    return load_cifar(CIFAR_ZIP, "test", classes=["dog", "cat", "automobile", "bird"], per_class=2).images


@pytest.fixture(scope="module")
def flux2(weights_dir: Path):
    return load_encoder("flux2", weights_dir)


@pytest.fixture(scope="module")
def reference(images: torch.Tensor, flux2) -> torch.Tensor:
    return encode_images(images, flux2, progress=False)


def test_to_unit_upscales() -> None:
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    up = to_unit(x, 64)
    assert up.shape == (2, 3, 64, 64) and up.dtype == torch.float32 and 0 <= up.min() and up.max() <= 1
    assert torch.equal(to_unit(x, 32), x.float() / 255)


def test_encode_shapes(images: torch.Tensor, flux2, reference: torch.Tensor) -> None:
    z = encode_images(images, flux2, size=64, batch=3, progress=False)
    assert z.shape == (8, 32, 8, 8) and z.dtype == torch.float32 and torch.isfinite(z).all()
    assert torch.allclose(z, reference, atol=1e-5)
    assert encode_images(images, flux2, size=32, progress=False).shape == (8, 32, 4, 4)
    with pytest.raises(ValueError, match="multiple"):
        encode_images(images, flux2, size=60, progress=False)


def test_cache_returns_identical_without_encoding(
    images: torch.Tensor, flux2, reference: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cached_latents("cifar-test", images, flux2, tmp_path, progress=False)
    assert torch.allclose(first, reference, atol=1e-5)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"  # the finished file only; parts are gone

    def refuse(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("encoded again despite the cache")

    monkeypatch.setattr(flux2, "encode", refuse)
    assert torch.equal(cached_latents("cifar-test", images, flux2, tmp_path, progress=False), first)
    with pytest.raises(AssertionError, match="encoded again"):  # other images: a different cache entry
        cached_latents("cifar-test", images.flip(0), flux2, tmp_path, progress=False)
    with pytest.raises(AssertionError, match="encoded again"):  # another key or size too
        cached_latents("other", images, flux2, tmp_path, progress=False)


def test_cache_resumes_from_partial_chunks(
    images: torch.Tensor, flux2, reference: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = flux2.encode
    seen: list[int] = []

    def interrupted(x: torch.Tensor) -> torch.Tensor:
        if seen:
            raise KeyboardInterrupt  # the run is stopped during the second chunk
        seen.append(x.shape[0])
        return original(x)

    monkeypatch.setattr(flux2, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cached_latents("resume", images, flux2, tmp_path, chunk=3, progress=False)
    parts = [p for p in tmp_path.rglob("*.pt") if p.parent.name.endswith(".parts")]
    assert len(parts) == 1 and seen == [3]

    def counting(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return original(x)

    seen.clear()
    monkeypatch.setattr(flux2, "encode", counting)
    resumed = cached_latents("resume", images, flux2, tmp_path, chunk=3, progress=False)
    assert seen == [3, 2]  # only the two unfinished chunks were encoded
    assert torch.allclose(resumed, reference, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".parts")]
