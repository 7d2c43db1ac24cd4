"""``inspect``: the effect report for any original/protected pair, with or without sfumato's sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sfumato.encoders import load_decoder, load_encoder
from sfumato.imageio import load_image
from sfumato.outputs import digest_file, read_report
from sfumato.protect import MEASURE_ENCODERS, load_measure_encoders
from sfumato.report import effect_report
from sfumato.targets import fit_to, latent_style_transfer, style_target


def sidecar_path(protected: Path) -> Path:
    """Where sfumato writes the report of an output: beside it, ``.json`` appended."""
    return protected.with_name(protected.name + ".json")


def _target_from_sidecar(
    original: torch.Tensor, sidecar: dict[str, Any], weights_dir: str | Path | None
) -> tuple[torch.Tensor | None, str | None]:
    settings = sidecar.get("settings", {})
    h, w = original.shape[-2:]
    if settings.get("target_file"):  # reports written before they named targets without a path
        path = Path(settings["target_file"])
        if not path.exists():
            return None, f"target image {path} named in the sidecar is missing"
        return fit_to(load_image(path).rgb[None], h, w), None
    if settings.get("target_name"):
        return None, (
            f"the report names the target image {settings['target_name']!r} but not where it is (reports "
            "carry no paths); pass it with --target to measure the movement toward it"
        )
    if settings.get("style_image"):
        path = Path(settings["style_image"])  # a name, looked for in the current folder (old reports: a path)
        recorded = settings.get("style_image_sha256")
        if not path.is_file() or (recorded and (digest_file(path) or "")[:16] != recorded):
            return None, f"the style image {path.name!r} named in the report is not at hand here"
        return latent_style_transfer(
            original,
            load_image(path).rgb[None],
            load_encoder("flux2", weights_dir),
            load_decoder("flux2", weights_dir),
        ), None
    if sidecar.get("style"):
        return style_target(original, sidecar["style"], int(settings.get("seed", 0))), None
    return None, "the sidecar names no target"


def inspect(
    original: str | Path,
    protected: str | Path,
    *,
    target: str | Path | None = None,
    weights_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Quality and latent figures for a pair of files.

    The target (what the latents should have moved toward) comes from ``target``, else from the
    protected file's sidecar (anchor file, or style and seed), else only the latent shift is reported.
    """
    a, b = load_image(original), load_image(protected)
    if a.size != b.size:
        raise ValueError(f"{original} is {a.size[0]}x{a.size[1]} but {protected} is {b.size[0]}x{b.size[1]}")
    x, y = a.rgb[None], b.rgb[None]
    notes = []
    sidecar = _own_report(Path(protected), notes)
    attacked = tuple(sidecar.get("settings", {}).get("encoders", ()))
    if target is not None:
        t: torch.Tensor | None = fit_to(load_image(target).rgb[None], *x.shape[-2:])
    elif sidecar:
        t, note = _target_from_sidecar(x, sidecar, weights_dir)
        notes += [note] if note else []
    else:
        t = None
        notes.append("no target given and no sidecar found: only the latent shift is reported")
    encoders = load_measure_encoders(
        [load_encoder(n, weights_dir) for n in attacked or MEASURE_ENCODERS[:1]], weights_dir
    )
    out: dict[str, Any] = {"original": str(original), "protected": str(protected)}
    out.update(effect_report(x, y, t, encoders, attacked))
    if not attacked:  # without a report nobody knows which encoder was attacked: say so, not "transfer"
        for figures in out.get("latents", {}).values():
            figures["attacked"] = None
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _own_report(protected: Path, notes: list[str]) -> dict[str, Any]:
    """The sidecar report of ``protected``, if it describes this very image (its recorded SHA-256
    matches); a report left by an interrupted run that describes other bytes is ignored, with a note."""
    side = sidecar_path(protected)
    if not side.exists():
        return {}
    doc = read_report(side)
    if doc is None:
        notes.append(f"{side.name} is not a readable report; ignored it")
        return {}
    recorded = doc.get("output_sha256")
    if isinstance(recorded, str) and recorded != digest_file(protected):
        notes.append(f"{side.name} describes another version of this image (an interrupted run?); ignored it")
        return {}
    return doc
