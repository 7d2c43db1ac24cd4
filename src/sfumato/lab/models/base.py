"""The lab's base generators: what data, which latent space, what shape, how long, in one place.

A base generator is a :class:`~sfumato.lab.generator.LatentUNet` trained from scratch on CIFAR-10 train
(the :data:`LAB_CLASSES` subset, upscaled to 64 px) in the latent space of one image encoder. The attack
experiments fine-tune copies of it. :class:`BaseSpec` names everything that determines the result, so a
workdir holds one folder per spec and a rerun with the same spec resumes (or returns at once when done).

Why six classes: the issue's experiments need dog, cat, automobile, bird, truck and ship; fewer classes
give each one more of the 2-core training budget (a 60-minute target), which is what lets cat and dog,
the hardest CIFAR pair, come out recognisable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.data.captions import captions_for
from sfumato.lab.data.datasets import LabeledImages, load_cifar
from sfumato.lab.models.generator import GeneratorConfig, LatentUNet
from sfumato.lab.models.latent_cache import cached_latents
from sfumato.lab.models.text_encoder import TextEncoder
from sfumato.lab.models.training import CHECKPOINT, TrainConfig, load_checkpoint, train

LAB_CLASSES: tuple[str, ...] = ("automobile", "bird", "cat", "dog", "ship", "truck")

#: The default generator shape: 10 M parameters, three levels (8, 4, 2 latent cells), attention at all.
#: Measured on one core: 0.8 s per training step of 128 latents; a quarter of the 23 M default's cost.
BASE_GENERATOR = GeneratorConfig(width=64, channel_mults=(1, 2, 2), attn_resolutions=(8, 4, 2))
BASE_TRAINING = TrainConfig(steps=3600, batch=128, lr=5e-4, warmup=200, checkpoint_every=200, log_every=50)


@dataclass
class BaseSpec:
    """Everything that determines a base generator (its folder name is a hash of this)."""

    encoder: str = "flux2"  # a name or path for :func:`sfumato.lab.autoencoder.load_lab_encoder`
    classes: tuple[str, ...] = LAB_CLASSES
    per_class: int | None = None  # None: all 5,000 CIFAR-10 training images per class
    size: int = 64
    caption_seed: int = 0
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(**BASE_GENERATOR.to_dict()))
    training: TrainConfig = field(default_factory=lambda: TrainConfig(**BASE_TRAINING.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["generator"] = self.generator.to_dict()
        d["training"] = self.training.to_dict()
        return d

    def key(self) -> str:
        """A short hash of the settings that shape the model (not the checkpoint/log cadence or steps)."""
        d = self.to_dict()
        for k in ("steps", "checkpoint_every", "log_every", "save_optimizer_at_end"):
            d["training"].pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def folder(self, workdir: str | Path) -> Path:
        encoder = Path(str(self.encoder))
        # A checkpoint file is named by its folder: private-autoencoder/checkpoint.pt -> private-autoencoder.
        name = encoder.parent.name if encoder.suffix and encoder.parent.name else encoder.name
        return Path(workdir) / "base" / f"{name.replace('.', '_')}-{self.key()}"


def spec_for(encoder: str = "flux2") -> BaseSpec:
    """The default spec in ``encoder``'s latent space: the generator takes that encoder's latent shape.

    The default generator is shaped for FLUX.2's 32x8x8 latents; a private autoencoder (16 channels) or
    another encoder needs its own, and the spec (so the folder name) must say so.
    """
    from sfumato.lab.models.autoencoders import load_lab_encoder

    spec = BaseSpec(encoder=encoder)
    enc = load_lab_encoder(encoder)
    with torch.no_grad():
        probe = getattr(enc, "encode", enc)(torch.zeros(1, 3, spec.size, spec.size))
    channels, height, width = probe.shape[1:]
    if height != width:
        raise ValueError(f"encoder {encoder!r} gives non-square latents {tuple(probe.shape[1:])}")
    spec.generator.latent_channels = int(channels)
    spec.generator.latent_size = int(height)
    return spec


def variant_spec(encoder: str = "flux2", *, width: int | None = None, seed: int | None = None) -> BaseSpec:
    """``spec_for(encoder)`` with another generator width and training seed: a base generator the
    protector may hold instead of the victim's own (the grey-box setting of the experiments), in a
    folder of its own (both enter the spec's hash)."""
    spec = spec_for(encoder)
    if width is not None:
        if width < 8 or width % spec.generator.heads:
            raise ValueError(
                f"width must be >= 8 and a multiple of {spec.generator.heads} (heads), not {width}"
            )
        spec.generator.width = width
    if seed is not None:
        spec.training.seed = seed
    return spec


def cifar_zip(shared: str | Path | None = None) -> Path:
    """The CIFAR-10 zip: ``shared/data/cifar10.zip`` (default ``$SFUMATO_SHARED`` or ``../shared``)."""
    import os

    root = Path(shared or os.environ.get("SFUMATO_SHARED", "../shared"))
    path = root / "data" / "cifar10.zip"
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 not found at {path}; pass --shared DIR (the folder holding data/cifar10.zip) "
            "or set SFUMATO_SHARED"
        )
    return path


def training_data(spec: BaseSpec, zip_path: str | Path, progress: bool = True) -> LabeledImages:
    return load_cifar(zip_path, "train", classes=spec.classes, per_class=spec.per_class, progress=progress)


def latents_for(
    images: LabeledImages | torch.Tensor,
    encoder_name: str,
    workdir: str | Path,
    key: str,
    size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """Latents of ``images`` under the lab encoder ``encoder_name``, cached in ``workdir/latents``."""
    from sfumato.lab.models.autoencoders import load_lab_encoder

    pixels = images.images if isinstance(images, LabeledImages) else images
    encoder = load_lab_encoder(encoder_name)
    return cached_latents(key, pixels, encoder, Path(workdir) / "latents", size=size, progress=progress)


def train_base(
    workdir: str | Path,
    zip_path: str | Path,
    spec: BaseSpec | None = None,
    *,
    text: TextEncoder | None = None,
    progress: bool = True,
) -> Path:
    """Train (or resume, or return) the base generator of ``spec`` under ``workdir``; its checkpoint path.

    Writes ``spec.json`` beside the checkpoint. Resumable at every checkpoint (see :func:`train`).
    """
    spec = spec or BaseSpec()
    out = spec.folder(workdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    ckpt = out / CHECKPOINT
    if ckpt.exists() and load_checkpoint(ckpt)["step"] >= spec.training.steps:
        return ckpt
    data = training_data(spec, zip_path, progress=progress)
    latents = latents_for(
        data, spec.encoder, workdir, f"cifar-train-{'-'.join(spec.classes)}", spec.size, progress
    )
    captions = captions_for(data.labels, data.classes, seed=spec.caption_seed)
    text = text or TextEncoder()
    model = LatentUNet(GeneratorConfig(**spec.generator.to_dict()))
    meta = {"spec": spec.to_dict(), "classes": list(spec.classes)}
    return train(
        model, latents, captions, text.encode_tokens, spec.training, out, progress=progress, meta=meta
    )


def spec_from_dict(d: dict[str, Any]) -> BaseSpec:
    d = dict(d)
    d["classes"] = tuple(d["classes"])
    d["generator"] = GeneratorConfig.from_dict(d["generator"])
    d["training"] = TrainConfig.from_dict(d["training"])
    return BaseSpec(**d)


def base_quality(
    checkpoint: str | Path,
    judges: list[Any],
    *,
    n: int = 200,
    guidances: tuple[float, ...] = (3.0, 1.0),
    seed: int = 0,
    text: TextEncoder | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The judges' accuracy on images the generator draws for "a photo of a {class}", per class.

    Writes ``quality.json`` and ``samples.png`` (one row per class, guidance ``guidances[0]``) into
    ``out_dir`` (default: the checkpoint's folder).
    """
    from sfumato.lab.data.captions import prompt_for
    from sfumato.lab.figures import image_grid, save_png
    from sfumato.lab.judging.evaluation import class_accuracy, generate
    from sfumato.lab.models.autoencoders import load_lab_decoder
    from sfumato.lab.models.training import load_generator

    model, _, _, meta = load_generator(checkpoint)
    spec = spec_from_dict(meta["spec"])
    decoder = load_lab_decoder(spec.encoder)
    text = text or TextEncoder()
    prompts = {prompt_for(c): c for c in spec.classes}
    out = Path(out_dir) if out_dir else Path(checkpoint).parent
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "step": meta.get("step"),
        "n": n,
        "by_guidance": {},
    }
    rows = []
    for g in guidances:
        drawn = generate(model, decoder, text.encode_tokens, list(prompts), n, guidance=g, seed=seed)
        result["by_guidance"][f"{g:g}"] = class_accuracy(judges, drawn, prompts)
        if g == guidances[0]:
            rows = [drawn[p][:12] for p in prompts]
    atomic_write_text(out / "quality.json", json.dumps(result, indent=2) + "\n")
    if rows:
        save_png(image_grid(torch.cat(rows), columns=12, scale=2), out / "samples.png")
    return result
