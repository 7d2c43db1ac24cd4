"""A private image autoencoder: a latent space no attacker has seen, for the transfer test, and an
SD-class latent space for measuring protection where it was first claimed.

Poisons are crafted on public encoders (FLUX.2, Sana). A generator whose autoencoder was trained
privately shows whether they still work when the attacker cannot query the victim's encoder. The design
is deliberately unlike TAESD's: plain strided convolutions with GroupNorm, 16 latent channels instead of
32, trained here from scratch on the lab's own CIFAR-10 images (MSE + L1), seeded and resumable.

With ``kl > 0`` it is built the way Stable Diffusion 1.x/2.x's autoencoder is (``--latent-channels 4
--kl 1e-6``): the encoder gives a mean and a log-variance per latent, training decodes a sample of that
Gaussian and adds ``kl`` times its KL divergence from N(0, 1) (both terms summed per image, as in the
latent-diffusion code, then divided by the pixel count so the weight reads like theirs), and the encoder
used afterwards returns the mean. ``perceptual > 0`` adds the lab's feature-network distance
(:mod:`sfumato.lab.models.perceptual`) to the reconstruction loss.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sfumato.lab.judging.classifiers import JudgeNet
from sfumato.lab.models.perceptual import PerceptualDistance
from sfumato.lab.storage import atomic_torch_save, trim_log

CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.jsonl"
FORMAT = "sfumato.lab.private_autoencoder/1"


@dataclass
class PrivateConfig:
    latent_channels: int = 16
    widths: tuple[int, ...] = (32, 64, 128)  # one stride-2 stage per width: 64 px -> 8x8 latents
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50
    kl: float = 0.0  # > 0: a KL-regularised (SD-style) latent space, the KL term's weight
    perceptual: float = 0.0  # weight of the feature-network distance in the reconstruction loss
    imagenet_crops: int = 0  # crops (64-128 px, resized to 64) of each ImageNet sample added to CIFAR-10

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.kl < 0 or self.perceptual < 0:
            raise ValueError("kl and perceptual weights must not be negative")
        if self.imagenet_crops < 0:
            raise ValueError("imagenet_crops must not be negative")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        # settings at their defaults are left out, so autoencoders trained before they existed still match
        for key, default in (("kl", 0.0), ("perceptual", 0.0), ("imagenet_crops", 0)):
            if d[key] == default:
                del d[key]
        return d


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class PrivateEncoder(nn.Module):
    """Pixels in [0, 1] (B, 3, H, W), H and W multiples of 8 -> latents (B, C, H/8, W/8)."""

    def __init__(self, config: PrivateConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [_block(3, config.widths[0])]
        cin = config.widths[0]
        for w in config.widths:
            layers += [nn.Conv2d(cin, w, 4, stride=2, padding=1), nn.SiLU(), _block(w, w)]
            cin = w
        self.variational = config.kl > 0
        out = config.latent_channels * (2 if self.variational else 1)
        layers.append(nn.Conv2d(cin, out, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.latent_channels = config.latent_channels
        self.multiple = 2 ** len(config.widths)
        self.name = "private"

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the latent Gaussian (log-variance 0-size for a plain autoencoder)."""
        h = self.net(x * 2 - 1)
        if not self.variational:
            return h, h.new_zeros(0)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]


class PrivateDecoder(nn.Module):
    """Latents -> pixels in [0, 1]."""

    def __init__(self, config: PrivateConfig) -> None:
        super().__init__()
        widths = list(reversed(config.widths))
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[0], 3, padding=1), nn.SiLU()]
        cin = widths[0]
        for w in widths:
            layers += [_block(cin, w), nn.Upsample(scale_factor=2, mode="nearest"), _block(w, w)]
            cin = w
        layers.append(nn.Conv2d(cin, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.name = "private"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z) * 0.5 + 0.5).clamp(0, 1)


@dataclass
class PrivateAutoencoder:
    encoder: PrivateEncoder
    decoder: PrivateDecoder
    config: PrivateConfig
    metrics: dict[str, Any]


def _batch(images: torch.Tensor, step: int, config: PrivateConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    idx = torch.randint(0, images.shape[0], (config.batch,), generator=g)
    x = images[idx].float() / 255
    flip = torch.rand(config.batch, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def reconstruction_psnr(ae: PrivateAutoencoder, images: torch.Tensor) -> float:
    """PSNR (dB) of encode-decode round trips of uint8 images."""
    with torch.no_grad():
        x = images.float() / 255
        y = ae.decoder(ae.encoder(x))
        return float(10 * torch.log10(1 / F.mse_loss(y, x).clamp_min(1e-12)))


def train_private_autoencoder(
    images: torch.Tensor,
    held_out: torch.Tensor | dict[str, torch.Tensor],
    out_dir: str | Path,
    config: PrivateConfig | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    feature_net: JudgeNet | None = None,
) -> Path:
    """Train on uint8 (N, 3, 64, 64) ``images``; report PSNR on ``held_out``; returns the checkpoint.

    ``held_out`` is one image set or several by name: the first gives ``held_out_psnr_db``, each other
    ``held_out_<name>_psnr_db``.

    Resumable bit for bit from any checkpoint (batches and latent samples are seeded per step);
    ``stop_after`` ends this call after that many steps, checkpointed (a run in slices). ``feature_net``
    (the ``features`` judge's network) is needed when ``config.perceptual > 0``.
    """
    from tqdm.auto import tqdm

    config = config or PrivateConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / CHECKPOINT, out / TRAIN_LOG
    torch.manual_seed(config.seed)
    enc, dec = PrivateEncoder(config), PrivateDecoder(config)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, config.lr, total_steps=max(1, config.steps), pct_start=0.05
    )
    start, elapsed = 0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if json.loads(ck["config"]) != config.to_dict():
            raise ValueError(f"{ckpt_path}: trained with other settings; use another folder")
        enc.load_state_dict(ck["encoder"])
        dec.load_state_dict(ck["decoder"])
        if ck["step"] >= config.steps:
            return ckpt_path
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, elapsed = int(ck["step"]), float(ck["elapsed_s"])
        trim_log(log_path, "step", start)
    t0 = time.perf_counter()

    def save(step: int, metrics: dict[str, Any] | None = None) -> None:
        atomic_torch_save(
            {
                "format": FORMAT,
                "step": step,
                "config": json.dumps(config.to_dict()),
                "encoder": enc.state_dict(),
                "decoder": dec.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "elapsed_s": elapsed + time.perf_counter() - t0,
                "metrics": json.dumps(metrics or {}),
            },
            ckpt_path,
        )

    running = 0.0
    bar = tqdm(total=config.steps, initial=start, desc="private autoencoder", disable=not progress)
    perceptual = None
    if config.perceptual > 0:
        if feature_net is None:
            raise ValueError("a perceptual weight needs the feature network (the 'features' judge)")
        perceptual = PerceptualDistance(feature_net)
    for step in range(start, config.steps):
        x = _batch(images, step, config)
        mean, logvar = enc.posterior(x)
        z = mean
        if enc.variational:
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + step + 7)
            z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=g)
        y = dec(z)
        loss = F.mse_loss(y, x) + 0.1 * F.l1_loss(y, x)
        if enc.variational:
            kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum((1, 2, 3)).mean()
            loss = loss + config.kl * kl / x[0].numel()
        if perceptual is not None:
            loss = loss + config.perceptual * perceptual(y, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % config.log_every == 0:
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step + 1, "loss": running / config.log_every}) + "\n")
            running = 0.0
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            save(step + 1)
        bar.update(1)
        if stop_after is not None and step + 1 - start >= stop_after and step + 1 < config.steps:
            save(step + 1)
            bar.close()
            return ckpt_path
    bar.close()
    enc.eval()
    dec.eval()
    ae = PrivateAutoencoder(enc, dec, config, {})
    sets = held_out if isinstance(held_out, dict) else {"": held_out}
    metrics: dict[str, Any] = {}
    for i, (name, imgs) in enumerate(sets.items()):
        key = "held_out" if i == 0 else f"held_out_{name}"
        metrics[f"{key}_psnr_db"] = reconstruction_psnr(ae, imgs)
        metrics[f"{key}_n"] = int(imgs.shape[0])
    save(config.steps, metrics)
    (out / "metrics.json").write_text(json.dumps({**metrics, "config": config.to_dict()}, indent=2) + "\n")
    return ckpt_path


def load_private(path: str | Path) -> PrivateAutoencoder:
    """The autoencoder in a checkpoint (or a folder holding ``checkpoint.pt``), in eval mode."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    ck = torch.load(p, map_location="cpu", weights_only=True)
    if ck.get("format") != FORMAT:
        raise ValueError(f"{p} is not a private autoencoder checkpoint")
    d = json.loads(ck["config"])
    config = PrivateConfig(**d)
    enc, dec = PrivateEncoder(config), PrivateDecoder(config)
    enc.load_state_dict(ck["encoder"])
    dec.load_state_dict(ck["decoder"])
    return PrivateAutoencoder(enc.eval(), dec.eval(), config, json.loads(ck["metrics"]))
