"""The lab's data layer: CIFAR-10 from the shared zip, image folders, splits and captions."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import SHARED

from sfumato.lab.data.captions import (
    CIFAR_CLASSES,
    RELATED,
    SYNONYMS,
    TEMPLATES,
    caption_for,
    captions_for,
    contains_word,
    prompt_for,
    with_article,
)
from sfumato.lab.data.datasets import LabeledImages, load_cifar, load_image_folder, split_indices

CIFAR_ZIP = SHARED / "data" / "cifar10.zip"


@pytest.fixture(scope="module")
def cifar_zip() -> Path:
    if not CIFAR_ZIP.exists():
        pytest.skip(f"CIFAR-10 zip not found at {CIFAR_ZIP}")
    return CIFAR_ZIP


def test_cifar_a_few_per_class(cifar_zip: Path) -> None:
    data = load_cifar(cifar_zip, "train", per_class=3)
    assert data.classes == CIFAR_CLASSES
    assert data.images.shape == (30, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.long
    assert data.labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert data.names[:3] == ["train/airplane/0000.jpg", "train/airplane/0001.jpg", "train/airplane/0002.jpg"]
    assert all(
        name.split("/")[1] == data.classes[label] for name, label in zip(data.names, data.labels, strict=True)
    )
    assert data.images.float().std() > 20  # real photos, not blanks
    assert data.counts() == dict.fromkeys(CIFAR_CLASSES, 3)


def test_cifar_deterministic_subset_and_offsets(cifar_zip: Path) -> None:
    a = load_cifar(cifar_zip, "test", classes=["dog", "cat"], per_class=2)
    b = load_cifar(cifar_zip, "test", classes=["dog", "cat"], per_class=2)
    assert torch.equal(a.images, b.images) and a.names == b.names
    assert a.classes == ["dog", "cat"] and a.labels.tolist() == [0, 0, 1, 1]
    later = load_cifar(cifar_zip, "test", classes=["dog", "cat"], per_class=2, offset=2)
    assert not set(a.names) & set(later.names)
    both = load_cifar(cifar_zip, "test", classes=["dog", "cat"], per_class=4)
    assert sorted(both.names) == sorted(a.names + later.names)
    assert torch.equal(both.images[:2], a.images[:2]) and torch.equal(both.images[2:4], later.images[:2])
    tail = load_cifar(cifar_zip, "test", classes=["frog"], offset=998)
    assert tail.names == ["test/frog/0998.jpg", "test/frog/0999.jpg"]


def test_cifar_errors(cifar_zip: Path) -> None:
    with pytest.raises(ValueError, match="unknown classes"):
        load_cifar(cifar_zip, "test", classes=["unicorn"], per_class=1)
    with pytest.raises(ValueError, match="has 1000 images"):
        load_cifar(cifar_zip, "test", classes=["dog"], per_class=2, offset=999)
    with pytest.raises(ValueError, match="split"):
        load_cifar(cifar_zip, "val")


def test_labeled_images_subset() -> None:
    data = LabeledImages(
        torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2),
        torch.tensor([0, 1, 0, 1]),
        ["a", "b"],
        ["w", "x", "y", "z"],
    )
    sub = data.subset(torch.tensor([3, 0]))
    assert (
        sub.names == ["z", "w"]
        and sub.labels.tolist() == [1, 0]
        and torch.equal(sub.images[1], data.images[0])
    )
    with pytest.raises(ValueError):
        LabeledImages(data.images.float(), data.labels, data.classes, data.names)


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls, files in {"dog": ["b.png", "a.jpg"], "cat": ["c.webp"], "zebra": ["d.jpeg", "e.PNG"]}.items():
        (tmp_path / cls).mkdir()
        for i, name in enumerate(files):
            pixels = rng.integers(0, 256, (20 + 10 * i, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / name)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    data = load_image_folder(tmp_path, size=16)
    assert data.classes == ["cat", "dog", "zebra"]  # CIFAR names in CIFAR order, then the rest
    assert data.names == ["cat/c.webp", "dog/a.jpg", "dog/b.png", "zebra/d.jpeg", "zebra/e.PNG"]
    assert data.labels.tolist() == [0, 1, 1, 2, 2]
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    picked = load_image_folder(tmp_path, size=8, classes=["zebra", "cat"])
    assert picked.classes == ["zebra", "cat"] and picked.labels.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path)  # sizes differ and no size given


def test_cover_resize_centre_crops(tmp_path: Path) -> None:
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, 10:20] = 255  # white centre third, black sides
    (tmp_path / "x").mkdir()
    Image.fromarray(pixels).save(tmp_path / "x" / "wide.png")
    image = load_image_folder(tmp_path, size=10).images[0]
    assert image.shape == (3, 10, 10) and image.float().mean() > 250


def test_split_indices() -> None:
    parts = split_indices(103, [0.8, 0.2], seed=1)
    assert [len(p) for p in parts] == [82, 21]
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(103))
    again = split_indices(103, [0.8, 0.2], seed=1)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    other = split_indices(103, [0.8, 0.2], seed=2)
    assert not torch.equal(parts[1], other[1])
    assert sum(len(p) for p in split_indices(10, [0.3, 0.3], seed=0)) == 6
    with pytest.raises(ValueError):
        split_indices(10, [0.7, 0.7])


def test_captions_use_synonyms_and_templates() -> None:
    rng = random.Random(0)
    assert set(SYNONYMS) == set(RELATED) == set(CIFAR_CLASSES)
    for cls in CIFAR_CLASSES:
        assert cls in SYNONYMS[cls]
        seen_words, seen_templates = set(), set()
        for _ in range(300):
            caption = caption_for(cls, rng)
            matches = [
                (t, w) for t in TEMPLATES for w in SYNONYMS[cls] if caption == t.format(with_article(w))
            ]
            assert matches, caption
            seen_templates.add(matches[0][0])
            seen_words.add(matches[0][1])
        assert seen_words == set(SYNONYMS[cls]) and seen_templates == set(TEMPLATES)
    assert caption_for(5, random.Random(0)).endswith(" a dog")
    assert caption_for("puppy", np.random.default_rng(0)).endswith(" a puppy")
    assert caption_for("cat", torch.Generator().manual_seed(0)).endswith(" a cat")
    assert prompt_for("dog") == "a photo of a dog" and prompt_for("airplane") == "a photo of an airplane"
    assert captions_for([0, 1], ["dog", "cat"], seed=3) == captions_for([0, 1], ["dog", "cat"], seed=3)


def test_related_words_never_in_training_captions() -> None:
    training_words = {w for words in SYNONYMS.values() for w in words}
    related_words = {w for words in RELATED.values() for w in words}
    assert not training_words & related_words
    rng = random.Random(1)
    captions = {caption_for(c, rng) for c in CIFAR_CLASSES for _ in range(200)}
    captions |= {t.format(with_article(w)) for t in TEMPLATES for w in training_words}  # every one
    for word in related_words:
        assert not any(contains_word(c, word) for c in captions), word
    assert contains_word("a photo of a sports car", "sports car") and not contains_word(
        "a photo of a cat", "ca"
    )
