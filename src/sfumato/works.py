"""Protecting a whole folder at once against a generator: the surrogate-training schemes' public API.

``aspl``, ``metacloak`` and ``mist`` (:mod:`sfumato.objectives.surrogate`) fine-tune a surrogate of the
generator on every work together, so they cannot run one image at a time as :func:`sfumato.cloak` does.
:func:`protect_works` takes the works (PIL images, tensors or paths) and returns one
:class:`~sfumato.protect.Protected` each; :func:`protect_folder_files` is what ``sfumato cloak/shade
--objective aspl|metacloak|mist`` runs: files in, files (and reports) out, resumable from the checkpoint it
keeps in the output folder. Works are attacked whole (no tiles): memory grows with the largest work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from PIL import Image

from sfumato.budget import make_budget
from sfumato.countermeasures.views import TrainingViews
from sfumato.generators import load_generator
from sfumato.imageio import as_8bit, as_unit, atomic_write_text, collect_inputs, load_image, save_image
from sfumato.inspect import sidecar_path
from sfumato.objectives import FOLDER_OBJECTIVES, RoundReport, Schedule, generator_effect, protect_folder
from sfumato.objectives.surrogate import DEFAULTS, TARGETED_SCHEMES
from sfumato.protect import ImageLike, Protected, Settings, _as_loaded, _hand_back, as_views, resolve_device
from sfumato.quality import measure_quality
from sfumato.targets import choose_anchor, fit_to, set_style, style_distances, style_target

CHECKPOINT_NAME = ".sfumato-surrogate.pt"


def protect_works(
    images: Sequence[ImageLike],
    *,
    against: str | Path,
    objective: str = "aspl",
    prompt: str | Sequence[str],
    mode: str = "cloak",
    intensity: str = "default",
    budget: str = "jnd",
    eps: float | None = None,
    seed: int = 0,
    robust: bool = False,
    views: TrainingViews | int | None = None,
    schedule: Schedule | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    on_round: Callable[[RoundReport], None] | None = None,
    targets: Sequence[ImageLike] | None = None,
) -> list[Protected]:
    """Protect ``images`` together against the generator ``against`` by ``objective`` (``aspl`` or
    ``metacloak``), each captioned ``prompt`` (one for all, or one per work: for ``shade``, the poison's
    caption). ``schedule`` overrides the scheme's defaults (:data:`sfumato.objectives.surrogate.DEFAULTS`);
    ``checkpoint`` (a file) makes the run resumable round by round; ``on_round`` sees each round.
    ``targets`` (``mist``): one target image per work (a cloak's style rendering, a poison's anchor),
    fitted to the work's size."""
    if objective not in FOLDER_OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(FOLDER_OBJECTIVES)}, not {objective!r}")
    started = time.perf_counter()
    dev = resolve_device(device)
    loaded = [_as_loaded(img) for img in images]
    prompts = [prompt] * len(loaded) if isinstance(prompt, str) else list(prompt)
    rule = make_budget(intensity, budget, eps)
    bound_views = as_views(views)
    generator = load_generator(str(against), dev)
    works = [item.rgb[None].to(dev) for item, _ in loaded]
    aims = None
    if targets is not None:
        if len(targets) != len(works):
            raise ValueError(f"{len(targets)} target images for {len(works)} works")
        aims = [
            fit_to(_as_loaded(t)[0].rgb[None], *x.shape[-2:]).to(dev)
            for t, x in zip(targets, works, strict=True)
        ]
    allowances = [rule.allowance(x) for x in works]
    plan = schedule or DEFAULTS[objective]
    rounds: list[dict[str, Any]] = []

    def seen(report: RoundReport) -> None:
        rounds.append(asdict(report))
        if on_round is not None:
            on_round(report)

    deltas = protect_folder(
        works, allowances, generator, prompts, scheme=objective, schedule=plan, seed=seed,
        checkpoint=checkpoint, views=bound_views, robust=robust, on_round=seen, targets=aims,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    out = []
    for (item, kind), x, d, p in zip(loaded, works, deltas, prompts, strict=True):
        if item.greyscale:
            d = d.mean(1, keepdim=True).expand_as(d)  # grey in, grey out: one change for all channels
        pixels = as_8bit(x + d)  # as a saved file holds it
        protected = as_unit(pixels)
        settings = Settings(
            mode=mode, intensity=intensity, budget=budget, eps=eps, seed=seed, robust=robust,
            views=bound_views, against=str(against), objective=objective, prompt=p,
        )  # fmt: skip
        report = {
            "settings": settings.as_dict(),
            "settings_key": settings.key(),
            "budget": rule.describe(),
            "schedule": asdict(plan),
            "device": str(dev),
            "size": list(item.size),
            "seconds_per_work": round(seconds / len(works), 2),
            "rounds": rounds,
            "against": generator_effect(generator, settings, x, protected),
            "effect": {"quality": measure_quality(x.cpu(), protected.cpu()).as_dict()},
            "notes": list(item.notes),
        }
        kept = pixels[0].cpu()
        out.append(Protected(_hand_back(item, kept, kind), kept, kept, report))
    return out


def protect_folder_files(
    inputs: Sequence[Path | str],
    out_dir: Path | str,
    mode: str,
    *,
    against: str | Path,
    objective: str,
    prompt: str,
    fmt: str = "png",
    quality: int = 95,
    verbose: bool = True,
    rounds: int | None = None,
    style: str = "auto",
    target_images: Path | str | Sequence[Path | str] | None = None,
    **options: Any,
) -> list[Path]:
    """``sfumato cloak/shade FOLDER --objective aspl|metacloak``: protect every image of ``inputs`` into
    ``out_dir`` (same relative names, ``fmt`` suffix, a ``.json`` report beside each, a ``.txt`` caption
    for ``shade``). The checkpoint lives in ``out_dir`` until the run ends, so a rerun after an
    interruption resumes at the last finished round. ``rounds`` overrides the scheme's default.
    ``mist`` pulls toward a target per work: for ``cloak``, ``style`` (``auto``: one style for the whole
    set, :func:`sfumato.targets.set_style`, on the generator's encoder); for ``shade``, an image from
    ``target_images`` per work (closest aspect ratio first)."""
    out = Path(out_dir)
    files = collect_inputs(inputs)
    if not files:
        raise ValueError("no images found in the inputs")
    loaded = [load_image(f) for f, _ in files]
    checkpoint = out / CHECKPOINT_NAME
    schedule = DEFAULTS[objective] if objective in DEFAULTS else None
    if schedule is not None and rounds is not None:
        schedule = replace(schedule, rounds=rounds)

    def show(r: RoundReport) -> None:
        if verbose:
            print(
                f"round {r.round}/{r.rounds}: surrogate loss {r.surrogate_loss:.4f} ({r.seconds:.1f} s)",
                flush=True,
            )

    targets = None
    if objective in TARGETED_SCHEMES:
        targets = _folder_targets(loaded, files, mode, against, style, target_images, options.get("seed", 0))
    results = protect_works(
        [item.rgb for item in loaded], against=against, objective=objective, prompt=prompt, mode=mode,
        schedule=schedule, checkpoint=checkpoint, on_round=show, targets=targets, **options,
    )  # fmt: skip
    written = []
    forbidden = [f for f, _ in files]
    for (file, relative), item, result in zip(files, loaded, results, strict=True):
        output = out / relative.with_suffix("." + fmt.lstrip("."))
        output.parent.mkdir(parents=True, exist_ok=True)
        warnings = save_image(item, result.tensor, output, quality=quality, forbidden=forbidden)
        if mode == "shade":
            atomic_write_text(output.with_suffix(".txt"), prompt + "\n")
        doc = {"input": str(file), "output": str(output), **result.report, "warnings": warnings}
        atomic_write_text(sidecar_path(output), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        written.append(output)
        if verbose:
            loss = result.report["against"]["denoising_loss"]
            psnr = result.report["effect"]["quality"].get("psnr_db")
            print(
                f"{relative.as_posix()}: denoising loss {loss['before']:.4f} -> {loss['after']:.4f}, "
                f"PSNR {psnr} dB"
            )
    checkpoint.unlink(missing_ok=True)
    return written


def _folder_targets(
    loaded: Sequence[Any],
    files: Sequence[tuple[Path, Path]],
    mode: str,
    against: str | Path,
    style: str,
    target_images: Path | str | Sequence[Path | str] | None,
    seed: int,
) -> list[Any]:
    """The target image of each work for a targeted folder scheme (``mist``)."""
    if mode == "cloak":
        if style == "auto":
            from sfumato.generators import GeneratorEncoder

            encoder = GeneratorEncoder(load_generator(str(against)))
            style, _ = set_style([style_distances(item.rgb[None], encoder, seed) for item in loaded])
        return [style_target(item.rgb[None], style, seed) for item in loaded]
    if target_images is None:
        raise ValueError("shade with a targeted scheme needs --target-images, the concept to pull toward")
    paths = target_images if isinstance(target_images, (list, tuple)) else [target_images]
    found = [f for f, _ in collect_inputs(paths)]
    if not found:
        raise ValueError(f"no target images found in {', '.join(map(str, paths))}")
    sizes = []
    for f in found:
        with Image.open(f) as img:
            sizes.append((f, img.size))
    return [
        choose_anchor(item.size, sizes, key=str(relative))
        for item, (_, relative) in zip(loaded, files, strict=True)
    ]
