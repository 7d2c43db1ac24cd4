"""The lab's generator and its training loop, on tiny models and random tensors (seconds, one thread)."""

from __future__ import annotations

import json
import zlib

import pytest
import torch

import sfumato.lab.models.training as train_mod
from sfumato.lab.models.generator import (
    GeneratorConfig,
    LatentUNet,
    flow_matching_loss,
    num_parameters,
    sample,
)
from sfumato.lab.models.training import TrainConfig, finetune, load_checkpoint, load_generator, lr_at, train

T, D = 16, 384
TINY = GeneratorConfig(width=16, channel_mults=(1, 2), blocks_per_level=1, heads=2, ff_mult=2)
CAPTIONS = ["a photo of a dog", "a picture of a cat", "a photo of a truck", "an image of a small bird"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def fake_text(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """A stand-in text encoder: per-caption seeded token embeddings, as many valid tokens as words + 2."""
    embs, masks = [], []
    for c in captions:
        g = torch.Generator().manual_seed(zlib.crc32(c.encode()))
        embs.append(torch.randn(T, D, generator=g))
        m = torch.zeros(T, dtype=torch.bool)
        m[: min(T, len(c.split()) + 2)] = True
        masks.append(m)
    return torch.stack(embs), torch.stack(masks)


def randomised(config: GeneratorConfig = TINY, seed: int = 0) -> LatentUNet:
    """A tiny model whose zero-initialised output layers are made random, so every input matters."""
    torch.manual_seed(seed)
    model = LatentUNet(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.abs().sum():
                p.normal_(0, 0.05)
            elif p.dim() == 1 and not p.abs().sum():
                p.normal_(0, 0.02)
    return model.eval()


def toy_data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Latents near one random prototype per caption, with FLUX.2-like channel offsets and spreads."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(len(CAPTIONS), 32, 8, 8, generator=g)
    which = torch.arange(n) % len(CAPTIONS)
    latents = protos[which] + 0.3 * torch.randn(n, 32, 8, 8, generator=g)
    latents = (
        latents * torch.linspace(0.5, 1.5, 32)[None, :, None, None] + torch.linspace(-1, 1, 32)[:, None, None]
    )
    return latents, [CAPTIONS[i] for i in which.tolist()]


def test_config_round_trip_and_default_size():
    cfg = GeneratorConfig(width=64, channel_mults=[1, 2], attn_resolutions=[4])
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError):
        GeneratorConfig.from_dict({"nope": 1})
    assert 10e6 <= num_parameters(LatentUNet()) <= 25e6
    tc = TrainConfig(steps=7, lr=1e-3)
    assert TrainConfig.from_dict(tc.to_dict()) == tc
    assert lr_at(tc, 0) < lr_at(tc, 6) or tc.warmup >= tc.steps


def test_unet_shapes_and_zero_init():
    model = LatentUNet(TINY)
    emb, mask = fake_text(CAPTIONS[:3])
    x = torch.randn(3, 32, 8, 8)
    out = model(x, torch.rand(3), emb, mask)
    assert out.shape == x.shape
    assert not out.abs().sum()  # zero-initialised output: the untrained model predicts zero velocity
    out = randomised()(x, 0.5, emb, mask, drop=torch.tensor([True, False, True]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_padded_tokens_are_ignored_and_captions_matter():
    model = randomised()
    emb, mask = fake_text(CAPTIONS)
    x, t = torch.randn(4, 32, 8, 8), torch.rand(4)
    base = model(x, t, emb, mask)
    noisy = emb.clone()
    noisy[~mask] = 100 * torch.randn(int((~mask).sum()), D)
    assert torch.equal(model(x, t, noisy, mask), base)
    changed = emb.clone()
    changed[:, 0] += 1.0  # a real token
    assert not torch.allclose(model(x, t, changed, mask), base)
    # a dropped caption is replaced by the null embedding whatever the caption was
    drop = torch.ones(4, dtype=torch.bool)
    assert torch.allclose(model(x, t, emb, mask, drop=drop), model(x, t, changed, mask, drop=drop))


def test_overfits_a_few_latents(tmp_path):
    latents, captions = toy_data(16)
    torch.manual_seed(0)
    model = LatentUNet(TINY)
    cfg = TrainConfig(steps=60, batch=16, lr=1e-2, warmup=5, checkpoint_every=0, log_every=10)

    def eval_loss() -> float:
        emb, mask = fake_text(captions)
        with torch.no_grad():
            x0 = model.normalize(latents)
            losses = [
                flow_matching_loss(model, x0, emb, mask, torch.Generator().manual_seed(s)) for s in range(4)
            ]
        return float(sum(losses) / len(losses))

    model.set_latent_stats(*train_mod.latent_stats(latents).values())
    before = eval_loss()
    path = train(model, latents, captions, fake_text, cfg, tmp_path / "run", progress=False)
    after = eval_loss()
    assert after < 0.8 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60]
    assert log[-1]["loss"] < log[0]["loss"]
    assert path.exists()
    # the normalisation statistics come from the data and travel in the checkpoint
    stats = load_checkpoint(path)["stats"]
    assert torch.allclose(stats["mean"], latents.mean(dim=(0, 2, 3)), atol=1e-4)


def test_sampling_is_deterministic_and_guidance_matters():
    model = randomised()
    model.set_latent_stats(torch.full((32,), 0.5), torch.full((32,), 2.0))
    emb, mask = fake_text(CAPTIONS[:2])
    a = sample(model, emb, mask, steps=4, guidance=3.0, seed=1)
    assert a.shape == (2, 32, 8, 8)
    assert torch.equal(a, sample(model, emb, mask, steps=4, guidance=3.0, seed=1))
    assert torch.allclose(a, sample(model, emb, mask, steps=4, guidance=3.0, seed=1, batch_size=1), atol=1e-5)
    assert not torch.allclose(a, sample(model, emb, mask, steps=4, guidance=3.0, seed=2))
    plain = sample(model, emb, mask, steps=4, guidance=1.0, seed=1)
    assert not torch.allclose(a, plain)
    # guidance 0 is the unconditional model: the caption no longer matters
    other_emb, other_mask = fake_text(CAPTIONS[2:])
    u = sample(model, emb, mask, steps=4, guidance=0.0, seed=1)
    assert torch.allclose(u, sample(model, other_emb, other_mask, steps=4, guidance=0.0, seed=1))
    # an explicit null embedding (e.g. the empty caption's) replaces the learned one
    e0, m0 = fake_text([""])
    assert not torch.allclose(a, sample(model, emb, mask, steps=4, guidance=3.0, seed=1, null_emb=(e0, m0)))
    # de-normalised output: the same draw in the model's space, mapped through the stats
    raw = sample(model, emb, mask, steps=4, guidance=3.0, seed=1, denormalize=False)
    assert torch.allclose(a, raw * 2.0 + 0.5)
    heun = sample(model, emb, mask, steps=2, guidance=3.0, seed=1, sampler="heun")
    assert heun.shape == a.shape and torch.isfinite(heun).all()
    assert not model.training


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    latents, captions = toy_data(12)
    cfg = TrainConfig(steps=6, batch=8, lr=2e-3, warmup=2, checkpoint_every=2, log_every=1, seed=3)
    torch.manual_seed(0)
    straight = train(LatentUNet(TINY), latents, captions, fake_text, cfg, tmp_path / "a", progress=False)

    real, calls = train_mod.flow_matching_loss, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # step index 3, after the checkpoint at step 2
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "flow_matching_loss", crashing)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="interrupted"):
        train(LatentUNet(TINY), latents, captions, fake_text, cfg, tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 2
    monkeypatch.setattr(train_mod, "flow_matching_loss", real)
    torch.manual_seed(123)  # a fresh model with other weights: the checkpoint's must win
    resumed = train(LatentUNet(TINY), latents, captions, fake_text, cfg, tmp_path / "b", progress=False)

    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)

    def losses(run):
        return [json.loads(x)["loss"] for x in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]

    assert losses("a") == losses("b") and len(losses("a")) == 6
    # other settings cannot silently resume the same folder
    with pytest.raises(ValueError, match="other settings"):
        train(LatentUNet(TINY), latents, captions, fake_text, TrainConfig(steps=8, batch=4), tmp_path / "b")


def test_checkpoint_round_trip_and_finetune(tmp_path):
    latents, captions = toy_data(8)
    cfg = TrainConfig(steps=3, batch=4, warmup=1, checkpoint_every=0, log_every=0)
    torch.manual_seed(0)
    model = LatentUNet(TINY)
    path = train(
        model,
        latents,
        captions,
        fake_text,
        cfg,
        tmp_path / "base",
        progress=False,
        meta={"dataset": "toy", "classes": ["dog", "cat"]},
    )
    ema, stats, config, meta = load_generator(path)
    assert config == TINY and not ema.training
    assert meta["dataset"] == "toy" and meta["classes"] == ["dog", "cat"] and meta["step"] == 3
    assert torch.equal(stats["mean"], ema.latent_mean) and torch.equal(stats["std"], ema.latent_std)
    ck = load_checkpoint(path)
    assert set(ck) >= {
        "model",
        "ema",
        "optimizer",
        "step",
        "rng",
        "generator_config",
        "train_config",
        "stats",
    }
    assert TrainConfig.from_dict(ck["train_config"]) == cfg
    for name, value in ck["ema"].items():
        assert torch.equal(ema.state_dict()[name], value)
    raw, *_ = load_generator(path, ema=False)
    emb, mask = fake_text(captions[:2])
    assert torch.equal(
        sample(ema, emb, mask, steps=2, seed=0), sample(load_generator(path)[0], emb, mask, steps=2, seed=0)
    )

    # fine-tuning: the base's EMA weights and statistics, new data, a new folder, a fresh optimiser
    new_latents, new_captions = toy_data(6, seed=5)
    ft = finetune(
        path,
        new_latents,
        new_captions,
        fake_text,
        TrainConfig(steps=2, batch=3, warmup=0),
        tmp_path / "ft",
        progress=False,
        meta={"n_poison": 0},
    )
    tuned, tuned_stats, _, tuned_meta = load_generator(ft)
    assert tuned_meta["base_checkpoint"] == str(path) and tuned_meta["n_poison"] == 0
    assert torch.equal(tuned_stats["mean"], stats["mean"])
    assert max(float(st["step"]) for st in load_checkpoint(ft)["optimizer"]["state"].values()) == 2
    assert not all(torch.equal(tuned.state_dict()[k], v) for k, v in ema.state_dict().items())
    # a finished run resumes as a no-op
    assert (
        finetune(
            path,
            new_latents,
            new_captions,
            fake_text,
            TrainConfig(steps=2, batch=3, warmup=0),
            tmp_path / "ft",
            progress=False,
        )
        == ft
    )
