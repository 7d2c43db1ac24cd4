"""Training and fine-tuning the lab's generator (:mod:`sfumato.lab.models.generator`), resumably.

:func:`train` fits a :class:`~sfumato.lab.generator.LatentUNet` to ``(latents, captions)`` by flow
matching: AdamW, linear warm-up then cosine decay, gradient clipping, caption dropout for classifier-free
guidance, an EMA of the weights (what :func:`load_generator` returns and what sampling should use).

Determinism: the batch for step ``s`` is a slice of a stream of per-epoch permutations seeded by
``config.seed``, and the step's noise, times, caption dropout and network dropout come from RNGs seeded by
``(seed, s)``. So a run interrupted and resumed from its last checkpoint follows the same path as an
uninterrupted one (bit for bit on the same machine and thread count).

Output folder: ``checkpoint.pt`` (written atomically every ``checkpoint_every`` steps and at the end;
the model, EMA, optimiser, step, RNG state, both configs, the latent normalisation statistics, a data
fingerprint and a free-form ``meta`` dict, stored as JSON so the file loads with ``weights_only=True``)
and ``train_log.jsonl`` (one JSON object every ``log_every`` steps: step, mean loss since the last line,
learning rate, gradient norm, elapsed seconds).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sfumato.lab.models.generator import GeneratorConfig, LatentUNet, flow_matching_loss, latent_stats
from sfumato.lab.storage import atomic_torch_save, trim_log

CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.jsonl"
FORMAT = "sfumato.lab.generator/1"
# TrainConfig fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "save_optimizer_at_end")

TextEncoderFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainConfig:
    steps: int = 4000
    batch: int = 128
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 200  # linear warm-up steps, then cosine decay to min_lr_frac * lr at ``steps``
    min_lr_frac: float = 0.0
    ema_decay: float = 0.999  # ramped up as min(ema_decay, (1 + k) / (10 + k)) over the run's first steps
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    cond_drop: float | None = None  # caption dropout; None: the model's GeneratorConfig.cond_drop
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    save_optimizer_at_end: bool = True  # False makes the final checkpoint smaller (no optimiser state)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


# -- helpers -----------------------------------------------------------------------------------------


def lr_at(config: TrainConfig, step: int) -> float:
    """The learning rate for (0-based) ``step``: linear warm-up, then cosine to ``min_lr_frac * lr``."""
    if config.warmup > 0 and step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(1, config.steps - config.warmup)
    p = min(1.0, (step - config.warmup) / span)
    return config.lr * (config.min_lr_frac + (1 - config.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def _step_seed(seed: int, step: int, salt: int = 0) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7 + salt) % (2**63)


class _Order:
    """Indices of the samples in each step's batch: an endless stream of seeded per-epoch permutations."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self._cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            g = torch.Generator().manual_seed(_step_seed(self.seed, epoch, salt=3))
            self._cache[epoch] = torch.randperm(self.n, generator=g)
        return self._cache[epoch]

    def __call__(self, step: int) -> torch.Tensor:
        pos, end = step * self.batch, (step + 1) * self.batch
        parts = []
        while pos < end:
            epoch, off = divmod(pos, self.n)
            take = min(end - pos, self.n - off)
            parts.append(self._perm(epoch)[off : off + take])
            pos += take
        return torch.cat(parts)


def encode_captions(
    text_encoder_fn: TextEncoderFn, captions: Sequence[str], chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings (U, T, D) float32 and masks (U, T) bool of ``captions`` on the CPU, one T for all."""
    embs, masks = [], []
    for i in range(0, len(captions), chunk):
        e, m = text_encoder_fn(list(captions[i : i + chunk]))
        embs.append(torch.as_tensor(e).detach().float().cpu())
        masks.append(torch.as_tensor(m).detach().to(torch.bool).cpu())
    t = max(e.shape[1] for e in embs)
    embs = [torch.nn.functional.pad(e, (0, 0, 0, t - e.shape[1])) for e in embs]
    masks = [torch.nn.functional.pad(m, (0, t - m.shape[1]), value=False) for m in masks]
    return torch.cat(embs), torch.cat(masks)


class CaptionCache:
    """Each unique caption encoded once; ``lookup(indices)`` gives the (emb, mask) of those samples."""

    def __init__(self, captions: Sequence[str], text_encoder_fn: TextEncoderFn) -> None:
        index: dict[str, int] = {}
        ids = [index.setdefault(c, len(index)) for c in captions]
        self.unique = list(index)
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        self.emb, self.mask = encode_captions(text_encoder_fn, self.unique)

    def lookup(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.ids[indices]
        return self.emb[u], self.mask[u]


def data_fingerprint(latents: torch.Tensor, captions: Sequence[str]) -> dict[str, Any]:
    lat = np.ascontiguousarray(latents.detach().cpu().float().numpy())
    return {
        "n": int(lat.shape[0]),
        "shape": list(lat.shape[1:]),
        "latents_sha256": hashlib.sha256(lat.tobytes()).hexdigest()[:16],
        "captions_sha256": hashlib.sha256("\n".join(captions).encode("utf-8")).hexdigest()[:16],
    }


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    ck = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sfumato lab generator checkpoint")
    return ck


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def _check_resume(
    ck: dict[str, Any], model: LatentUNet, config: TrainConfig, fp: dict[str, Any], where: Path
):
    if ck["generator_config"] != model.config.to_dict():
        raise ValueError(
            f"{where}: the checkpoint's GeneratorConfig differs from the model's; use another out_dir"
        )
    old = {k: v for k, v in ck["train_config"].items() if k not in RESUMABLE_CHANGES}
    new = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"{where}: the checkpoint was trained with other settings ({', '.join(diff)})")
    if ck["data"] != fp:
        raise ValueError(f"{where}: the checkpoint was trained on other data; use another out_dir")


# -- training ----------------------------------------------------------------------------------------


def train(
    model: LatentUNet,
    latents: torch.Tensor,
    captions: Sequence[str],
    text_encoder_fn: TextEncoderFn,
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = True,
    *,
    meta: dict[str, Any] | None = None,
    stats: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Train ``model`` (in place) on encoder-space ``latents`` (N, C, S, S) and their ``captions``.

    ``text_encoder_fn(list_of_captions) -> (emb (B, T, D), mask (B, T))`` is called once per unique
    caption (in chunks); the results are cached in memory. ``stats`` ({"mean", "std"} per channel) sets
    the latent normalisation; by default it is computed from ``latents``. With ``resume`` and a
    checkpoint in ``out_dir``, training continues from it (its settings and data must match; only
    ``steps``, ``checkpoint_every``, ``log_every`` and ``save_optimizer_at_end`` may change); without
    ``resume`` an existing checkpoint is overwritten. Returns the path of the final checkpoint; ``model``
    is left holding the raw (non-EMA) trained weights.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / CHECKPOINT, out / TRAIN_LOG
    latents = torch.as_tensor(latents).float()
    captions = list(captions)
    cfg = model.config
    expected = (cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    if latents.dim() != 4 or tuple(latents.shape[1:]) != expected:
        raise ValueError(f"latents must be (N, {', '.join(map(str, expected))}), not {tuple(latents.shape)}")
    if len(captions) != latents.shape[0]:
        raise ValueError(f"{latents.shape[0]} latents but {len(captions)} captions")
    if config.steps < 0 or config.batch < 1:
        raise ValueError("steps must be >= 0 and batch >= 1")
    device = next(model.parameters()).device
    fp = data_fingerprint(latents, captions)
    meta_json = json.dumps(meta or {}, default=str)

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, elapsed = 0, 0.0
    ck = load_checkpoint(ckpt_path, device) if resume and ckpt_path.exists() else None
    if ck is not None:
        _check_resume(ck, model, config, fp, ckpt_path)
        model.load_state_dict(ck["model"])
        start, elapsed = int(ck["step"]), float(ck.get("elapsed_s", 0.0))
        if start >= config.steps:
            return ckpt_path
        if ck.get("optimizer") is None:
            raise ValueError(f"{ckpt_path} has no optimiser state (saved with save_optimizer_at_end=False)")
        opt.load_state_dict(ck["optimizer"])
        if ck.get("meta"):
            meta_json = json.dumps({**json.loads(ck["meta"]), **(meta or {})}, default=str)
        trim_log(log_path, "step", start)
    else:
        st = stats if stats is not None else latent_stats(latents)
        model.set_latent_stats(st["mean"], st["std"])
        log_path.unlink(missing_ok=True)
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    if ck is not None:
        ema.load_state_dict(ck["ema"])

    cache = CaptionCache(captions, text_encoder_fn)
    order = _Order(latents.shape[0], config.batch, config.seed)
    params = [p for p in model.parameters() if p.requires_grad]

    def save(step: int, final: bool) -> None:
        keep_opt = not final or config.save_optimizer_at_end
        atomic_torch_save(
            {
                "format": FORMAT,
                "step": step,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict() if keep_opt else None,
                "rng": {"torch": torch.get_rng_state()},
                "generator_config": cfg.to_dict(),
                "train_config": config.to_dict(),
                "stats": {"mean": model.latent_mean.detach().cpu(), "std": model.latent_std.detach().cpu()},
                "data": fp,
                "meta": meta_json,
                "elapsed_s": elapsed + time.perf_counter() - t0,
            },
            ckpt_path,
        )

    cuda = [d for d in range(torch.cuda.device_count())] if device.type == "cuda" else []
    bar = tqdm(total=config.steps, initial=start, desc="train", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    window: list[float] = []
    smooth = None
    try:
        with torch.random.fork_rng(devices=cuda):
            for step in range(start, config.steps):
                idx = order(step)
                x0 = model.normalize(latents[idx].to(device))
                emb, mask = cache.lookup(idx)
                g = torch.Generator().manual_seed(_step_seed(config.seed, step, salt=1))
                torch.manual_seed(_step_seed(config.seed, step, salt=2))  # network dropout
                lr = lr_at(config, step)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss = flow_matching_loss(
                    model, x0, emb.to(device), mask.to(device), g, cond_drop=config.cond_drop
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    gnorm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
                else:
                    gnorm = float(
                        torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params if p.grad is not None))
                    )
                opt.step()
                _ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))

                value = float(loss.detach())
                window.append(value)
                smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.2e}")
                done = step + 1
                if config.log_every > 0 and (done % config.log_every == 0 or done == config.steps):
                    row = {
                        "step": done,
                        "loss": sum(window) / len(window),
                        "lr": lr,
                        "grad_norm": gnorm,
                        "elapsed_s": round(elapsed + time.perf_counter() - t0, 3),
                    }
                    with open(log_path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    window = []
                if done == config.steps or (
                    config.checkpoint_every > 0 and done % config.checkpoint_every == 0
                ):
                    save(done, final=done == config.steps)
    finally:
        bar.close()
    if config.steps == 0 or not ckpt_path.exists():
        save(config.steps, final=True)
    return ckpt_path


def load_generator(
    path: str | Path, device: Any = "cpu", ema: bool = True
) -> tuple[LatentUNet, dict[str, torch.Tensor], GeneratorConfig, dict[str, Any]]:
    """``(model, stats, config, meta)`` from a checkpoint: the EMA weights (``ema=False``: the raw ones),
    in eval mode on ``device``; ``stats`` is {"mean", "std"} per latent channel (also inside the model)."""
    return _from_checkpoint(load_checkpoint(path), device, ema)


def _from_checkpoint(
    ck: dict[str, Any], device: Any, ema: bool
) -> tuple[LatentUNet, dict[str, torch.Tensor], GeneratorConfig, dict[str, Any]]:
    config = GeneratorConfig.from_dict(ck["generator_config"])
    model = LatentUNet(config)
    model.load_state_dict(ck["ema" if ema else "model"])
    model.to(device).eval()
    stats = {"mean": ck["stats"]["mean"].clone(), "std": ck["stats"]["std"].clone()}
    meta = json.loads(ck["meta"]) if ck.get("meta") else {}
    meta.setdefault("step", int(ck["step"]))
    return model, stats, config, meta


def finetune(
    base: str | Path,
    latents: torch.Tensor,
    captions: Sequence[str],
    text_encoder_fn: TextEncoderFn,
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = True,
    *,
    meta: dict[str, Any] | None = None,
    device: Any = "cpu",
) -> Path:
    """:func:`train`, starting from the base checkpoint's EMA weights and its latent statistics (not
    recomputed on the new data), with a fresh optimiser and EMA, writing to a new ``out_dir``. Resumable
    the same way. ``meta`` gains ``base_checkpoint`` and ``base_step``."""
    base = Path(base)
    if Path(out_dir).resolve() == base.parent.resolve():
        raise ValueError("finetune needs an out_dir other than the base checkpoint's folder")
    ck = load_checkpoint(base)
    model, stats, _, _ = _from_checkpoint(ck, device, ema=True)
    info = {**(meta or {}), "base_checkpoint": str(base), "base_step": int(ck["step"])}
    del ck
    return train(
        model, latents, captions, text_encoder_fn, config, out_dir, progress, resume, meta=info, stats=stats
    )
