"""Judges: image classifiers that decide what a generated image shows, and the Fréchet distance check.

Two independent CIFAR-10 classifiers vote on every attack figure, and a third network supplies the
feature space for the Fréchet distance. None of them touches the FLUX.2 encoder (or any encoder of the
engine): they see pixels only, so they are independent of the attacked latent space. Presets
(:data:`PRESETS`, :func:`judge_config`):

- ``pixel``: a ResNet-9 (DAWNBench style, half width: 32-64-128-256, 1.6 M parameters) on 32x32 RGB;
  random crop (4 px reflect padding) and horizontal flip, label smoothing 0.2, SGD with Nesterov
  momentum, warm-up then cosine learning rate, seed 0. 64 px images are brought down to 32 px (bicubic,
  antialiased).
- ``grey64``: a different architecture and input view: a plain VGG-style CNN (no residuals, a 5x5 stem at
  full resolution, average pooling, 1.2 M parameters) on 64x64 luminance (32 px images are upscaled
  bicubically, as the generator's training images were), random crop (8 px at 64 px) and flip plus
  brightness/contrast jitter, label smoothing 0.1, seed 1.
- ``features``: the Fréchet feature network: a smaller VGG-style CNN on 32x32 RGB (colour matters to the
  distribution check), seed 2, no label smoothing (smoothing squeezes each class's features into a
  tight cluster, which hides the within-class spread a Fréchet distance should see); its penultimate
  layer has 128 features so that a few hundred images give a usable covariance. It votes nowhere, so the
  distribution check is not made in the space of either voting judge.

Every judge takes RGB images (B, 3, H, W), uint8 in [0, 255] or float in [0, 1], at 32 or 64 px (any
size works: it is resized to the judge's view), through :meth:`Judge.preprocess`, so real CIFAR images
and images decoded from latents (float, 64 px) are judged the same way. The network itself takes the
view ([0, 1], (B, C, S, S)) and normalises it internally.

Training (:func:`train_judge`) writes ``checkpoint.pt`` after every epoch (atomically; the model, the
optimiser, the config, the classes, the test accuracy overall and per class, a data fingerprint; JSON-able
values only, so it loads with ``weights_only=True``), ``train_log.jsonl`` (one line per epoch) and, at
the end, ``metrics.json``. An interrupted run resumes from its last finished epoch and follows the same
path as an uninterrupted one (the data order and augmentation of epoch ``e`` come from RNGs seeded by
``(seed, e)``, and the global RNG is reseeded likewise). The learning-rate schedule spans the run's
``epochs``; raising ``epochs`` of a finished run continues from its last epoch on the longer schedule.

Fréchet distance (:func:`frechet_distance`): ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``
from the two sets' means and covariances, in float64, with the trace of the matrix square root taken
from the eigenvalues of the symmetric ``S_a^(1/2) S_b S_a^(1/2)`` (negative round-off clipped), which
needs no complex cleanup and is exact for singular covariances (fewer images than features). Like
FID, it is biased upwards for small sets: compare distances computed from sets of equal size."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sfumato.imageio import atomic_write_bytes
from sfumato.lab.data.datasets import LabeledImages
from sfumato.lab.storage import atomic_torch_save, trim_log

CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.jsonl"
METRICS = "metrics.json"
FORMAT = "sfumato.lab.judge/1"
ARCHS = ("resnet9", "vgg")
VIEWS = ("rgb32", "rgb64", "grey32", "grey64")
# JudgeConfig fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = ("epochs", "eval_batch")

# Per-channel statistics of CIFAR-10 train, in [0, 1]; luminance is BT.601.
_RGB_MEAN, _RGB_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_GREY_MEAN, _GREY_STD = (0.4809,), (0.2390,)
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class JudgeConfig:
    name: str = "pixel"
    arch: str = "resnet9"  # "resnet9" (residual, max-pool head) or "vgg" (plain, average-pool head)
    view: str = "rgb32"  # the input the network sees: rgb32, rgb64, grey32, grey64
    widths: tuple[int, ...] = (32, 64, 128, 256)  # resnet9: exactly 4; vgg: stem then one per stage
    epochs: int = 8
    batch: int = 256
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adamw"
    lr: float = 0.2  # peak learning rate
    weight_decay: float = 5e-4
    warmup: float = 0.2  # fraction of the run's steps of linear warm-up (from 0), then cosine to 0
    label_smoothing: float = 0.2
    seed: int = 0
    crop_pad: int = 4  # random-crop padding in 32-px pixels (scaled with the view); 0 disables
    flip: bool = True  # random horizontal flips
    jitter: float = 0.0  # brightness/contrast (and saturation for RGB) factors in [1 - j, 1 + j]
    eval_batch: int = 500

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        if self.arch == "resnet9" and len(self.widths) != 4:
            raise ValueError(f"resnet9 needs 4 widths, got {self.widths}")
        if self.arch == "vgg" and len(self.widths) < 2:
            raise ValueError(f"vgg needs a stem width and at least one stage width, got {self.widths}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.epochs < 0 or self.batch < 2 or self.eval_batch < 1:
            raise ValueError("epochs must be >= 0, batch >= 2 and eval_batch >= 1")

    @property
    def size(self) -> int:
        return int(self.view[-2:])

    @property
    def channels(self) -> int:
        return 1 if self.view.startswith("grey") else 3

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown JudgeConfig fields: {sorted(unknown)}")
        return cls(**d)


#: The lab's judges: two voters (``pixel``, ``grey64``) and the Fréchet feature network (``features``).
PRESETS: dict[str, JudgeConfig] = {
    "pixel": JudgeConfig(),
    "grey64": JudgeConfig(
        name="grey64",
        arch="vgg",
        view="grey64",
        widths=(24, 64, 128, 256),
        epochs=7,
        lr=0.1,
        label_smoothing=0.1,
        seed=1,
        jitter=0.4,
    ),
    "features": JudgeConfig(
        name="features",
        arch="vgg",
        view="rgb32",
        widths=(24, 48, 96, 128),
        epochs=5,
        lr=0.1,
        label_smoothing=0.0,
        seed=2,
    ),
}


def judge_config(preset: str, **overrides: Any) -> JudgeConfig:
    """A copy of ``PRESETS[preset]`` with ``overrides`` (e.g. ``epochs=1, widths=(8, 8, 8, 8)``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown judge preset {preset!r}; known: {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


def to_view(images: torch.Tensor, view: str) -> torch.Tensor:
    """RGB images (B, 3, H, W) (uint8 [0, 255] or float [0, 1]) -> a judge's input view, float [0, 1].

    Resized to the view's size with bicubic interpolation (antialiased when shrinking) and clamped;
    ``grey`` views are BT.601 luminance (B, 1, S, S). A single image (3, H, W) gets a batch axis.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be RGB (B, 3, H, W), got {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    size = int(view[-2:])
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    x = x.clamp(0.0, 1.0)
    if view.startswith("grey"):
        x = (x * x.new_tensor(_LUMA)[None, :, None, None]).sum(1, keepdim=True)
    return x


def augment(x: torch.Tensor, config: JudgeConfig, generator: torch.Generator) -> torch.Tensor:
    """Random crop (reflect padding), horizontal flip and colour jitter of a batch of views in [0, 1]."""
    b, c, h, w = x.shape
    pad = round(config.crop_pad * h / 32)
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
        x = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    if config.flip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if config.jitter > 0:
        j = config.jitter

        def factor() -> torch.Tensor:
            return (1 + (2 * torch.rand(b, generator=generator) - 1) * j)[:, None, None, None]

        x = x * factor()
        grey = (x * x.new_tensor(_LUMA)[None, :, None, None]).sum(1, keepdim=True) if c == 3 else x
        x = (x - grey.mean((2, 3), keepdim=True)) * factor() + grey.mean((2, 3), keepdim=True)
        if c == 3:
            grey = (x * x.new_tensor(_LUMA)[None, :, None, None]).sum(1, keepdim=True)
            x = (x - grey) * factor() + grey
        x = x.clamp(0.0, 1.0)
    return x.contiguous()


def _conv_bn(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(width, width), _conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class JudgeNet(nn.Module):
    """A judge's network: ``features(view) -> (B, D)`` and ``forward(view) -> logits (B, classes)``.

    The input is the judge's view in [0, 1] (see :func:`to_view`); normalisation is done inside.
    """

    def __init__(self, config: JudgeConfig, num_classes: int = 10) -> None:
        super().__init__()
        self.config = config
        mean, std = (_GREY_MEAN, _GREY_STD) if config.channels == 1 else (_RGB_MEAN, _RGB_STD)
        self.register_buffer("mean", torch.tensor(mean)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(std)[None, :, None, None], persistent=False)
        shrink = config.size // 32  # the stem works at the view's size, the rest at 32 px or below
        w = config.widths
        if config.arch == "resnet9":
            stem: list[nn.Module] = [_conv_bn(config.channels, w[0])]
            if shrink > 1:
                stem.append(nn.MaxPool2d(shrink))
            self.body = nn.Sequential(
                *stem,
                _conv_bn(w[0], w[1]),
                nn.MaxPool2d(2),
                _Residual(w[1]),
                _conv_bn(w[1], w[2]),
                nn.MaxPool2d(2),
                _conv_bn(w[2], w[3]),
                nn.MaxPool2d(2),
                _Residual(w[3]),
                nn.AdaptiveMaxPool2d(1),
                nn.Flatten(),
            )
            self.scale = 0.125  # DAWNBench ResNet-9: scaled-down logits
        else:
            layers: list[nn.Module] = [_conv_bn(config.channels, w[0], k=5 if shrink > 1 else 3)]
            if shrink > 1:
                layers.append(nn.MaxPool2d(shrink))
            for cin, cout in zip(w[:-1], w[1:], strict=True):
                layers += [_conv_bn(cin, cout), _conv_bn(cout, cout), nn.MaxPool2d(2)]
            self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.scale = 1.0
        self.head = nn.Linear(w[-1], num_classes, bias=config.arch != "resnet9")
        self.feature_dim = w[-1]
        self.to(memory_format=torch.channels_last)  # 1.3-1.5x faster convolutions on CPU

    def features(self, view: torch.Tensor) -> torch.Tensor:
        x = ((view - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.body(x)

    def forward(self, view: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(view)) * self.scale


def build_judge(config: JudgeConfig, num_classes: int = 10) -> JudgeNet:
    """A freshly initialised judge network (initialised from ``config.seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return JudgeNet(config, num_classes)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Judge:
    """A trained classifier in eval mode: batched, no gradients, any RGB input (see :func:`to_view`)."""

    def __init__(
        self,
        model: JudgeNet,
        classes: Sequence[str],
        batch: int = 500,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.classes = list(classes)
        self.batch = batch
        self.info = info or {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: Any) -> Judge:
        self.model.to(device)
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images (uint8 or float in [0, 1], any size) -> this judge's view."""
        return to_view(images, self.config.view)

    @torch.no_grad()
    def _batched(self, images: torch.Tensor, fn) -> torch.Tensor:
        images = torch.as_tensor(images)
        if images.ndim == 3:
            images = images[None]
        outs = [
            fn(self.preprocess(images[i : i + self.batch]).to(self.device)).float().cpu()
            for i in range(0, images.shape[0], self.batch)
        ]
        if not outs:
            width = len(self.classes) if fn is self.model else self.model.feature_dim
            return torch.zeros((0, width))
        return torch.cat(outs)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self._batched(images, self.model)

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, len(classes))."""
        return self.logits(images).softmax(-1)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class indices (B,) long, into :attr:`classes`."""
        return self.logits(images).argmax(-1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, D) (the pooled activations before the linear head)."""
        return self._batched(images, self.model.features)

    def accuracy(self, data: LabeledImages) -> dict[str, Any]:
        """``{"overall", "per_class": {class: accuracy}, "n"}`` on labelled images (classes matched by name;
        ``data`` may hold a subset of the judge's classes, in any order)."""
        return _accuracy(self.predict(data.images), _mapped_labels(data, self.classes), self.classes)


def _mapped_labels(data: LabeledImages, classes: Sequence[str]) -> torch.Tensor:
    unknown = [c for c in data.classes if c not in classes]
    if unknown:
        raise ValueError(f"classes {unknown} are unknown to this judge (it knows {list(classes)})")
    lookup = torch.tensor([list(classes).index(c) for c in data.classes], dtype=torch.long)
    return lookup[data.labels]


def _accuracy(pred: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    right = pred == labels
    per_class = {}
    for i, c in enumerate(classes):
        mask = labels == i
        if mask.any():
            per_class[c] = float(right[mask].float().mean())
    overall = float(right.float().mean()) if len(labels) else float("nan")
    return {"overall": overall, "per_class": per_class, "n": int(len(labels))}


def load_judge(path: str | Path, device: Any = "cpu", batch: int = 500) -> Judge:
    """The judge in a checkpoint file (or a training folder holding ``checkpoint.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    ck = _load_checkpoint(path)
    config = JudgeConfig.from_dict(ck["config"])
    model = JudgeNet(config, len(ck["classes"]))
    model.load_state_dict(ck["model"])
    model.to(device)
    info = {k: ck[k] for k in ("epoch", "test_accuracy", "per_class", "elapsed_s")}
    return Judge(model, ck["classes"], batch=batch, info=info)


def _load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    ck = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sfumato lab judge checkpoint")
    return ck


def _seed(seed: int, epoch: int, salt: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + salt) % (2**63)


def lr_at(config: JudgeConfig, step: int, total: int) -> float:
    """The learning rate for (0-based) ``step`` of ``total``: linear warm-up from 0, then cosine to 0."""
    warm = max(1, round(config.warmup * total)) if config.warmup > 0 else 0
    if step < warm:
        return config.lr * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, total - warm))
    return config.lr * 0.5 * (1 + math.cos(math.pi * p))


def data_fingerprint(data: LabeledImages) -> dict[str, Any]:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data.images.numpy()).tobytes())
    h.update(np.ascontiguousarray(data.labels.numpy()).tobytes())
    return {"n": len(data), "shape": list(data.images.shape[1:]), "sha256": h.hexdigest()[:16]}


def _optimizer(model: nn.Module, config: JudgeConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


@torch.no_grad()
def _evaluate(model: JudgeNet, data: LabeledImages, classes: list[str], batch: int) -> dict[str, Any]:
    was = model.training
    model.eval()
    judge = Judge(model, classes, batch=batch)
    result = judge.accuracy(data)
    model.train(was)
    return result


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))


def train_judge(
    config: JudgeConfig,
    train: LabeledImages,
    test: LabeledImages,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = True,
    *,
    device: Any = "cpu",
    stop_after: int | None = None,
) -> Path:
    """Train a judge on ``train`` (uint8 RGB, any size; classes = ``train.classes``), test on ``test``.

    Writes ``checkpoint.pt`` after every epoch, ``train_log.jsonl`` and, once all ``config.epochs`` are
    done, ``metrics.json`` (overall and per-class test accuracy, parameters, time, config). With
    ``resume`` and a checkpoint in ``out_dir``, training continues from its epoch (settings other than
    ``epochs``/``eval_batch`` and the training data must match); without it the folder starts afresh.
    ``stop_after`` ends this call after that many epochs (a run in slices; call again to go on).
    Returns the checkpoint path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path, metrics_path = out / CHECKPOINT, out / TRAIN_LOG, out / METRICS
    classes = list(train.classes)
    test_labels = _mapped_labels(test, classes)  # fails early on foreign test classes
    del test_labels
    if len(train) < 2:
        raise ValueError("need at least 2 training images")
    device = torch.device(device)
    fp = data_fingerprint(train)

    model = build_judge(config, len(classes)).to(device)
    model.train()
    opt = _optimizer(model, config)
    start, elapsed, last_eval = 0, 0.0, None
    ck = _load_checkpoint(ckpt_path, device) if resume and ckpt_path.exists() else None
    if ck is not None:
        old = {k: v for k, v in ck["config"].items() if k not in RESUMABLE_CHANGES}
        new = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(
                f"{ckpt_path}: the checkpoint was trained with other settings ({', '.join(diff)})"
            )
        if ck["data"] != fp or ck["classes"] != classes:
            raise ValueError(f"{ckpt_path}: the checkpoint was trained on other data; use another out_dir")
        model.load_state_dict(ck["model"])
        if ck.get("optimizer") is not None:
            opt.load_state_dict(ck["optimizer"])
        elif int(ck["epoch"]) < config.epochs:  # a restored model (lab-models/) is a finished run
            raise ValueError(f"{ckpt_path} has no optimiser state: it can be used, not trained further")
        start, elapsed = int(ck["epoch"]), float(ck["elapsed_s"])
        last_eval = {"overall": ck["test_accuracy"], "per_class": ck["per_class"], "n": ck["n_test"]}
        trim_log(log_path, "epoch", start)
    else:
        log_path.unlink(missing_ok=True)
        metrics_path.unlink(missing_ok=True)

    n, batch = len(train), min(config.batch, len(train))
    steps_per_epoch = n // batch + (1 if n % batch >= 2 else 0)  # a last batch of one is dropped (BN)
    total = config.epochs * steps_per_epoch
    end = config.epochs if stop_after is None else min(config.epochs, start + max(0, stop_after))
    t0 = time.perf_counter()

    def save(epoch: int, result: dict[str, Any]) -> None:
        atomic_torch_save(
            {
                "format": FORMAT,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "config": config.to_dict(),
                "classes": classes,
                "test_accuracy": result["overall"],
                "per_class": result["per_class"],
                "n_test": result["n"],
                "data": fp,
                "elapsed_s": elapsed + time.perf_counter() - t0,
            },
            ckpt_path,
        )

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=start * steps_per_epoch,
        desc=f"judge {config.name}",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        with torch.random.fork_rng(devices=[]):
            for epoch in range(start, end):
                g = torch.Generator().manual_seed(_seed(config.seed, epoch, 1))
                torch.manual_seed(_seed(config.seed, epoch, 2))
                order = torch.randperm(n, generator=g)
                loss_sum, right, seen = 0.0, 0, 0
                for i in range(steps_per_epoch):
                    idx = order[i * batch : (i + 1) * batch]
                    x = augment(to_view(train.images[idx], config.view), config, g).to(device)
                    y = train.labels[idx].to(device)
                    lr = lr_at(config, epoch * steps_per_epoch + i, total)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach()) * len(idx)
                    right += int((logits.detach().argmax(-1) == y).sum())
                    seen += len(idx)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.3g}")
                last_eval = _evaluate(model, test, classes, config.eval_batch)
                row = {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / max(1, seen),
                    "train_accuracy": right / max(1, seen),
                    "test_accuracy": last_eval["overall"],
                    "lr": lr,
                    "elapsed_s": round(elapsed + time.perf_counter() - t0, 3),
                }
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{last_eval['overall']:.3f}")
                save(epoch + 1, last_eval)
    finally:
        bar.close()
    done = end if end > start else start
    if not ckpt_path.exists():  # zero epochs: the untrained network
        last_eval = _evaluate(model, test, classes, config.eval_batch)
        save(0, last_eval)
    if done >= config.epochs and last_eval is not None:
        _write_json(
            metrics_path,
            {
                "name": config.name,
                "epochs": done,
                "test_accuracy": last_eval["overall"],
                "per_class": last_eval["per_class"],
                "n_test": last_eval["n"],
                "n_train": n,
                "parameters": num_parameters(model),
                "elapsed_s": round(float(_load_checkpoint(ckpt_path)["elapsed_s"]), 3),
                "classes": classes,
                "config": config.to_dict(),
            },
        )
    return ckpt_path
