"""The two protections, as a Python API: ``shade`` (concept poisoning) and ``cloak`` (style cloaking).

Both take a PIL image, a tensor or a file path, and return the protected image (same kind as the
input) with a report. They share one engine: choose a target image, attack the encoders within the
budget, quantise to 8 bits as a saved file would be, and measure the effect on every encoder.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sfumato.budget import make_budget
from sfumato.countermeasures.differentiable import ROBUST_RECIPE, ROBUST_STEP_FACTOR
from sfumato.countermeasures.views import VIEWS_STEP_FACTOR, TrainingViews
from sfumato.encoders import ImageEncoder, load_decoder, load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.encoders.precision import precision
from sfumato.encoders.weights import WeightsNotFoundError
from sfumato.families import resolve_encoders
from sfumato.generators import Generator, GeneratorEncoder, load_generator
from sfumato.imageio import LoadedImage, as_8bit, as_unit, load_image, to_tensor
from sfumato.objectives import (
    DEFAULT_OBJECTIVE,
    FOLDER_OBJECTIVES,
    IMAGE_OBJECTIVES,
    OBJECTIVES,
    generator_effect,
    make_objective,
)
from sfumato.optimise import OVERLAP, SPEED, TILE, Objective, protect_image
from sfumato.outputs import digest_file
from sfumato.report import effect_report
from sfumato.targets import auto_style, fit_to_8bit, latent_style_transfer, style_target

MEASURE_ENCODERS = ("flux2", "sana")  # always measured when available, attacked or not (transfer)
ImageLike = Image.Image | torch.Tensor | str | Path | LoadedImage
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Settings:
    """Everything that determines a protected output; its ``key`` decides whether a rerun can skip."""

    mode: str
    encoders: tuple[str, ...] = ("flux2",)
    encoder_weights: tuple[float, ...] = ()
    intensity: str = "default"
    budget: str = "jnd"
    eps: float | None = None
    jnd_scale: float | None = None
    speed: str = "default"
    steps: int | None = None
    seed: int = 0
    tile: int = TILE
    style: str | None = None
    style_image: str | None = None
    concept: str | None = None
    as_concept: str | None = None
    target_name: str | None = None  # the anchor's display name: reports never carry a path
    target_sha256: str | None = None  # ... and its content, which decides the key instead of a path
    style_image_sha256: str | None = None
    robust: bool = False  # optimise through random countermeasures (countermeasures/differentiable.py)
    views: TrainingViews | None = None  # optimise through random training views (countermeasures/views.py)
    against: str | None = None  # a generator (lab checkpoint or diffusers folder): see sfumato.generators
    objective: str | None = None  # with ``against``: one of sfumato.objectives.IMAGE_OBJECTIVES
    prompt: str | None = None  # with ``against``: the caption the mimic trains the work under

    def as_dict(self) -> dict[str, Any]:
        # robust=False is left out, so outputs made before robust mode existed keep their key.
        return {
            k: v for k, v in asdict(self).items() if v not in (None, ()) and not (k == "robust" and not v)
        }

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Protected:
    """A protected image, the target it was pulled toward, and its report.

    The pixels are kept in 8 bits (uint8, (3, H, W)), as a saved file holds them: a float copy of a
    large image costs four times as much (issue 23, finding 8). :attr:`tensor` and :attr:`target` make
    the float view in [0, 1] when asked for.
    """

    image: Any
    pixels: torch.Tensor
    target_pixels: torch.Tensor
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def tensor(self) -> torch.Tensor:
        """The protected image as floats in [0, 1], (3, H, W): exactly ``pixels / 255``."""
        return as_unit(self.pixels)

    @property
    def target(self) -> torch.Tensor:
        """The target image as floats in [0, 1]: (1, 3, H, W) from :func:`shade` and :func:`cloak`."""
        return as_unit(self.target_pixels)


def image_identity(image: ImageLike, name: str | None = None) -> tuple[str | None, str | None]:
    """A target's display name and a short digest of its file, for reports and the settings key.

    Reports name a target image by its display name only, never a path: a path says where a user keeps
    files, or where a server stores uploads (``.../uploads/<id>/source``). The digest makes two
    different files of the same name different settings, and a moved folder the same ones.
    """
    if not isinstance(image, (str, Path)):
        return name, None
    digest = digest_file(Path(image))
    return name or Path(image).name, None if digest is None else digest[:16]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    return torch.device(device)


def _as_loaded(image: ImageLike) -> tuple[LoadedImage, str]:
    """Normalise any accepted input to a LoadedImage plus a tag saying how to hand the result back."""
    if isinstance(image, LoadedImage):  # already decoded (the batch needs it to save): not a second copy
        return image, "loaded"
    if isinstance(image, (str, Path)):
        return load_image(image), "path"
    if isinstance(image, Image.Image):
        alpha = None
        grey = image.mode in ("L", "LA")
        if image.mode in ("RGBA", "LA"):
            alpha = to_tensor(image.getchannel("A").convert("RGB"))[:1]
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()  # 8-bit
        return LoadedImage(Path("<PIL image>"), rgb, alpha, grey, image.info.get("icc_profile"), None), "pil"
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"tensor images must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        if t.min() < 0 or t.max() > 1:
            raise ValueError("tensor images must hold values in [0, 1]")
        return LoadedImage(Path("<tensor>"), t, None, False, None, None), "tensor"
    raise TypeError(f"expected a PIL image, a tensor or a path, got {type(image).__name__}")


def _hand_back(loaded: LoadedImage, pixels: torch.Tensor, kind: str) -> Any:
    """The protected ``pixels`` (uint8) as the caller gave the image: a float tensor for a tensor, the
    8-bit pixels for a :class:`LoadedImage` (the batch saves them), a PIL image otherwise."""
    if kind == "tensor":
        return as_unit(pixels)
    if kind == "loaded":
        return pixels
    from sfumato.imageio import to_pil

    pil = to_pil(pixels)
    if loaded.greyscale:
        pil = pil.convert("L")
    if loaded.alpha is not None:
        pil.putalpha(to_pil(loaded.alpha.expand(3, -1, -1)).convert("L"))
    return pil


def load_measure_encoders(
    attacked: Sequence[ImageEncoder], weights_dir: str | Path | None
) -> list[ImageEncoder]:
    """The attacked encoders plus every other known one whose weights are at hand."""
    found = list(attacked)
    names = {e.name for e in found}
    for name in MEASURE_ENCODERS:
        if name in names:
            continue
        try:
            found.append(load_encoder(name, weights_dir))
        except (WeightsNotFoundError, OSError, ValueError):
            continue
    return found


def as_views(views: TrainingViews | int | None) -> TrainingViews | None:
    """``views`` as given to :func:`shade` / :func:`cloak`: a training resolution in px is the default view
    distribution at that size."""
    if views is None or isinstance(views, TrainingViews):
        return views
    if isinstance(views, bool) or not isinstance(views, int):
        raise TypeError(f"views must be a training resolution in px or a TrainingViews, not {views!r}")
    return TrainingViews(size=views)


def _engine(
    loaded: LoadedImage,
    target: torch.Tensor,
    settings: Settings,
    *,
    device: str,
    weights_dir: str | Path | None,
    progress: ProgressFn | None,
    extra_report: dict[str, Any],
) -> tuple[torch.Tensor, dict[str, Any]]:
    started = time.perf_counter()
    dev = resolve_device(device)
    objective = None
    if settings.against is not None:
        generator, objective = _against(settings, dev)
        encoders: list[ImageEncoder] = [GeneratorEncoder(generator)]
        ensemble = Ensemble(encoders, bf16=dev.type != "mps")
    else:
        encoders = [load_encoder(name, weights_dir).to(dev) for name in settings.encoders]
        ensemble = Ensemble(encoders, list(settings.encoder_weights), bf16=dev.type != "mps")
    budget = make_budget(settings.intensity, settings.budget, settings.eps, settings.jnd_scale)
    speed = SPEED[settings.speed] if settings.speed in SPEED else None
    if speed is None:
        raise ValueError(f"speed must be one of {sorted(SPEED)}, not {settings.speed!r}")
    # Robust mode: each step sees random draws of differentiable countermeasures (JPEG, resizing,
    # blur, noise, shifts), and takes ROBUST_STEP_FACTOR times the preset's steps to converge.
    factor = ROBUST_STEP_FACTOR if settings.robust else 1
    if settings.views is not None:
        factor = max(factor, VIEWS_STEP_FACTOR)
    steps = settings.steps or int(speed["steps"]) * factor
    x = loaded.pixels[None].to(dev)  # 8-bit for 8-bit sources: read a tile or a band at a time
    # The allowance row by row and the result in 8 bits as the tiles finish: a large image never holds
    # its whole allowance, perturbation or a float copy of the result (issue 23, finding 8).
    protected = protect_image(
        x,
        target.to(dev),
        ensemble,
        lambda top, bottom: budget.allowance_rows(x, top, bottom),
        steps=steps,
        lr=speed["lr"],
        shared_channels=loaded.greyscale,
        seed=settings.seed,
        tile=settings.tile,
        overlap=OVERLAP,
        progress=progress,
        transform=ROBUST_RECIPE if settings.robust else None,
        views=settings.views,
        objective=objective,
    ).cpu()
    seconds = time.perf_counter() - started
    if settings.against is not None:
        extra_report = {
            **extra_report,
            "against": generator_effect(
                generator, settings, as_unit(x), as_unit(protected).to(dev), as_unit(target).to(dev)
            ),
        }
    # Against a generator, its latents are reported above and the known encoders measure transfer.
    attacked = encoders if settings.against is None else []
    measure = [e.to("cpu") for e in load_measure_encoders(attacked, weights_dir)]
    names = tuple(e.name for e in attacked)  # as the report names them (a path loads as its short name)
    effect = effect_report(loaded.pixels[None], protected, target.cpu(), measure, names)
    if settings.views is not None:
        # The shift the training views carry, on a bank of boxes the attack never drew from.
        check = Ensemble(measure, bf16=False)
        bound = settings.views.bind(loaded.rgb[None], as_unit(target).cpu(), check, settings.seed + 7919)
        moved = bound.moved(as_unit(protected), check)
        extra_report = {
            **extra_report,
            "views": {
                **settings.views.describe(),
                "step_factor": factor,
                "fraction_moved": {e.name: round(m, 4) for e, m in zip(measure, moved, strict=True)},
            },
        }
    report = {
        "settings": settings.as_dict(),
        "settings_key": settings.key(),
        "budget": budget.describe(),
        "steps": steps,
        "device": str(dev),
        "precision": precision(dev),  # the encoders' gradients: bf16 only where the CPU makes it fast
        "size": list(loaded.size),
        "seconds": round(seconds, 2),
        "seconds_measuring": round(time.perf_counter() - started - seconds, 2),
        **({"robust": {**ROBUST_RECIPE.describe(), "step_factor": factor}} if settings.robust else {}),
        **extra_report,
        "effect": effect,
        "notes": list(loaded.notes),
    }
    return protected[0], report


def _against(settings: Settings, device: torch.device) -> tuple[Generator, Objective | None]:
    """The generator ``settings.against`` names and the objective to attack it with."""
    name = settings.objective or DEFAULT_OBJECTIVE
    if name in FOLDER_OBJECTIVES:
        raise ValueError(f"{name!r} trains a surrogate on a whole folder: use sfumato.protect_works")
    if name not in IMAGE_OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {name!r}")
    if name != "latent" and not settings.prompt:
        raise ValueError(f"the {name!r} objective needs the prompt the mimic trains under (prompt=...)")
    generator = load_generator(str(settings.against), device)
    cond = generator.condition([settings.prompt or ""])
    return generator, make_objective(name, generator, cond)


def _check_against(against: str | Path | None, objective: str | None, prompt: str | None) -> None:
    if against is None and (objective is not None or prompt is not None):
        raise ValueError("objective and prompt need a generator to attack (against=...)")


def shade(
    image: ImageLike,
    target: ImageLike,
    *,
    concept: str | None = None,
    as_concept: str | None = None,
    target_name: str | None = None,
    encoders: Sequence[str] | None = None,
    encoder_weights: Sequence[float] = (),
    intensity: str = "default",
    budget: str = "jnd",
    eps: float | None = None,
    speed: str = "default",
    steps: int | None = None,
    seed: int = 0,
    tile: int = TILE,
    device: str = "auto",
    weights_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    robust: bool = False,
    views: TrainingViews | int | None = None,
    against: str | Path | None = None,
    objective: str | None = None,
    prompt: str | None = None,
) -> Protected:
    """Concept poisoning: make ``image`` (of ``concept``) encode like ``target`` (an ``as_concept`` photo).

    The anchor is fitted to the source's size and aspect ratio by cover-resize and centre crop.
    ``robust=True`` optimises through random JPEG, resizing, blur, noise and shifts, so the latent
    shift survives what a scraper does to the image (3x the steps with 2 draws each: 6x the encoder passes).
    ``views`` (a training resolution in px, or a :class:`TrainingViews`) optimises the latents of random
    crops resized to that resolution, as a fine-tuning pipeline cuts them (3x the steps).
    ``against`` (a ``sfumato lab train-base`` folder or a diffusers pipeline folder) attacks that
    generator instead of ``encoders``, with ``objective`` (``latent``, the default, or ``advdm``,
    ``sds-``, ``targeted``: see :mod:`sfumato.objectives`) and ``prompt`` (default: ``concept``).
    ``target_name`` is how the report names the target (default: its file name; never its path).
    ``encoders`` (with ``encoder_weights``) are the image encoders attacked; by default the model families
    sfumato can fetch, weighted by the lab's latent-space table (:mod:`sfumato.families`).
    """
    _check_against(against, objective, prompt)
    encoders, encoder_weights = resolve_encoders(encoders, encoder_weights)
    loaded, kind = _as_loaded(image)
    anchor, _ = _as_loaded(target)
    shown, digest = image_identity(target, target_name)
    h, w = loaded.pixels.shape[-2:]
    fitted = fit_to_8bit(anchor.rgb[None], h, w)  # kept whole: in 8 bits, as an image file would be
    settings = Settings(
        mode="shade",
        encoders=tuple(encoders),
        encoder_weights=tuple(encoder_weights),
        intensity=intensity,
        budget=budget,
        eps=eps,
        speed=speed,
        steps=steps,
        seed=seed,
        tile=tile,
        robust=robust,
        views=as_views(views),
        concept=concept,
        as_concept=as_concept,
        target_name=shown,
        target_sha256=digest,
        against=str(against) if against is not None else None,
        objective=objective if against is not None else None,
        prompt=(prompt or concept) if against is not None else None,
    )
    rgb, report = _engine(
        loaded,
        fitted,
        settings,
        device=device,
        weights_dir=weights_dir,
        progress=progress,
        extra_report={"caption": concept} if concept else {},
    )
    return Protected(_hand_back(loaded, rgb, kind), rgb, fitted, report)


def cloak(
    image: ImageLike,
    style: str = "auto",
    *,
    style_image: ImageLike | None = None,
    encoders: Sequence[str] | None = None,
    encoder_weights: Sequence[float] = (),
    intensity: str = "default",
    budget: str = "jnd",
    eps: float | None = None,
    speed: str = "default",
    steps: int | None = None,
    seed: int = 0,
    tile: int = TILE,
    device: str = "auto",
    weights_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    robust: bool = False,
    views: TrainingViews | int | None = None,
    against: str | Path | None = None,
    objective: str | None = None,
    prompt: str | None = None,
) -> Protected:
    """Style cloaking: pull the artwork's latents toward the same picture in a different style.

    ``style`` is a built-in style name or ``"auto"``; ``style_image`` instead transfers the look of
    a reference image in the FLUX.2 latent space. ``robust`` and ``views``: as in :func:`shade`.
    ``against``, ``objective`` and ``prompt`` (the mimic's caption, e.g. "a painting by NAME"): as in
    :func:`shade`; ``targeted`` pulls toward the style target.
    """
    _check_against(against, objective, prompt)
    encoders, encoder_weights = resolve_encoders(encoders, encoder_weights)
    loaded, kind = _as_loaded(image)
    extra: dict[str, Any] = {}
    style_shown, style_digest = (None, None) if style_image is None else image_identity(style_image)
    if style_image is not None:
        reference, _ = _as_loaded(style_image)
        target = latent_style_transfer(
            loaded.rgb[None],
            reference.rgb[None],
            load_encoder("flux2", weights_dir),
            load_decoder("flux2", weights_dir),
        )
        chosen = None
    else:
        chosen = style
        if style == "auto":
            chooser = (
                GeneratorEncoder(load_generator(str(against)))
                if against is not None
                else load_encoder(encoders[0], weights_dir)
            )
            chosen, distances = auto_style(loaded.rgb[None], chooser, seed)
            extra["style_distances"] = {k: round(v, 5) for k, v in distances.items()}
        # The 8-bit source itself: the style reads it into its one working copy, no float copy first.
        target = style_target(loaded.pixels[None], chosen, seed)
        extra["style"] = chosen
    target = as_8bit(target)  # kept whole through the engine: in 8 bits, as an image file would be
    settings = Settings(
        mode="cloak",
        encoders=tuple(encoders),
        encoder_weights=tuple(encoder_weights),
        intensity=intensity,
        budget=budget,
        eps=eps,
        speed=speed,
        steps=steps,
        seed=seed,
        tile=tile,
        robust=robust,
        views=as_views(views),
        style=style if style_image is None else None,
        style_image=style_shown,
        style_image_sha256=style_digest,
        against=str(against) if against is not None else None,
        objective=objective,
        prompt=prompt,
    )
    rgb, report = _engine(
        loaded,
        target,
        settings,
        device=device,
        weights_dir=weights_dir,
        progress=progress,
        extra_report=extra,
    )
    return Protected(_hand_back(loaded, rgb, kind), rgb, target, report)
