"""Shared fixtures: the real weights and photos in ../shared, at test-friendly sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SFUMATO_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "taesd"
PHOTOS = SHARED / "data" / "imagenet-samples"
VANGOGH = SHARED / "data" / "vangogh"


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    if not (WEIGHTS / "taef2_encoder.pth").exists():
        pytest.skip(f"shared weights not found at {WEIGHTS}")
    return WEIGHTS


@pytest.fixture(autouse=True)
def _weights_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point weight lookup at ../shared and keep the user's cache out of tests."""
    monkeypatch.setenv("SFUMATO_WEIGHTS", str(WEIGHTS))
    # the checkout's committed lab models only where a test asks for them (tests/lab/test_store.py)
    monkeypatch.setenv("SFUMATO_LAB_MODELS", str(tmp_path / "no-lab-models"))
    # the verdicts on checked weight files go to the test's folder, not the user's cache
    monkeypatch.setattr("sfumato.encoders.integrity.verdict_cache_path", lambda: tmp_path / "verified.json")
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def photo(pattern: str, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A real photo from ../shared whose name contains ``pattern``, resized to ``size`` (w, h)."""
    matches = sorted(PHOTOS.glob(f"*{pattern}*.jpg"))
    if not matches:
        pytest.skip(f"no photo matching {pattern!r} in {PHOTOS}")
    return Image.open(matches[0]).convert("RGB").resize(size, Image.BICUBIC)


@pytest.fixture
def dog() -> Image.Image:
    return photo("golden_retriever")


@pytest.fixture
def cat() -> Image.Image:
    return photo("tabby", (160, 120))
