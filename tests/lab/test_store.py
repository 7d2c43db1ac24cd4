"""The committed lab models: export to half-precision safetensors, restore, load, refuse damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import SHARED
from tests.lab.test_generator import TINY, fake_text, toy_data
from tests.lab.test_judges import tiny

from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.judging.classifiers import load_judge, train_judge
from sfumato.lab.models.generator import LatentUNet, sample
from sfumato.lab.models.private_autoencoder import load_private
from sfumato.lab.models.store import (
    CHECKPOINT,
    MANIFEST,
    WEIGHTS,
    StoreError,
    checkout_store,
    default_store,
    export_model,
    load_stored,
    read_manifest,
    restore_models,
)
from sfumato.lab.models.training import TrainConfig, load_checkpoint, load_generator, train

CIFAR_ZIP = SHARED / "data" / "cifar10.zip"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir with a tiny judge and a tiny generator, trained to the end as the real ones are."""
    if not CIFAR_ZIP.exists():
        pytest.skip(f"CIFAR-10 zip not found at {CIFAR_ZIP}")
    work = tmp_path_factory.mktemp("work")
    train_set = load_cifar(CIFAR_ZIP, "train", per_class=10, progress=False)
    test_set = load_cifar(CIFAR_ZIP, "test", per_class=5, progress=False)
    train_judge(tiny("pixel"), train_set, test_set, work / "judges" / "pixel", progress=False)
    latents, captions = toy_data(8)
    torch.manual_seed(0)
    cfg = TrainConfig(steps=3, batch=4, warmup=1, checkpoint_every=0, log_every=0)
    train(LatentUNet(TINY), latents, captions, fake_text, cfg, work / "base" / "toy", progress=False)
    return work


def test_export_restore_load_a_judge_and_a_generator(trained: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for folder in ("judges/pixel", "base/toy"):
        export_model(trained, folder, store, command=f"make {folder}")
    manifest = read_manifest(store)
    assert set(manifest) == {"judges/pixel", "base/toy"}
    assert (
        manifest["judges/pixel"].command == "make judges/pixel" and manifest["judges/pixel"].fields["epoch"]
    )
    stored = store / "judges" / "pixel"
    assert (stored / "metrics.json").exists() and not (stored / CHECKPOINT).exists()
    # half precision, and no optimiser state: smaller than the training checkpoint
    assert (stored / WEIGHTS).stat().st_size < 0.6 * (trained / "judges/pixel" / CHECKPOINT).stat().st_size

    work = tmp_path / "fresh"
    logged: list[str] = []
    assert restore_models(work, store, log=logged.append) == ["base/toy", "judges/pixel"]
    assert len(logged) == 2 and "half precision" in logged[0]
    assert restore_models(work, store, log=logged.append) == []  # nothing missing any more

    # a finished run: training again with the same settings keeps the restored weights
    before = torch.load(work / "judges/pixel" / CHECKPOINT, weights_only=True)["model"]
    train_set = load_cifar(CIFAR_ZIP, "train", per_class=10, progress=False)
    test_set = load_cifar(CIFAR_ZIP, "test", per_class=5, progress=False)
    train_judge(tiny("pixel"), train_set, test_set, work / "judges" / "pixel", progress=False)
    after = torch.load(work / "judges/pixel" / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(after[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="no optimiser state"):
        train_judge(tiny("pixel", epochs=2), train_set, test_set, work / "judges" / "pixel", progress=False)

    original, restored = load_judge(trained / "judges/pixel"), load_judge(work / "judges/pixel")
    images = load_cifar(CIFAR_ZIP, "test", per_class=3, progress=False).images
    assert restored.classes == original.classes and restored.info["epoch"] == original.info["epoch"]
    assert torch.allclose(restored.logits(images), original.logits(images), atol=0.05, rtol=0.02)
    assert torch.equal(restored.predict(images), original.predict(images))

    ema, stats, config, meta = load_generator(work / "base/toy" / CHECKPOINT)
    ema0, stats0, config0, meta0 = load_generator(trained / "base/toy" / CHECKPOINT)
    assert config == config0 and meta["step"] == meta0["step"] == 3
    assert torch.equal(stats["mean"], stats0["mean"]) and torch.equal(stats["std"], stats0["std"])
    emb, mask = fake_text(["a photo of a dog"])
    a, b = sample(ema, emb, mask, steps=2, seed=0), sample(ema0, emb, mask, steps=2, seed=0)
    assert torch.allclose(a, b, atol=2e-2)
    ck = load_checkpoint(work / "base/toy" / CHECKPOINT)
    assert ck["optimizer"] is None and ck["step"] == 3
    # a finished run: training again with the same settings returns at once
    cfg = TrainConfig(steps=3, batch=4, warmup=1, checkpoint_every=0, log_every=0)
    latents, captions = toy_data(8)
    train(LatentUNet(TINY), latents, captions, fake_text, cfg, work / "base" / "toy", progress=False)
    again = load_checkpoint(work / "base/toy" / CHECKPOINT)["ema"]
    assert all(torch.equal(again[k], v) for k, v in ck["ema"].items())


def test_the_store_is_found_by_environment_then_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFUMATO_LAB_MODELS", str(tmp_path))
    assert default_store() == tmp_path and restore_models(tmp_path / "w", tmp_path, log=None) == []
    monkeypatch.delenv("SFUMATO_LAB_MODELS")
    found = default_store()
    assert found is None or found == checkout_store()


def test_a_damaged_store_is_refused_and_a_trained_model_never_replaced(trained: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    entry = export_model(trained, "judges/pixel", store, command="x")
    weights = store / "judges/pixel" / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged or replaced"):
        load_stored(store, entry)
    with pytest.raises(StoreError, match="damaged"):
        restore_models(tmp_path / "w", store, log=None)
    # a workdir that trained its own model keeps it, whatever the store holds
    assert restore_models(trained, store, log=None) == []
    (store / MANIFEST).write_text("{")
    with pytest.raises(StoreError, match="manifest"):
        read_manifest(store)


def test_the_committed_models_restore_and_load(tmp_path: Path) -> None:
    """What CI checks: every model in the repository's ``lab-models`` loads with its own loader."""
    store = checkout_store()
    if not (store / MANIFEST).exists():
        pytest.skip("no committed lab models in this checkout")
    restored = restore_models(tmp_path, store, log=None)
    assert restored == sorted(read_manifest(store))
    for folder in restored:
        fmt = json.loads((store / folder / "checkpoint.json").read_text())["format"]
        if fmt == "sfumato.lab.judge/1":
            judge = load_judge(tmp_path / folder)
            assert judge.info["test_accuracy"] > 0.5
        elif fmt == "sfumato.lab.private_autoencoder/1":
            autoencoder = load_private(tmp_path / folder)
            x = torch.rand(2, 3, 64, 64)
            with torch.no_grad():
                y = autoencoder.decoder(autoencoder.encoder(x))
            assert y.shape == x.shape and autoencoder.metrics["held_out_psnr_db"] > 20
        elif fmt == "sfumato.lab.generator/1":
            model, stats, config, meta = load_generator(tmp_path / folder / CHECKPOINT)
            assert meta["step"] > 0 and stats["std"].min() > 0
        else:
            pytest.fail(f"{folder}: no loader for {fmt}")
