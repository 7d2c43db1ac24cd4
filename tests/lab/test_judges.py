"""The lab's judges and the Fréchet distance, on tiny networks and a few hundred CIFAR images (one thread)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from tests.conftest import SHARED

from sfumato.lab.data.captions import CIFAR_CLASSES
from sfumato.lab.data.datasets import LabeledImages, load_cifar
from sfumato.lab.judging.classifiers import (
    CHECKPOINT,
    METRICS,
    PRESETS,
    TRAIN_LOG,
    Judge,
    JudgeConfig,
    augment,
    build_judge,
    judge_config,
    load_judge,
    lr_at,
    num_parameters,
    to_view,
    train_judge,
)
from sfumato.lab.judging.frechet import frechet_between, frechet_distance

CIFAR_ZIP = SHARED / "data" / "cifar10.zip"
TINY = {"pixel": (8, 8, 16, 16), "grey64": (8, 8, 16), "features": (8, 8, 16)}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cifar() -> tuple[LabeledImages, LabeledImages]:
    if not CIFAR_ZIP.exists():
        pytest.skip(f"CIFAR-10 zip not found at {CIFAR_ZIP}")
    train = load_cifar(CIFAR_ZIP, "train", per_class=20, progress=False)
    test = load_cifar(CIFAR_ZIP, "test", per_class=10, progress=False)
    return train, test


def tiny(preset: str, **overrides) -> JudgeConfig:
    settings = {"widths": TINY[preset], "epochs": 1, "batch": 64, "eval_batch": 64}
    return judge_config(preset, **{**settings, **overrides})


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


# -- configs and networks ----------------------------------------------------------------------------


def test_presets_are_independent_and_round_trip():
    pixel, grey, feats = PRESETS["pixel"], PRESETS["grey64"], PRESETS["features"]
    assert len({pixel.seed, grey.seed, feats.seed}) == 3
    assert pixel.arch != grey.arch and pixel.view != grey.view
    assert 1e6 <= num_parameters(build_judge(pixel)) <= 3e6
    assert 0.5e6 <= num_parameters(build_judge(grey)) <= 3e6
    for cfg in PRESETS.values():
        assert JudgeConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert judge_config("pixel", epochs=3).epochs == 3 and PRESETS["pixel"].epochs != 3
    with pytest.raises(ValueError):
        JudgeConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        JudgeConfig(arch="resnet9", widths=(8, 8))
    with pytest.raises(ValueError):
        JudgeConfig(view="rgb48")
    with pytest.raises(ValueError):
        judge_config("clip")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_forward_shapes_for_32_and_64_px_uint8_and_float(preset: str):
    cfg = judge_config(preset)
    judge = Judge(build_judge(cfg), CIFAR_CLASSES, batch=3)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=g)
    generated = torch.rand(5, 3, 64, 64, generator=g)
    for images in (real, generated, real.float() / 255, real[0]):
        view = judge.preprocess(images)
        assert view.shape[1:] == (cfg.channels, cfg.size, cfg.size) and view.dtype == torch.float32
        assert 0 <= view.min() and view.max() <= 1
        b = images.shape[0] if images.ndim == 4 else 1
        proba = judge.predict_proba(images)
        assert proba.shape == (b, 10) and torch.allclose(proba.sum(-1), torch.ones(b), atol=1e-5)
        assert judge.predict(images).shape == (b,) and judge.predict(images).dtype == torch.long
        assert judge.features(images).shape == (b, judge.model.feature_dim)
    assert judge.predict_proba(real[:0]).shape == (0, 10)
    # the judge takes uint8 and the same image as float in [0, 1] alike
    assert torch.allclose(judge.predict_proba(real), judge.predict_proba(real.float() / 255), atol=1e-5)
    assert not judge.model.training


def test_views_treat_real_and_generated_alike(cifar):
    real8 = cifar[1].images[:40]
    up = to_view(real8, "rgb64")  # as the generator's training images were made
    assert up.shape == (40, 3, 64, 64)
    back = to_view(up, "rgb32")  # a "generated" 64 px image brought back to the pixel judge's view
    assert (back - to_view(real8, "rgb32")).abs().mean() < 0.015
    grey = to_view(real8, "grey64")
    luma = (up * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    assert grey.shape == (40, 1, 64, 64) and torch.allclose(grey, luma, atol=1e-6)
    with pytest.raises(ValueError):
        to_view(torch.zeros(2, 1, 32, 32), "rgb32")


def test_augment_is_a_padded_crop_and_a_flip():
    cfg = JudgeConfig(crop_pad=2, flip=True, jitter=0.0)
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = augment(x, cfg, torch.Generator().manual_seed(3))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for b in range(6):
        windows = [padded[b, :, dy : dy + 32, dx : dx + 32] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(-1)) for w in windows)
    plain = augment(x, JudgeConfig(crop_pad=0, flip=False), torch.Generator().manual_seed(3))
    assert torch.equal(plain, x)
    jittered = augment(x, JudgeConfig(crop_pad=0, flip=False, jitter=0.4), torch.Generator().manual_seed(3))
    assert jittered.shape == x.shape and 0 <= jittered.min() and jittered.max() <= 1
    assert not torch.equal(jittered, x)
    again = augment(x, JudgeConfig(jitter=0.4), torch.Generator().manual_seed(3))
    assert torch.equal(again, augment(x, JudgeConfig(jitter=0.4), torch.Generator().manual_seed(3)))


def test_learning_rate_schedule():
    cfg = JudgeConfig(lr=0.2, warmup=0.2)
    lrs = [lr_at(cfg, s, 100) for s in range(100)]
    assert max(lrs) == pytest.approx(0.2) and lrs.index(max(lrs)) == 19
    assert lrs[0] < lrs[10] < lrs[19] and lrs[-1] < 1e-3


# -- training ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["pixel", "grey64"])
def test_train_writes_resumes_and_loads(preset: str, cifar, tmp_path: Path):
    train, test = cifar
    out = tmp_path / preset
    path = train_judge(tiny(preset), train, test, out, progress=False)
    assert path == out / CHECKPOINT and path.exists()
    ck = torch.load(path, weights_only=True)
    assert ck["epoch"] == 1 and ck["classes"] == CIFAR_CLASSES and 0 <= ck["test_accuracy"] <= 1
    assert ck["config"]["name"] == preset and set(ck["per_class"]) == set(CIFAR_CLASSES)
    first = (out / TRAIN_LOG).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in first] == [1]
    metrics = json.loads((out / METRICS).read_text())
    assert metrics["epochs"] == 1 and metrics["test_accuracy"] == ck["test_accuracy"]
    assert metrics["n_train"] == 200 and metrics["n_test"] == 100 and metrics["parameters"] > 0

    # more epochs: continues from epoch 1 (its log line and elapsed time are kept, one epoch is added)
    train_judge(tiny(preset, epochs=2), train, test, out, progress=False)
    lines = (out / TRAIN_LOG).read_text().splitlines()
    assert lines[0] == first[0] and [json.loads(line)["epoch"] for line in lines] == [1, 2]
    ck2 = torch.load(path, weights_only=True)
    assert ck2["epoch"] == 2 and ck2["elapsed_s"] >= ck["elapsed_s"]
    assert json.loads((out / METRICS).read_text())["epochs"] == 2
    # finished: a repeat call changes nothing
    train_judge(tiny(preset, epochs=2), train, test, out, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(state(path).values(), ck2["model"].values(), strict=True))

    judge = load_judge(out)
    again = load_judge(path)
    assert judge.classes == CIFAR_CLASSES and judge.info["epoch"] == 2
    assert torch.equal(judge.predict_proba(test.images), again.predict_proba(test.images))
    result = judge.accuracy(test)
    assert result["overall"] == pytest.approx(ck2["test_accuracy"]) and result["n"] == 100
    assert set(result["per_class"]) == set(CIFAR_CLASSES)

    with pytest.raises(ValueError, match="other settings"):
        train_judge(tiny(preset, epochs=3, lr=0.5), train, test, out, progress=False)
    with pytest.raises(ValueError, match="other data"):
        train_judge(tiny(preset, epochs=3), train.subset(range(100)), test, out, progress=False)


def test_interrupted_run_matches_uninterrupted_and_seeds(cifar, tmp_path: Path):
    train, test = cifar
    cfg = tiny("pixel", epochs=2)
    whole = train_judge(cfg, train, test, tmp_path / "whole", progress=False)
    part = train_judge(cfg, train, test, tmp_path / "part", progress=False, stop_after=1)
    assert torch.load(part, weights_only=True)["epoch"] == 1 and not (tmp_path / "part" / METRICS).exists()
    part = train_judge(cfg, train, test, tmp_path / "part", progress=False)
    a, b = state(whole), state(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = state(train_judge(tiny("pixel", epochs=2, seed=5), train, test, tmp_path / "s5", progress=False))
    assert not all(torch.equal(a[k], other[k]) for k in a)
    fresh = state(train_judge(cfg, train, test, tmp_path / "part", progress=False, resume=False))
    assert all(torch.equal(a[k], fresh[k]) for k in a)


def test_accuracy_matches_classes_by_name():
    judge = Judge(build_judge(judge_config("features", widths=TINY["features"])), CIFAR_CLASSES)
    images = torch.randint(
        0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    pred = judge.predict(images)
    labels = torch.tensor([0, 1] * 6)
    subset = LabeledImages(images, labels, ["dog", "cat"], [str(i) for i in range(12)])
    truth = torch.tensor([CIFAR_CLASSES.index("dog"), CIFAR_CLASSES.index("cat")] * 6)
    result = judge.accuracy(subset)
    assert result["overall"] == pytest.approx(float((pred == truth).float().mean()))
    assert set(result["per_class"]) == {"dog", "cat"}
    with pytest.raises(ValueError, match="unknown"):
        judge.accuracy(LabeledImages(images, labels, ["dog", "puppy"], subset.names))


# -- Fréchet distance --------------------------------------------------------------------------------


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The usual FID formula (pytorch-fid style): scipy's sqrtm with the imaginary round-off dropped."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_closed_form_and_properties():
    rng = np.random.default_rng(0)
    d, n = 6, 40_000
    a = rng.normal(0.0, 1.0, (n, d))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    for shift, s2 in [(0.5, 1.0), (1.0, 1.0), (2.0, 1.5), (0.0, 0.5)]:
        b = rng.normal(shift, s2, (n, d))
        expected = d * shift**2 + d * (1.0 - s2) ** 2  # ||mu1 - mu2||^2 + d (s1 - s2)^2
        got = frechet_distance(a, b)
        assert got == pytest.approx(expected, rel=0.05, abs=0.02)
        assert frechet_distance(b, a) == pytest.approx(got, rel=1e-9, abs=1e-9)
    grows = [frechet_distance(a[:2000], a[2000:4000] + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert grows == sorted(grows) and grows[0] < 0.05

    # a general case agrees with the scipy formula, and torch input works
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    y = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 0.3
    assert frechet_distance(torch.from_numpy(x).float(), y) == pytest.approx(scipy_frechet(x, y), rel=1e-4)
    # fewer vectors than features: singular covariances, still finite and >= 0
    few = frechet_distance(rng.normal(size=(20, 64)), rng.normal(size=(30, 64)))
    assert np.isfinite(few) and few >= 0
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_frechet_between_images_in_feature_space():
    judge = Judge(build_judge(judge_config("features", widths=TINY["features"])), CIFAR_CLASSES)
    g = torch.Generator().manual_seed(4)
    dark = torch.rand(40, 3, 32, 32, generator=g) * 0.5
    bright = torch.rand(40, 3, 64, 64, generator=g) * 0.5 + 0.5
    assert frechet_between(judge, dark, dark.flip(0)) == pytest.approx(0.0, abs=1e-9)
    direct = frechet_distance(judge.features(dark), judge.features(bright))
    assert frechet_between(judge, dark, bright) == pytest.approx(direct) and direct > 0
